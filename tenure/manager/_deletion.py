"""Deleting steps: retire (take a step out of the root by a rename, so that nobody sees it
half-deleted), then remove (the slow part), in the background when asked.

Removal never runs under the Checkpointer's lock: a save that the policy skips must not wait
for old steps' files to go.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from tenure.io import root as rootfs
from tenure.io.storage import Location

_log = logging.getLogger(__name__)


class Deleter:
    """Retires steps at once and removes them now or on one background thread.

    With `todelete_subdir` (Orbax's option), a retired step is moved into that folder of the
    root and kept there. `wait()` returns once every removal asked for so far is done, and
    re-raises nothing: a failed removal leaves a retired leftover, which the next writable
    open of the root cleans.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "5").mkdir()
        >>> deleter = Deleter(background=True)
        >>> deleter.delete(root / "5"); deleter.wait()
        >>> list(root.iterdir())
        []
    """

    def __init__(self, *, background: bool, todelete_subdir: str | None = None) -> None:
        self._background = background
        self._todelete_subdir = todelete_subdir
        self._queue: queue.SimpleQueue[Location | None] = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._worker: threading.Thread | None = None

    def retire(self, step_dir: Location) -> Location | None:
        """Takes `step_dir` out of the root; returns what is left to remove (None when the
        step was moved into `todelete_subdir`, where it stays)."""
        if self._todelete_subdir is not None and isinstance(step_dir, Path):
            target = step_dir.parent / self._todelete_subdir
            target.mkdir(exist_ok=True)
            step_dir.rename(target / step_dir.name)
            return None
        return rootfs.retire(step_dir)

    def remove(self, retired: Location) -> None:
        """Removes a retired step: now, or queued for the background thread."""
        if not self._background:
            rootfs.remove_path(retired)
            return
        with self._idle:
            self._pending += 1
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, daemon=True, name="tenure-delete"
                )
                self._worker.start()
        self._queue.put(retired)

    def delete(self, step_dir: Location) -> None:
        """Retires `step_dir`, then removes it."""
        retired = self.retire(step_dir)
        if retired is not None:
            self.remove(retired)

    def _work(self) -> None:
        while (retired := self._queue.get()) is not None:
            try:
                rootfs.remove_path(retired)
            except OSError as error:
                # What stays is a retired leftover, cleaned at the next writable open.
                _log.warning("could not remove %s (%s); it goes at the next open", retired, error)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def wait(self) -> None:
        """Returns once every removal queued so far is done."""
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0)
