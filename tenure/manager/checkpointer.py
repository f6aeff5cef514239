"""`tenure.Checkpointer`: the thin manager a training loop talks to.

It asks the save policy whether to save, hands the state to `tenure.io`, and asks
`tenure.retention.plan_retention` what to delete: the same decision code that
`tenure.retention.simulate` runs. It adds no decisions of its own, only the plumbing:
one save at a time, errors of background saves raised on the next call, a lock so one
writer owns the root, and preemption signals turned into data.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import operator
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from tenure.io import root as rootfs
from tenure.io.errors import StorageError
from tenure.io.jsondoc import plain_numbers
from tenure.io.metadata import StepMetadata
from tenure.io.pytree import LoadPlan
from tenure.io.root import StepNameFormat
from tenure.io.storage import Location, ObjectPath, as_location
from tenure.manager import _store, distributed
from tenure.manager.errors import (
    BackgroundSaveError,
    ClosedError,
    DamagedCheckpointWarning,
    ReadOnlyError,
    RootNotUsableError,
    StepAlreadyExistsError,
    StepNotFoundError,
)
from tenure.manager.lock import RootLock
from tenure.manager.preemption import DEFAULT_SIGNALS, PreemptionFlag
from tenure.retention import (
    CheckpointInfo,
    ContinuousCheckpointingPolicy,
    DecisionContext,
    InitialSavePolicy,
    PreemptionCheckpointingPolicy,
    PreservationContext,
    PreservationPolicy,
    PreserveAll,
    SaveCostMeter,
    SaveDecisionPolicy,
    plan_retention,
)

Clock = Callable[[], datetime]
METRICS_NAME = "metrics"
_log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@attrs.frozen
class CheckpointMetadata:
    """One committed checkpoint in the root.

    `time` is when its save was decided (what time-based policies see); `custom_metadata`
    is filled in by `Checkpointer.metadata(step)`, which reads it from disk on demand.

    Examples:
        >>> from pathlib import Path
        >>> CheckpointMetadata(step=5, path=Path("/ckpt/5")).step
        5
    """

    step: int
    path: Location
    metrics: Mapping[str, Any] | None = None
    commit_timestamp_nsecs: int | None = None
    time: datetime | None = None
    custom_metadata: Mapping[str, Any] | None = None

    def info(self) -> CheckpointInfo:
        """What the policies see of this checkpoint."""
        assert self.time is not None, "details are read before any policy runs"
        return CheckpointInfo(self.step, self.time, self.metrics)


@attrs.define
class _Pending:
    """A save in flight: what the policies see of it, and its completion."""

    info: CheckpointInfo
    path: Location
    done: Future[None]
    staged: Future[None]


class SaveResponse:
    """Returned by `save_async`: `staged()` once the caller may reuse its arrays,
    `result()` once the checkpoint is committed (re-raising any error of the save).

    Examples:
        >>> from concurrent.futures import Future
        >>> done, staged = Future(), Future()
        >>> done.set_result(None); staged.set_result(None)
        >>> SaveResponse(staged, done).result()
        True
    """

    def __init__(self, staged: Future[None], done: Future[None]) -> None:
        self._staged = staged
        self._done = done

    def staged(self, timeout: float | None = None) -> None:
        self._staged.result(timeout)

    def result(self, timeout: float | None = None) -> bool:
        self._done.result(timeout)
        return True

    def done(self) -> bool:
        return self._done.done()


class Checkpointer:
    """Saves a training loop's state when the save policy says so, and keeps what the
    preservation policy says, on a local directory.

    Examples:
        >>> import tempfile, numpy as np
        >>> from tenure.retention import FixedIntervalPolicy, LatestN
        >>> with Checkpointer(tempfile.mkdtemp(), save_decision_policy=FixedIntervalPolicy(10),
        ...                   preservation_policy=LatestN(2)) as ckptr:
        ...     saved = [ckptr.save(step, {"w": np.full(3, step)}) for step in range(31)]
        ...     print([c.step for c in ckptr.checkpoints], ckptr.load()["w"])
        [20, 30] [30 30 30]
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | ObjectPath,
        *,
        save_decision_policy: SaveDecisionPolicy | None = None,
        preservation_policy: PreservationPolicy | None = None,
        step_name_format: StepNameFormat | None = None,
        custom_metadata: Mapping[str, Any] | None = None,
        cleanup_tmp_directories: bool = False,
        lightweight_initialize: bool = False,
        read_only: bool = False,
        clock: Clock | None = None,
        handle_signals: bool = False,
        preemption_signals: Sequence[int] = DEFAULT_SIGNALS,
        background_delete: bool = False,
        todelete_subdir: str | None = None,
        multiprocess_timeout_secs: float = 300.0,
    ) -> None:
        self._directory = as_location(directory)
        if todelete_subdir is not None and isinstance(self._directory, ObjectPath):
            raise RootNotUsableError(
                f"todelete_subdir needs a rename, which {self._directory.scheme}:// roots do not "
                "have: leave it unset there (deleted steps are removed)"
            )
        self._save_policy: SaveDecisionPolicy = save_decision_policy or (
            InitialSavePolicy() | ContinuousCheckpointingPolicy() | PreemptionCheckpointingPolicy()
        )
        self._keep_policy: PreservationPolicy = preservation_policy or PreserveAll()
        self._names = step_name_format or StepNameFormat()
        self._read_only = read_only
        self._clock: Clock = clock or _utc_now
        self._background_delete = background_delete
        self._todelete_subdir = todelete_subdir
        self._lock = threading.RLock()
        self._pending: _Pending | None = None
        self._save_costs = SaveCostMeter()
        self._background_error: BaseException | None = None
        self._deleters: list[threading.Thread] = []
        self._resumed_from: int | None = None
        self._closed = False
        self._preemption = PreemptionFlag()
        self._root_lock = RootLock(self._directory) if isinstance(self._directory, Path) else None
        # Under jax.distributed, every process runs a Checkpointer; the primary decides,
        # writes shared metadata and deletes, and the others follow.
        self._coordination = (
            distributed.Coordination(multiprocess_timeout_secs)
            if _store.process_count() > 1
            else None
        )
        self._primary = self._coordination is None or self._coordination.index == 0
        self._damaged: tuple[rootfs.DamagedStep, ...] = ()
        self._warned: set[int] = set()
        self._previous: tuple[CheckpointInfo, ...] | None = None
        try:
            self._open_root(custom_metadata, cleanup_tmp_directories)
            self._checkpoints: list[CheckpointMetadata] = self._scan(
                details=not lightweight_initialize
            )
        except BaseException:
            if self._root_lock is not None:
                self._root_lock.release()  # a failed open must not leave the root locked
            raise
        if handle_signals:
            self._preemption.install(preemption_signals)

    # -- opening -------------------------------------------------------------------------

    def _open_root(
        self, custom_metadata: Mapping[str, Any] | None, cleanup_tmp_directories: bool
    ) -> None:
        if isinstance(self._directory, Path) and self._directory.is_file():
            raise RootNotUsableError(
                f"{self._directory} is a file, not a directory; pass the directory that holds "
                "(or will hold) the step directories"
            )
        if self._read_only:
            # A reader may start before the writer (an evaluator job): a missing root is an
            # empty one, and what is asked of a step then says the root does not exist.
            return
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            # Object stores have no exclusive create to build a lock on (see docs/storage.md).
            if self._primary and self._root_lock is not None:
                self._root_lock.acquire()
        except OSError as error:
            raise RootNotUsableError(
                f"cannot use {self._directory} as a checkpoint root ({error.strerror}); check "
                "that the path and its parents are writable directories, or choose another"
            ) from None
        if custom_metadata is not None and self._primary:
            rootfs.write_root_metadata(self._directory, custom_metadata)
        if not self._primary:
            return
        # Leftovers of interrupted deletions and replacements go at every writable open;
        # unfinished saves only when asked.
        if isinstance(self._directory, ObjectPath):
            if cleanup_tmp_directories:
                rootfs.remove_uncommitted(self._directory, self._names)
        else:
            rootfs.remove_leftovers(self._directory, every_temporary=cleanup_tmp_directories)

    def _scan(self, *, details: bool) -> list[CheckpointMetadata]:
        # A root can hold tens of thousands of steps. The scan makes many small objects and
        # no reference cycles, so pausing the cyclic garbage collector (which would re-walk
        # them again and again) almost halves the time it takes to open such a root.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._scan_steps(details)
        finally:
            if collecting:
                gc.enable()

    def _scan_steps(self, details: bool) -> list[CheckpointMetadata]:
        listing = rootfs.list_steps(self._directory, self._names, read_metadata=details)
        self._damaged = listing.damaged
        for damaged in listing.damaged:
            if damaged.step not in self._warned:
                self._warned.add(damaged.step)
                warnings.warn(
                    f"damaged checkpoint in {self._directory}: {damaged.describe()}; it is "
                    "skipped (never loaded, resumed from or deleted by retention): run "
                    "`tenure verify` on the root, and `tenure prune --damaged` to remove it",
                    DamagedCheckpointWarning,
                    stacklevel=4,
                )
        if not details:
            return [CheckpointMetadata(found.step, found.path) for found in listing.steps]
        return [self._describe(found.step, found.path, found.metadata) for found in listing.steps]

    def _describe(
        self, step: int, path: Location, meta: StepMetadata | None = None
    ) -> CheckpointMetadata:
        details = _store.read_details(path, self._clock(), meta)
        return CheckpointMetadata(
            step=step,
            path=path,
            metrics=details.metrics,
            commit_timestamp_nsecs=details.commit_timestamp_nsecs,
            time=details.time,
        )

    def _ensure_details(self) -> None:
        """Reads what lightweight initialization skipped, before any policy runs."""
        if any(c.time is None for c in self._checkpoints):
            self._checkpoints = [
                c if c.time is not None else self._describe(c.step, c.path)
                for c in self._checkpoints
            ]

    # -- properties ----------------------------------------------------------------------

    @property
    def directory(self) -> Location:
        return self._directory

    @property
    def checkpoints(self) -> list[CheckpointMetadata]:
        """The committed checkpoints, oldest first (a save in flight is not listed)."""
        with self._lock:
            return list(self._checkpoints)

    @property
    def latest(self) -> CheckpointMetadata | None:
        with self._lock:
            return self._checkpoints[-1] if self._checkpoints else None

    @property
    def damaged(self) -> list[rootfs.DamagedStep]:
        """Steps whose metadata cannot be read, found by the last scan: never loaded, resumed
        from or deleted by retention; `delete(step)` removes one on request."""
        with self._lock:
            return list(self._damaged)

    # -- deciding ------------------------------------------------------------------------

    def reached_preemption(self, step: int) -> bool:
        """Whether a preemption notice arrived (a handled signal, or JAX's preemption
        sync point under `jax.distributed`)."""
        if self._preemption.is_set():
            return True
        return self._coordination is not None and distributed.reached_preemption_sync_point(step)

    def is_saving_in_progress(self) -> bool:
        with self._lock:
            return self._pending is not None and not self._pending.done.done()

    def should_save(self, step: int, *, metrics: Mapping[str, Any] | None = None) -> bool:
        """What the save policy says about `step` now; the primary process decides."""
        return self._decide(CheckpointInfo(_step_of(step), self._clock(), _plain(metrics)))

    def _decide(self, info: CheckpointInfo) -> bool:
        with self._lock:
            previous = self._previous_steps()
            busy = self._pending is not None and not self._pending.done.done()
        context = DecisionContext(
            is_saving_in_progress=busy,
            reached_preemption=self.reached_preemption(info.step),
            save_cost=self._save_costs.mean,
        )
        decision = self._save_policy.should_save(info, previous, context=context)
        if self._coordination is not None:
            decision = self._coordination.decide(decision)
        return decision

    @property
    def save_cost(self) -> float | None:
        """Mean seconds the caller was blocked by its recent saves (by `clock`), from the
        decision to the return of `save` (or `save_async`); None before the first save."""
        with self._lock:
            return self._save_costs.mean

    def _record_save_cost(self, step: int, since: datetime) -> None:
        seconds = max(0.0, (self._clock() - since).total_seconds())
        with self._lock:
            self._save_costs.record(step, seconds)
        _log.info("saving step %d blocked the caller for %.3f s", step, seconds)

    def _previous_steps(self) -> tuple[CheckpointInfo, ...]:
        """What the save policy sees: the committed checkpoints, then a save in flight.
        Cached, since `save` runs every training step and checkpoints change rarely."""
        if self._previous is None:
            self._ensure_details()
            pending = (self._pending.info,) if self._pending is not None else ()
            self._previous = (*(c.info() for c in self._checkpoints), *pending)
        return self._previous

    # -- saving --------------------------------------------------------------------------

    def save(self, step: int | CheckpointMetadata, state: Any, **options: Any) -> bool:
        """Saves `state` as checkpointable `checkpointable_name` ("state") if the policy
        (or `force=True`) says so, and waits until it is committed. Returns whether a
        checkpoint was saved. Options as for `save_checkpointables`.
        """
        name = options.pop("checkpointable_name", "state")
        return self.save_checkpointables(step, {name: state}, **options)

    def save_async(
        self, step: int | CheckpointMetadata, state: Any, **options: Any
    ) -> SaveResponse | None:
        """Like `save`, but returns once the state is staged; None when the policy skips."""
        name = options.pop("checkpointable_name", "state")
        return self.save_checkpointables_async(step, {name: state}, **options)

    def save_checkpointables(
        self,
        step: int | CheckpointMetadata,
        checkpointables: Mapping[str, Any],
        *,
        force: bool = False,
        overwrite: bool = False,
        metrics: Mapping[str, Any] | None = None,
        custom_metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """Saves several named items in one step; see `save`."""
        started = self._clock()  # the caller is blocked from here until the commit
        response = self.save_checkpointables_async(
            step,
            checkpointables,
            force=force,
            overwrite=overwrite,
            metrics=metrics,
            custom_metadata=custom_metadata,
        )
        if response is None:
            return False
        try:
            response.result()
        except BaseException:
            with self._lock:
                self._background_error = None  # delivered here, not again on the next call
            raise
        self._record_save_cost(_step_of(step), started)
        return True

    def save_checkpointables_async(
        self,
        step: int | CheckpointMetadata,
        checkpointables: Mapping[str, Any],
        *,
        force: bool = False,
        overwrite: bool = False,
        metrics: Mapping[str, Any] | None = None,
        custom_metadata: Mapping[str, Any] | None = None,
    ) -> SaveResponse | None:
        """Saves several named items in one step without waiting for the commit."""
        self._check_writable()
        self._raise_background_error()
        step = _step_of(step)
        if METRICS_NAME in checkpointables:
            raise ValueError(
                f"'{METRICS_NAME}' is reserved for the metrics passed with metrics=...; "
                "rename that checkpointable"
            )
        info = CheckpointInfo(step, self._clock(), _plain(metrics))
        if not force and not self._decide(info):
            return None
        self.wait()  # one save at a time
        with self._lock:
            replace = self._check_replace(step, overwrite)
            path = self._directory / self._names.build(step)
            handle = _store.save_async(
                path,
                checkpointables,
                custom_metadata,
                info.metrics,
                started=info.time,
                processes=None if self._coordination is None else self._coordination.processes(),
                replace=replace,
            )
            done: Future[None] = Future()
            staged: Future[None] = Future()
            self._pending = _Pending(info, path, done, staged)
            self._previous = None
        threading.Thread(
            target=self._finish, args=(handle, self._pending), daemon=True, name="tenure-save"
        ).start()
        self._record_save_cost(step, info.time)
        return SaveResponse(staged, done)

    def _check_replace(self, step: int, overwrite: bool) -> bool:
        """Whether saving `step` replaces a step on disk (committed or damaged), which only
        `overwrite=True` allows, and only where the new step can be swapped in by renames."""
        damaged = any(d.step == step for d in self._damaged)
        if not damaged and not any(c.step == step for c in self._checkpoints):
            return False
        what = "a damaged checkpoint" if damaged else "already saved"
        if not overwrite:
            raise StepAlreadyExistsError(
                f"step {step} is {what} in {self._directory}; pass overwrite=True to replace "
                "it, or save under another step"
            )
        if isinstance(self._directory, ObjectPath):
            raise StepAlreadyExistsError(
                f"step {step} is {what} in {self._directory}: an object store cannot swap a "
                "step in place, and tenure never deletes a step to save; delete(step) first, "
                "then save, or save under another step"
            )
        return True

    def _finish(self, handle: Any, pending: _Pending) -> None:
        try:
            handle.staged()
            pending.staged.set_result(None)
            handle.result()
            with self._lock:
                step = pending.info.step
                # A replaced step's old entry goes; the new one takes its place.
                self._checkpoints = [c for c in self._checkpoints if c.step != step]
                self._damaged = tuple(d for d in self._damaged if d.step != step)
                self._checkpoints.append(self._describe(step, pending.path))
                self._checkpoints.sort(key=lambda c: c.step)
                self._pending = None
                self._previous = None
                self._apply_retention()
            pending.done.set_result(None)
        except BaseException as error:  # re-raised on the caller's next call
            with self._lock:
                self._pending = None
                self._previous = None
                self._background_error = error
            if not pending.staged.done():
                pending.staged.set_exception(error)
            pending.done.set_exception(error)

    # -- retention -----------------------------------------------------------------------

    def _apply_retention(self) -> None:
        doomed: list[int] = []
        if self._primary:
            protected = {self._pending.info.step} if self._pending is not None else set()
            if self._resumed_from is not None:
                protected.add(self._resumed_from)
            plan = plan_retention(
                [c.info() for c in self._checkpoints],
                self._keep_policy,
                PreservationContext(now=self._clock()),
                protected=protected,
            )
            doomed = list(plan.delete)
        if self._coordination is not None:
            doomed = self._coordination.share("retention", doomed)
        for step in doomed:
            self._delete_now(step)

    def _delete_now(self, step: int) -> None:
        """Removes a committed step from the list, then from disk (moved aside first, so
        a reader never sees a half-deleted step under its own name)."""
        entry = next(c for c in self._checkpoints if c.step == step)
        self._checkpoints.remove(entry)
        self._previous = None
        if not self._primary:
            return
        if self._todelete_subdir is not None and isinstance(entry.path, Path):
            target = entry.path.parent / self._todelete_subdir
            target.mkdir(exist_ok=True)
            entry.path.rename(target / entry.path.name)
            return
        doomed = rootfs.retire(entry.path)
        if self._background_delete:
            thread = threading.Thread(target=rootfs.remove_path, args=(doomed,), daemon=True)
            thread.start()
            self._deleters.append(thread)
        else:
            rootfs.remove_path(doomed)

    def delete(self, step: int | CheckpointMetadata) -> None:
        """Deletes a committed step now, whatever the policies say; a damaged step too (the
        only way one goes)."""
        self._check_writable()
        self._raise_background_error()
        step = _step_of(step)
        with self._lock:
            if self._pending is not None and self._pending.info.step == step:
                raise ValueError(f"step {step} is being saved; wait() before deleting it")
            damaged = next((d for d in self._damaged if d.step == step), None)
            if damaged is not None:
                self._damaged = tuple(d for d in self._damaged if d.step != step)
                if self._primary:
                    rootfs.remove_path(rootfs.retire(damaged.path))
                return
            if not any(c.step == step for c in self._checkpoints):
                raise self._not_found(step)
            self._delete_now(step)

    # -- loading -------------------------------------------------------------------------

    def _resolve(self, step: int | CheckpointMetadata | None) -> CheckpointMetadata:
        with self._lock:
            if step is None:
                if not self._checkpoints:
                    raise StepNotFoundError(
                        f"no committed checkpoint in {self._directory}{self._missing_note()}; "
                        "save one first, or check the directory"
                    )
                return self._checkpoints[-1]
            number = _step_of(step)
            for entry in self._checkpoints:
                if entry.step == number:
                    return entry
        raise self._not_found(number)

    def _not_found(self, step: int) -> StepNotFoundError:
        steps = [c.step for c in self._checkpoints]
        shown = steps if len(steps) <= 10 else [*steps[:5], "...", *steps[-5:]]
        return StepNotFoundError(
            f"step {step} has no committed checkpoint in {self._directory}"
            f"{self._missing_note()}; committed steps: {shown}"
        )

    def _missing_note(self) -> str:
        """Names a missing root, so that a typo'd path is told apart from an empty root."""
        return "" if self._directory.is_dir() else " (that directory does not exist)"

    def load(
        self,
        step: int | CheckpointMetadata | None = None,
        abstract_state: Any = None,
        *,
        checkpointable_name: str = "state",
        partial: bool = False,
    ) -> Any:
        """Loads one checkpointable of `step` (the latest when None). `abstract_state` must
        name every saved key unless `partial` (see `tenure.io.load_pytree`)."""
        loaded = self.load_checkpointables(
            step, {checkpointable_name: abstract_state}, partial=partial
        )
        return loaded[checkpointable_name]

    def plan_load(
        self,
        step: int | CheckpointMetadata | None = None,
        abstract_state: Any = None,
        *,
        checkpointable_name: str = "state",
        partial: bool = False,
    ) -> LoadPlan:
        """What `load` would do, without reading array data (see `tenure.io.plan_load`)."""
        entry = self._resolve(step)
        with self._gone_is_not_found(entry):
            return _store.plan_load(
                entry.path, checkpointable_name, abstract_state, partial=partial
            )

    def load_checkpointables(
        self,
        step: int | CheckpointMetadata | None = None,
        abstract_checkpointables: Mapping[str, Any] | None = None,
        *,
        partial: bool = False,
    ) -> dict[str, Any]:
        """Loads the named checkpointables of `step` (all of them when None); reads only
        what is asked (a stateful object, such as a Grain iterator, is restored in place and
        returned). The step becomes protected for as long as this Checkpointer lives."""
        self._raise_background_error()
        entry = self._resolve(step)
        with self._gone_is_not_found(entry):
            loaded = _store.load(entry.path, abstract_checkpointables, partial=partial)
        with self._lock:
            self._resumed_from = entry.step
        return loaded

    @contextlib.contextmanager
    def _gone_is_not_found(self, entry: CheckpointMetadata) -> Iterator[None]:
        """A step the writer deleted while this reader read it is not found, not corrupt."""
        try:
            yield
        except StorageError:
            raise  # the store failed; the step may well be there
        except Exception as error:
            if rootfs.has_step_mark(entry.path):
                raise
            raise StepNotFoundError(
                f"step {entry.step} was deleted from {self._directory} while it was read "
                "(by the writer's retention, most likely); reload() and choose another step"
            ) from error

    def load_async(self, *args: Any, **kwargs: Any) -> Future[Any]:
        """`load` in a background thread; returns a future of its result."""
        return _run_in_thread(self.load, *args, **kwargs)

    def load_checkpointables_async(self, *args: Any, **kwargs: Any) -> Future[dict[str, Any]]:
        """`load_checkpointables` in a background thread; returns a future of its result."""
        return _run_in_thread(self.load_checkpointables, *args, **kwargs)

    def metadata(self, step: int | CheckpointMetadata | None = None) -> CheckpointMetadata:
        """The step's metadata, with its custom metadata read from disk."""
        entry = self._resolve(step)
        with self._gone_is_not_found(entry):
            return attrs.evolve(
                self._describe(entry.step, entry.path),
                custom_metadata=_store.read_custom_metadata(entry.path),
            )

    def root_metadata(self) -> Mapping[str, Any] | None:
        """The custom metadata given to the Checkpointer that created the root."""
        return rootfs.read_root_metadata(self._directory)

    def reload(self) -> None:
        """Re-reads the root, for example after another process wrote to it."""
        self.wait()
        with self._lock:
            self._checkpoints = self._scan(details=True)
            self._previous = None

    def iter_new_checkpoints(
        self,
        min_interval_secs: float = 0,
        timeout: float | None = None,
        *,
        poll_secs: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> Iterator[CheckpointMetadata]:
        """Yields checkpoints as they are committed (for evaluator jobs), oldest first,
        starting after the newest one present now. Stops after `timeout` seconds without a
        new checkpoint (never when None)."""
        seen = self.latest.step if self.latest else -1
        last_new = monotonic()
        last_yield: float | None = None
        while True:
            self.reload()
            fresh = [c for c in self.checkpoints if c.step > seen]
            if fresh:
                if last_yield is not None and monotonic() - last_yield < min_interval_secs:
                    sleep(min_interval_secs - (monotonic() - last_yield))
                entry = fresh[-1] if min_interval_secs else fresh[0]
                seen = entry.step
                last_new = last_yield = monotonic()
                yield entry
                continue
            if timeout is not None and monotonic() - last_new >= timeout:
                return
            sleep(poll_secs)

    # -- lifecycle -----------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._closed:
            raise ClosedError("this Checkpointer is closed; open a new one")
        if self._read_only:
            raise ReadOnlyError(
                f"{self._directory} was opened with read_only=True; open it without "
                "read_only to save or delete"
            )

    def _raise_background_error(self) -> None:
        with self._lock:
            error, self._background_error = self._background_error, None
        if error is not None:
            raise BackgroundSaveError(
                f"a background save in {self._directory} failed: {error!r}; that step was "
                "not committed, and the checkpoints before it are intact"
            ) from error

    def check_for_errors(self) -> None:
        """Raises the error of a failed background save, if any (then forgets it)."""
        self._raise_background_error()

    def wait(self) -> None:
        """Blocks until the save in flight (if any) is committed and retention has run."""
        with self._lock:
            pending = self._pending
        if pending is not None:
            # Waits without raising: a failure is kept and raised by the next call.
            futures.wait([pending.done])
        for thread in self._deleters:
            thread.join()
        self._deleters.clear()

    def close(self) -> None:
        """Waits for the save in flight, releases the root, and raises a failed save's error."""
        if self._closed:
            return
        try:
            self.wait()
            self._raise_background_error()
        finally:
            self._closed = True
            self._preemption.uninstall()
            if self._root_lock is not None:
                self._root_lock.release()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _step_of(step: int | CheckpointMetadata) -> int:
    number: Any = step.step if isinstance(step, CheckpointMetadata) else step
    if getattr(number, "shape", None) == ():
        with contextlib.suppress(TypeError):  # a float scalar is refused below
            number = operator.index(number)  # numpy and jax integer scalars
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ValueError(f"step={step!r} must be an integer >= 0 or a CheckpointMetadata")
    return number


def _plain(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Metrics with numpy and jax scalars as Python numbers, as they will be stored."""
    return None if metrics is None else plain_numbers(dict(metrics), "metrics")


def _run_in_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result(function(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)

    threading.Thread(target=run, daemon=True, name="tenure-load").start()
    return future
