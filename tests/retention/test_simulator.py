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
    PolicyArgumentError,
    PreemptionCheckpointingPolicy,
    PreservationContext,
    PreserveAll,
    SpecificStepsPolicy,
    WithinBytes,
    plan_retention,
    simulate,
)

from .strategies import apply_plan, policies

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


class _Recorder:
    """A plain (not built-in) preservation policy that keeps everything and records the
    item sizes the planner showed it."""

    def __init__(self) -> None:
        self.seen: dict[int, Any] = {}

    def should_preserve(self, checkpoints: Any, *, context: PreservationContext) -> list[bool]:
        self.seen.update({c.step: c.item_bytes for c in checkpoints})
        return [True] * len(checkpoints)


def test_item_bytes_reach_the_planner_as_checkpoint_info() -> None:
    recorder = _Recorder()
    simulate(
        FixedIntervalPolicy(10),
        recorder,
        steps=31,
        start_time=START,
        step_duration=SECOND,
        item_bytes=lambda step: {"params": step, "opt_state": 2 * step},
    )
    assert recorder.seen == {s: {"params": s, "opt_state": 2 * s} for s in (0, 10, 20, 30)}


def test_quota_is_exceeded_at_the_first_commit_over_it() -> None:
    # A step k holds 10 + k bytes; LatestN(2) keeps two, so the commit of step k >= 20
    # finds k-20, k-10 and k on disk: 30 + 3k - 30 = 3k bytes, over 200 first at k = 70.
    def sizes(step: int) -> dict[str, int]:
        return {"params": 10, "opt_state": step}

    run = {
        "steps": 101,
        "start_time": START,
        "step_duration": SECOND,
        "item_bytes": sizes,
    }
    result = simulate(FixedIntervalPolicy(10), LatestN(2), quota=200, **run)
    assert result.quota_exceeded_at == 70
    assert result.quota == 200
    # Text is read as WithinBytes reads it.
    assert simulate(FixedIntervalPolicy(10), LatestN(2), quota="1KiB", **run).quota == 1024
    assert result.peak_bytes == 3 * 100
    assert result.peak_item_bytes == {"params": 30, "opt_state": 80 + 90 + 100}
    assert result.final_item_bytes == {"params": 20, "opt_state": 90 + 100}
    # Just at the quota is not over it: 3k = 210 at k = 70 is the first over 209.
    assert simulate(FixedIntervalPolicy(10), LatestN(2), quota=209, **run).quota_exceeded_at == 70
    assert simulate(FixedIntervalPolicy(10), LatestN(2), quota=210, **run).quota_exceeded_at == 80
    assert simulate(FixedIntervalPolicy(10), LatestN(2), quota=300, **run).quota_exceeded_at is None


def test_quota_works_with_whole_checkpoint_sizes_too() -> None:
    result = simulate(
        FixedIntervalPolicy(10),
        LatestN(3),
        steps=101,
        start_time=START,
        step_duration=SECOND,
        checkpoint_bytes=100,
        quota=350,
    )
    assert result.quota_exceeded_at == 30  # four on disk before the pass: 0, 10, 20, 30
    assert result.peak_item_bytes is None
    assert result.final_item_bytes is None


@given(
    save_policies,
    policies,
    st.integers(1, 150),
    st.dictionaries(st.sampled_from(["params", "opt_state", "ema"]), st.integers(0, 1000)),
    st.integers(0, 5000),
)
def test_item_sizes_without_parts_change_no_decision(
    save: Any, keep: Any, steps: int, item_bytes: dict[str, int], quota: int
) -> None:
    """Law: under a policy that keeps steps whole, simulating with item sizes saves and
    deletes exactly what simulating with their sum as the checkpoint size does, and the
    quota is exceeded iff the peak is over it."""
    run: dict[str, Any] = {
        "steps": steps,
        "start_time": START,
        "step_duration": SECOND,
        "metrics": loss_curve,
        "quota": quota,
    }
    by_item = simulate(save, keep, item_bytes=item_bytes, **run)
    whole = simulate(save, keep, checkpoint_bytes=sum(item_bytes.values()), **run)
    assert by_item.events == whole.events
    assert by_item.kept == whole.kept
    assert by_item.peak_bytes == whole.peak_bytes
    assert by_item.quota_exceeded_at == whole.quota_exceeded_at
    assert (by_item.quota_exceeded_at is None) == ((by_item.peak_bytes or 0) <= quota)
    saved = item_bytes if by_item.saves else {}  # an item counts once a step holds it
    assert by_item.final_item_bytes == {
        name: nbytes * len(by_item.kept) for name, nbytes in saved.items()
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"checkpoint_bytes": 10, "item_bytes": {"params": 10}}, "not both"),
        ({"quota": 100}, "quota needs the checkpoints' sizes"),
        ({"checkpoint_bytes": 10, "quota": -1}, "-1 bytes is negative"),
        ({"checkpoint_bytes": 10, "quota": "lots"}, "'lots' is not a size"),
        ({"item_bytes": {"params": -1}}, "'params' has -1 bytes"),
        ({"item_bytes": lambda step: {"": 1}}, "item names must be non-empty"),
    ],
)
def test_bad_sizes_are_refused_with_a_message(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyArgumentError, match=message):
        simulate(
            FixedIntervalPolicy(1),
            LatestN(1),
            steps=3,
            start_time=START,
            step_duration=SECOND,
            **arguments,
        )


SIZES = {"params": 2 * 2**30, "opt_state": 4 * 2**30}
item_names = st.sampled_from(["params", "opt_state", "ema"])
part_policies = st.one_of(
    st.builds(
        lambda a, b, names: a | b.only(*names), policies, policies, st.sets(item_names, min_size=1)
    ),
    st.builds(lambda a, names: a.only(*names), policies, st.sets(item_names, min_size=1)),
    st.builds(
        lambda a, b, names: a & ~b.only(*names), policies, policies, st.sets(item_names, min_size=1)
    ),
)


def test_the_issue_example_keeps_the_params_of_every_tenth_and_the_newest_three_whole() -> None:
    result = simulate(
        FixedIntervalPolicy(1),
        LatestN(3) | EveryNSteps(10).only("params"),
        steps=range(1, 101),
        start_time=START,
        step_duration=SECOND,
        item_bytes=SIZES,
    )
    both = frozenset(SIZES)
    assert result.kept_items == {
        **{step: frozenset({"params"}) for step in range(10, 100, 10)},
        98: both,
        99: both,
        100: both,
    }
    thinned = [e for e in result.events if e.kind == "thin"]
    # Each tenth step loses its optimizer state when three newer steps have been saved.
    assert [(e.step, e.at_step, e.items) for e in thinned] == [
        (step, step + 3, frozenset({"opt_state"})) for step in range(10, 100, 10)
    ]
    assert thinned[0].reasons == ("EveryNSteps(interval_steps=10).only('params')",)
    kept = {d.step: d for d in result.kept}
    assert kept[50].items == frozenset({"params"})
    assert kept[100].items is None
    assert result.final_item_bytes == {
        "params": 12 * SIZES["params"],
        "opt_state": 3 * SIZES["opt_state"],
    }
    # At a commit: 9 or fewer thinned tenths, three whole and the new one.
    assert result.peak_item_bytes == {
        "params": 13 * SIZES["params"],
        "opt_state": 4 * SIZES["opt_state"],
    }
    assert result.peak_bytes == 9 * SIZES["params"] + 4 * (SIZES["params"] + SIZES["opt_state"])


def test_quota_counts_thinned_steps_by_the_items_they_still_hold() -> None:
    # p costs 1 byte, o 10. At the commit of step k the newest three are whole (33 bytes)
    # and the multiples of 5 up to k - 3 hold p alone: at k = 12 those are 0 and 5 (35
    # bytes), at k = 13 also 10 (36 bytes), the first over 35.
    run: dict[str, Any] = {
        "steps": 40,
        "start_time": START,
        "step_duration": SECOND,
        "item_bytes": {"p": 1, "o": 10},
        "quota": 35,
    }
    thinned = simulate(FixedIntervalPolicy(1), LatestN(2) | EveryNSteps(5).only("p"), **run)
    assert thinned.quota_exceeded_at == 13
    # Kept whole, the multiples of 5 cost 11 bytes each: 0, 1, 2 and 3 make 44 at step 3.
    whole = simulate(FixedIntervalPolicy(1), LatestN(2) | EveryNSteps(5), **run)
    assert whole.quota_exceeded_at == 3


def replay_with_items(
    save: Any, keep: Any, steps: int, sizes: dict[str, int]
) -> list[tuple[int, frozenset[str]]]:
    """The plainest run with items: save, plan, delete and thin; one step at a time."""
    alive: list[CheckpointInfo] = []
    for step in range(steps):
        info = CheckpointInfo(step, START + step * SECOND, loss_curve(step), dict(sizes))
        if save.should_save(info, list(alive), context=DecisionContext()):
            alive.append(info)
            alive = apply_plan(
                alive, plan_retention(alive, keep, PreservationContext(now=info.time))
            )
    return [(c.step, frozenset(c.item_bytes or ())) for c in alive]


@given(
    save_policies,
    part_policies,
    st.integers(1, 120),
    st.dictionaries(item_names, st.integers(0, 1000), min_size=1),
)
def test_simulate_with_items_agrees_with_a_replay_that_deletes_and_thins(
    save: Any, keep: Any, steps: int, sizes: dict[str, int]
) -> None:
    """Law: with item sizes, simulate() leaves exactly the steps and items that a plain
    replay of plan_retention, deleting and thinning as the plan says, leaves; and its
    final bytes per item are those items' bytes."""
    result = simulate(
        save,
        keep,
        steps=steps,
        start_time=START,
        step_duration=SECOND,
        metrics=loss_curve,
        item_bytes=sizes,
    )
    alive = replay_with_items(save, keep, steps, sizes)
    assert sorted(result.kept_items.items()) == alive
    final = dict.fromkeys(sizes, 0) if result.saves else {}
    for _, items in alive:
        for name in items:
            final[name] += sizes[name]
    assert result.final_item_bytes == final


@given(
    save_policies,
    part_policies,
    st.integers(1, 120),
    st.dictionaries(item_names, st.integers(0, 1000), min_size=1),
    st.integers(0, 5000),
)
def test_within_bytes_holds_the_disk_to_its_budget_plus_the_new_save(
    save: Any, keep: Any, steps: int, sizes: dict[str, int], budget: int
) -> None:
    """Law: under WithinBytes(policy, budget), the disk never holds more than the budget
    (or the newest step alone, if larger) plus the save that lands before the next pass,
    so a quota of that much is never exceeded."""
    step_bytes = sum(sizes.values())
    quota = max(budget, step_bytes) + step_bytes
    result = simulate(
        save,
        WithinBytes(keep, budget),
        steps=steps,
        start_time=START,
        step_duration=SECOND,
        metrics=loss_curve,
        item_bytes=sizes,
        quota=quota,
    )
    assert (result.peak_bytes or 0) <= quota
    assert result.quota_exceeded_at is None


def test_a_step_a_budget_gives_up_is_let_go_by_the_budget() -> None:
    # Each step holds 10 bytes; a 35-byte budget holds three, so at every pass from the
    # fourth save on the oldest is given up.
    result = simulate(
        FixedIntervalPolicy(1),
        WithinBytes(PreserveAll(), 35),
        steps=6,
        start_time=START,
        step_duration=SECOND,
        item_bytes={"params": 10},
    )
    assert [d.step for d in result.kept] == [3, 4, 5]
    given_up = ("WithinBytes(max_bytes=35): given up for the budget, oldest first",)
    assert [(life.step, life.let_go_by) for life in result.lifetimes if not life.survived] == [
        (0, given_up),
        (1, given_up),
        (2, given_up),
    ]
    assert "WithinBytes(max_bytes=35): given up for the budget, oldest first" in result.table()
