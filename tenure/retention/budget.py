"""Byte budgets: `WithinBytes(policy, "2TiB")` keeps what `policy` keeps, up to a total size.

The budget counts what the plan will hold: the items kept of each step (from its
`item_bytes`; unknown sizes count 0), and the newest and protected steps whole, since the
planner keeps those whole whatever the policy says. While the total is over the budget,
the oldest kept step that costs bytes is given up, whole, then the next oldest: history
thins from its far end and the recent steps a run resumes from stay. The newest and the
protected steps are never given up; if they alone exceed the budget, the plan says so in
`RetentionPlan.over_budget`.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from tenure.retention.info import CheckpointInfo, PreservationContext
from tenure.retention.items import ItemSet, format_bytes_text, parse_bytes
from tenure.retention.preservation_policies import (
    ItemReasons,
    PartsPolicyBase,
    PreservationPolicy,
    item_reasons_of,
    kept_items,
    require_preservation,
)
from tenure.retention.report import format_bytes


def _whole_bytes(info: CheckpointInfo) -> int:
    return sum(info.item_bytes.values()) if info.item_bytes else 0


def _kept_bytes(info: CheckpointInfo, kept: ItemSet) -> int:
    sizes = info.item_bytes
    if not sizes or not kept:
        return 0
    return sum(sizes[name] for name in kept.resolve(sizes))


def _forced(checkpoints: Sequence[CheckpointInfo], context: PreservationContext) -> list[int]:
    """Indices of the steps the planner keeps whole: the newest and the protected."""
    last = len(checkpoints) - 1
    return [i for i, info in enumerate(checkpoints) if i == last or info.step in context.protected]


@attrs.frozen(repr=False)
class WithinBytes(PartsPolicyBase):
    """Keeps what `policy` keeps while the bytes kept stay within `max_bytes` (an int or
    text such as `"2TiB"`); over it, gives up the oldest kept steps first, never the
    newest or protected ones. Put it outermost: `WithinBytes(a, n) | b` also keeps `b`.

    Examples:
        >>> from datetime import datetime, timezone
        >>> from tenure.retention import LatestN, explain
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> steps = [CheckpointInfo(s, t, item_bytes={"params": 400}) for s in (1, 2, 3, 4)]
        >>> keep = WithinBytes(LatestN(), "1KiB")
        >>> keep == WithinBytes(LatestN(), 1024)
        True
        >>> [d.keep for d in explain(keep, steps, PreservationContext())]
        [False, False, True, True]
        >>> explain(keep, steps, PreservationContext())[0].reasons
        ("WithinBytes(max_bytes='1KiB'): given up for the budget, oldest first",)
    """

    policy: PreservationPolicy = attrs.field(converter=require_preservation)
    max_bytes: int = attrs.field(converter=parse_bytes)

    def item_reasons(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> list[ItemReasons]:
        result = item_reasons_of(self.policy, checkpoints, context)
        forced = _forced(checkpoints, context)
        total = sum(_whole_bytes(checkpoints[i]) for i in forced)
        costs: list[tuple[int, int]] = []  # (index, bytes kept), oldest first
        skip = set(forced)
        for index, (info, pairs) in enumerate(zip(checkpoints, result, strict=True)):
            if index not in skip and (cost := _kept_bytes(info, kept_items(pairs))):
                total += cost
                costs.append((index, cost))
        given_up = (self._given_up_label(), ItemSet.NONE)
        for index, cost in costs:
            if total <= self.max_bytes:
                break
            notes = tuple(pair for pair in result[index] if not pair[1])
            result[index] = (*notes, given_up)
            total -= cost
        return result

    def over_budget(
        self, checkpoints: Sequence[CheckpointInfo], context: PreservationContext
    ) -> str | None:
        """What to tell the user when the newest and protected steps alone exceed the
        budget (None when they fit)."""
        held = sum(_whole_bytes(checkpoints[i]) for i in _forced(checkpoints, context))
        if held <= self.max_bytes:
            return None
        return (
            f"{self._short()}: the newest and protected steps alone hold {format_bytes(held)}, "
            f"over the budget of {format_bytes(self.max_bytes)}; they are kept all the same. "
            "Raise max_bytes, or save fewer or smaller items"
        )

    def _short(self) -> str:
        return f"WithinBytes(max_bytes={format_bytes_text(self.max_bytes)!r})"

    def _given_up_label(self) -> str:
        return f"{self._short()}: given up for the budget, oldest first"

    def __repr__(self) -> str:
        return f"WithinBytes({self.policy!r}, max_bytes={format_bytes_text(self.max_bytes)!r})"
