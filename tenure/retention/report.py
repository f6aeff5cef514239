"""Plain-text and JSON reports of a simulation."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tenure.retention.simulator import SimulationResult

_DETAIL = re.compile(r": (rank \d+|oldest|no metrics)$")


def rule_of(reason: str) -> str:
    """The rule behind a reason: `"BestN(...): rank 2"` -> `"BestN(...)"`."""
    return _DETAIL.sub("", reason)


def format_bytes(nbytes: int) -> str:
    """`2147483648` -> `"2.0 GiB"`."""
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def deletions_by_rule(result: SimulationResult) -> Counter[str]:
    """How many deletions each rule let go (a checkpoint kept by two rules counts twice)."""
    tally: Counter[str] = Counter()
    for event in result.events:
        if event.kind == "delete":
            tally.update({rule_of(r) for r in event.reasons} or {"(no rule)"})
    return tally


def render_table(result: SimulationResult) -> str:
    lifetimes = {life.step: life for life in result.lifetimes}
    first = min((life.saved_time for life in result.lifetimes), default=result.end_time)
    lines = [
        f"Simulated {result.steps_simulated:,} steps "
        f"({first:%Y-%m-%d %H:%M} to {result.end_time:%Y-%m-%d %H:%M %Z}): "
        f"{result.saves:,} saves, {result.deletions:,} deletions.",
    ]
    peak = f"Peak: {result.peak_count} checkpoints"
    if result.peak_bytes is not None and result.total_bytes_written is not None:
        peak += (
            f", {format_bytes(result.peak_bytes)} on disk; "
            f"{format_bytes(result.total_bytes_written)} written in all"
        )
    lines.append(peak + ".")
    lines += _item_lines(result)
    lines += ["", f"Kept at the end ({len(result.kept)}):"]
    itemised = result.peak_item_bytes is not None
    header = (
        ["step", "saved at", "items", "kept by"] if itemised else ["step", "saved at", "kept by"]
    )
    rows = [header]
    for d in result.kept:
        life = lifetimes[d.step]
        row = [f"{d.step:,}", f"{life.saved_time:%Y-%m-%d %H:%M}", ", ".join(d.reasons)]
        if itemised:  # the items a step still holds, thinned ones fewer
            row.insert(2, ", ".join(sorted(life.items_left or ())) or "-")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [f"{row[0]:>{widths[0]}}"]
        cells += [f"{cell:<{width}}" for cell, width in zip(row[1:-1], widths[1:], strict=True)]
        lines.append("  " + "  ".join([*cells, row[-1]]))
    tally = deletions_by_rule(result)
    if tally:
        lines += ["", "Deleted checkpoints, by the rule that let them go:"]
        width = max(len(rule) for rule in tally)
        lines += [f"  {rule:<{width}}  {count:>8,}" for rule, count in tally.most_common()]
    return "\n".join(lines)


def _item_lines(result: SimulationResult) -> list[str]:
    lines = []
    if result.peak_item_bytes is not None and result.final_item_bytes is not None:
        finals = result.final_item_bytes
        rows = [("item", "peak", "at the end")]
        rows += [
            (name, format_bytes(peak), format_bytes(finals[name]))
            for name, peak in result.peak_item_bytes.items()
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines += ["", "Bytes on disk by item:"]
        lines += [f"  {a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
    if result.quota is not None:
        quota = f"Quota {format_bytes(result.quota)}: "
        if result.quota_exceeded_at is None:
            lines += ["", quota + "never exceeded."]
        else:
            lines += ["", quota + f"exceeded at step {result.quota_exceeded_at:,}."]
    return lines


def _plain(item_bytes: Mapping[str, int] | None) -> dict[str, int] | None:
    return None if item_bytes is None else dict(item_bytes)


def _names(items: frozenset[str] | None) -> list[str] | None:
    return None if items is None else sorted(items)


def to_json(result: SimulationResult) -> dict[str, Any]:
    items_left = {life.step: life.items_left for life in result.lifetimes}
    return {
        "steps_simulated": result.steps_simulated,
        "saves": result.saves,
        "deletions": result.deletions,
        "peak_count": result.peak_count,
        "peak_bytes": result.peak_bytes,
        "total_bytes_written": result.total_bytes_written,
        "peak_item_bytes": _plain(result.peak_item_bytes),
        "final_item_bytes": _plain(result.final_item_bytes),
        "quota": result.quota,
        "quota_exceeded_at": result.quota_exceeded_at,
        "end_time": result.end_time.isoformat(),
        "kept": [
            {"step": d.step, "reasons": list(d.reasons), "items": _names(items_left[d.step])}
            for d in result.kept
        ],
        "deleted_by_rule": dict(deletions_by_rule(result).most_common()),
        "checkpoints": [
            {
                "step": life.step,
                "saved_time": life.saved_time.isoformat(),
                "deleted_at_step": life.deleted_at_step,
                "let_go_by": list(life.let_go_by),
                "bytes": life.nbytes,
                "item_bytes": _plain(life.item_bytes),
                "thinned": [
                    {"at_step": at_step, "items": sorted(items)} for at_step, items in life.thinned
                ],
            }
            for life in result.lifetimes
        ],
    }
