"""Simulating a whole run's checkpoints before deploying a policy.

`simulate` replays a training run step by step through the same decision code the
manager runs: the save policy for every step, then `plan_retention` after every save
commits. A save takes `save_duration` to commit (an async save in flight); a preemption
saves if the policy says so, waits for the save, and resumes from the newest checkpoint,
which then stays protected as the step the run resumed from.
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
from tenure.retention.planner import Decision, plan_retention
from tenure.retention.preservation_policies import PreservationPolicy
from tenure.retention.save_policies import SaveDecisionPolicy

Metrics = Mapping[str, Any] | None
MetricsSource = Callable[[int], Metrics] | Sequence[Metrics] | None
BytesSource = int | Callable[[int], int] | None


@attrs.frozen
class SimulationEvent:
    """A save that committed or a checkpoint that was deleted.

    `at_step` is the training step during which it happened. For a deletion, `reasons`
    are the rules that had kept the checkpoint until then: the rules that let it go.

    Examples:
        >>> from datetime import datetime, timezone
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> SimulationEvent("save", step=100, at_step=100, time=t).kind
        'save'
    """

    kind: Literal["save", "delete"]
    step: int
    at_step: int
    time: datetime
    reasons: tuple[str, ...] = ()


@attrs.frozen
class CheckpointLifetime:
    """One checkpoint's life: saved at `step`, deleted during `deleted_at_step` (None if
    it survived the run), and the rules that let it go.

    Examples:
        >>> from datetime import datetime, timezone
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> CheckpointLifetime(step=5, saved_time=t, deleted_at_step=None).survived
        True
    """

    step: int
    saved_time: datetime
    deleted_at_step: int | None = None
    let_go_by: tuple[str, ...] = ()
    nbytes: int | None = None

    @property
    def survived(self) -> bool:
        return self.deleted_at_step is None


@attrs.frozen
class SimulationResult:
    """What happened over the simulated run.

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

    @property
    def saves(self) -> int:
        return sum(1 for e in self.events if e.kind == "save")

    @property
    def deletions(self) -> int:
        return sum(1 for e in self.events if e.kind == "delete")

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


class _Run:
    """Mutable state of one simulated run; the decisions themselves stay pure."""

    def __init__(
        self,
        preservation_policy: PreservationPolicy,
        checkpoint_bytes: BytesSource,
    ) -> None:
        self.preservation_policy = preservation_policy
        self.checkpoint_bytes = checkpoint_bytes
        self.alive: list[CheckpointInfo] = []
        self.in_flight: CheckpointInfo | None = None
        self.commit_time: datetime | None = None
        self.resumed_from: int | None = None
        self.reasons: dict[int, tuple[str, ...]] = {}
        self.sizes: dict[int, int | None] = {}
        self.events: list[SimulationEvent] = []
        self.lifetimes: dict[int, CheckpointLifetime] = {}
        self.peak_count = 0
        self.peak_bytes: int | None = None if checkpoint_bytes is None else 0
        self.total_bytes: int | None = None if checkpoint_bytes is None else 0
        self.previous: tuple[CheckpointInfo, ...] = ()

    def _refresh_previous(self) -> None:
        # Rebuilt only when the set of checkpoints changes: saves are rare, steps are not.
        extra = (self.in_flight,) if self.in_flight is not None else ()
        self.previous = (*self.alive, *extra)

    def start_save(self, info: CheckpointInfo, commit_time: datetime) -> None:
        self.in_flight = info
        self.commit_time = commit_time
        nbytes = _bytes_of(self.checkpoint_bytes, info.step)
        self.sizes[info.step] = nbytes
        if self.total_bytes is not None and nbytes is not None:
            self.total_bytes += nbytes
        self._refresh_previous()

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
            info.step, saved_time=info.time, nbytes=self.sizes[info.step]
        )
        self.peak_count = max(self.peak_count, len(self.alive))
        if self.peak_bytes is not None:
            on_disk = sum(self.sizes[c.step] or 0 for c in self.alive)
            self.peak_bytes = max(self.peak_bytes, on_disk)
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
            let_go_by = self.reasons.pop(decision.step, ())
            self.events.append(SimulationEvent("delete", decision.step, at_step, time, let_go_by))
            self.lifetimes[decision.step] = attrs.evolve(
                self.lifetimes[decision.step], deleted_at_step=at_step, let_go_by=let_go_by
            )
        if doomed:
            self.alive = [c for c in self.alive if c.step not in doomed]
        self._refresh_previous()

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
) -> SimulationResult:
    """Runs the save and retention decisions over a whole training run.

    `steps` is a count (steps 0..steps-1) or the steps themselves, increasing; step k of
    the run happens at `start_time + k * step_duration`. `metrics` is a callable of the
    step or a sequence with one entry per step. `checkpoint_bytes` (a number or a callable
    of the step) enables the disk figures.

    Examples:
        >>> from datetime import datetime, timedelta, timezone
        >>> from tenure.retention import EveryNSteps, FixedIntervalPolicy, LatestN
        >>> result = simulate(
        ...     FixedIntervalPolicy(100), LatestN(3) | EveryNSteps(1000),
        ...     steps=5001, start_time=datetime(2026, 1, 1, tzinfo=timezone.utc),
        ...     step_duration=timedelta(seconds=2), checkpoint_bytes=2**30)
        >>> [d.step for d in result.kept]
        [0, 1000, 2000, 3000, 4000, 4800, 4900, 5000]
    """
    policy_kinds(save_policy, preservation_policy)
    require_aware("start_time", start_time)
    if step_duration < timedelta(0) or save_duration < timedelta(0):
        raise PolicyArgumentError("step_duration and save_duration must not be negative")
    step_list = range(steps) if isinstance(steps, int) else steps
    preemptions = frozenset(preemption_steps)
    # The four possible contexts, built once: the loop below runs for every step.
    contexts = {
        (busy, preempt): DecisionContext(is_saving_in_progress=busy, reached_preemption=preempt)
        for busy in (False, True)
        for preempt in (False, True)
    }
    metrics_at = _metrics_reader(metrics)
    run = _Run(preservation_policy, checkpoint_bytes)
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
    return SimulationResult(
        steps_simulated=count,
        events=tuple(run.events),
        lifetimes=tuple(run.lifetimes[s] for s in sorted(run.lifetimes)),
        kept=tuple(Decision(c.step, keep=True, reasons=run.reasons[c.step]) for c in run.alive),
        peak_count=run.peak_count,
        peak_bytes=run.peak_bytes,
        total_bytes_written=run.total_bytes,
        end_time=time,
    )
