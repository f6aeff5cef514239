"""A save in flight: `tenure.io`'s own asynchronous handle, and the manager's tail of it."""

from __future__ import annotations

from concurrent.futures import Future

from tenure import io
from tenure.io.storage import Location
from tenure.manager._steps import CheckpointMetadata
from tenure.retention import CheckpointInfo


class SaveResponse:
    """Returned by `Checkpointer.save_async`: the step being saved, `staged()` once the
    caller may reuse its arrays (the I/O layer's own handle answers), and `result()` once the
    step is committed and retention has run, returning the committed step's description
    (re-raising any error of the save).

    Examples:
        >>> import tempfile, numpy as np
        >>> from tenure import Checkpointer
        >>> with Checkpointer(tempfile.mkdtemp()) as ckptr:
        ...     response = ckptr.save_async(0, {"w": np.ones(2)})
        ...     response.staged()  # the array may change from here on
        ...     print(response.step, response.result().step, response.done())
        0 0 True
    """

    def __init__(self, info: CheckpointInfo, path: Location, handle: io.AsyncSave) -> None:
        self.info = info
        self.path = path
        self.io = handle  # the save itself: staging and commit
        self.committed = False  # set under the Checkpointer's lock at the commit
        self._tail: Future[CheckpointMetadata] = Future()  # commit, plan, retire, remove

    @property
    def step(self) -> int:
        return self.info.step

    def staged(self, timeout: float | None = None) -> None:
        self.io.staged(timeout)

    def result(self, timeout: float | None = None) -> CheckpointMetadata:
        return self._tail.result(timeout)

    def done(self) -> bool:
        return self._tail.done()

    def exception(self) -> BaseException | None:
        """Waits for the end of the save; its error, or None when it committed."""
        return self._tail.exception()

    def finish(self, entry: CheckpointMetadata) -> None:
        self._tail.set_result(entry)

    def fail(self, error: BaseException) -> None:
        self._tail.set_exception(error)
