"""The one function that decides what to delete, and the explanation behind it."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence

import attrs

from tenure.retention.budget import WithinBytes
from tenure.retention.errors import UnsortedCheckpointsError
from tenure.retention.info import CheckpointInfo, PreservationContext
from tenure.retention.items import ItemSet, label_with_items
from tenure.retention.preservation_policies import (
    ItemReasons,
    PreservationPolicy,
    PreservationPolicyBase,
    item_reasons_of,
    kept_items,
    reasons_of,
    uses_items,
)

NEWEST = "newest checkpoint (never deleted)"
PROTECTED = "protected (a save in flight, or the step this run resumed from)"


@attrs.frozen
class Decision:
    """Whether one checkpoint is kept, and the rules that keep it.

    `items` is None when the step is kept whole (or deleted); otherwise it names the items
    that stay, and the rest are thinned away. A rule that keeps only some items is named
    with them, e.g. `"EveryNSteps(interval_steps=10).only('params')"`.

    Examples:
        >>> Decision(step=1000, keep=True, reasons=("LatestN(n=3)",)).keep
        True
        >>> Decision(10, True, ("EveryNSteps(interval_steps=10).only('params')",),
        ...          items=frozenset({"params"})).items
        frozenset({'params'})
    """

    step: int
    keep: bool
    reasons: tuple[str, ...] = ()
    items: frozenset[str] | None = None


@attrs.frozen
class RetentionPlan:
    """Steps to keep and to delete, oldest first, with a decision for every checkpoint.

    `thin` maps a kept step to the items to remove from it (the step itself stays).
    `over_budget` has one message per `WithinBytes` in the policy whose budget the newest
    and protected steps exceed on their own (they are kept all the same).

    Examples:
        >>> plan = RetentionPlan(keep=(3, 4), delete=(1, 2), decisions=())
        >>> plan.delete
        (1, 2)
    """

    keep: tuple[int, ...]
    delete: tuple[int, ...]
    decisions: tuple[Decision, ...]
    thin: Mapping[int, frozenset[str]] = attrs.field(factory=dict)
    over_budget: tuple[str, ...] = ()


def _check_sorted(checkpoints: Sequence[CheckpointInfo]) -> None:
    for before, after in itertools.pairwise(checkpoints):
        if before.step >= after.step:
            raise UnsortedCheckpointsError(
                f"checkpoints must be sorted by strictly increasing step; step {after.step} "
                f"follows step {before.step}. Sort them with sorted(..., key=lambda c: c.step) "
                "and remove duplicates"
            )


def _decide(info: CheckpointInfo, pairs: ItemReasons) -> Decision:
    """One step's decision from its rules' item sets, resolved against the items it holds.

    A step whose items are unknown (`item_bytes` None) and that is kept at all is kept
    whole: thinning it would need names the planner does not have, and keeping loses
    nothing. A step of which nothing it holds is kept is deleted.
    """
    if not pairs:
        return Decision(info.step, False)
    notes = tuple(label for label, items in pairs if not items)  # rules that let it go
    kept = kept_items(pairs)
    if kept.is_all and all(items.is_all for _, items in pairs if items):  # whole, all rules
        return Decision(info.step, True, tuple(label for label, items in pairs if items) + notes)
    held = None if info.item_bytes is None else frozenset(info.item_bytes)
    if not kept or (held and not kept.resolve(held)):
        return Decision(step=info.step, keep=False, reasons=notes)
    if not held:  # unknown, or no items at all: nothing to thin
        why = tuple(label_with_items(label, items) for label, items in pairs if items)
        return Decision(step=info.step, keep=True, reasons=why + notes)
    reasons = []
    for label, items in pairs:
        mine = items.resolve(held)
        if mine:
            reasons.append(label_with_items(label, ItemSet.ALL if mine == held else ItemSet(mine)))
    stay = kept.resolve(held)
    return Decision(
        step=info.step,
        keep=True,
        reasons=(*reasons, *notes),
        items=None if stay == held else stay,
    )


def _kept_whole(decision: Decision, rule: str) -> Decision:
    return Decision(decision.step, True, (*decision.reasons, rule))


def _budgets(policy: PreservationPolicy) -> list[WithinBytes]:
    """Every `WithinBytes` inside `policy`, outermost first."""
    found = []
    stack: list[object] = [policy]
    while stack:
        node = stack.pop()
        if not isinstance(node, PreservationPolicyBase):
            continue
        if isinstance(node, WithinBytes):
            found.append(node)
        children = getattr(node, "policies", None)
        if children is None:
            child = getattr(node, "policy", None)
            children = () if child is None else (child,)
        stack.extend(reversed(children))
    return found


def explain(
    policy: PreservationPolicy,
    checkpoints: Sequence[CheckpointInfo],
    context: PreservationContext,
) -> list[Decision]:
    """What `policy` alone keeps, and which of its rules keep each checkpoint (and, for a
    rule that keeps only some items, which).

    Examples:
        >>> from datetime import datetime, timezone
        >>> from tenure.retention import EveryNSteps, LatestN
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> [d.keep for d in explain(LatestN(1), [CheckpointInfo(1, t), CheckpointInfo(2, t)],
        ...                          PreservationContext())]
        [False, True]
        >>> sizes = {"params": 2, "opt_state": 4}
        >>> decision = explain(LatestN(1) | EveryNSteps(10).only("params"),
        ...                    [CheckpointInfo(10, t, item_bytes=sizes),
        ...                     CheckpointInfo(11, t, item_bytes=sizes)],
        ...                    PreservationContext())[0]
        >>> decision.items, decision.reasons
        (frozenset({'params'}), ("EveryNSteps(interval_steps=10).only('params')",))
    """
    _check_sorted(checkpoints)
    if uses_items(policy):
        pairs = item_reasons_of(policy, checkpoints, context)
        return [_decide(info, p) for info, p in zip(checkpoints, pairs, strict=True)]
    reasons = reasons_of(policy, checkpoints, context)
    return [
        Decision(step=info.step, keep=bool(why), reasons=why)
        for info, why in zip(checkpoints, reasons, strict=True)
    ]


def plan_retention(
    checkpoints: Sequence[CheckpointInfo],
    policy: PreservationPolicy,
    context: PreservationContext,
    protected: Collection[int] = (),
) -> RetentionPlan:
    """Applies `policy`, then the safety rules that no policy can override: the newest
    checkpoint and the `protected` steps (and `context.protected`) are never deleted nor
    thinned.

    `checkpoints` must be sorted by step. The manager and the simulator both call this,
    so what the simulator predicts is what the manager does. Items are thinned (listed in
    `thin`) only from steps whose `item_bytes` names them; see `explain` for the rules.

    Examples:
        >>> from datetime import datetime, timezone
        >>> from tenure.retention import BestN, EveryNSteps, LatestN
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> infos = [CheckpointInfo(s, t, {"loss": 1.0 / s}) for s in (1, 2, 3)]
        >>> plan_retention(infos, BestN(metric="loss", mode="max", n=1), PreservationContext())
        ... # doctest: +ELLIPSIS
        RetentionPlan(keep=(1, 3), delete=(2,), ...)
        >>> sizes = {"params": 2, "opt_state": 4}
        >>> infos = [CheckpointInfo(s, t, item_bytes=sizes) for s in (10, 15, 20, 21)]
        >>> plan = plan_retention(infos, LatestN(1) | EveryNSteps(10).only("params"),
        ...                       PreservationContext())
        >>> plan.keep, plan.delete, plan.thin
        ((10, 20, 21), (15,), {10: frozenset({'opt_state'}), 20: frozenset({'opt_state'})})
    """
    _check_sorted(checkpoints)
    if protected and not context.protected.issuperset(protected):
        # Built directly rather than with attrs.evolve, which costs five times as much
        # and runs after every save of a resumed run in the simulator.
        context = PreservationContext(context.now, context.protected.union(protected))
    protected = context.protected
    by_items = uses_items(policy)
    if by_items:
        pairs = item_reasons_of(policy, checkpoints, context)
        decisions = [_decide(info, p) for info, p in zip(checkpoints, pairs, strict=True)]
        if decisions:
            decisions[-1] = _kept_whole(decisions[-1], NEWEST)
        for index, info in enumerate(checkpoints):
            if info.step in protected:
                decisions[index] = _kept_whole(decisions[index], PROTECTED)
    else:  # whole steps only: no item sets to build (the simulator runs this per save)
        reasons = reasons_of(policy, checkpoints, context)
        if reasons:
            reasons[-1] += (NEWEST,)
        if protected:
            for index, info in enumerate(checkpoints):
                if info.step in protected:
                    reasons[index] += (PROTECTED,)
        decisions = [
            Decision(step=info.step, keep=bool(why), reasons=why)
            for info, why in zip(checkpoints, reasons, strict=True)
        ]
    thin: dict[int, frozenset[str]] = {}
    over_budget: tuple[str, ...] = ()
    if by_items:
        for info, decision in zip(checkpoints, decisions, strict=True):
            if decision.items is not None:
                thin[decision.step] = frozenset(info.item_bytes or ()) - decision.items
        over_budget = tuple(
            message
            for budget in _budgets(policy)
            if checkpoints and (message := budget.over_budget(checkpoints, context)) is not None
        )
    return RetentionPlan(
        keep=tuple(d.step for d in decisions if d.keep),
        delete=tuple(d.step for d in decisions if not d.keep),
        decisions=tuple(decisions),
        thin=thin,
        over_budget=over_budget,
    )
