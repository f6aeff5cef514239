"""`tenure.Checkpointer`: the thin manager a training loop talks to.

It is a join, and only that: the save policy decides whether to save, `tenure.io` saves
(its own asynchronous handle is the save in flight), `tenure.retention.plan_retention`
decides what to delete (the same decision code that `tenure.retention.simulate` runs), and
small parts do the rest: `_steps` knows the root's steps (through `tenure.io.root`),
`_deletion` retires and removes them, `distributed` has the processes agree, `lock` keeps
one writer per root, `preemption` turns signals into data.

The tail of a save, on its own thread once `tenure.io` has committed: the bytes of the
step's items are recorded in it, the step is added and retention planned under the lock
(pure: no I/O), the doomed steps are retired (renamed aside) and the items the plan thins
taken out of their steps (`tenure.io.root.thin_step`), and both removed, outside it. The
lock is never held across I/O, so a `save()` that the policy skips never waits for a commit
or a deletion.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from tenure.io import root as rootfs
from tenure.io.errors import StorageError
from tenure.io.jsondoc import plain_numbers
from tenure.io.pytree import LoadPlan
from tenure.io.root import StepNameFormat
from tenure.io.storage import Location, ObjectPath, as_location
from tenure.manager import _store, distributed
from tenure.manager._deletion import Deleter
from tenure.manager._opening import check_root, open_for_writing
from tenure.manager._saving import SaveResponse
from tenure.manager._steps import CheckpointMetadata, StepIndex, describe, just_saved, step_of
from tenure.manager._watching import new_checkpoints
from tenure.manager.errors import (
    BackgroundSaveError,
    ClosedError,
    OverBudgetWarning,
    ReadOnlyError,
    ReservedNameError,
    SaveInProgressError,
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
    RetentionPlan,
    SaveCostMeter,
    SaveDecisionPolicy,
    plan_retention,
)

__all__ = ["CheckpointMetadata", "Checkpointer", "SaveResponse"]

Clock = Callable[[], datetime]
METRICS_NAME = "metrics"
_log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Checkpointer:
    """Saves a training loop's state when the save policy says so, and keeps what the
    preservation policy says, on a local directory or an object store.

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
        self._directory = check_root(as_location(directory), todelete_subdir)
        self._save_policy: SaveDecisionPolicy = save_decision_policy or (
            InitialSavePolicy() | ContinuousCheckpointingPolicy() | PreemptionCheckpointingPolicy()
        )
        self._keep_policy: PreservationPolicy = preservation_policy or PreserveAll()
        self._read_only = read_only
        self._clock: Clock = clock or _utc_now
        self._index = StepIndex(self._directory, step_name_format or StepNameFormat())
        self._deleter = Deleter(background=background_delete, todelete_subdir=todelete_subdir)
        # Guards the index and the fields below; never held across I/O.
        self._lock = threading.Lock()
        self._current: SaveResponse | None = None  # the save in flight, until its tail ends
        self._context = DecisionContext()  # the last one built, reused while it holds
        self._previous: tuple[CheckpointInfo, ...] | None = None  # what the save policy sees
        self._save_costs = SaveCostMeter()
        self._background_error: BaseException | None = None
        self._resumed_from: int | None = None
        self._warned_over_budget = False
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
        try:
            if not read_only:
                open_for_writing(
                    self._directory,
                    self._index.names,
                    lock=self._root_lock if self._primary else None,
                    primary=self._primary,
                    custom_metadata=custom_metadata,
                    cleanup_tmp_directories=cleanup_tmp_directories,
                )
            self._index.install(self._index.scan(self._clock(), details=not lightweight_initialize))
        except BaseException:
            if self._root_lock is not None:
                self._root_lock.release()  # a failed open must not leave the root locked
            raise
        if handle_signals:
            self._preemption.install(preemption_signals)

    def _ensure_details(self) -> None:
        """Reads what lightweight initialization skipped, before any policy runs."""
        with self._lock:
            missing = self._index.undescribed()
        if missing:
            now = self._clock()
            described = [describe(c.step, c.path, now) for c in missing]
            with self._lock:
                self._index.fill(described)
                self._previous = None

    # -- what the root holds -------------------------------------------------------------

    @property
    def directory(self) -> Location:
        return self._directory

    @property
    def checkpoints(self) -> list[CheckpointMetadata]:
        """The committed checkpoints, oldest first (a save in flight is not listed)."""
        with self._lock:
            return list(self._index.committed)

    @property
    def latest(self) -> CheckpointMetadata | None:
        with self._lock:
            return self._index.committed[-1] if self._index.committed else None

    @property
    def damaged(self) -> list[rootfs.DamagedStep]:
        """Steps whose metadata cannot be read, found by the last scan: never loaded, resumed
        from or deleted by retention; `delete(step)` removes one on request."""
        with self._lock:
            return list(self._index.damaged)

    @property
    def in_flight(self) -> SaveResponse | None:
        """The save not yet finished (committed, and its retention run), if any."""
        return self._current

    # -- deciding ------------------------------------------------------------------------

    def reached_preemption(self, step: int) -> bool:
        """Whether a preemption notice arrived (a handled signal, or JAX's preemption
        sync point under `jax.distributed`)."""
        if self._preemption.is_set():
            return True
        return self._coordination is not None and distributed.reached_preemption_sync_point(step)

    def is_saving_in_progress(self) -> bool:
        return self.in_flight is not None

    def should_save(self, step: int, *, metrics: Mapping[str, Any] | None = None) -> bool:
        """What the save policy says about `step` now, with `metrics` if given; the primary
        process decides."""
        return self._decide(CheckpointInfo(step_of(step), self._clock(), _plain(metrics)))

    def _decide(self, info: CheckpointInfo) -> bool:
        # The hot path: runs at every training step, so it reads the cached view without the
        # lock (a reference read is atomic; the cache is rebuilt under the lock).
        previous = self._previous
        if previous is None:
            previous = self._previous_steps()
        busy = self._current is not None
        preempted = self.reached_preemption(info.step)
        cost = self._save_costs.mean
        context = self._context
        if (
            context.is_saving_in_progress is not busy
            or context.reached_preemption is not preempted
            or context.save_cost != cost
        ):  # building one costs more than the rest of the decision
            context = self._context = DecisionContext(
                is_saving_in_progress=busy, reached_preemption=preempted, save_cost=cost
            )
        decision = self._save_policy.should_save(info, previous, context=context)
        if self._coordination is not None:
            decision = self._coordination.decide(decision)
        return decision

    def _previous_steps(self) -> tuple[CheckpointInfo, ...]:
        """What the save policy sees: the committed checkpoints, then a save in flight.
        Cached, since `save` runs every training step and checkpoints change rarely."""
        self._ensure_details()
        with self._lock:
            current = self._current
            pending = (current.info,) if current is not None and not current.committed else ()
            self._previous = (*(c.info() for c in self._index.committed), *pending)
            return self._previous

    def plan(self, now: datetime | None = None) -> RetentionPlan:
        """The plan the next retention pass would apply at `now` (the clock's time when
        None): which steps the preservation policy keeps and why, with the safety rules (the
        newest step, a save in flight and the step loaded last are never deleted). Pure:
        deletes nothing.

        Examples:
            >>> import tempfile, numpy as np
            >>> from tenure.retention import LatestN
            >>> with Checkpointer(tempfile.mkdtemp(), preservation_policy=LatestN(1)) as c:
            ...     _ = [c.save(step, {"w": np.ones(1)}, force=True) for step in (1, 2)]
            ...     print(c.plan().keep, c.plan().delete)
            (2,) ()
        """
        self._ensure_details()
        with self._lock:
            return self._plan(self._clock() if now is None else now)

    def _plan(self, now: datetime) -> RetentionPlan:
        current = self._current
        protected = {current.step} if current is not None and not current.committed else set()
        if self._resumed_from is not None:
            protected.add(self._resumed_from)
        return plan_retention(
            [c.info() for c in self._index.committed],
            self._keep_policy,
            PreservationContext(now=now),
            protected=protected,
        )

    @property
    def save_cost(self) -> float | None:
        """Mean seconds the caller was blocked by its recent saves (by `clock`), from the
        decision to the return of `save` (or `save_async`); None before the first save."""
        return self._save_costs.mean

    def _record_save_cost(self, step: int, since: datetime) -> None:
        seconds = max(0.0, (self._clock() - since).total_seconds())
        with self._lock:
            self._save_costs.record(step, seconds)
        _log.info("saving step %d blocked the caller for %.3f s", step, seconds)

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
        """Like `save`, but returns once the save has started; None when the policy skips."""
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
        response = self._start(step, checkpointables, force, overwrite, metrics, custom_metadata)
        if response is None:
            return False
        try:
            response.result()
        except BaseException:
            with self._lock:
                self._background_error = None  # delivered here, not again on the next call
            raise
        self._record_save_cost(response.step, response.info.time)
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
        response = self._start(step, checkpointables, force, overwrite, metrics, custom_metadata)
        if response is not None:
            self._record_save_cost(response.step, response.info.time)
        return response

    def _start(
        self,
        step: int | CheckpointMetadata,
        checkpointables: Mapping[str, Any],
        force: bool,
        overwrite: bool,
        metrics: Mapping[str, Any] | None,
        custom_metadata: Mapping[str, Any] | None,
    ) -> SaveResponse | None:
        """Decides, then starts the save and its tail; None when the policy skips."""
        self._check_writable()
        if self._background_error is not None:
            self._raise_background_error()
        number = step_of(step)
        if METRICS_NAME in checkpointables:
            raise ReservedNameError(
                f"'{METRICS_NAME}' is reserved for the metrics passed with metrics=...; "
                "rename that checkpointable"
            )
        # The caller is blocked from the decision until the save has started (or committed).
        info = CheckpointInfo(number, self._clock(), _plain(metrics))
        if not force and not self._decide(info):
            return None
        self.wait()  # one save at a time
        with self._lock:
            replace = self._check_replace(number, overwrite)
            path = self._index.path_of(number)
            handle = _store.save_async(
                path,
                checkpointables,
                custom_metadata,
                info.metrics,
                started=info.time,
                processes=None if self._coordination is None else self._coordination.processes(),
                replace=replace,
            )
            response = SaveResponse(info, path, handle)
            self._current = response
            self._previous = None
        # The tail runs on io's own save thread, once the step is committed (or failed).
        handle.add_done_callback(lambda _: self._finish(response))
        return response

    def _check_replace(self, step: int, overwrite: bool) -> bool:
        """Whether saving `step` replaces a step on disk (committed or damaged), which only
        `overwrite=True` allows, and only where the new step can be swapped in by renames."""
        held = self._index.holds(step)
        if held is None:
            return False
        what = "a damaged checkpoint" if held == "damaged" else "already saved"
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

    def _finish(self, response: SaveResponse) -> None:
        """The tail of a committed (or failed) save, on io's save thread: plan, retire,
        remove."""
        try:
            written = response.io.result()
            item_bytes = (
                _store.record_item_bytes(response.path, written.item_names)
                if self._primary
                else None
            )
            entry = just_saved(response.step, response.path, response.info, written, item_bytes)
            self._ensure_details()  # the planner reads every step's time
            with self._lock:
                self._index.add(entry)
                response.committed = True
                self._previous = None
                plan = self._plan(self._clock()) if self._primary else None
                planned = [] if plan is None else list(plan.delete)
                doomed = self._index.take(set(planned)) if self._coordination is None else []
                # Only the primary thins: the other processes never plan, so their
                # descriptions of the steps' items do not matter.
                thinning = [] if plan is None else self._index.thin(plan.thin)
            if plan is not None:
                self._warn_over_budget(plan)
            if self._coordination is not None:  # every process drops what the primary planned
                shared = self._coordination.share("retention", planned)
                with self._lock:
                    doomed = self._index.take(set(shared))
            if doomed or thinning:
                with self._lock:
                    self._previous = None
                if self._primary:
                    self._retire_and_remove([entry.path for entry in doomed], thinning)
        except BaseException as error:  # re-raised on the caller's next call
            with self._lock:
                self._previous = None
                self._background_error = error
                self._current = None
            response.fail(error)
            return
        with self._lock:
            self._current = None
        response.finish(entry)

    def _retire_and_remove(
        self,
        paths: list[Location],
        thinning: Sequence[tuple[Location, frozenset[str]]] = (),
    ) -> None:
        """Retires every doomed step and the items to thin first (renames: quick), then
        removes them (slow), so that no step is half-deleted under its own name for long."""
        retired = [self._deleter.retire(path) for path in paths]
        for path, items in thinning:
            retired.extend(rootfs.thin_step(path, items))
        for leftover in retired:
            if leftover is not None:
                self._deleter.remove(leftover)

    def _warn_over_budget(self, plan: RetentionPlan) -> None:
        """Warns once when a byte budget cannot be met: the steps no rule may delete (the
        newest, the protected) alone exceed it."""
        # getattr: plans of retention versions before byte budgets have no such field.
        messages: tuple[str, ...] = getattr(plan, "over_budget", ())
        if messages and not self._warned_over_budget:
            self._warned_over_budget = True
            warnings.warn(
                f"retention in {self._directory} is over its byte budget: "
                f"{'; '.join(messages)}; raise the budget or keep fewer items (warned once)",
                OverBudgetWarning,
                stacklevel=2,
            )

    # -- deleting ------------------------------------------------------------------------

    def delete(self, step: int | CheckpointMetadata) -> None:
        """Deletes a committed step now, whatever the policies say; a damaged step too (the
        only way one goes)."""
        self._check_writable()
        self._raise_background_error()
        number = step_of(step)
        with self._lock:
            self._refuse_in_flight(number, "deleting")
            damaged = self._index.take_damaged(number)
            if damaged is None:
                if self._index.holds(number) is None:
                    raise self._index.not_found(number)
                (entry,) = self._index.take({number})
                self._previous = None
        if not self._primary:
            return
        if damaged is not None:
            rootfs.remove_path(rootfs.retire(damaged.path))
        else:
            self._retire_and_remove([entry.path])

    def _refuse_in_flight(self, number: int, doing: str) -> None:
        """Under the lock: a step whose save is still in flight cannot be changed yet."""
        current = self._current
        if current is not None and not current.committed and current.step == number:
            raise SaveInProgressError(f"step {number} is being saved; wait() before {doing} it")

    def thin(self, step: int | CheckpointMetadata, items: Iterable[str]) -> None:
        """Removes the named items from a committed step now, whatever the policies say (as
        retention thins a step: crash-safely, see `tenure.io.root.thin_step`); the step
        stays a checkpoint of its other items. Items it lacks are ignored; removing every
        item is refused (`ValueError`): delete the step instead.

        Examples:
            >>> import tempfile, numpy as np
            >>> with Checkpointer(tempfile.mkdtemp()) as ckptr:
            ...     _ = ckptr.save_checkpointables(1, {"params": [1], "opt_state": [2]})
            ...     ckptr.thin(1, ["opt_state"])
            ...     print(list(ckptr.latest.item_bytes), ckptr.load_checkpointables(1))
            ['params'] {'params': [1]}
        """
        self._check_writable()
        self._raise_background_error()
        number = step_of(step)
        doomed = frozenset(items)
        with self._lock:
            self._refuse_in_flight(number, "thinning")
            entry = self._index.find(number)
        if self._primary:
            for leftover in rootfs.thin_step(entry.path, doomed):
                self._deleter.remove(leftover)
        with self._lock:
            self._index.thin({number: doomed})
            self._previous = None

    # -- loading -------------------------------------------------------------------------

    def _resolve(self, step: int | CheckpointMetadata | None) -> CheckpointMetadata:
        number = None if step is None else step_of(step)
        with self._lock:
            return self._index.find(number)

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
                describe(entry.step, entry.path, self._clock()),
                custom_metadata=_store.read_custom_metadata(entry.path),
            )

    def root_metadata(self) -> Mapping[str, Any] | None:
        """The custom metadata given to the Checkpointer that created the root."""
        return rootfs.read_root_metadata(self._directory)

    def reload(self) -> None:
        """Re-reads the root, for example after another process wrote to it."""
        self.wait()
        scan = self._index.scan(self._clock(), details=True)
        with self._lock:
            self._index.install(scan)
            self._previous = None

    def iter_new_checkpoints(
        self,
        min_interval_secs: float = 0,
        timeout: float | None = None,
        *,
        poll_secs: float = 1.0,
        timeout_fn: Callable[[], bool] | None = None,
        from_latest: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> Iterator[CheckpointMetadata]:
        """Yields checkpoints as they are committed (for evaluator jobs), oldest first,
        starting after the newest one present now, looking every `poll_secs` seconds.

        Steps arriving less than `min_interval_secs` after the last one yielded are skipped
        in favour of the newest. After `timeout` seconds without a new checkpoint it stops,
        unless `timeout_fn` returns False (then it waits again); never when `timeout` is
        None. With `from_latest`, it starts with the newest checkpoint present now and yields
        only the newest of each look, as Orbax's `checkpoints_iterator` (and Kauldron) do.
        """
        latest = self.latest

        def look() -> list[CheckpointMetadata]:
            self.reload()
            return self.checkpoints

        return new_checkpoints(
            look,
            -1 if from_latest or latest is None else latest.step,
            min_interval_secs=min_interval_secs,
            timeout=timeout,
            poll_secs=poll_secs,
            timeout_fn=timeout_fn,
            newest_only=from_latest,
            sleep=sleep,
            monotonic=monotonic,
        )

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
        """Blocks until the save in flight (if any) is committed and retention has run,
        background deletions included."""
        current = self._current
        if current is not None:
            current.exception()  # waits without raising: the next call raises a failure
        self._deleter.wait()

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
