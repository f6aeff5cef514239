"""Laws of the algebra per (step, item), and of byte budgets, checked by hypothesis.

Each test names its law. `kept(p)` is what `p` keeps of each step, an `ItemSet`.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tenure.retention import (
    CheckpointInfo,
    ItemSet,
    PreservationContext,
    PreserveAll,
    WithinBytes,
    parse_policy,
    plan_retention,
)
from tenure.retention.preservation_policies import item_reasons_of, kept_items, reasons_of

from .strategies import (
    ITEMS,
    apply_plan,
    item_policies,
    item_sets,
    item_subsets,
    item_unions,
    positive_item_policies,
    sized_checkpoint_lists,
)

CONTEXT = PreservationContext()
UNIVERSES = st.sets(st.sampled_from((*ITEMS, "other")))


def kept(policy: Any, checkpoints: list[CheckpointInfo]) -> list[ItemSet]:
    return [kept_items(p) for p in item_reasons_of(policy, checkpoints, CONTEXT)]


def on_disk(checkpoints: list[CheckpointInfo]) -> dict[int, frozenset[str] | None]:
    return {c.step: None if c.item_bytes is None else frozenset(c.item_bytes) for c in checkpoints}


def held_bytes(checkpoints: list[CheckpointInfo]) -> int:
    return sum(sum((c.item_bytes or {}).values()) for c in checkpoints)


@given(item_sets, item_sets, UNIVERSES)
def test_item_set_operators_are_set_operators_on_every_step(
    a: ItemSet, b: ItemSet, universe: set[str]
) -> None:
    """Law: resolved against any step's items, |, & and ~ are union, intersection and
    complement, and bool() says whether the set can keep anything."""
    assert (a | b).resolve(universe) == a.resolve(universe) | b.resolve(universe)
    assert (a & b).resolve(universe) == a.resolve(universe) & b.resolve(universe)
    assert (~a).resolve(universe) == frozenset(universe) - a.resolve(universe)
    assert ItemSet.ALL.resolve(universe) == frozenset(universe)
    assert not ItemSet.NONE.resolve(universe)
    if not a:
        assert not a.resolve(universe)


@given(item_policies, item_policies, sized_checkpoint_lists())
def test_or_and_and_not_are_pointwise_per_step_and_item(
    a: Any, b: Any, checkpoints: list[CheckpointInfo]
) -> None:
    """Law: kept(a | b) = kept(a) | kept(b), kept(a & b) = kept(a) & kept(b) and
    kept(~a) = ~kept(a), for every step."""
    ka, kb = kept(a, checkpoints), kept(b, checkpoints)
    assert kept(a | b, checkpoints) == [x | y for x, y in zip(ka, kb, strict=True)]
    assert kept(a & b, checkpoints) == [x & y for x, y in zip(ka, kb, strict=True)]
    assert kept(~a, checkpoints) == [~x for x in ka]
    assert ~~a == a


@given(item_policies, item_subsets, sized_checkpoint_lists())
def test_only_intersects_with_the_items_named(
    a: Any, items: list[str], checkpoints: list[CheckpointInfo]
) -> None:
    """Law: kept(a.only(*items)) = kept(a) & ItemSet.of(*items)."""
    only = ItemSet.of(*items)
    assert kept(a.only(*items), checkpoints) == [x & only for x in kept(a, checkpoints)]


@given(item_policies, sized_checkpoint_lists())
def test_a_step_is_preserved_exactly_when_something_of_it_is_kept(
    a: Any, checkpoints: list[CheckpointInfo]
) -> None:
    """Law: should_preserve = bool(kept), and reasons are given exactly for those steps."""
    flags = list(a.should_preserve(checkpoints, context=CONTEXT))
    assert flags == [bool(x) for x in kept(a, checkpoints)]
    assert [bool(r) for r in reasons_of(a, checkpoints, CONTEXT)] == flags


@given(item_policies, item_policies, sized_checkpoint_lists())
def test_or_and_and_are_commutative_per_item(
    a: Any, b: Any, checkpoints: list[CheckpointInfo]
) -> None:
    """Law: a | b keeps the items b | a keeps; likewise for &."""
    assert kept(a | b, checkpoints) == kept(b | a, checkpoints)
    assert kept(a & b, checkpoints) == kept(b & a, checkpoints)


@given(item_policies, item_policies, item_policies, sized_checkpoint_lists())
def test_or_and_and_are_associative_per_item(
    a: Any, b: Any, c: Any, checkpoints: list[CheckpointInfo]
) -> None:
    """Law: (a | b) | c and a | (b | c) are the same value, and so keep the same items."""
    assert (a | b) | c == a | (b | c)
    assert (a & b) & c == a & (b & c)
    assert kept((a | b) | c, checkpoints) == kept(a | (b | c), checkpoints)


@given(item_policies, sized_checkpoint_lists())
def test_or_and_and_are_idempotent_per_item(a: Any, checkpoints: list[CheckpointInfo]) -> None:
    """Law: a | a and a & a keep the items a keeps."""
    assert kept(a | a, checkpoints) == kept(a, checkpoints)
    assert kept(a & a, checkpoints) == kept(a, checkpoints)


@given(item_policies, sized_checkpoint_lists())
def test_preserve_all_is_identity_of_and_and_absorbing_for_or_per_item(
    a: Any, checkpoints: list[CheckpointInfo]
) -> None:
    """Law: a & PreserveAll() keeps what a keeps; a | PreserveAll() keeps every step whole."""
    assert kept(a & PreserveAll(), checkpoints) == kept(a, checkpoints)
    assert all(x.is_all for x in kept(a | PreserveAll(), checkpoints))


@given(st.one_of(item_policies, st.builds(WithinBytes, item_policies, st.integers(0, 10**4))))
def test_repr_with_parts_and_budgets_parses_back_to_an_equal_policy(policy: Any) -> None:
    """Law: parse_policy(repr(p)) == p, with .only(...) and WithinBytes in the text."""
    assert parse_policy(repr(policy)) == policy


@given(item_policies, sized_checkpoint_lists(), st.sets(st.integers(0, 50_000), max_size=3))
def test_plan_keeps_the_newest_and_protected_whole_and_thins_only_held_items(
    policy: Any, checkpoints: list[CheckpointInfo], protected: set[int]
) -> None:
    """Law: the newest and protected steps are kept whole; every thinned step stays and
    loses some but not all of the items it holds; a step kept in part is one whose
    policy kept some, not all, of its known items."""
    plan = plan_retention(checkpoints, policy, CONTEXT, protected=protected)
    assert set(plan.keep) | set(plan.delete) == {c.step for c in checkpoints}
    safe = protected | ({checkpoints[-1].step} if checkpoints else set())
    assert not safe & (set(plan.delete) | set(plan.thin))
    held = on_disk(checkpoints)
    for step, gone in plan.thin.items():
        assert step in plan.keep
        items = held[step]
        assert items is not None
        assert gone
        assert gone < items
    for decision, info, items in zip(
        plan.decisions, checkpoints, kept(policy, checkpoints), strict=True
    ):
        if decision.items is not None:
            assert info.item_bytes is not None
            assert decision.items == items.resolve(info.item_bytes)
            assert decision.items | plan.thin[decision.step] == held[decision.step]


def _second_pass_changes_nothing(policy: Any, checkpoints: list[CheckpointInfo]) -> None:
    first = apply_plan(checkpoints, plan_retention(checkpoints, policy, CONTEXT))
    again = plan_retention(first, policy, CONTEXT)
    assert again.delete == ()
    assert again.thin == {}


@given(item_unions, sized_checkpoint_lists())
def test_unions_with_parts_are_stable(policy: Any, checkpoints: list[CheckpointInfo]) -> None:
    """Law (stability): planning again what a plan left, deleted and thinned, deletes
    and thins nothing, for built-in policies, their `.only` and unions of them."""
    _second_pass_changes_nothing(policy, checkpoints)


@given(positive_item_policies, sized_checkpoint_lists())
def test_compositions_with_parts_without_negation_are_stable(
    policy: Any, checkpoints: list[CheckpointInfo]
) -> None:
    """Law (stability, extended): any composition with |, & and .only is stable too."""
    _second_pass_changes_nothing(policy, checkpoints)


budgets = st.integers(0, 3_000)


@given(positive_item_policies, budgets, sized_checkpoint_lists(), st.sets(st.integers(0, 50_000)))
def test_a_budget_is_never_exceeded_unless_the_newest_and_protected_alone_exceed_it(
    policy: Any, max_bytes: int, checkpoints: list[CheckpointInfo], extra: set[int]
) -> None:
    """Law: what a WithinBytes plan leaves holds at most max_bytes, unless the newest and
    protected steps alone hold more; then those alone are left (with the steps whose
    size is unknown), and the plan says so."""
    protected = {c.step for c in checkpoints if c.step in extra}
    plan = plan_retention(checkpoints, WithinBytes(policy, max_bytes), CONTEXT, protected)
    left = apply_plan(checkpoints, plan)
    forced = [c for c in checkpoints[-1:] if c.step not in protected] + [
        c for c in checkpoints if c.step in protected
    ]
    over = held_bytes(forced) > max_bytes
    assert bool(plan.over_budget) == over
    if over:
        assert held_bytes(left) == held_bytes(forced)
    else:
        assert held_bytes(left) <= max_bytes


@given(positive_item_policies, budgets, budgets, sized_checkpoint_lists())
def test_a_larger_budget_keeps_a_superset_of_steps_and_items(
    policy: Any, a: int, b: int, checkpoints: list[CheckpointInfo]
) -> None:
    """Law: with more bytes to spend, every step and item kept is still kept."""
    small, large = sorted((a, b))
    left_small, left_large = (
        on_disk(apply_plan(checkpoints, plan_retention(checkpoints, budget, CONTEXT)))
        for budget in (WithinBytes(policy, small), WithinBytes(policy, large))
    )
    for step, items in left_small.items():
        assert step in left_large
        larger = left_large[step]
        assert items == larger if items is None or larger is None else items <= larger


@given(positive_item_policies, budgets, sized_checkpoint_lists())
def test_a_second_pass_under_a_budget_changes_nothing(
    policy: Any, max_bytes: int, checkpoints: list[CheckpointInfo]
) -> None:
    """Law (stability under a budget): planning again what a budget plan left gives up,
    deletes and thins nothing."""
    _second_pass_changes_nothing(WithinBytes(policy, max_bytes), checkpoints)


@given(positive_item_policies, budgets, sized_checkpoint_lists())
def test_a_budget_gives_up_the_oldest_steps_first_and_no_more_than_it_must(
    policy: Any, max_bytes: int, checkpoints: list[CheckpointInfo]
) -> None:
    """Law: the steps a budget gives up are older than every step of some size it keeps
    (the newest aside), and keeping the newest of them would exceed the budget."""
    unlimited = apply_plan(checkpoints, plan_retention(checkpoints, policy, CONTEXT))
    left = apply_plan(
        checkpoints, plan_retention(checkpoints, WithinBytes(policy, max_bytes), CONTEXT)
    )
    left_steps = {c.step for c in left}
    given_up = [c for c in unlimited if c.step not in left_steps]
    if not given_up:
        return
    costly = [c.step for c in left[:-1] if held_bytes([c]) > 0]
    assert all(c.step < step for c in given_up for step in costly)
    assert held_bytes(left) + held_bytes(given_up[-1:]) > max_bytes
