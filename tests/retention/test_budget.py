"""Byte budgets (`WithinBytes`) and byte counts as text (`parse_bytes`)."""

from __future__ import annotations

import pytest

from tenure.retention import (
    CheckpointInfo,
    EveryNSteps,
    LatestN,
    PolicyArgumentError,
    PreservationContext,
    PreserveAll,
    WithinBytes,
    explain,
    parse_bytes,
    parse_policy,
    plan_retention,
)
from tenure.retention.items import format_bytes_text

from .strategies import START

CONTEXT = PreservationContext()
GIVEN_UP = "WithinBytes(max_bytes={}): given up for the budget, oldest first"


def saved(step: int, params: int = 100, opt_state: int = 200) -> CheckpointInfo:
    return CheckpointInfo(step, START, item_bytes={"params": params, "opt_state": opt_state})


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GiB", 2 * 2**30),
        ("500MB", 500_000_000),
        ("1.5KiB", 1536),
        ("7", 7),
        (" 2 gib ", 2 * 2**30),
        ("20TiB", 20 * 2**40),
        ("0.1KB", 100),
        (0, 0),
        (4096, 4096),
    ],
)
def test_sizes_read_binary_and_decimal_units_exactly(text: str | int, size: int) -> None:
    assert parse_bytes(text) == size


@pytest.mark.parametrize("text", ["", "2XB", "-1", "1e3", "GiB", True, 1.5, -1, None])
def test_what_is_not_a_size_is_refused_with_an_example(text: object) -> None:
    with pytest.raises(PolicyArgumentError, match=r"size|negative"):
        parse_bytes(text)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 7, 1000, 1024, 1536, 500_000_000, 3 * 2**40, 10**15 + 1])
def test_sizes_written_as_text_read_back_the_same(size: int) -> None:
    assert parse_bytes(format_bytes_text(size)) == size


def test_a_budget_holds_its_size_as_an_int_and_prints_it_in_its_unit() -> None:
    budget = WithinBytes(LatestN(3), "1KiB")
    assert budget == WithinBytes(LatestN(3), 1024)
    assert budget.max_bytes == 1024
    assert repr(budget) == "WithinBytes(LatestN(n=3), max_bytes='1KiB')"
    assert parse_policy("WithinBytes(LatestN(3), '1KiB')") == budget
    assert parse_policy(repr(WithinBytes(LatestN(3), 1000 + 1))) == WithinBytes(LatestN(3), 1001)


def test_the_oldest_steps_are_given_up_first_and_explain_says_so() -> None:
    checkpoints = [saved(s) for s in range(1, 7)]  # 300 bytes each
    decisions = explain(WithinBytes(PreserveAll(), 1000), checkpoints, CONTEXT)
    assert [d.keep for d in decisions] == [False, False, False, True, True, True]
    assert decisions[0].reasons == (GIVEN_UP.format("'1KB'"),)
    assert decisions[-1].reasons == ("PreserveAll()",)


def test_a_budget_spends_on_parts_of_old_steps_what_is_left_after_the_newest() -> None:
    """The issue's recipe: keep optimizer state for the newest steps, params of every
    tenth, and stay under a quota."""
    keep = WithinBytes(LatestN(2) | EveryNSteps(10).only("params"), 999)
    checkpoints = [saved(s) for s in (10, 20, 30, 40, 41, 42)]
    plan = plan_retention(checkpoints, keep, CONTEXT)
    # 41 and 42 whole (600), then params of 40, 30, 20 (300): 10 does not fit.
    assert plan.keep == (20, 30, 40, 41, 42)
    assert plan.thin == {step: frozenset({"opt_state"}) for step in (20, 30, 40)}
    assert plan.decisions[0].reasons == (GIVEN_UP.format(999),)
    assert plan.over_budget == ()


def test_the_newest_and_protected_steps_are_never_given_up_and_the_plan_says_so() -> None:
    checkpoints = [saved(s, params=600, opt_state=0) for s in (1, 2, 3)]
    plan = plan_retention(checkpoints, WithinBytes(PreserveAll(), 1000), CONTEXT, protected=[1])
    assert plan.keep == (1, 3)
    assert plan.delete == (2,)
    assert len(plan.over_budget) == 1
    assert "hold 1.2 KiB, over the budget of 1000 B" in plan.over_budget[0]


def test_a_budget_counts_the_newest_step_whole_even_where_its_policy_keeps_part() -> None:
    checkpoints = [saved(s) for s in (10, 20)]
    plan = plan_retention(checkpoints, WithinBytes(EveryNSteps(10).only("params"), 350), CONTEXT)
    assert plan.keep == (20,)  # 20 is the newest: 300 bytes whole, no room for 10's params


def test_steps_of_unknown_or_zero_size_cost_nothing_and_are_kept() -> None:
    checkpoints = [
        CheckpointInfo(1, START),
        saved(2, params=0, opt_state=0),
        saved(3),
        saved(4),
    ]
    plan = plan_retention(checkpoints, WithinBytes(PreserveAll(), 300), CONTEXT)
    assert plan.keep == (1, 2, 4)


def test_budgets_inside_a_policy_each_report_when_they_cannot_be_met() -> None:
    checkpoints = [saved(1), saved(2)]
    keep = WithinBytes(LatestN(1), 10) | WithinBytes(LatestN(2), "1KiB")
    plan = plan_retention(checkpoints, keep, CONTEXT)
    assert plan.keep == (1, 2)
    assert [m.split(":")[0] for m in plan.over_budget] == ["WithinBytes(max_bytes=10)"]


@pytest.mark.parametrize("max_bytes", [-1, "lots", True, 2.5])
def test_a_budget_refuses_a_size_it_cannot_read(max_bytes: object) -> None:
    with pytest.raises(PolicyArgumentError):
        WithinBytes(LatestN(1), max_bytes)  # type: ignore[arg-type]
