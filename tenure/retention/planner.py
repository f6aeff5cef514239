"""The one function that decides what to delete, and the explanation behind it."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence

import attrs

from tenure.retention.errors import UnsortedCheckpointsError
from tenure.retention.info import CheckpointInfo, PreservationContext
from tenure.retention.preservation_policies import PreservationPolicy, reasons_of

NEWEST = "newest checkpoint (never deleted)"
PROTECTED = "protected (a save in flight, or the step this run resumed from)"


@attrs.frozen
class Decision:
    """Whether one checkpoint is kept, and the rules that keep it.

    Examples:
        >>> Decision(step=1000, keep=True, reasons=("LatestN(n=3)",)).keep
        True
    """

    step: int
    keep: bool
    reasons: tuple[str, ...] = ()


@attrs.frozen
class RetentionPlan:
    """Steps to keep and to delete, oldest first, with a decision for every checkpoint.

    `thin` maps a kept step to the items to remove from it (the step itself stays).

    Examples:
        >>> plan = RetentionPlan(keep=(3, 4), delete=(1, 2), decisions=())
        >>> plan.delete
        (1, 2)
    """

    keep: tuple[int, ...]
    delete: tuple[int, ...]
    decisions: tuple[Decision, ...]
    thin: Mapping[int, frozenset[str]] = attrs.field(factory=dict)


def _check_sorted(checkpoints: Sequence[CheckpointInfo]) -> None:
    for before, after in itertools.pairwise(checkpoints):
        if before.step >= after.step:
            raise UnsortedCheckpointsError(
                f"checkpoints must be sorted by strictly increasing step; step {after.step} "
                f"follows step {before.step}. Sort them with sorted(..., key=lambda c: c.step) "
                "and remove duplicates"
            )


def explain(
    policy: PreservationPolicy,
    checkpoints: Sequence[CheckpointInfo],
    context: PreservationContext,
) -> list[Decision]:
    """What `policy` alone keeps, and which of its rules keep each checkpoint.

    Examples:
        >>> from datetime import datetime, timezone
        >>> from tenure.retention import LatestN
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> [d.keep for d in explain(LatestN(1), [CheckpointInfo(1, t), CheckpointInfo(2, t)],
        ...                          PreservationContext())]
        [False, True]
    """
    _check_sorted(checkpoints)
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
    checkpoint and the `protected` steps are never deleted.

    `checkpoints` must be sorted by step. The manager and the simulator both call this,
    so what the simulator predicts is what the manager does.

    Examples:
        >>> from datetime import datetime, timezone
        >>> from tenure.retention import BestN
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> infos = [CheckpointInfo(s, t, {"loss": 1.0 / s}) for s in (1, 2, 3)]
        >>> plan_retention(infos, BestN(metric="loss", mode="max", n=1), PreservationContext())
        ... # doctest: +ELLIPSIS
        RetentionPlan(keep=(1, 3), delete=(2,), ...)
    """
    _check_sorted(checkpoints)
    reasons = reasons_of(policy, checkpoints, context)
    protected = frozenset(protected)
    if checkpoints:
        reasons[-1] += (NEWEST,)
    for index, info in enumerate(checkpoints):
        if info.step in protected:
            reasons[index] += (PROTECTED,)
    final = [
        Decision(step=info.step, keep=bool(why), reasons=why)
        for info, why in zip(checkpoints, reasons, strict=True)
    ]
    return RetentionPlan(
        keep=tuple(d.step for d in final if d.keep),
        delete=tuple(d.step for d in final if not d.keep),
        decisions=tuple(final),
    )
