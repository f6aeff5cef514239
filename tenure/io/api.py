"""The public save and load functions, blocking and asynchronous."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from tenure.io.arrays import ArrayLayout
from tenure.io.checkpointables import (
    PreparedSave,
    load_many,
    load_one,
    plan_one,
    prepare_save,
    pytree_item_metadata,
    require_step,
    take_states,
)
from tenure.io.commit import Processes
from tenure.io.metadata import JsonValue, StepMetadata
from tenure.io.pytree import LoadPlan, collector_paused
from tenure.io.root import DEFAULT_ITEM, PathLike


def save_checkpointables(
    directory: PathLike,
    checkpointables: Mapping[str, Any],
    *,
    custom_metadata: dict[str, JsonValue] | None = None,
    metrics: JsonValue = None,
    layout: ArrayLayout | None = None,
    processes: Processes | None = None,
    init_timestamp_nsecs: int | None = None,
) -> None:
    """Save several named checkpointables into step directory `directory`, atomically.

    Values may be pytrees, JSON values, PRNG keys (typed or raw) or `numpy.random.Generator`s.
    The step is written beside `directory` and renamed into place once durable.
    `init_timestamp_nsecs` records when the save was decided (default: now); a caller with
    its own clock, such as the Checkpointer, passes it in.

    Examples:
        >>> import tempfile, numpy as np
        >>> d = tempfile.mkdtemp() + "/1"
        >>> save_checkpointables(d, {"state": {"w": np.ones(3)}, "config": {"lr": 0.1}})
        >>> load_checkpointables(d)["config"]
        {'lr': 0.1}
    """
    # Paused across staging and writing both, not each on its own: what is staged is then
    # freed before the collector resumes instead of being walked by its first pass.
    with collector_paused():
        prepare_save(
            directory,
            checkpointables,
            custom_metadata=custom_metadata,
            metrics=metrics,
            layout=layout,
            processes=processes,
            copy=False,
            init_timestamp_nsecs=init_timestamp_nsecs,
        ).run()


def save_pytree(
    directory: PathLike,
    tree: Any,
    *,
    custom_metadata: dict[str, JsonValue] | None = None,
    metrics: JsonValue = None,
    layout: ArrayLayout | None = None,
    processes: Processes | None = None,
) -> None:
    """Save `tree` as the `state` checkpointable of step directory `directory`.

    Examples:
        >>> import tempfile, numpy as np
        >>> d = tempfile.mkdtemp() + "/1"
        >>> save_pytree(d, {"w": np.arange(3)})
        >>> load_pytree(d)["w"]
        array([0, 1, 2])
    """
    save_checkpointables(
        directory,
        {DEFAULT_ITEM: tree},
        custom_metadata=custom_metadata,
        metrics=metrics,
        layout=layout,
        processes=processes,
    )


def load_checkpointables(
    directory: PathLike, abstract: Mapping[str, Any] | None = None, *, partial: bool = False
) -> dict[str, Any]:
    """Load checkpointables; with `abstract`, only the names it lists, shaped like its values.

    A pytree value must name every key saved in its checkpointable (`StructureMismatchError`
    lists the difference); with `partial`, it may name a subset, and only that is read.

    Examples:
        >>> import tempfile, numpy as np
        >>> d = tempfile.mkdtemp() + "/1"
        >>> save_checkpointables(d, {"a": {"x": np.zeros(1)}, "b": [1, 2]})
        >>> load_checkpointables(d, {"b": None})
        {'b': [1, 2]}
    """
    return load_many(directory, abstract, partial=partial)


def load_pytree(
    directory: PathLike,
    abstract_tree: Any = None,
    *,
    name: str = DEFAULT_ITEM,
    partial: bool = False,
) -> Any:
    """Load a pytree checkpointable (default `state`), shaped like `abstract_tree` when given.

    Abstract leaves choose what comes back: `jax.ShapeDtypeStruct` (with a sharding) gives a
    `jax.Array` with that sharding and dtype (a different dtype is a cast); a numpy array gives
    numpy; None gives the saved subtree. `abstract_tree` must name every saved key, unless
    `partial`: then the keys it leaves out are not read. Shapes never change. Without
    `abstract_tree`, jax arrays come back with their saved shardings, or
    `TopologyMismatchError` when this process lacks those devices.

    Examples:
        >>> import tempfile, jax, numpy as np
        >>> d = tempfile.mkdtemp() + "/1"
        >>> save_pytree(d, {"w": np.arange(4.0), "b": np.zeros(2)})
        >>> load_pytree(d, {"w": jax.ShapeDtypeStruct((4,), np.float32)}, partial=True)["w"].dtype
        dtype('float32')
    """
    return load_one(require_step(directory), name, abstract_tree, partial=partial)


def plan_load(
    directory: PathLike,
    abstract_tree: Any = None,
    partial: bool = False,
    *,
    name: str = DEFAULT_ITEM,
) -> LoadPlan:
    """What `load_pytree(directory, abstract_tree, partial=partial)` would do, without reading
    array data: keys matched and left out, dtype casts, arrays resharded, bytes per process.
    Raises exactly what the load would raise before reading.

    Examples:
        >>> import tempfile, numpy as np
        >>> d = tempfile.mkdtemp() + "/1"
        >>> save_pytree(d, {"w": np.zeros(4, np.float32)})
        >>> plan_load(d, {"w": np.zeros(4, np.float32)}).bytes_per_process
        {0: 16}
    """
    return plan_one(directory, name, abstract_tree, partial=partial)


def pytree_metadata(directory: PathLike, *, name: str = DEFAULT_ITEM) -> Any:
    """The saved tree with `jax.ShapeDtypeStruct` leaves (and `str` for strings); reads no data.

    Examples:
        >>> import tempfile, numpy as np
        >>> d = tempfile.mkdtemp() + "/1"
        >>> save_pytree(d, {"w": np.zeros((2, 3), np.float32)})
        >>> pytree_metadata(d)["w"].shape
        (2, 3)
    """
    return pytree_item_metadata(directory, name)


class AsyncSave:
    """A save running in the background, with two completion points.

    `staged()` returns once the data has been copied off the caller's arrays (they may now be
    mutated or donated); `result()` returns the committed step's metadata once the step is
    committed, and re-raises any error the background work hit. `add_done_callback(fn)` has
    `fn(handle)` called on the save's own thread once it has committed or failed.

    Examples:
        >>> import tempfile, numpy as np
        >>> d = tempfile.mkdtemp() + "/1"
        >>> handle = save_pytree_async(d, {"w": np.ones(2)})
        >>> handle.add_done_callback(lambda h: print("committed", h.done()))
        >>> handle.staged(); handle.result().item_names  # doctest: +ELLIPSIS
        committed ...
        ('state',)
    """

    def __init__(self, prepare: Any) -> None:
        self._staged = threading.Event()
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._result: StepMetadata | None = None
        self._staging_failed = False
        self._callbacks: list[Callable[[AsyncSave], None]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, args=(prepare,), daemon=False)
        self._thread.start()

    def _work(self, prepare: Any) -> None:
        try:
            self._result = self._run(prepare)
        except BaseException as e:
            self._error = e
        self._staged.set()
        with self._lock:
            self._finished.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def _run(self, prepare: Any) -> StepMetadata:
        try:
            save: PreparedSave = prepare()
        except BaseException:
            self._staging_failed = True
            raise
        self._staged.set()
        return save.run()

    def add_done_callback(self, callback: Callable[[AsyncSave], None]) -> None:
        """Call `callback(self)` once the save has committed or failed: on the save's own
        thread, or at once when it already has."""
        with self._lock:
            if not self._finished.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def staged(self, timeout: float | None = None) -> None:
        """Wait until the caller's arrays are no longer needed; raise if staging failed."""
        if not self._staged.wait(timeout):
            raise TimeoutError(f"staging did not finish within {timeout} s")
        if self._staging_failed and self._error is not None:
            raise self._error

    def done(self) -> bool:
        """True once the save has committed or failed."""
        return self._finished.is_set()

    def result(self, timeout: float | None = None) -> StepMetadata:
        """Wait for the commit and return the step metadata written; re-raise the background
        error if there was one."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"the save did not finish within {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def save_checkpointables_async(
    directory: PathLike,
    checkpointables: Mapping[str, Any],
    *,
    custom_metadata: dict[str, JsonValue] | None = None,
    metrics: JsonValue = None,
    layout: ArrayLayout | None = None,
    processes: Processes | None = None,
    init_timestamp_nsecs: int | None = None,
    replace: bool = False,
) -> AsyncSave:
    """Start saving in the background; see `AsyncSave` for when arrays may be reused.
    Stateful objects (Grain iterators) are saved at their state as of this call.

    With `replace`, an existing step is replaced, never deleted first: the new one is
    written and committed under a temporary name, swapped in, and the old one removed.

    Examples:
        >>> import tempfile, numpy as np
        >>> d = tempfile.mkdtemp() + "/1"
        >>> save_checkpointables_async(d, {"state": {"w": np.ones(2)}}).result().item_names
        ('state',)
    """
    items = take_states(checkpointables)
    return AsyncSave(
        lambda: prepare_save(
            directory,
            items,
            custom_metadata=custom_metadata,
            metrics=metrics,
            layout=layout,
            processes=processes,
            copy=True,
            init_timestamp_nsecs=init_timestamp_nsecs,
            replace=replace,
        )
    )


def save_pytree_async(
    directory: PathLike,
    tree: Any,
    *,
    custom_metadata: dict[str, JsonValue] | None = None,
    metrics: JsonValue = None,
    layout: ArrayLayout | None = None,
    processes: Processes | None = None,
) -> AsyncSave:
    """Start saving `tree` as `state` in the background; returns an `AsyncSave` handle.

    Examples:
        >>> import tempfile, numpy as np
        >>> d = tempfile.mkdtemp() + "/1"
        >>> h = save_pytree_async(d, {"w": np.ones(2)})
        >>> h.result().commit_timestamp_nsecs > 0
        True
    """
    return save_checkpointables_async(
        directory,
        {DEFAULT_ITEM: tree},
        custom_metadata=custom_metadata,
        metrics=metrics,
        layout=layout,
        processes=processes,
    )
