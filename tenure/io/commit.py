"""The save transaction: temporary directory, fsync, barrier, and the commit.

On a local disk the commit is a rename of the temporary directory. Object stores cannot
rename a prefix atomically, so there the step is written in place and `commit_success.txt`,
written last by the primary process, is what makes it a checkpoint (as Orbax does on GCS).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import attrs
import jax

from tenure.io.errors import CheckpointExistsError
from tenure.io.metadata import JsonValue, StepMetadata, now_nsecs
from tenure.io.root import (
    COMMIT_SUCCESS_FILE,
    STEP_CHECKSUMS_FILE,
    STEP_METADATA_FILE,
    V1_INDICATOR_FILE,
    has_step_mark,
    holds_checkpoint_files,
    is_committed,
    remove_path,
    replaced_path,
    temporary_path,
    write_step_checksums,
)
from tenure.io.storage import Location, is_object_store

Barrier = Callable[[str], None]


def _no_barrier(name: str) -> None:
    """A single process has nobody to wait for."""


@attrs.frozen
class Processes:
    """Who takes part in a save: this process's index, the count, and a barrier between them.

    The barrier is called with a name unique to the save and phase, and must return only when
    every process called it with that name (e.g. wrap `multihost_utils.sync_global_devices`).

    Examples:
        >>> Processes(index=0, count=1).primary
        True
    """

    index: int = attrs.field(factory=jax.process_index)
    count: int = attrs.field(factory=jax.process_count)
    barrier: Barrier = _no_barrier

    @property
    def primary(self) -> bool:
        """The primary process writes shared metadata and performs the commit."""
        return self.index == 0


def write_text(path: Location, text: str) -> None:
    """Write `text` to `path` inside a save's temporary directory.

    Not fsynced here: the commit fsyncs every file of the save in parallel, which is much
    faster than one fsync after another while the disk is busy with the array data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_json(path: Location, doc: JsonValue) -> None:
    """Write `doc` as JSON (see `write_text`)."""
    write_text(path, json.dumps(doc))


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        # Another process's temporary chunk file, renamed away since the directory was
        # walked: the process that wrote the final file fsyncs it.
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tree_paths(root: Path) -> list[Path]:
    """Every file under `root`, then every directory, deepest first."""
    files: list[Path] = []
    dirs: list[Path] = []
    for dirpath, _, names in os.walk(root, topdown=False):
        files.extend(Path(dirpath) / n for n in names)
        dirs.append(Path(dirpath))
    return files + dirs


def _fsync_paths(paths: list[Path]) -> list[Path]:
    for path in paths:
        _fsync(path)
    return paths


def fsync_all(paths: list[Path]) -> None:
    """fsync `paths`, many at a time."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(_fsync, paths))


def fsync_tree(root: Path, *, skip: frozenset[Path] = frozenset()) -> None:
    """fsync every file and directory under `root` not in `skip`, many at a time."""
    fsync_all([p for p in _tree_paths(root) if p not in skip])


@attrs.define
class Syncer:
    """fsyncs finished parts of a save in the background while the rest is still being written.

    Disk writeback of the first arrays then overlaps the writing of the others, instead of
    every fsync waiting for the last write.
    """

    _pool: ThreadPoolExecutor = attrs.field(
        factory=lambda: ThreadPoolExecutor(max_workers=16, thread_name_prefix="tenure-fsync")
    )
    _pending: list[Future[list[Path]]] = attrs.field(factory=list)

    def submit(self, root: Location) -> None:
        """Start fsyncing the file `root`, or everything under the directory `root`, which the
        save will not touch again."""
        if isinstance(root, Path):
            paths = _tree_paths(root) if root.is_dir() else [root]
            self._pending.append(self._pool.submit(_fsync_paths, paths))

    def finish(self) -> frozenset[Path]:
        """Wait for every submitted fsync (raising the first error); return the synced paths."""
        try:
            return frozenset(p for future in self._pending for p in future.result())
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


@attrs.define
class StepTransaction:
    """One save of a step directory, from the temporary directory to the commit rename.

    Examples:
        >>> import tempfile
        >>> txn = StepTransaction(Path(tempfile.mkdtemp()) / "3", Processes(0, 1))
        >>> txn.begin()
        >>> txn.commit(StepMetadata(item_handlers={})).commit_timestamp_nsecs > 0
        True
        >>> is_committed(txn.final)
        True
    """

    final: Location
    processes: Processes
    init_timestamp_nsecs: int = attrs.field(factory=now_nsecs)
    replace: bool = attrs.field(default=False, kw_only=True)
    syncer: Syncer = attrs.field(factory=Syncer)

    @property
    def tmp(self) -> Location:
        """The directory being written (the step itself on object stores)."""
        if is_object_store(self.final):
            return self.final
        return temporary_path(self.final)

    def _phase(self, name: str) -> None:
        self.processes.barrier(f"tenure:{self.final}:{name}")

    def begin(self) -> None:
        """Refuse what must not be replaced, replace a leftover temporary directory, then sync
        processes. A committed step is replaced only with `replace` (and only on a local
        disk, where the new step can be swapped in by renames); a directory that is not a
        checkpoint (somebody's folder with a step's name) never is."""
        if self.processes.primary:
            self._check_target()
            # A leftover of a crashed save, or a stray file under a temporary name (on object
            # stores, the objects of an uncommitted step).
            remove_path(self.tmp)
            self.tmp.mkdir(parents=True)
        self._phase("begin")

    def _check_target(self) -> None:
        final = self.final
        if isinstance(final, Path):
            if not os.path.lexists(final):
                return
            if self.replace and final.is_dir() and has_step_mark(final):
                return
            what = "a checkpoint" if has_step_mark(final) else "not a checkpoint"
            raise CheckpointExistsError(
                f"{final} already exists ({what}); tenure never deletes it to save: save under "
                "another step, or move that directory away first"
            )
        if is_committed(final):
            how = "; object stores cannot swap a step in place" if self.replace else ""
            raise CheckpointExistsError(
                f"{final} is already a committed checkpoint{how}: save under another step, "
                "or delete that step first"
            )
        if final.is_dir() and not holds_checkpoint_files(final):
            raise CheckpointExistsError(
                f"{final} holds objects that are not a checkpoint; tenure never deletes them "
                "to save: save under another step, or move those objects away first"
            )

    def commit(self, metadata: StepMetadata) -> StepMetadata:
        """Make every byte durable, then publish the step with one atomic rename or marker;
        return the step metadata as written (with its timestamps on the primary process)."""
        synced = self.syncer.finish()
        if isinstance(self.tmp, Path):
            fsync_tree(self.tmp, skip=synced)
        self._phase("written")
        stamped = attrs.evolve(metadata, init_timestamp_nsecs=self.init_timestamp_nsecs)
        if self.processes.primary:
            stamped = attrs.evolve(stamped, commit_timestamp_nsecs=now_nsecs())
            document = json.dumps(stamped.to_json())
            write_text(self.tmp / STEP_METADATA_FILE, document)
            write_step_checksums(self.tmp, document.encode())
            write_text(self.tmp / V1_INDICATOR_FILE, "")
            # On object stores this marker, written last, is the commit itself.
            write_text(
                self.tmp / COMMIT_SUCCESS_FILE, f"Checkpoint commit was successful to {self.final}"
            )
            tmp, final = self.tmp, self.final
            if isinstance(tmp, Path) and isinstance(final, Path):
                names = (
                    STEP_METADATA_FILE,
                    STEP_CHECKSUMS_FILE,
                    V1_INDICATOR_FILE,
                    COMMIT_SUCCESS_FILE,
                )
                fsync_all([tmp / n for n in names])
                _fsync(tmp)
                self._publish(tmp, final)
        self._phase("committed")
        return stamped

    def _publish(self, tmp: Path, final: Path) -> None:
        """Rename the finished step into place. A step being replaced is moved aside first
        and removed only once its replacement is in place: a crash between the two renames
        leaves it aside, and the next writer to open the root puts it back."""
        if not (self.replace and os.path.lexists(final)):
            os.rename(tmp, final)
            _fsync(final.parent)
            return
        aside = replaced_path(final)
        remove_path(aside)
        os.rename(final, aside)
        os.rename(tmp, final)
        _fsync(final.parent)
        remove_path(aside)

    def abort(self) -> None:
        """Remove the temporary directory after a failed save (primary only)."""
        with contextlib.suppress(OSError):
            self.syncer.finish()
        if self.processes.primary:
            with contextlib.suppress(OSError):
                remove_path(self.tmp)
