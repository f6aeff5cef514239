"""Laws of the preservation algebra, checked by hypothesis. Each test names its law."""

from __future__ import annotations

import copy
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tenure.retention import (
    AnyPreservationPolicy,
    BestN,
    CheckpointInfo,
    LatestN,
    PreservationContext,
    PreserveAll,
    parse_policy,
    plan_retention,
)
from tenure.retention.preservation_policies import reasons_of

from .strategies import START, checkpoint_lists, leaf_policies, policies, positive_policies, unions

CONTEXT = PreservationContext()


def keep(policy: Any, checkpoints: list[CheckpointInfo]) -> list[bool]:
    return list(policy.should_preserve(checkpoints, context=CONTEXT))


@given(policies, checkpoint_lists())
def test_output_length_equals_input_length(policy: Any, checkpoints: list[CheckpointInfo]) -> None:
    """Law: a policy returns exactly one flag per checkpoint."""
    assert len(keep(policy, checkpoints)) == len(checkpoints)


@given(policies, checkpoint_lists())
def test_policies_are_deterministic_and_do_not_mutate_inputs(
    policy: Any, checkpoints: list[CheckpointInfo]
) -> None:
    """Law: the same input gives the same answer, and the input is left as it was."""
    before = copy.deepcopy(checkpoints)
    first = keep(policy, checkpoints)
    assert keep(policy, checkpoints) == first
    assert checkpoints == before


@given(policies, policies, checkpoint_lists())
def test_or_is_pointwise_or_and_and_is_pointwise_and(
    a: Any, b: Any, checkpoints: list[CheckpointInfo]
) -> None:
    """Law: keep(a | b) = keep(a) or keep(b), keep(a & b) = keep(a) and keep(b)."""
    ka, kb = keep(a, checkpoints), keep(b, checkpoints)
    assert keep(a | b, checkpoints) == [x or y for x, y in zip(ka, kb, strict=True)]
    assert keep(a & b, checkpoints) == [x and y for x, y in zip(ka, kb, strict=True)]


@given(policies, checkpoint_lists())
def test_not_is_pointwise_not(a: Any, checkpoints: list[CheckpointInfo]) -> None:
    """Law: keep(~a) = not keep(a), and ~~a is a."""
    assert keep(~a, checkpoints) == [not x for x in keep(a, checkpoints)]
    assert ~~a == a


@given(policies, policies, checkpoint_lists())
def test_or_and_and_are_commutative(a: Any, b: Any, checkpoints: list[CheckpointInfo]) -> None:
    """Law: a | b keeps what b | a keeps; likewise for &."""
    assert keep(a | b, checkpoints) == keep(b | a, checkpoints)
    assert keep(a & b, checkpoints) == keep(b & a, checkpoints)


@given(policies, policies, policies)
def test_or_and_and_are_associative_by_construction(a: Any, b: Any, c: Any) -> None:
    """Law: (a | b) | c and a | (b | c) are the same value (combinators flatten)."""
    assert (a | b) | c == a | (b | c)
    assert (a & b) & c == a & (b & c)


@given(policies, checkpoint_lists())
def test_or_and_and_are_idempotent(a: Any, checkpoints: list[CheckpointInfo]) -> None:
    """Law: a | a and a & a keep what a keeps."""
    assert keep(a | a, checkpoints) == keep(a, checkpoints)
    assert keep(a & a, checkpoints) == keep(a, checkpoints)


@given(policies, checkpoint_lists())
def test_preserve_all_is_identity_of_and_and_absorbing_for_or(
    a: Any, checkpoints: list[CheckpointInfo]
) -> None:
    """Law: a & PreserveAll() = a, a | PreserveAll() keeps everything, and
    ~PreserveAll() is the identity of |."""
    assert keep(a & PreserveAll(), checkpoints) == keep(a, checkpoints)
    assert all(keep(a | PreserveAll(), checkpoints))
    assert keep(a | ~PreserveAll(), checkpoints) == keep(a, checkpoints)


@given(st.one_of(st.none(), st.integers(0, 40)), checkpoint_lists())
def test_latest_n_keeps_exactly_the_min_n_len_newest(
    n: int | None, checkpoints: list[CheckpointInfo]
) -> None:
    """Law: LatestN(n) keeps the min(n, len) newest checkpoints and nothing else."""
    count = len(checkpoints) if n is None else min(n, len(checkpoints))
    flags = keep(LatestN(n), checkpoints)
    assert flags == [False] * (len(checkpoints) - count) + [True] * count


def _value(info: CheckpointInfo) -> float | None:
    if info.metrics is None or "loss" not in info.metrics:
        return None
    return float(info.metrics["loss"])


@given(
    st.integers(0, 10),
    st.sampled_from(["min", "max"]),
    st.booleans(),
    checkpoint_lists(),
)
def test_best_n_keeps_the_n_best(
    n: int, mode: str, without: bool, checkpoints: list[CheckpointInfo]
) -> None:
    """Law: BestN keeps min(n, ranked) checkpoints with the metric, each at least as good as
    every dropped one (NaN and missing rank worst), plus those without metrics if asked
    (n=0 keeps nothing, as in Orbax)."""
    policy = BestN(metric="loss", mode=mode, n=n, keep_checkpoints_without_metrics=without)  # type: ignore[arg-type]
    flags = keep(policy, checkpoints)
    if len(checkpoints) <= n:
        assert all(flags)
        return
    ranked = [(i, _value(c)) for i, c in enumerate(checkpoints) if _value(c) is not None]
    kept = [(i, v) for i, v in ranked if flags[i]]
    dropped = [(i, v) for i, v in ranked if not flags[i]]
    assert len(kept) == min(n, len(ranked))

    def score(value: float | None) -> float:
        assert value is not None
        if math.isnan(value):
            return -math.inf
        return -value if mode == "min" else value

    if kept and dropped:
        assert min(score(v) for _, v in kept) >= max(score(v) for _, v in dropped)
    for i, c in enumerate(checkpoints):
        if c.metrics is None:
            assert flags[i] == (without and n > 0)
        elif _value(c) is None:
            assert not flags[i]


@given(st.one_of(leaf_policies, unions), checkpoint_lists())
def test_builtin_policies_and_their_unions_are_stable(
    policy: Any, checkpoints: list[CheckpointInfo]
) -> None:
    """Law (stability): applying a built-in policy, or a union of them, again to what it
    kept keeps all of it: retention passes never eat into history one step at a time."""
    flags = keep(policy, checkpoints)
    kept = [c for c, f in zip(checkpoints, flags, strict=True) if f]
    assert all(keep(policy, kept))


@given(positive_policies, checkpoint_lists())
def test_compositions_without_negation_are_stable(
    policy: Any, checkpoints: list[CheckpointInfo]
) -> None:
    """Law (stability, extended): any composition of built-in policies with | and & is
    stable too. Negation is not; see test_negation_is_not_stable."""
    flags = keep(policy, checkpoints)
    kept = [c for c, f in zip(checkpoints, flags, strict=True) if f]
    assert all(keep(policy, kept))


def test_negation_is_not_stable() -> None:
    """The documented counterexample: ~LatestN(1) keeps all but the newest, so every pass
    over what it kept deletes one more checkpoint (the planner's newest-checkpoint rule
    stops it at one)."""
    checkpoints = [CheckpointInfo(s, START) for s in (1, 2)]
    assert keep(~LatestN(1), checkpoints) == [True, False]
    assert keep(~LatestN(1), checkpoints[:1]) == [False]


@given(policies, checkpoint_lists(), st.sets(st.integers(0, 50_000), max_size=3))
def test_plan_never_deletes_the_newest_or_a_protected_step(
    policy: Any, checkpoints: list[CheckpointInfo], extra: set[int]
) -> None:
    """Law: plan_retention keeps the newest checkpoint and every protected step, and
    otherwise deletes exactly what the policy does not keep."""
    protected = set(extra) | ({checkpoints[0].step} if checkpoints else set())
    plan = plan_retention(checkpoints, policy, CONTEXT, protected=protected)
    assert set(plan.keep).isdisjoint(plan.delete)
    assert set(plan.keep) | set(plan.delete) == {c.step for c in checkpoints}
    if checkpoints:
        assert checkpoints[-1].step in plan.keep
    assert not protected & set(plan.delete)
    flags = keep(policy, checkpoints)
    for info, kept in zip(checkpoints[:-1], flags, strict=False):
        if info.step not in protected:
            assert (info.step in plan.keep) == kept


@given(policies, checkpoint_lists())
def test_reasons_are_given_exactly_for_kept_checkpoints(
    policy: Any, checkpoints: list[CheckpointInfo]
) -> None:
    """Law: explain's reasons are non-empty exactly where the policy keeps."""
    reasons = reasons_of(policy, checkpoints, CONTEXT)
    assert [bool(r) for r in reasons] == keep(policy, checkpoints)


@given(policies)
def test_repr_is_policy_text_that_parses_back_to_an_equal_policy(policy: Any) -> None:
    """Law: parse_policy(repr(p)) == p for every policy built from text-friendly parts."""
    assert parse_policy(repr(policy)) == policy


def test_union_is_the_documented_combinator() -> None:
    """`|` builds AnyPreservationPolicy, flattened."""
    union = LatestN(1) | (LatestN(2) | LatestN(3))
    assert union == AnyPreservationPolicy([LatestN(1), LatestN(2), LatestN(3)])
