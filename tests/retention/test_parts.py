"""Part-wise preservation at the planner: `.only`, `thin`, `Decision.items`, and `explain`."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tenure.retention import (
    BestN,
    CheckpointInfo,
    EveryNSteps,
    ItemSet,
    LatestN,
    Only,
    PolicyArgumentError,
    PreservationContext,
    PreserveAll,
    RetentionPlan,
    explain,
    plan_retention,
)

from .strategies import START, apply_plan

CONTEXT = PreservationContext()
SIZES = {"params": 2, "opt_state": 4}
KEEP = LatestN(3) | EveryNSteps(10).only("params")


def saved(step: int, sizes: Mapping[str, int] | None = SIZES) -> CheckpointInfo:
    return CheckpointInfo(step, START, item_bytes=None if sizes is None else dict(sizes))


def test_the_issue_example_keeps_params_of_every_tenth_and_the_newest_three_whole() -> None:
    """100 steps saved every step, the plan applied after every save (as the manager does)."""
    alive: list[CheckpointInfo] = []
    for step in range(1, 101):
        alive.append(saved(step))
        alive = apply_plan(alive, plan_retention(alive, KEEP, CONTEXT))
    items = {info.step: sorted(info.item_bytes or ()) for info in alive}
    assert items == {
        **{step: ["params"] for step in range(10, 100, 10)},
        98: ["opt_state", "params"],
        99: ["opt_state", "params"],
        100: ["opt_state", "params"],
    }


def test_a_plan_lists_the_items_to_thin_and_the_decision_the_items_that_stay() -> None:
    plan = plan_retention([saved(s) for s in (10, 15, 20, 21, 22, 23)], KEEP, CONTEXT)
    assert plan.keep == (10, 20, 21, 22, 23)
    assert plan.delete == (15,)
    assert plan.thin == {10: frozenset({"opt_state"}), 20: frozenset({"opt_state"})}
    decisions = {d.step: d for d in plan.decisions}
    assert decisions[10].items == frozenset({"params"})
    assert decisions[10].reasons == ("EveryNSteps(interval_steps=10).only('params')",)
    assert decisions[21].items is None
    assert decisions[21].reasons == ("LatestN(n=3)",)


def test_explain_says_which_rule_kept_which_items() -> None:
    """A step kept whole by one rule and in part by another names both."""
    decision = explain(KEEP, [saved(s) for s in (18, 19, 20)], CONTEXT)[-1]
    assert decision.items is None
    assert decision.reasons == ("LatestN(n=3)", "EveryNSteps(interval_steps=10).only('params')")


def test_the_newest_and_protected_steps_are_kept_whole() -> None:
    policy = EveryNSteps(10).only("params")
    plan = plan_retention([saved(s) for s in (10, 20, 30)], policy, CONTEXT, protected=[20])
    assert plan.keep == (10, 20, 30)
    assert plan.thin == {10: frozenset({"opt_state"})}
    assert [d.items for d in plan.decisions] == [frozenset({"params"}), None, None]


def test_protected_steps_can_come_from_the_context() -> None:
    context = PreservationContext(protected=[20])
    plan = plan_retention([saved(s) for s in (10, 20, 30)], EveryNSteps(10).only("params"), context)
    assert 20 not in plan.thin


def test_a_step_whose_items_are_unknown_is_kept_whole() -> None:
    plan = plan_retention([saved(10, None), saved(11)], KEEP & ~LatestN(1), CONTEXT)
    assert plan.keep == (10, 11)
    assert plan.thin == {}
    assert plan.decisions[0].items is None


def test_a_step_that_holds_none_of_the_items_kept_is_deleted() -> None:
    plan = plan_retention(
        [saved(10, {"opt_state": 4}), saved(20)], EveryNSteps(10).only("params"), CONTEXT
    )
    assert plan.delete == (10,)
    assert plan.thin == {}


def test_and_keeps_the_items_both_keep_and_not_keeps_the_rest() -> None:
    checkpoints = [saved(s, {"params": 2, "opt_state": 4, "ema": 2}) for s in (10, 11)]
    both = EveryNSteps(10).only("params", "ema") & PreserveAll().only("params", "opt_state")
    assert plan_retention(checkpoints, both, CONTEXT).thin == {10: frozenset({"opt_state", "ema"})}
    rest = ~EveryNSteps(10).only("params")
    plan = plan_retention(checkpoints, rest, CONTEXT)
    assert plan.thin == {10: frozenset({"params"})}
    assert plan.decisions[0].reasons == (
        "(~EveryNSteps(interval_steps=10).only('params')).only('ema', 'opt_state')",
    )


def test_disjoint_parts_intersect_to_nothing_and_the_step_goes() -> None:
    policy = PreserveAll().only("params") & PreserveAll().only("opt_state")
    assert list(policy.should_preserve([saved(1), saved(2)], context=CONTEXT)) == [False, False]
    assert plan_retention([saved(1), saved(2)], policy, CONTEXT).delete == (1,)


def test_a_rule_with_a_detail_names_its_items_before_the_detail() -> None:
    checkpoints = [CheckpointInfo(s, START, {"loss": 1 / s}, dict(SIZES)) for s in (1, 2, 3)]
    policy = BestN(metric="loss", mode="min", n=1).only("params")
    decision = explain(policy, checkpoints, CONTEXT)[-1]
    assert decision.reasons == ("BestN(metric='loss', mode='min', n=1).only('params'): rank 1",)


def test_a_policy_without_parts_plans_as_before() -> None:
    plan = plan_retention([saved(s) for s in (1, 2, 3)], LatestN(2), CONTEXT)
    assert plan == RetentionPlan(
        keep=(2, 3),
        delete=(1,),
        decisions=plan.decisions,
    )
    assert all(d.items is None for d in plan.decisions)


def test_only_is_a_value_that_names_its_items_once_each() -> None:
    assert EveryNSteps(10).only("params", "params") == Only(EveryNSteps(10), ["params"])
    assert EveryNSteps(10).only("a", "b") == EveryNSteps(10).only("b", "a")
    assert repr(EveryNSteps(10).only("b", "a")) == "EveryNSteps(interval_steps=10).only('a', 'b')"
    assert repr((LatestN(1) | LatestN(2)).only("a")) == "(LatestN(n=1) | LatestN(n=2)).only('a')"
    assert repr(~LatestN(1).only("a")) == "~LatestN(n=1).only('a')"


@pytest.mark.parametrize("items", [(), ("",), (1,), (None,), ("params", b"ema")])
def test_only_refuses_anything_but_item_names(items: tuple[object, ...]) -> None:
    with pytest.raises(PolicyArgumentError, match="item"):
        EveryNSteps(10).only(*items)  # type: ignore[arg-type]


def test_item_reasons_pair_each_rule_with_the_items_it_keeps() -> None:
    pairs = KEEP.item_reasons([saved(s) for s in (10, 11, 12, 13)], context=CONTEXT)
    assert pairs[0] == (("EveryNSteps(interval_steps=10)", ItemSet.of("params")),)
    assert pairs[-1] == (("LatestN(n=3)", ItemSet.ALL),)
