"""Plain-text and JSON reports of a simulation."""

from __future__ import annotations

import re
from collections import Counter
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
    lines += [peak + ".", "", f"Kept at the end ({len(result.kept)}):"]
    rows = [("step", "saved at", "kept by")]
    rows += [
        (
            f"{d.step:,}",
            f"{lifetimes[d.step].saved_time:%Y-%m-%d %H:%M}",
            ", ".join(d.reasons),
        )
        for d in result.kept
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines += [f"  {r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows]
    tally = deletions_by_rule(result)
    if tally:
        lines += ["", "Deleted checkpoints, by the rule that had kept them last:"]
        width = max(len(rule) for rule in tally)
        lines += [f"  {rule:<{width}}  {count:>8,}" for rule, count in tally.most_common()]
    return "\n".join(lines)


def to_json(result: SimulationResult) -> dict[str, Any]:
    return {
        "steps_simulated": result.steps_simulated,
        "saves": result.saves,
        "deletions": result.deletions,
        "peak_count": result.peak_count,
        "peak_bytes": result.peak_bytes,
        "total_bytes_written": result.total_bytes_written,
        "end_time": result.end_time.isoformat(),
        "kept": [{"step": d.step, "reasons": list(d.reasons)} for d in result.kept],
        "deleted_by_rule": dict(deletions_by_rule(result).most_common()),
        "checkpoints": [
            {
                "step": life.step,
                "saved_time": life.saved_time.isoformat(),
                "deleted_at_step": life.deleted_at_step,
                "let_go_by": list(life.let_go_by),
                "bytes": life.nbytes,
            }
            for life in result.lifetimes
        ],
    }
