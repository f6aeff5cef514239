"""Simulating a whole run's checkpoints before deploying a policy.

`simulate` replays a training run step by step through the same decision code the
manager runs: the save policy for every step, then `plan_retention` after every save
commits. A save takes `save_duration` to commit (an async save in flight); a preemption
saves if the policy says so, waits for the save, and resumes from the newest checkpoint,
which then stays protected as the step the run resumed from. With `item_bytes`, each
saved step holds named items, and the items a plan thins leave the step as the manager
removes them.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import attrs

from tenure.retention._validators import policy_kinds
from tenure.retention.errors import PolicyArgumentError
from tenure.retention.info import (
    CheckpointInfo,
    DecisionContext,
    PreservationContext,
    require_aware,
)
from tenure.retention.items import parse_bytes
from tenure.retention.planner import Decision, plan_retention
from tenure.retention.preservation_policies import PreservationPolicy
from tenure.retention.save_policies import SaveDecisionPolicy

Metrics = Mapping[str, Any] | None
MetricsSource = Callable[[int], Metrics] | Sequence[Metrics] | None
BytesSource = int | Callable[[int], int] | None
ItemBytesSource = Mapping[str, int] | Callable[[int], Mapping[str, int]] | None


@attrs.frozen
class SimulationEvent:
    """A save that committed, a checkpoint that was deleted, or one that was thinned.

    `at_step` is the training step during which it happened. For a deletion, `reasons`
    are the rules that had kept the checkpoint until then: the rules that let it go (or,
    for a step a `WithinBytes` budget gave up, the budget's reason). For
    a thinning (`kind == "thin"`), `items` are the items removed from the step, which
    stays, and `reasons` the rules that keep the rest.

    Examples:
        >>> from datetime import datetime, timezone
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> SimulationEvent("save", step=100, at_step=100, time=t).kind
        'save'
    """

    kind: Literal["save", "delete", "thin"]
    step: int
    at_step: int
    time: datetime
    reasons: tuple[str, ...] = ()
    items: frozenset[str] = frozenset()


@attrs.frozen
class CheckpointLifetime:
    """One checkpoint's life: saved at `step`, deleted during `deleted_at_step` (None if
    it survived the run), and the rules that let it go.

    `nbytes` and `item_bytes` are its size when saved (None when the run had no sizes);
    `thinned` lists `(at_step, items removed)` for each pass that thinned it.

    Examples:
        >>> from datetime import datetime, timezone
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> CheckpointLifetime(step=5, saved_time=t, deleted_at_step=None).survived
        True
        >>> life = CheckpointLifetime(5, t, item_bytes={"params": 2, "opt_state": 4},
        ...                           thinned=((9, frozenset({"opt_state"})),))
        >>> sorted(life.items_left)
        ['params']
    """

    step: int
    saved_time: datetime
    deleted_at_step: int | None = None
    let_go_by: tuple[str, ...] = ()
    nbytes: int | None = None
    item_bytes: Mapping[str, int] | None = None
    thinned: tuple[tuple[int, frozenset[str]], ...] = ()

    @property
    def survived(self) -> bool:
        return self.deleted_at_step is None

    @property
    def items_left(self) -> frozenset[str] | None:
        """The items the step holds after its thinnings (None when its items are unknown)."""
        if self.item_bytes is None:
            return None
        removed = frozenset[str]().union(*(items for _, items in self.thinned))
        return frozenset(self.item_bytes) - removed


@attrs.frozen
class SimulationResult:
    """What happened over the simulated run.

    With `item_bytes`, `peak_item_bytes` and `final_item_bytes` give each item's bytes on
    disk at its peak and at the end; with `quota`, `quota_exceeded_at` is the training
    step at which the bytes on disk first exceeded it (None if they never did).

    Examples:
        >>> from datetime import datetime, timedelta, timezone
        >>> from tenure.retention import FixedIntervalPolicy, LatestN
        >>> result = simulate(FixedIntervalPolicy(10), LatestN(2), steps=100,
        ...                   start_time=datetime(2026, 1, 1, tzinfo=timezone.utc),
        ...                   step_duration=timedelta(seconds=1))
        >>> [d.step for d in result.kept]
        [80, 90]
    """

    steps_simulated: int
    events: tuple[SimulationEvent, ...]
    lifetimes: tuple[CheckpointLifetime, ...]
    kept: tuple[Decision, ...]  # alive at the end, with the rules of the last retention pass
    peak_count: int
    peak_bytes: int | None
    total_bytes_written: int | None
    end_time: datetime
    peak_item_bytes: Mapping[str, int] | None = None
    final_item_bytes: Mapping[str, int] | None = None
    quota: int | None = None
    quota_exceeded_at: int | None = None

    @property
    def saves(self) -> int:
        return sum(1 for e in self.events if e.kind == "save")

    @property
    def deletions(self) -> int:
        return sum(1 for e in self.events if e.kind == "delete")

    @property
    def kept_items(self) -> dict[int, frozenset[str]]:
        """`{step: items}` of the checkpoints alive at the end whose items are known."""
        left = {life.step: life.items_left for life in self.lifetimes}
        return {d.step: items for d in self.kept if (items := left[d.step]) is not None}

    def table(self) -> str:
        """A plain-text report: the checkpoints kept at the end and why, then totals."""
        from tenure.retention.report import render_table

        return render_table(self)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; its keys are stable (see docs/simulation.md)."""
        from tenure.retention.report import to_json

        return to_json(self)


def _metrics_reader(source: MetricsSource) -> Callable[[int, int], Metrics]:
    """`(index, step) -> metrics`, chosen once rather than on every step."""
    if source is None:
        return lambda index, step: None
    if callable(source):
        by_step = source
        return lambda index, step: by_step(step)
    by_index = source
    return lambda index, step: by_index[index]


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """The replay makes millions of short-lived acyclic objects; pausing the cyclic
    collector spares it from re-walking the run's history again and again."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _bytes_of(source: BytesSource, step: int) -> int | None:
    if source is None or isinstance(source, int):
        return source
    return source(step)


def _checked_item_bytes(item_bytes: Mapping[str, int], step: int) -> dict[str, int]:
    checked = dict(item_bytes)
    for name, nbytes in checked.items():
        if not isinstance(name, str) or not name:
            raise PolicyArgumentError(
                f"step {step}: item names must be non-empty text, not {name!r}"
            )
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise PolicyArgumentError(
                f"step {step}: item {name!r} has {nbytes!r} bytes; give a whole number >= 0"
            )
    return checked


class _Run:
    """Mutable state of one simulated run; the decisions themselves stay pure."""

    def __init__(
        self,
        preservation_policy: PreservationPolicy,
        checkpoint_bytes: BytesSource,
        item_bytes: ItemBytesSource,
        quota: int | None,
    ) -> None:
        self.preservation_policy = preservation_policy
        self.checkpoint_bytes = checkpoint_bytes
        # A fixed mapping is checked once; a function of the step, at each save.
        self.item_bytes: Callable[[int], dict[str, int]] | None = None
        if callable(item_bytes):
            by_step = item_bytes
            self.item_bytes = lambda step: _checked_item_bytes(by_step(step), step)
        elif item_bytes is not None:
            fixed = _checked_item_bytes(item_bytes, 0)
            self.item_bytes = lambda step: dict(fixed)
        sized = checkpoint_bytes is not None or item_bytes is not None
        self.quota = quota
        self.quota_exceeded_at: int | None = None
        self.alive: list[CheckpointInfo] = []
        self.in_flight: CheckpointInfo | None = None
        self.commit_time: datetime | None = None
        self.resumed_from: int | None = None
        self.reasons: dict[int, tuple[str, ...]] = {}
        self.sizes: dict[int, int | None] = {}  # bytes on disk now, thinnings taken out
        self.events: list[SimulationEvent] = []
        self.lifetimes: dict[int, CheckpointLifetime] = {}
        self.peak_count = 0
        self.on_disk = 0
        self.peak_bytes: int | None = 0 if sized else None
        self.total_bytes: int | None = 0 if sized else None
        self.item_on_disk: dict[str, int] = {}
        self.item_peaks: dict[str, int] = {}
        self.previous: tuple[CheckpointInfo, ...] = ()

    def _refresh_previous(self) -> None:
        # Rebuilt only when the set of checkpoints changes: saves are rare, steps are not.
        extra = (self.in_flight,) if self.in_flight is not None else ()
        self.previous = (*self.alive, *extra)

    def start_save(self, info: CheckpointInfo, commit_time: datetime) -> None:
        if self.item_bytes is not None:
            item_bytes = self.item_bytes(info.step)
            info = attrs.evolve(info, item_bytes=item_bytes)
            nbytes: int | None = sum(item_bytes.values())
        else:
            nbytes = _bytes_of(self.checkpoint_bytes, info.step)
        self.in_flight = info
        self.commit_time = commit_time
        self.sizes[info.step] = nbytes
        if self.total_bytes is not None and nbytes is not None:
            self.total_bytes += nbytes
        self._refresh_previous()

    def _count_on_disk(self, info: CheckpointInfo, at_step: int) -> None:
        """Adds a committed save to the bytes on disk; peaks are reached here, before the
        retention pass that follows can only lower them."""
        if self.peak_bytes is None:
            return
        self.on_disk += self.sizes[info.step] or 0
        self.peak_bytes = max(self.peak_bytes, self.on_disk)
        if self.quota is not None and self.quota_exceeded_at is None and self.on_disk > self.quota:
            self.quota_exceeded_at = at_step
        if info.item_bytes is not None:
            for name, nbytes in info.item_bytes.items():
                total = self.item_on_disk.get(name, 0) + nbytes
                self.item_on_disk[name] = total
                self.item_peaks[name] = max(self.item_peaks.get(name, 0), total)

    def _uncount(self, item_bytes: Mapping[str, int] | None, nbytes: int) -> None:
        if self.peak_bytes is None:
            return
        self.on_disk -= nbytes
        for name, size in (item_bytes or {}).items():
            self.item_on_disk[name] -= size

    def commit(self, at_step: int) -> None:
        info, time = self.in_flight, self.commit_time
        assert info is not None
        assert time is not None
        self.in_flight = self.commit_time = None
        if self.alive and info.step <= self.alive[-1].step:
            raise PolicyArgumentError(
                f"step {info.step} was saved after step {self.alive[-1].step}; "
                "simulated steps must increase"
            )
        self.alive.append(info)
        self.events.append(SimulationEvent("save", info.step, at_step, time))
        self.lifetimes[info.step] = CheckpointLifetime(
            info.step,
            saved_time=info.time,
            nbytes=self.sizes[info.step],
            item_bytes=info.item_bytes,
        )
        self.peak_count = max(self.peak_count, len(self.alive))
        self._count_on_disk(info, at_step)
        protected = () if self.resumed_from is None else (self.resumed_from,)
        plan = plan_retention(
            self.alive,
            self.preservation_policy,
            PreservationContext(now=time),
            protected=protected,
        )
        doomed = set(plan.delete)
        for decision in plan.decisions:
            if decision.keep:
                self.reasons[decision.step] = decision.reasons
                continue
            # A budget that gives a step up says so; otherwise the rules that had kept it
            # until now are the ones that let it go.
            had_kept = self.reasons.pop(decision.step, ())
            let_go_by = decision.reasons or had_kept
            self.events.append(SimulationEvent("delete", decision.step, at_step, time, let_go_by))
            self.lifetimes[decision.step] = attrs.evolve(
                self.lifetimes[decision.step], deleted_at_step=at_step, let_go_by=let_go_by
            )
        if doomed:
            for gone in self.alive:
                if gone.step in doomed:
                    self._uncount(gone.item_bytes, self.sizes[gone.step] or 0)
            self.alive = [c for c in self.alive if c.step not in doomed]
        if plan.thin:
            self.alive = [self._thin(c, plan.thin.get(c.step), at_step, time) for c in self.alive]
        self._refresh_previous()

    def _thin(
        self, info: CheckpointInfo, items: frozenset[str] | None, at_step: int, time: datetime
    ) -> CheckpointInfo:
        """Removes `items` from a kept step, as the manager removes their directories."""
        if not items or info.item_bytes is None:
            return info
        removed = {name: n for name, n in info.item_bytes.items() if name in items}
        if not removed:
            return info
        left = {name: n for name, n in info.item_bytes.items() if name not in items}
        nbytes = sum(removed.values())
        self._uncount(removed, nbytes)
        self.sizes[info.step] = (self.sizes[info.step] or 0) - nbytes
        names = frozenset(removed)
        reasons = self.reasons[info.step]  # the rules that keep the rest
        self.events.append(SimulationEvent("thin", info.step, at_step, time, reasons, names))
        life = self.lifetimes[info.step]
        self.lifetimes[info.step] = attrs.evolve(life, thinned=(*life.thinned, (at_step, names)))
        return attrs.evolve(info, item_bytes=left)

    def kept_decision(self, info: CheckpointInfo) -> Decision:
        """A step alive at the end: the rules of the last pass, and for a step thinned at
        any pass the items it still holds (the last pass saw only those, and kept them
        all)."""
        thinned = self.lifetimes[info.step].thinned
        items = frozenset(info.item_bytes or ()) if thinned else None
        return Decision(info.step, keep=True, reasons=self.reasons[info.step], items=items)

    def resume(self) -> None:
        self.resumed_from = self.alive[-1].step if self.alive else None


def simulate(
    save_policy: SaveDecisionPolicy,
    preservation_policy: PreservationPolicy,
    *,
    steps: int | Iterable[int],
    start_time: datetime,
    step_duration: timedelta,
    metrics: MetricsSource = None,
    preemption_steps: Iterable[int] = (),
    save_duration: timedelta = timedelta(0),
    checkpoint_bytes: BytesSource = None,
    item_bytes: ItemBytesSource = None,
    quota: int | str | None = None,
) -> SimulationResult:
    """Runs the save and retention decisions over a whole training run.

    `steps` is a count (steps 0..steps-1) or the steps themselves, increasing; step k of
    the run happens at `start_time + k * step_duration`. `metrics` is a callable of the
    step or a sequence with one entry per step. `checkpoint_bytes` (a number or a callable
    of the step) enables the disk figures. `item_bytes` (a mapping from item name to bytes,
    or a callable of the step returning one) does too, instead: each saved step holds those
    items, the planner sees them in `CheckpointInfo.item_bytes`, and the items a plan thins
    leave the step. `quota` (bytes) is the disk space the run may fill; the result says at
    which step it was first exceeded; like `WithinBytes`, it takes text such as `"20TiB"`.

    Examples:
        >>> from datetime import datetime, timedelta, timezone
        >>> from tenure.retention import EveryNSteps, FixedIntervalPolicy, LatestN
        >>> result = simulate(
        ...     FixedIntervalPolicy(100), LatestN(3) | EveryNSteps(1000),
        ...     steps=5001, start_time=datetime(2026, 1, 1, tzinfo=timezone.utc),
        ...     step_duration=timedelta(seconds=2), checkpoint_bytes=2**30)
        >>> [d.step for d in result.kept]
        [0, 1000, 2000, 3000, 4000, 4800, 4900, 5000]

        With item sizes, the optimizer state of every 1000th step goes once three newer
        steps are saved, and a 15 GiB quota is first exceeded at step 3400 (the newest
        three and the new save, 12 GiB, and the params of steps 0 to 3000):

        >>> result = simulate(
        ...     FixedIntervalPolicy(100), LatestN(3) | EveryNSteps(1000).only("params"),
        ...     steps=10_001, start_time=datetime(2026, 1, 1, tzinfo=timezone.utc),
        ...     step_duration=timedelta(seconds=2),
        ...     item_bytes={"params": 2**30, "opt_state": 2 * 2**30}, quota="15GiB")
        >>> sorted(result.kept_items[2000]), sorted(result.kept_items[10_000])
        (['params'], ['opt_state', 'params'])
        >>> result.quota_exceeded_at
        3400
    """
    policy_kinds(save_policy, preservation_policy)
    require_aware("start_time", start_time)
    if step_duration < timedelta(0) or save_duration < timedelta(0):
        raise PolicyArgumentError("step_duration and save_duration must not be negative")
    if checkpoint_bytes is not None and item_bytes is not None:
        raise PolicyArgumentError(
            "give checkpoint_bytes or item_bytes, not both: a step's bytes are its items' bytes"
        )
    if quota is not None:
        quota = parse_bytes(quota)
        if checkpoint_bytes is None and item_bytes is None:
            raise PolicyArgumentError(
                "quota needs the checkpoints' sizes: give checkpoint_bytes or item_bytes"
            )
    step_list = range(steps) if isinstance(steps, int) else steps
    preemptions = frozenset(preemption_steps)
    # The four possible contexts, built once: the loop below runs for every step.
    contexts = {
        (busy, preempt): DecisionContext(is_saving_in_progress=busy, reached_preemption=preempt)
        for busy in (False, True)
        for preempt in (False, True)
    }
    metrics_at = _metrics_reader(metrics)
    run = _Run(preservation_policy, checkpoint_bytes, item_bytes, quota)
    time = start_time
    count = 0
    last_step: int | None = None
    with _cyclic_gc_paused():
        for index, step in enumerate(step_list):
            if index:
                time += step_duration
            count += 1
            if last_step is not None and step <= last_step:
                raise PolicyArgumentError(f"steps must increase; {step} follows {last_step}")
            last_step = step
            if run.commit_time is not None and run.commit_time <= time:
                run.commit(at_step=step)
            preempt = step in preemptions
            info = CheckpointInfo(step, time, metrics_at(index, step))
            context = contexts[(run.in_flight is not None, preempt)]
            if save_policy.should_save(info, run.previous, context=context):
                if run.in_flight is not None:
                    run.commit(at_step=step)  # one save at a time: the new one waits
                run.start_save(info, time + save_duration)
                if save_duration == timedelta(0):
                    run.commit(at_step=step)
            if preempt:
                if run.in_flight is not None:
                    run.commit(at_step=step)
                run.resume()
    if run.in_flight is not None:
        assert last_step is not None
        run.commit(at_step=last_step)
    itemised = run.item_bytes is not None
    return SimulationResult(
        steps_simulated=count,
        events=tuple(run.events),
        lifetimes=tuple(run.lifetimes[s] for s in sorted(run.lifetimes)),
        kept=tuple(run.kept_decision(c) for c in run.alive),
        peak_count=run.peak_count,
        peak_bytes=run.peak_bytes,
        total_bytes_written=run.total_bytes,
        end_time=time,
        peak_item_bytes=dict(run.item_peaks) if itemised else None,
        final_item_bytes=dict(run.item_on_disk) if itemised else None,
        quota=quota,
        quota_exceeded_at=run.quota_exceeded_at,
    )
