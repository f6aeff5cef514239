"""The simulator runs the same decisions as a plain replay of the planner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenure.retention import (
    BestN,
    CheckpointInfo,
    ContinuousCheckpointingPolicy,
    DecisionContext,
    EveryNSteps,
    FixedIntervalPolicy,
    InitialSavePolicy,
    LatestN,
    MinimumStepGapPolicy,
    NaiveDatetimeError,
    NewBestPolicy,
    PreemptionCheckpointingPolicy,
    PreservationContext,
    SpecificStepsPolicy,
    plan_retention,
    simulate,
)

from .strategies import policies

START = datetime(2026, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)

save_policies = st.one_of(
    st.builds(FixedIntervalPolicy, st.integers(1, 20)),
    st.builds(SpecificStepsPolicy, st.sets(st.integers(0, 200), max_size=30)),
    st.builds(MinimumStepGapPolicy, st.integers(1, 20)),
    st.builds(ContinuousCheckpointingPolicy, st.one_of(st.none(), st.integers(1, 30))),
    st.just(NewBestPolicy("loss", mode="min")),
).flatmap(lambda p: st.one_of(st.just(p), st.just(p | InitialSavePolicy())))


def loss_curve(step: int) -> dict[str, float]:
    return {"loss": 1.0 / (1 + step) + ((step * 7919) % 13) / 100}


def replay(save: Any, keep: Any, steps: int) -> tuple[list[int], list[tuple[str, int, int]]]:
    """The plainest possible run: decide, save, plan, delete; one step at a time."""
    alive: list[CheckpointInfo] = []
    events: list[tuple[str, int, int]] = []
    for step in range(steps):
        info = CheckpointInfo(step, START + step * SECOND, loss_curve(step))
        if save.should_save(info, list(alive), context=DecisionContext()):
            alive.append(info)
            events.append(("save", step, step))
            plan = plan_retention(alive, keep, PreservationContext(now=info.time))
            events += [("delete", s, step) for s in plan.delete]
            alive = [c for c in alive if c.step in plan.keep]
    return [c.step for c in alive], events


@given(save_policies, policies, st.integers(1, 200))
def test_simulate_agrees_with_a_step_by_step_replay_of_the_planner(
    save: Any, keep: Any, steps: int
) -> None:
    """Law: with synchronous saves, simulate() saves and deletes exactly what a plain
    replay of should_save and plan_retention does."""
    result = simulate(
        save, keep, steps=steps, start_time=START, step_duration=SECOND, metrics=loss_curve
    )
    alive, events = replay(save, keep, steps)
    assert [d.step for d in result.kept] == alive
    assert [(e.kind, e.step, e.at_step) for e in result.events] == events


def test_async_saves_in_flight_hold_back_continuous_checkpointing() -> None:
    result = simulate(
        ContinuousCheckpointingPolicy(),
        LatestN(100),
        steps=20,
        start_time=START,
        step_duration=SECOND,
        save_duration=timedelta(seconds=3),
    )
    # A save takes 3 s; the next one starts at the first step after it committed.
    assert [e.step for e in result.events if e.kind == "save"] == [0, 3, 6, 9, 12, 15, 18]


def test_preemption_saves_and_protects_the_step_the_run_resumed_from() -> None:
    result = simulate(
        FixedIntervalPolicy(10) | PreemptionCheckpointingPolicy(),
        LatestN(2),
        steps=100,
        start_time=START,
        step_duration=SECOND,
        preemption_steps=[33],
    )
    kept = {d.step: d.reasons for d in result.kept}
    assert sorted(kept) == [33, 80, 90]
    assert any("protected" in r for r in kept[33])


def test_disk_figures_count_every_checkpoint_on_disk_at_its_peak() -> None:
    result = simulate(
        FixedIntervalPolicy(10),
        LatestN(3),
        steps=101,
        start_time=START,
        step_duration=SECOND,
        checkpoint_bytes=lambda step: 1000 + step,
    )
    assert result.saves == 11
    assert result.peak_count == 4  # three kept plus the new one, before retention runs
    assert result.peak_bytes == 1070 + 1080 + 1090 + 1100
    assert result.total_bytes_written == sum(1000 + s for s in range(0, 101, 10))


def test_metrics_may_be_a_sequence_and_reasons_name_the_rules() -> None:
    losses = [{"loss": float(v)} for v in [5, 4, 9, 1, 7, 8, 6, 3, 2, 10]]
    result = simulate(
        FixedIntervalPolicy(1),
        BestN(metric="loss", mode="min", n=2) | EveryNSteps(5),
        steps=10,
        start_time=START,
        step_duration=SECOND,
        metrics=losses,
    )
    kept = {d.step: d.reasons for d in result.kept}
    assert sorted(kept) == [0, 3, 5, 8, 9]
    assert kept[3] == ("BestN(metric='loss', mode='min', n=2): rank 1",)
    assert kept[9] == ("newest checkpoint (never deleted)",)
    deleted = {e.step: e.reasons for e in result.events if e.kind == "delete"}
    # Step 7 went when step 8 arrived: until then it ranked 2nd and was the newest.
    assert deleted[7] == (
        "BestN(metric='loss', mode='min', n=2): rank 2",
        "newest checkpoint (never deleted)",
    )


def test_table_and_json_report_the_run() -> None:
    result = simulate(
        FixedIntervalPolicy(100),
        LatestN(2) | EveryNSteps(500),
        steps=1001,
        start_time=START,
        step_duration=timedelta(seconds=2),
        checkpoint_bytes=2 * 2**30,
    )
    table = result.table()
    assert "Simulated 1,001 steps" in table
    assert "11 saves, 7 deletions" in table
    # At step 1000: 0 and 500 (every 500), 800 and 900 (latest 2), and the new one.
    assert "Peak: 5 checkpoints, 10.0 GiB on disk; 22.0 GiB written in all." in table
    assert "LatestN(n=2)" in table
    data = result.to_json()
    assert [k["step"] for k in data["kept"]] == [0, 500, 900, 1000]
    assert data["deleted_by_rule"] == {"LatestN(n=2)": 7}
    assert data["peak_bytes"] == 10 * 2**30


def test_naive_start_time_is_rejected() -> None:
    with pytest.raises(NaiveDatetimeError):
        simulate(
            FixedIntervalPolicy(1),
            LatestN(1),
            steps=3,
            start_time=datetime(2026, 1, 1),
            step_duration=SECOND,
        )
