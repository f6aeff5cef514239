"""Preservation policies: Orbax's documented behaviour, restic's calendar rules, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tenure.retention import (
    BestN,
    CheckpointInfo,
    CustomSteps,
    Daily,
    EveryNSeconds,
    EveryNSteps,
    EveryNStepsClosest,
    Hourly,
    LatestDuration,
    LatestN,
    MissingNowError,
    Monthly,
    NaiveDatetimeError,
    PerBucket,
    PerStepBucket,
    PolicyArgumentError,
    PreservationContext,
    Weekly,
    explain,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = PreservationContext(now=T0 + timedelta(days=100))


def infos(*steps: int, **metrics_by_step: Any) -> list[CheckpointInfo]:
    return [CheckpointInfo(s, T0 + timedelta(hours=s), metrics_by_step.get(f"s{s}")) for s in steps]


def kept(policy: Any, checkpoints: list[CheckpointInfo], context=NOW) -> list[int]:  # type: ignore[no-untyped-def]
    flags = policy.should_preserve(checkpoints, context=context)
    return [c.step for c, f in zip(checkpoints, flags, strict=True) if f]


@pytest.mark.parametrize(
    ("n", "expected"), [(None, [1, 2, 3]), (0, []), (2, [2, 3]), (5, [1, 2, 3])]
)
def test_latest_n_edge_cases_match_orbax(n: int | None, expected: list[int]) -> None:
    assert kept(LatestN(n), infos(1, 2, 3)) == expected


def test_every_n_seconds_is_greedy_from_the_oldest() -> None:
    # Steps are hours after T0: 0h, 1h, 2h, 4h, 5h, 7h with a 2-hour interval.
    assert kept(EveryNSeconds(7200), infos(0, 1, 2, 4, 5, 7)) == [0, 2, 4, 7]


def test_every_n_steps_exact_and_greedy_and_capped() -> None:
    checkpoints = infos(0, 3, 5, 9, 10, 14, 20, 21)
    assert kept(EveryNSteps(5), checkpoints) == [0, 5, 10, 20]
    assert kept(EveryNSteps(5, exact_interval=False), checkpoints) == [0, 5, 10, 20]
    assert kept(EveryNSteps(4, exact_interval=False), checkpoints) == [0, 5, 9, 14, 20]
    assert kept(EveryNSteps(5, max_to_keep=2), checkpoints) == [10, 20]


def test_every_n_steps_closest_picks_the_nearest_to_each_multiple() -> None:
    checkpoints = infos(0, 98, 103, 190, 205, 260)
    # grid 0 -> 0; 100 -> 98 (2 away, 103 is 3 away); 200 -> 205; 300 -> 260 (also newest)
    assert kept(EveryNStepsClosest(100), checkpoints) == [0, 98, 205, 260]
    assert kept(EveryNStepsClosest(100, max_to_keep=2), checkpoints) == [205, 260]


def test_custom_steps() -> None:
    assert kept(CustomSteps([2, 9]), infos(1, 2, 3)) == [2]


def test_best_n_with_get_metric_fn_follows_orbax_reverse_semantics() -> None:
    checkpoints = infos(1, 2, 3, 4, s1={"acc": 0.5}, s2={"acc": 0.9}, s3={"acc": 0.7}, s4=None)

    def acc(m: Any) -> float:
        return float(m["acc"])

    # reverse=False sorts ascending and keeps the top: the highest values.
    assert kept(BestN(get_metric_fn=acc, n=2), checkpoints) == [2, 3, 4]
    assert kept(BestN(get_metric_fn=acc, n=2, reverse=True), checkpoints) == [1, 3, 4]
    assert kept(
        BestN(get_metric_fn=acc, n=2, keep_checkpoints_without_metrics=False), checkpoints
    ) == [2, 3]
    assert kept(BestN(get_metric_fn=acc, n=0), checkpoints) == []
    assert kept(BestN(get_metric_fn=acc), checkpoints) == [1, 2, 3, 4]


def test_best_n_by_name_ranks_nan_and_missing_worst_and_prefers_newer_ties() -> None:
    nan = float("nan")
    checkpoints = infos(
        1,
        2,
        3,
        4,
        5,
        s1={"loss": 0.3},
        s2={"loss": nan},
        s3={"loss": 0.3},
        s4={"other": 1.0},
        s5={"loss": 0.9},
    )
    policy = BestN(metric="loss", mode="min", n=1)
    assert kept(policy, checkpoints) == [3]  # tie with step 1: the newer wins
    assert kept(BestN(metric="loss", mode="min", n=3), checkpoints) == [1, 3, 5]
    assert kept(BestN(metric="loss", mode="min", n=4), checkpoints) == [1, 2, 3, 5]
    reasons = {d.step: d.reasons for d in explain(policy, checkpoints, NOW)}
    assert reasons[3] == ("BestN(metric='loss', mode='min', n=1): rank 1",)


def test_best_n_reads_nested_metric_paths() -> None:
    checkpoints = infos(1, 2, s1={"eval": {"loss": 2.0}}, s2={"eval": {"loss": 1.0}})
    assert kept(BestN(metric="eval.loss", mode="max", n=1), checkpoints) == [1]


def test_latest_duration_needs_now_or_measures_from_the_newest() -> None:
    checkpoints = infos(0, 10, 20, 30)  # hours
    with pytest.raises(MissingNowError, match="relative_to='newest'"):
        LatestDuration(timedelta(hours=15)).should_preserve(
            checkpoints, context=PreservationContext()
        )
    stalled = PreservationContext(now=T0 + timedelta(days=30))
    assert kept(LatestDuration(timedelta(hours=15)), checkpoints, stalled) == []
    assert kept(
        LatestDuration(timedelta(hours=15), relative_to="newest"), checkpoints, stalled
    ) == [20, 30]
    recent = PreservationContext(now=T0 + timedelta(hours=31))
    assert kept(LatestDuration(timedelta(hours=15)), checkpoints, recent) == [20, 30]


def restic_example() -> list[CheckpointInfo]:
    """restic's documented example: weekdays at 11:00 from 2025-04-21 to 2025-05-02,
    Fridays also at 23:00, Wednesday 2025-04-30 missing."""
    times = []
    day = datetime(2025, 4, 21, tzinfo=UTC)
    while day <= datetime(2025, 5, 2, tzinfo=UTC):
        if day.weekday() < 5 and day.date() != datetime(2025, 4, 30).date():
            times.append(day.replace(hour=11))
            if day.weekday() == 4:
                times.append(day.replace(hour=23))
        day += timedelta(days=1)
    return [CheckpointInfo(i, t) for i, t in enumerate(times)]


def kept_times(policy: Any, checkpoints: list[CheckpointInfo]) -> list[str]:
    flags = policy.should_preserve(checkpoints, context=NOW)
    return [f"{c.time:%m-%d %H}" for c, f in zip(checkpoints, flags, strict=True) if f]


def test_daily_matches_restics_published_example() -> None:
    checkpoints = restic_example()
    assert len(checkpoints) == 11
    assert kept_times(Daily(5), checkpoints) == [
        "04-25 23",
        "04-28 11",
        "04-29 11",
        "05-01 11",
        "05-02 23",
    ]


def test_a_count_rule_that_runs_out_also_keeps_the_oldest() -> None:
    checkpoints = restic_example()
    # 9 distinct days, n=30: every day's newest, plus the oldest snapshot of all.
    days = kept_times(Daily(30), checkpoints)
    assert days[0] == "04-21 11"
    assert len(days) == 9
    weeks = kept_times(Weekly(5), checkpoints)
    assert weeks == ["04-21 11", "04-25 23", "05-02 23"]  # week 17 newest, week 18, oldest
    assert kept_times(Weekly(5, keep_oldest=False), checkpoints) == ["04-25 23", "05-02 23"]
    assert kept_times(Monthly(1), checkpoints) == ["05-02 23"]


def test_within_limits_buckets_to_periods_newer_than_newest_minus_within() -> None:
    checkpoints = restic_example()
    # Newest is 05-02 23:00, so 4 days reach back to 04-28 23:00 (exclusive).
    within = Daily(within=timedelta(days=4))
    assert kept_times(within, checkpoints) == ["04-29 11", "05-01 11", "05-02 23"]


def test_calendar_buckets_follow_the_time_zone() -> None:
    late = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    checkpoints = [CheckpointInfo(1, late), CheckpointInfo(2, late + timedelta(hours=1))]
    assert kept(Daily(keep_oldest=False), checkpoints) == [1, 2]  # two UTC days
    assert kept(Daily(keep_oldest=False, tz="Asia/Tokyo"), checkpoints) == [2]  # one Tokyo day
    assert kept(Hourly(1), checkpoints) == [2]


def test_per_bucket_and_per_step_bucket() -> None:
    checkpoints = infos(
        1,
        5,
        12,
        15,
        27,
        s1={"epoch": 0},
        s5={"epoch": 0},
        s12={"epoch": 1},
        s15={"epoch": 1},
        s27={"epoch": 2},
    )
    by_epoch = PerBucket(lambda c: (c.metrics or {})["epoch"], n=2, keep_oldest=False)
    assert kept(by_epoch, checkpoints) == [15, 27]
    assert kept(PerStepBucket(10), checkpoints) == [1, 5, 15, 27]
    assert kept(PerStepBucket(10, n=2), checkpoints) == [15, 27]


@pytest.mark.parametrize(
    "build",
    [
        lambda: LatestN(-1),
        lambda: EveryNSteps(0),
        lambda: EveryNSeconds(0),
        lambda: EveryNStepsClosest(0),
        lambda: EveryNSteps(10, max_to_keep=0),
        lambda: BestN(n=2),
        lambda: BestN(metric="loss", n=2),
        lambda: BestN(metric="loss", mode="median", n=2),
        lambda: BestN(metric="loss", mode="min", get_metric_fn=len),
        lambda: LatestDuration(timedelta(0)),
        lambda: LatestDuration(timedelta(days=1), relative_to="yesterday"),
        lambda: Daily(tz="Mars/Olympus"),
        lambda: Daily(within=timedelta(days=-1)),
        lambda: PerStepBucket(0),
    ],
)
def test_bad_arguments_fail_at_construction(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyArgumentError):
        build()


def test_naive_datetimes_are_rejected_with_a_clear_error() -> None:
    with pytest.raises(NaiveDatetimeError, match="timezone"):
        CheckpointInfo(1, datetime(2026, 1, 1))
    with pytest.raises(NaiveDatetimeError):
        PreservationContext(now=datetime(2026, 1, 1))
