"""Simulating a run under failures: expected wall time, lost work, time blocked on saves.

`simulate_failures` replays a training run many times, each with its own seeded failures,
through the same save and retention decisions the Checkpointer makes. A save blocks the
training loop for `blocked_seconds`, then commits `save_duration` later in the background.
A failure kills the run: a save not yet committed is lost, the job restarts after
`restart_duration`, and it resumes from the newest committed checkpoint, re-running the
steps since with the same policies. See docs/cadence.md for the model and its assumptions.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from tenure.retention._validators import optional_positive_duration, policy_kinds
from tenure.retention.cadence import SaveCostMeter, daly_interval, young_interval
from tenure.retention.errors import PolicyArgumentError
from tenure.retention.info import CheckpointInfo, DecisionContext, PreservationContext
from tenure.retention.planner import plan_retention
from tenure.retention.preservation_policies import PreservationPolicy
from tenure.retention.save_policies import (
    AllSavePolicy,
    AnySavePolicy,
    FixedIntervalPolicy,
    NotSavePolicy,
    PreemptionCheckpointingPolicy,
    SaveDecisionPolicy,
    SpecificStepsPolicy,
    StepRangePolicy,
)
from tenure.retention.simulator import _cyclic_gc_paused

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
BlockedSource = float | Callable[[int | None], float]
BytesSource = int | Callable[[int], int] | None
MetricsSource = Callable[[int], Mapping[str, Any] | None] | None
# A run that has not finished after this many times its failure-free duration makes no
# progress: failures come faster than it can save.
_GIVE_UP_FACTOR = 100


def _shape(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise PolicyArgumentError(f"{attribute.name}={value!r} must be a positive number")


def _durations(value: Iterable[timedelta]) -> tuple[timedelta, ...]:
    times = tuple(sorted(value))
    if any(not isinstance(t, timedelta) or t < timedelta(0) for t in times):
        raise PolicyArgumentError(f"times={value!r} must be non-negative datetime.timedelta")
    return times


def _steps(value: Iterable[int]) -> tuple[int, ...]:
    steps = tuple(sorted(set(value)))
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in steps):
        raise PolicyArgumentError(f"steps={value!r} must be integers >= 0")
    return steps


@attrs.frozen
class Failures:
    """When a run fails: at given `times` (from its start) or `steps` (the first time the
    run reaches them), and at random with mean time between failures `mtbf`.

    Random failures form a renewal process in wall time: the time to the next failure is
    drawn afresh after each one, exponential by default (`shape=1`), Weibull with the
    given `shape` otherwise (`shape < 1`: failures cluster; the mean stays `mtbf`).

    Examples:
        >>> import random
        >>> from itertools import islice
        >>> failures = Failures(mtbf=timedelta(hours=6), times=[timedelta(minutes=5)])
        >>> first = list(islice(failures.arrivals(random.Random(0)), 3))
        >>> first[0], len(first)
        (datetime.timedelta(seconds=300), 3)
    """

    mtbf: timedelta | None = attrs.field(default=None, validator=optional_positive_duration)
    shape: float = attrs.field(default=1.0, validator=_shape)
    times: tuple[timedelta, ...] = attrs.field(default=(), converter=_durations)
    steps: tuple[int, ...] = attrs.field(default=(), converter=_steps)

    def arrivals(self, rng: random.Random) -> Iterator[timedelta]:
        """The failure times (offsets from the start), increasing; endless with `mtbf`."""
        return heapq.merge(self.times, self._random(rng))

    def _random(self, rng: random.Random) -> Iterator[timedelta]:
        if self.mtbf is None:
            return
        mean = self.mtbf.total_seconds()
        scale = mean / math.gamma(1 + 1 / self.shape)
        elapsed = 0.0
        while True:
            if self.shape == 1:
                elapsed += rng.expovariate(1 / mean)
            else:
                elapsed += rng.weibullvariate(scale, self.shape)
            yield timedelta(seconds=elapsed)


@attrs.frozen
class FailureRun:
    """One simulated run under failures.

    `saved` lists every save started, in order, including those lost to a failure and
    the steps saved again after a restart; `resumed_from` the step each restart resumed
    from (None: from the start).

    Examples:
        >>> FailureRun(wall_seconds=10.0, failures=0, lost_steps=0, blocked_seconds=0.0,
        ...            saved=(0,), resumed_from=()).saves
        1
    """

    wall_seconds: float
    failures: int
    lost_steps: int
    blocked_seconds: float
    saved: tuple[int, ...]
    resumed_from: tuple[int | None, ...]

    @property
    def saves(self) -> int:
        return len(self.saved)


def _percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: a value some run actually had."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@attrs.frozen
class FailureReport:
    """The runs of `simulate_failures` and their summary figures.

    `ideal_seconds` is the run with neither failures nor saves; `efficiency` divides it
    by the expected (mean) wall time.

    Examples:
        >>> run = FailureRun(120.0, 1, 10, 5.0, (0, 50), (0,))
        >>> report = FailureReport(runs=(run,), ideal_seconds=100.0)
        >>> report.efficiency, report.p95_wall_seconds
        (0.8333333333333334, 120.0)
    """

    runs: tuple[FailureRun, ...]
    ideal_seconds: float

    def _mean(self, value: Callable[[FailureRun], float]) -> float:
        return statistics.fmean(value(run) for run in self.runs)

    @property
    def expected_wall_seconds(self) -> float:
        return self._mean(lambda run: run.wall_seconds)

    @property
    def median_wall_seconds(self) -> float:
        return statistics.median(run.wall_seconds for run in self.runs)

    @property
    def p95_wall_seconds(self) -> float:
        return _percentile([run.wall_seconds for run in self.runs], 0.95)

    @property
    def lost_steps_mean(self) -> float:
        return self._mean(lambda run: run.lost_steps)

    @property
    def blocked_seconds_mean(self) -> float:
        return self._mean(lambda run: run.blocked_seconds)

    @property
    def saves_mean(self) -> float:
        return self._mean(lambda run: run.saves)

    @property
    def failures_mean(self) -> float:
        return self._mean(lambda run: run.failures)

    @property
    def efficiency(self) -> float:
        return self.ideal_seconds / self.expected_wall_seconds

    def to_json(self) -> dict[str, Any]:
        """The summary figures, under the keys of `tenure simulate --json`'s `failures`."""
        return {
            "runs": len(self.runs),
            "ideal_seconds": self.ideal_seconds,
            "expected_wall_seconds": self.expected_wall_seconds,
            "median_wall_seconds": self.median_wall_seconds,
            "p95_wall_seconds": self.p95_wall_seconds,
            "lost_steps_mean": self.lost_steps_mean,
            "blocked_seconds_mean": self.blocked_seconds_mean,
            "saves_mean": self.saves_mean,
            "failures_mean": self.failures_mean,
            "efficiency": self.efficiency,
        }


_STEP_ONLY = (
    FixedIntervalPolicy,
    SpecificStepsPolicy,
    StepRangePolicy,
    PreemptionCheckpointingPolicy,
)


def _depends_only_on_step(policy: SaveDecisionPolicy) -> bool:
    """Whether the policy's answer is a function of the step number alone here.

    PreemptionCheckpointingPolicy counts: failures come without notice, so it always
    says no. Such policies let the replay jump from one saving step to the next.
    """
    # Exact types: a subclass may decide differently.
    if type(policy) in _STEP_ONLY:
        return True
    if type(policy) in (AnySavePolicy, AllSavePolicy):
        assert isinstance(policy, AnySavePolicy | AllSavePolicy)
        return all(_depends_only_on_step(p) for p in policy.policies)
    if type(policy) is NotSavePolicy:
        assert isinstance(policy, NotSavePolicy)
        return _depends_only_on_step(policy.policy)
    return False


class _Killed(Exception):
    """A failure interrupted the run (internal control flow of the replay)."""


class _Replay:
    """The fixed inputs of a simulation; `run(rng)` replays one run."""

    def __init__(
        self,
        save_policy: SaveDecisionPolicy,
        preservation_policy: PreservationPolicy,
        *,
        steps: int,
        step_duration: timedelta,
        failures: Failures,
        blocked_seconds: BlockedSource,
        save_duration: timedelta,
        restart_duration: timedelta,
        checkpoint_bytes: BytesSource,
        metrics: MetricsSource,
        start_time: datetime,
    ) -> None:
        policy_kinds(save_policy, preservation_policy)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise PolicyArgumentError(f"steps={steps!r} must be a positive number of steps")
        if step_duration <= timedelta(0):
            raise PolicyArgumentError("step_duration must be positive: failures need time")
        if save_duration < timedelta(0) or restart_duration < timedelta(0):
            raise PolicyArgumentError("save_duration and restart_duration must not be negative")
        if not callable(blocked_seconds) and not blocked_seconds >= 0:
            raise PolicyArgumentError(f"blocked_seconds={blocked_seconds!r} must be >= 0")
        self.save_policy = save_policy
        self.keep = preservation_policy
        self.last = steps - 1
        self.dt = step_duration
        self.failures = failures
        self.blocked = blocked_seconds
        self.save_duration = save_duration
        self.restart = restart_duration
        self.checkpoint_bytes = checkpoint_bytes
        self.metrics = metrics or (lambda step: None)
        self.start = start_time
        # Step-only policies are asked once per step here, not once per step of every run:
        # the replay then jumps between the steps they save (and asks them again there).
        self.jumps: list[int] | None = None
        if _depends_only_on_step(save_policy):
            context = DecisionContext()
            self.jumps = [
                s
                for s in range(steps)
                if save_policy.should_save(CheckpointInfo(s, start_time), (), context=context)
            ]

    def cost_of(self, step: int) -> timedelta:
        if not callable(self.blocked):
            return timedelta(seconds=self.blocked)
        source = self.checkpoint_bytes
        nbytes = source(step) if callable(source) else source
        return timedelta(seconds=self.blocked(nbytes))

    def next_target(self, step: int, failure_steps: list[int]) -> int:
        target = self.last
        if self.jumps is None:
            target = min(target, step + 1)
        else:
            index = bisect.bisect_right(self.jumps, step)
            if index < len(self.jumps):
                target = min(target, self.jumps[index])
        if failure_steps:
            target = min(target, failure_steps[0])
        return target

    def run(self, rng: random.Random) -> FailureRun:
        return _RunState(self, rng).play()


class _RunState:
    """Mutable state of one run under failures; the decisions themselves stay pure."""

    def __init__(self, replay: _Replay, rng: random.Random) -> None:
        self.r = replay
        self.arrivals = (replay.start + offset for offset in replay.failures.arrivals(rng))
        self.next_failure: datetime | None = next(self.arrivals, None)
        self.failure_steps = list(replay.failures.steps)
        self.now = replay.start
        self.step = 0
        self.alive: list[CheckpointInfo] = []
        self.in_flight: CheckpointInfo | None = None
        self.commit_time = replay.start
        self.previous: tuple[CheckpointInfo, ...] = ()
        self.resumed: int | None = None
        self.meter = SaveCostMeter()
        self.contexts: dict[tuple[bool, float | None], DecisionContext] = {}
        self.failures = 0
        self.lost = 0
        self.blocked = timedelta(0)
        self.saved: list[int] = []
        self.resumed_from: list[int | None] = []

    def play(self) -> FailureRun:
        ideal = self.r.last * self.r.dt
        give_up = self.r.start + max(ideal, self.r.dt) * _GIVE_UP_FACTOR
        decide = True
        with _cyclic_gc_paused():
            while True:
                if self.now > give_up:
                    raise PolicyArgumentError(
                        f"a run under {self.r.failures!r} had not finished after "
                        f"{_GIVE_UP_FACTOR}x its failure-free time: failures come faster "
                        "than it saves; save more often or model fewer failures"
                    )
                try:
                    if decide:
                        self.decide()
                    if self.step == self.r.last:
                        break
                    self.advance()
                    decide = True
                except _Killed:
                    decide = self.fail()
        return FailureRun(
            wall_seconds=(self.now - self.r.start).total_seconds(),
            failures=self.failures,
            lost_steps=self.lost,
            blocked_seconds=self.blocked.total_seconds(),
            saved=tuple(self.saved),
            resumed_from=tuple(self.resumed_from),
        )

    def fails_by(self, time: datetime) -> bool:
        return self.next_failure is not None and self.next_failure <= time

    def advance(self) -> None:
        target = self.r.next_target(self.step, self.failure_steps)
        arrival = self.now + (target - self.step) * self.r.dt
        if self.fails_by(arrival):
            assert self.next_failure is not None
            self.step += (self.next_failure - self.now) // self.r.dt
            self.now = self.next_failure
            raise _Killed
        self.step, self.now = target, arrival
        if self.failure_steps and self.failure_steps[0] == target:
            self.failure_steps.pop(0)
            raise _Killed

    def decide(self) -> None:
        if self.in_flight is not None and self.commit_time <= self.now:
            self.commit()
        step = self.step
        info = CheckpointInfo(step, self.now, self.r.metrics(step))
        key = (self.in_flight is not None, self.meter.mean)
        context = self.contexts.get(key)
        if context is None:  # built once per cost: this runs for every step
            context = self.contexts[key] = DecisionContext(
                is_saving_in_progress=key[0], save_cost=key[1]
            )
        if not self.r.save_policy.should_save(info, self.previous, context=context):
            return
        self.saved.append(step)
        if self.in_flight is not None:  # one save at a time: the new one waits
            self.block_until(self.commit_time)
            self.commit()
        self.block_until(self.now + self.r.cost_of(step), strictly=True)
        self.meter.record(step, (self.now - info.time).total_seconds())
        self.in_flight = info
        self.commit_time = self.now + self.r.save_duration
        self.previous = (*self.alive, info)
        if self.r.save_duration == timedelta(0):
            self.commit()

    def block_until(self, time: datetime, *, strictly: bool = False) -> None:
        """The training loop waits until `time`; a failure meanwhile kills the run.

        `strictly`: a failure at the very end of a blocking save comes after it.
        """
        failure = self.next_failure
        if failure is not None and (failure < time if strictly else failure <= time):
            self.blocked += failure - self.now
            self.now = failure
            raise _Killed
        self.blocked += time - self.now
        self.now = time

    def commit(self) -> None:
        info = self.in_flight
        assert info is not None
        self.in_flight = None
        if self.r.jumps is not None:
            # A step-only policy never looks at the checkpoints, and retention never
            # deletes the newest, the one a restart resumes from: skip the retention pass.
            self.alive = [info]
            self.previous = (info,)
            return
        self.alive.append(info)
        protected = () if self.resumed is None else (self.resumed,)
        plan = plan_retention(
            self.alive, self.r.keep, PreservationContext(now=self.commit_time), protected=protected
        )
        if plan.delete:
            self.alive = [c for c in self.alive if c.step not in set(plan.delete)]
        self.previous = tuple(self.alive)

    def fail(self) -> bool:
        """Handles the failure at `self.now`; returns whether the resumed step is decided."""
        if self.in_flight is not None and self.commit_time <= self.now:
            self.commit()
        self.in_flight = None
        self.previous = tuple(self.alive)
        self.failures += 1
        resume = self.alive[-1].step if self.alive else None
        self.lost += self.step - (resume or 0)
        self.next_failure = next(self.arrivals, None)
        self.now += self.r.restart
        while self.fails_by(self.now):  # failed again while restarting
            assert self.next_failure is not None
            self.failures += 1
            self.now = self.next_failure + self.r.restart
            self.next_failure = next(self.arrivals, None)
        self.meter = SaveCostMeter()  # a new process has measured nothing yet
        self.resumed = resume
        self.resumed_from.append(resume)
        self.step = 0 if resume is None else resume
        # A fresh start decides step 0 again; a resumed run goes on after its checkpoint.
        return resume is None


def _rng(seed: int, run: int) -> random.Random:
    # A string seed is hashed the same way on every platform and Python version.
    return random.Random(f"tenure-failures/{seed}/{run}")


def simulate_failure_run(
    save_policy: SaveDecisionPolicy,
    preservation_policy: PreservationPolicy,
    *,
    steps: int,
    step_duration: timedelta,
    failures: Failures,
    seed: int = 0,
    blocked_seconds: BlockedSource = 0.0,
    save_duration: timedelta = timedelta(0),
    restart_duration: timedelta = timedelta(0),
    checkpoint_bytes: BytesSource = None,
    metrics: MetricsSource = None,
    start_time: datetime = DEFAULT_START,
) -> FailureRun:
    """One run of `simulate_failures` (its run 0 for this `seed`).

    Examples:
        >>> from tenure.retention import FixedIntervalPolicy, LatestN
        >>> run = simulate_failure_run(
        ...     FixedIntervalPolicy(100), LatestN(1), steps=1001,
        ...     step_duration=timedelta(seconds=1), failures=Failures(steps=[250]),
        ...     blocked_seconds=10, restart_duration=timedelta(seconds=60))
        >>> run.saved, run.resumed_from, run.lost_steps
        ((0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000), (200,), 50)
        >>> run.wall_seconds  # 1,000 steps, 50 again, a 60 s restart and 11 saves of 10 s
        1220.0
    """
    replay = _Replay(
        save_policy,
        preservation_policy,
        steps=steps,
        step_duration=step_duration,
        failures=failures,
        blocked_seconds=blocked_seconds,
        save_duration=save_duration,
        restart_duration=restart_duration,
        checkpoint_bytes=checkpoint_bytes,
        metrics=metrics,
        start_time=start_time,
    )
    return replay.run(_rng(seed, 0))


def simulate_failures(
    save_policy: SaveDecisionPolicy,
    preservation_policy: PreservationPolicy,
    *,
    steps: int,
    step_duration: timedelta,
    failures: Failures,
    runs: int = 100,
    seed: int = 0,
    blocked_seconds: BlockedSource = 0.0,
    save_duration: timedelta = timedelta(0),
    restart_duration: timedelta = timedelta(0),
    checkpoint_bytes: BytesSource = None,
    metrics: MetricsSource = None,
    start_time: datetime = DEFAULT_START,
) -> FailureReport:
    """Replays `runs` seeded runs of `steps` steps under `failures`.

    `blocked_seconds` is the time the training loop waits per save (a number, or a
    function of the checkpoint's bytes from `checkpoint_bytes`); `save_duration` is the
    background write after that, until the save commits. Run `i` of a given `seed` draws
    the same failures whatever the policies, so policies compare on equal terms.

    Examples:
        >>> from tenure.retention import FixedIntervalPolicy, LatestN
        >>> report = simulate_failures(
        ...     FixedIntervalPolicy(900), LatestN(1), steps=100_000,
        ...     step_duration=timedelta(seconds=1), failures=Failures(mtbf=timedelta(hours=6)),
        ...     blocked_seconds=20, restart_duration=timedelta(minutes=2), runs=20)
        >>> round(report.efficiency, 3), report.failures_mean, report.saves_mean
        (0.956, 4.35, 112.0)
    """
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise PolicyArgumentError(f"runs={runs!r} must be a positive number of runs")
    replay = _Replay(
        save_policy,
        preservation_policy,
        steps=steps,
        step_duration=step_duration,
        failures=failures,
        blocked_seconds=blocked_seconds,
        save_duration=save_duration,
        restart_duration=restart_duration,
        checkpoint_bytes=checkpoint_bytes,
        metrics=metrics,
        start_time=start_time,
    )
    return FailureReport(
        runs=tuple(replay.run(_rng(seed, i)) for i in range(runs)),
        ideal_seconds=(replay.last * step_duration).total_seconds(),
    )


@attrs.frozen
class IntervalScan:
    """Expected wall time for each fixed save interval tried, and the best interval:
    `best_steps` from a fit to all of them, `lowest_steps` the lowest simulated point.

    `young_steps` and `daly_steps` are the formulas' intervals in steps, for a save cost
    of `save_cost` seconds.

    Examples:
        >>> def report(wall):
        ...     return FailureReport((FailureRun(wall, 1, 5, 9.0, (0,), (0,)),), 99.0)
        >>> slow, fast = report(130.0), report(120.0)
        >>> scan = IntervalScan(points=((100, slow), (200, fast)), best_steps=200,
        ...                     lowest_steps=200, young_steps=190.0, daly_steps=185.0)
        >>> scan.intervals, scan.report(200).expected_wall_seconds
        ([100, 200], 120.0)
    """

    points: tuple[tuple[int, FailureReport], ...]
    best_steps: int
    lowest_steps: int
    young_steps: float
    daly_steps: float

    @property
    def intervals(self) -> list[int]:
        return [interval for interval, _ in self.points]

    def report(self, interval: int) -> FailureReport:
        return dict(self.points)[interval]

    def to_json(self) -> dict[str, Any]:
        return {
            "best_interval_steps": self.best_steps,
            "lowest_interval_steps": self.lowest_steps,
            "young_interval_steps": self.young_steps,
            "daly_interval_steps": self.daly_steps,
            "intervals": [
                {"interval_steps": i, "expected_wall_seconds": r.expected_wall_seconds}
                for i, r in self.points
            ],
        }


def _grid(low: float, high: float, count: int) -> list[int]:
    """About `count` integers spaced evenly on a log scale from `low` to `high`."""
    ratio = (high / low) ** (1 / max(count - 1, 1))
    return sorted({max(1, round(low * ratio**i)) for i in range(count)})


def _solve3(matrix: list[list[float]], vector: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when singular."""
    rows = [[*row, value] for row, value in zip(matrix, vector, strict=True)]
    for col in range(3):
        pivot = max(range(col, 3), key=lambda r: abs(rows[r][col]))
        if abs(rows[pivot][col]) < 1e-300:
            return None
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(3):
            if r != col:
                factor = rows[r][col] / rows[col][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col], strict=True)]
    return [rows[i][3] / rows[i][i] for i in range(3)]


def fitted_optimum(points: Sequence[tuple[float, float]]) -> float | None:
    """Fits `wall = a + b / k + d * k` to `(interval k, expected wall)` points by least
    squares and returns the `k` that minimises it, `sqrt(b / d)`; None if the fit has no
    minimum (fewer than 3 points, or `b` or `d` not positive).

    The form is the one every model of periodic checkpointing shares to first order: a
    save's cost spread over `k` steps, plus lost work growing with `k`. Fitting it to all
    simulated points averages out the noise of each, where the single lowest point is at
    the mercy of it.

    Examples:
        >>> points = [(k, 1000 + 2000 / k + 5 * k) for k in (5, 10, 20, 40)]
        >>> round(fitted_optimum(points), 6)  # sqrt(2000 / 5)
        20.0
    """
    if len(points) < 3:
        return None
    basis = [(1.0, 1.0 / k, float(k)) for k, _ in points]
    normal = [[sum(f[i] * f[j] for f in basis) for j in range(3)] for i in range(3)]
    target = [
        sum(f[i] * wall for f, (_, wall) in zip(basis, points, strict=True)) for i in range(3)
    ]
    solution = _solve3(normal, target)
    if solution is None or solution[1] <= 0 or solution[2] <= 0:
        return None
    return math.sqrt(solution[1] / solution[2])


def scan_intervals(
    preservation_policy: PreservationPolicy,
    *,
    steps: int,
    step_duration: timedelta,
    failures: Failures,
    blocked_seconds: float,
    runs: int = 100,
    seed: int = 0,
    save_duration: timedelta = timedelta(0),
    restart_duration: timedelta = timedelta(0),
    intervals: Sequence[int] | None = None,
) -> IntervalScan:
    """Simulates `FixedIntervalPolicy(k)` for each interval `k` and finds the one with the
    least expected wall time; every interval sees the same failures (run `i` of `seed`).

    Without `intervals`, it tries 15 intervals from a third to three times Young's. The
    best interval is the minimum of `fitted_optimum` over them (the lowest simulated
    point where the fit has no minimum); `lowest_steps` is the lowest point itself.

    Examples:
        >>> from tenure.retention import LatestN
        >>> scan = scan_intervals(
        ...     LatestN(1), steps=20_000, step_duration=timedelta(seconds=1),
        ...     failures=Failures(mtbf=timedelta(minutes=30)), blocked_seconds=5, runs=10)
        >>> round(scan.young_steps), 100 < scan.best_steps < 180
        (134, True)
    """
    if failures.mtbf is None and intervals is None:
        raise PolicyArgumentError("scanning intervals needs failures with an mtbf, or intervals")
    dt = step_duration.total_seconds()
    mtbf = failures.mtbf.total_seconds() if failures.mtbf is not None else math.nan
    young = young_interval(blocked_seconds, mtbf) / dt if failures.mtbf else math.nan
    daly = daly_interval(blocked_seconds, mtbf) / dt if failures.mtbf else math.nan
    if intervals is None:
        intervals = _grid(max(young, 1.0) / 3, max(young, 1.0) * 3, 15)
    points = tuple(
        (
            interval,
            simulate_failures(
                FixedIntervalPolicy(interval),
                preservation_policy,
                steps=steps,
                step_duration=step_duration,
                failures=failures,
                runs=runs,
                seed=seed,
                blocked_seconds=blocked_seconds,
                save_duration=save_duration,
                restart_duration=restart_duration,
            ),
        )
        for interval in sorted(set(intervals))
    )
    lowest = min(points, key=lambda p: p[1].expected_wall_seconds)[0]
    fitted = fitted_optimum([(k, r.expected_wall_seconds) for k, r in points])
    return IntervalScan(
        points=points,
        best_steps=lowest if fitted is None else max(1, round(fitted)),
        lowest_steps=lowest,
        young_steps=young,
        daly_steps=daly,
    )
