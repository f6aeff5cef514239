"""How often to checkpoint: the formulas, the failure replay, and YoungDalyPolicy."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenure.retention import (
    CheckpointInfo,
    DecisionContext,
    Failures,
    FixedIntervalPolicy,
    LatestN,
    PolicyArgumentError,
    PreemptionCheckpointingPolicy,
    SpecificStepsPolicy,
    StepRangePolicy,
    YoungDalyPolicy,
    daly_interval,
    parse_policy,
    scan_intervals,
    simulate_failure_run,
    simulate_failures,
    young_interval,
)
from tenure.retention.failures import fitted_optimum

SECOND = timedelta(seconds=1)
SOAK = os.environ.get("TENURE_HYPOTHESIS_PROFILE", "ci") == "soak"


def test_young_is_the_square_root_of_twice_cost_times_mtbf() -> None:
    assert young_interval(20, 21600) == pytest.approx(929.5, abs=0.05)


@pytest.mark.parametrize(
    ("mtbf_minutes", "published_minutes"),
    # Daly (2006), figures 3 to 5: 5-minute dumps, MTBF of 24 h, 6 h and 15 min.
    [(24 * 60, 117), (6 * 60, 57), (15, 9.1)],
)
def test_daly_matches_his_published_examples(mtbf_minutes: float, published_minutes: float) -> None:
    digits = 1 if published_minutes < 10 else 0
    assert round(daly_interval(5, mtbf_minutes), digits) == published_minutes


def test_daly_limits_are_young_for_cheap_saves_and_the_mtbf_for_dear_ones() -> None:
    assert daly_interval(1e-6, 1e6) / young_interval(1e-6, 1e6) == pytest.approx(1, abs=1e-5)
    assert daly_interval(50, 20) == 20  # C >= 2M: save once per MTBF
    assert daly_interval(0, 100) == 0


def test_formulas_refuse_negative_costs_and_mtbfs() -> None:
    with pytest.raises(PolicyArgumentError, match="save_cost"):
        young_interval(-1, 100)
    with pytest.raises(PolicyArgumentError, match="mtbf"):
        daly_interval(1, 0)


class Opaque:
    """Hides a policy's type, so the replay asks it at every step instead of jumping."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def should_save(
        self, step: CheckpointInfo, previous: Sequence[CheckpointInfo], *, context: DecisionContext
    ) -> bool:
        return bool(self.policy.should_save(step, previous, context=context))


step_only_policies = st.one_of(
    st.builds(FixedIntervalPolicy, st.integers(1, 60)),
    st.builds(SpecificStepsPolicy, st.sets(st.integers(0, 400), max_size=20)),
).flatmap(
    lambda p: st.sampled_from(
        [p, p | PreemptionCheckpointingPolicy(), p & StepRangePolicy(start=50), ~~p]
    )
)
failure_models = st.builds(
    Failures,
    mtbf=st.one_of(st.none(), st.integers(300, 1000).map(lambda s: timedelta(seconds=s))),
    shape=st.sampled_from([1.0, 0.7, 2.0]),
    times=st.lists(st.integers(0, 600).map(lambda s: timedelta(seconds=s)), max_size=4),
    steps=st.lists(st.integers(0, 399), max_size=3),
)


def outcome(*args: Any, **kwargs: Any) -> object:
    """The run, or the error that refused it."""
    try:
        return simulate_failure_run(*args, **kwargs)
    except PolicyArgumentError as error:
        return str(error)


@given(
    step_only_policies,
    failure_models,
    st.sampled_from([0.0, 3.0, 7.5]),
    st.sampled_from([timedelta(0), timedelta(seconds=4), timedelta(seconds=30)]),
    st.sampled_from([timedelta(0), timedelta(seconds=10)]),
    st.integers(0, 3),
)
def test_jumping_between_saving_steps_replays_exactly_what_asking_every_step_does(
    save: Any,
    failures: Failures,
    blocked: float,
    save_duration: timedelta,
    restart: timedelta,
    seed: int,
) -> None:
    """Law: for policies of the step alone, the replay that jumps from saving step to
    saving step gives the same run as the one that asks the policy at every step."""
    runs = [
        outcome(
            policy,
            LatestN(2),
            steps=400,
            step_duration=SECOND,
            failures=failures,
            seed=seed,
            blocked_seconds=blocked,
            save_duration=save_duration,
            restart_duration=restart,
        )
        for policy in (save, Opaque(save))
    ]
    assert runs[0] == runs[1]


def test_a_failure_loses_the_save_in_flight_and_the_steps_since_the_last_commit() -> None:
    run = simulate_failure_run(
        FixedIntervalPolicy(100),
        LatestN(1),
        steps=301,
        step_duration=SECOND,
        failures=Failures(times=[timedelta(seconds=230)]),
        blocked_seconds=10,
        save_duration=timedelta(seconds=50),  # step 200's save commits at 270 s
        restart_duration=timedelta(seconds=60),
    )
    # Step 200 was reached at 220 s (two saves of 10 s before it); the failure at 230 s
    # catches its save in flight, so the run resumes from step 100 and redoes 100 steps.
    assert run.resumed_from == (100,)
    assert run.saved == (0, 100, 200, 200, 300)
    assert run.lost_steps == 200 + 0 - 100
    assert run.wall_seconds == 230 + 60 + 200 + 10 * 2


def test_failures_at_steps_fire_the_first_time_the_run_reaches_them() -> None:
    run = simulate_failure_run(
        FixedIntervalPolicy(10),
        LatestN(1),
        steps=50,
        step_duration=SECOND,
        failures=Failures(steps=[15, 35]),
    )
    assert run.failures == 2
    assert run.resumed_from == (10, 30)
    assert run.lost_steps == 10


def test_without_a_checkpoint_a_failure_restarts_from_scratch() -> None:
    run = simulate_failure_run(
        FixedIntervalPolicy(1000),
        LatestN(1),
        steps=50,
        step_duration=SECOND,
        failures=Failures(times=[timedelta(seconds=5)]),
        blocked_seconds=10,  # step 0's save is still blocking at 5 s
    )
    assert run.resumed_from == (None,)
    assert run.saved == (0, 0)
    assert run.wall_seconds == 5 + 10 + 49


def test_blocked_seconds_may_follow_the_checkpoint_size() -> None:
    report = simulate_failures(
        FixedIntervalPolicy(10),
        LatestN(1),
        steps=101,
        step_duration=SECOND,
        failures=Failures(),
        checkpoint_bytes=lambda step: 1000 * step,
        blocked_seconds=lambda nbytes: (nbytes or 0) / 10_000,
        runs=2,
    )
    assert report.blocked_seconds_mean == sum(s / 10 for s in range(0, 101, 10))
    assert report.efficiency == 100 / (100 + report.blocked_seconds_mean)


def test_weibull_failures_keep_the_mean_time_between_them() -> None:
    failures = Failures(mtbf=timedelta(hours=1), shape=0.7)
    arrivals = failures.arrivals(random.Random(3))
    last = timedelta(0)
    for _ in range(20_000):
        last = next(arrivals)
    assert last.total_seconds() / 20_000 == pytest.approx(3600, rel=0.05)


def test_a_run_that_cannot_progress_is_refused_with_advice() -> None:
    with pytest.raises(PolicyArgumentError, match="save more often"):
        simulate_failure_run(
            FixedIntervalPolicy(10_000),
            LatestN(1),
            steps=10_001,
            step_duration=SECOND,
            failures=Failures(mtbf=timedelta(seconds=100)),
        )


def test_young_daly_policy_has_a_text_form_and_composes() -> None:
    policy = YoungDalyPolicy(mtbf=timedelta(hours=6), formula="young")
    combined = policy | PreemptionCheckpointingPolicy()
    assert parse_policy(repr(combined)) == combined
    assert repr(policy) == "YoungDalyPolicy(mtbf=timedelta(seconds=21600), formula='young')"
    with pytest.raises(PolicyArgumentError, match="'daly' or 'young'"):
        YoungDalyPolicy(mtbf=timedelta(hours=1), formula="guess")


def test_young_daly_policy_follows_the_cost_as_it_changes() -> None:
    run = simulate_failure_run(
        YoungDalyPolicy(mtbf=timedelta(hours=6), formula="young"),
        LatestN(1),
        steps=20_000,
        step_duration=SECOND,
        failures=Failures(),
        # Saves get dearer as the checkpoint grows: 5 s, then 80 s from step 8,000.
        checkpoint_bytes=lambda step: 1 if step < 8000 else 16,
        blocked_seconds=lambda nbytes: 5.0 * (nbytes or 1),
    )
    gaps = [b - a for a, b in zip(run.saved, run.saved[1:], strict=False)]
    assert gaps[1] == math.ceil(young_interval(5, 21600))  # 465
    # The mean over the last five saves climbs to 80 s: the interval to sqrt(2*80*M).
    assert gaps[-1] == math.ceil(young_interval(80, 21600))  # 1859


@settings(max_examples=12 if SOAK else 2)
@given(
    save_cost=st.floats(2, 10),
    mtbf=st.floats(1500, 3000),
    seed=st.integers(0, 1000),
)
def test_the_simulated_optimum_is_within_15_percent_of_young_where_his_assumptions_hold(
    save_cost: float, mtbf: float, seed: int
) -> None:
    """Law: with saves far cheaper than the MTBF (C/M <= 1/150) and about 40 failures per
    run, the interval that minimises the simulated wall time is within 15% of Young's."""
    scan = scan_intervals(
        LatestN(1),
        steps=round(40 * mtbf),
        step_duration=SECOND,
        failures=Failures(mtbf=timedelta(seconds=mtbf)),
        blocked_seconds=save_cost,
        runs=12,
        seed=seed,
    )
    assert abs(scan.best_steps / scan.young_steps - 1) <= 0.15


def test_the_simulated_optimum_matches_dalys_example_of_a_6_hour_mtbf() -> None:
    # Daly's figure 4: M = 6 h, 5-minute dumps, 10-minute restarts, 500 h of work; his
    # model predicts 57 minutes between dumps. One step is one minute here.
    minute = timedelta(minutes=1)
    scan = scan_intervals(
        LatestN(1),
        steps=500 * 60,
        step_duration=minute,
        failures=Failures(mtbf=timedelta(hours=6)),
        blocked_seconds=300,
        restart_duration=timedelta(minutes=10),
        runs=30,
    )
    assert round(scan.daly_steps) == 57
    assert abs(scan.best_steps / 57 - 1) <= 0.15


def test_the_fit_finds_the_minimum_of_its_form_and_declines_without_one() -> None:
    points = [(k, 10 + 400 / k + k) for k in (5, 10, 20, 40, 80)]
    assert fitted_optimum(points) == pytest.approx(20)
    assert fitted_optimum(points[:2]) is None
    assert fitted_optimum([(k, 10.0 - k) for k in (1, 2, 3, 4)]) is None
