"""Each legacy option's translation, checked by the steps kept after a simulated run."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tenure.compat import CheckpointManagerOptions, InvalidOptionsError, to_policies
from tenure.retention import (
    CheckpointInfo,
    DecisionContext,
    FixedIntervalPolicy,
    LatestN,
    simulate,
)

START = datetime(2026, 1, 1, tzinfo=UTC)


def kept(
    steps: int = 101,
    *,
    step_secs: float = 1.0,
    metrics: Any = None,
    preemption_steps: tuple[int, ...] = (),
    **options: Any,
) -> list[int]:
    save, keep = to_policies(CheckpointManagerOptions(**options))
    result = simulate(
        save,
        keep,
        steps=steps,
        start_time=START,
        step_duration=timedelta(seconds=step_secs),
        metrics=metrics,
        preemption_steps=preemption_steps,
    )
    return [d.step for d in result.kept]


def test_defaults_save_every_step_and_keep_all() -> None:
    assert kept(5) == [0, 1, 2, 3, 4]


def test_save_interval_steps_is_a_fixed_interval() -> None:
    assert kept(save_interval_steps=25) == [0, 25, 50, 75, 100]


def test_save_interval_zero_saves_only_the_first_step() -> None:
    assert kept(save_interval_steps=0) == [0]


def test_save_on_steps_adds_specific_steps() -> None:
    assert kept(save_interval_steps=50, save_on_steps=[7, 64]) == [0, 7, 50, 64, 100]


def test_should_save_fn_replaces_interval_and_steps_and_sees_the_last_saved_step() -> None:
    calls: list[tuple[int, int | None]] = []

    def every_30_after_the_last(step: int, last: int | None) -> bool:
        calls.append((step, last))
        return last is None or step - last >= 30

    got = kept(save_interval_steps=10, save_on_steps=[5], should_save_fn=every_30_after_the_last)
    assert got == [0, 30, 60, 90]
    assert calls[:2] == [(0, None), (1, 0)]


def test_preemption_always_saves() -> None:
    assert kept(save_interval_steps=50, preemption_steps=(33,)) == [0, 33, 50, 100]
    assert kept(should_save_fn=lambda s, last: s == 0, preemption_steps=(33,)) == [0, 33]


def test_steps_not_after_the_newest_checkpoint_are_refused() -> None:
    save, _ = to_policies(CheckpointManagerOptions(save_interval_steps=10))
    previous = [CheckpointInfo(20, START)]
    assert not save.should_save(CheckpointInfo(20, START), previous, context=DecisionContext())
    assert not save.should_save(CheckpointInfo(10, START), previous, context=DecisionContext())
    assert save.should_save(CheckpointInfo(30, START), previous, context=DecisionContext())


def test_max_to_keep_is_latest_n() -> None:
    assert kept(save_interval_steps=10, max_to_keep=3) == [80, 90, 100]


def test_max_to_keep_zero_still_keeps_the_newest() -> None:
    assert kept(save_interval_steps=10, max_to_keep=0) == [100]


def test_keep_period_is_every_n_steps() -> None:
    assert kept(save_interval_steps=10, max_to_keep=2, keep_period=40) == [0, 40, 80, 90, 100]


def test_keep_time_interval_is_every_n_seconds() -> None:
    got = kept(
        save_interval_steps=10, max_to_keep=1, keep_time_interval=timedelta(seconds=35), steps=101
    )
    assert got == [0, 40, 80, 100]


def test_should_keep_fn_keeps_what_it_accepts() -> None:
    assert kept(save_interval_steps=10, max_to_keep=1, should_keep_fn=lambda s: s in (20, 70)) == [
        20,
        70,
        100,
    ]


def loss(step: int) -> Mapping[str, float]:
    return {"loss": abs(step - 40) / 10}  # best at step 40


def test_best_fn_max_to_keep_keeps_the_best_and_always_the_newest() -> None:
    got = kept(
        save_interval_steps=10,
        max_to_keep=2,
        best_fn=lambda m: m["loss"],
        best_mode="min",
        metrics=loss,
    )
    # 40 and 30/50 tie-break to the newer (50); 100 is the worst, yet kept as the newest.
    assert got == [40, 50, 100]


def test_best_mode_max_keeps_the_highest() -> None:
    def accuracy(step: int) -> Mapping[str, float]:
        return {"acc": 1 - abs(step - 60) / 100}  # best at step 60

    got = kept(save_interval_steps=10, max_to_keep=1, best_fn=lambda m: m["acc"], metrics=accuracy)
    assert got == [60, 100]


def test_keep_checkpoints_without_metrics() -> None:
    def sometimes(step: int) -> Mapping[str, float] | None:
        return None if step in (10, 20) else loss(step)

    common: dict[str, Any] = {
        "save_interval_steps": 10,
        "max_to_keep": 1,
        "best_fn": lambda m: m["loss"],
        "best_mode": "min",
        "metrics": sometimes,
    }
    assert kept(**common) == [10, 20, 40, 100]
    assert kept(keep_checkpoints_without_metrics=False, **common) == [40, 100]


def test_save_decision_policy_overrides_the_legacy_save_fields() -> None:
    got = kept(save_interval_steps=10, save_decision_policy=FixedIntervalPolicy(50))
    assert got == [0, 50, 100]


def test_preservation_policy_overrides_the_legacy_keep_fields() -> None:
    got = kept(save_interval_steps=10, best_fn=lambda m: 0.0, preservation_policy=LatestN(2))
    assert got == [90, 100]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"best_mode": "lowest"}, "best_mode"),
        ({"max_to_keep": -1}, "max_to_keep"),
        ({"save_interval_steps": -5}, "save_interval_steps"),
        ({"keep_period": 0}, "keep_period"),
        ({"keep_time_interval": timedelta(0)}, "keep_time_interval"),
        ({"preservation_policy": LatestN(2), "max_to_keep": 3}, "mutually exclusive"),
        ({"preservation_policy": LatestN(2), "keep_period": 3}, "keep_period"),
        ({"preservation_policy": LatestN(2), "should_keep_fn": bool}, "should_keep_fn"),
        ({"todelete_subdir": "trash", "todelete_full_path": "t/"}, "todelete"),
        ({"step_name_format": "ckpt_{step}"}, "StepNameFormat"),
        ({"should_save_fn": 3}, "should_save_fn"),
    ],
)
def test_invalid_options_are_refused_with_a_clear_error(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidOptionsError, match=message):
        CheckpointManagerOptions(**options)


def test_invalid_options_are_value_errors_as_in_orbax() -> None:
    with pytest.raises(ValueError, match="best_mode"):
        CheckpointManagerOptions(best_mode="median")
