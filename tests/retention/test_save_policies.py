"""Save-decision policies: Orbax's meaning, tenure's additions, operators, bad arguments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tenure.retention import (
    AllSavePolicy,
    AnySavePolicy,
    CheckpointInfo,
    ContinuousCheckpointingPolicy,
    DecisionContext,
    FixedIntervalPolicy,
    InitialSavePolicy,
    LatestN,
    MinimumStepGapPolicy,
    NewBestPolicy,
    NotSavePolicy,
    PolicyArgumentError,
    PreemptionCheckpointingPolicy,
    SaveDecisionPolicy,
    SpecificStepsPolicy,
    StepRangePolicy,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
IDLE = DecisionContext()


def info(step: int, seconds: float = 0, **metrics: float) -> CheckpointInfo:
    return CheckpointInfo(step, T0 + timedelta(seconds=seconds), metrics or None)


def saves(policy: SaveDecisionPolicy, step: CheckpointInfo, previous=(), context=IDLE) -> bool:  # type: ignore[no-untyped-def]
    return policy.should_save(step, list(previous), context=context)


def test_fixed_interval_saves_multiples() -> None:
    policy = FixedIntervalPolicy(100)
    assert [s for s in range(0, 401, 50) if saves(policy, info(s))] == [0, 100, 200, 300, 400]


def test_specific_steps_saves_exactly_those() -> None:
    policy = SpecificStepsPolicy([3, 7])
    assert [s for s in range(10) if saves(policy, info(s))] == [3, 7]


def test_continuous_never_saves_while_a_save_is_in_flight() -> None:
    policy = ContinuousCheckpointingPolicy()
    assert saves(policy, info(1), [info(0)])
    assert not saves(policy, info(1), [info(0)], DecisionContext(is_saving_in_progress=True))


def test_continuous_respects_the_minimum_interval_from_the_last_checkpoint() -> None:
    policy = ContinuousCheckpointingPolicy(minimum_interval_secs=60)
    assert saves(policy, info(5, 10))  # nothing saved yet
    assert not saves(policy, info(5, 59), [info(0, 0)])
    assert saves(policy, info(5, 60), [info(0, 0)])


def test_preemption_and_initial() -> None:
    assert saves(
        PreemptionCheckpointingPolicy(), info(3), context=DecisionContext(reached_preemption=True)
    )
    assert not saves(PreemptionCheckpointingPolicy(), info(3))
    assert saves(InitialSavePolicy(), info(3))
    assert not saves(InitialSavePolicy(), info(3), [info(0)])


def test_step_range_builds_piecewise_schedules() -> None:
    """Every 1000 until 10k, then every 5000."""
    schedule = (FixedIntervalPolicy(1000) & StepRangePolicy(stop=10_000)) | (
        FixedIntervalPolicy(5000) & StepRangePolicy(start=10_000)
    )
    saved = [s for s in range(0, 30_001, 500) if saves(schedule, info(s))]
    assert saved == [*range(0, 10_000, 1000), 10_000, 15_000, 20_000, 25_000, 30_000]


def test_minimum_step_gap_counts_from_the_last_checkpoint() -> None:
    policy = MinimumStepGapPolicy(10)
    assert saves(policy, info(3))
    assert not saves(policy, info(12), [info(3)])
    assert saves(policy, info(13), [info(3)])


def test_new_best_saves_only_on_improvement_and_nan_never_wins() -> None:
    policy = NewBestPolicy("loss", mode="min")
    history = [info(0, loss=1.0), info(1, loss=float("nan"))]
    assert saves(policy, info(2, loss=0.5), history)
    assert not saves(policy, info(2, loss=1.0), history)  # a tie is no improvement
    assert not saves(policy, info(2, loss=float("nan")), history)
    assert not saves(policy, info(2), history)  # no metric, no save
    assert saves(policy, info(2, loss=3.0), [info(1, loss=float("nan"))])
    assert saves(NewBestPolicy("loss", mode="max"), info(2, loss=3.0), history)


def test_operators_build_flat_combinators() -> None:
    a, b, c = FixedIntervalPolicy(2), FixedIntervalPolicy(3), FixedIntervalPolicy(5)
    assert (a | b) | c == AnySavePolicy([a, b, c]) == a | (b | c)
    assert (a & b) & c == AllSavePolicy([a, b, c])
    assert ~a == NotSavePolicy(a)
    assert ~~a == a
    assert [s for s in range(1, 11) if saves(a | b, info(s))] == [2, 3, 4, 6, 8, 9, 10]
    assert [s for s in range(1, 13) if saves(a & b, info(s))] == [6, 12]
    assert [s for s in range(1, 6) if saves(~a, info(s))] == [1, 3, 5]
    assert not saves(AnySavePolicy([]), info(0))
    assert saves(AllSavePolicy([]), info(0))


def test_save_and_preservation_policies_do_not_mix() -> None:
    with pytest.raises(TypeError, match="not a save-decision policy"):
        FixedIntervalPolicy(2) | LatestN(3)  # type: ignore[operator]


@pytest.mark.parametrize(
    "build",
    [
        lambda: FixedIntervalPolicy(0),
        lambda: FixedIntervalPolicy(-5),
        lambda: ContinuousCheckpointingPolicy(minimum_interval_secs=0),
        lambda: MinimumStepGapPolicy(0),
        lambda: StepRangePolicy(start=10, stop=10),
        lambda: NewBestPolicy("loss", mode="lowest"),  # type: ignore[arg-type]
        lambda: NewBestPolicy("", mode="min"),
        lambda: SpecificStepsPolicy(["a"]),
    ],
)
def test_bad_arguments_fail_at_construction(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyArgumentError):
        build()
