"""`tenure ls`: the committed steps of a root, and what a policy would keep of them."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from tenure.cli import _args, _root
from tenure.cli._terminal import (
    Painter,
    format_age,
    format_bytes,
    format_metrics,
    format_size,
    table,
)
from tenure.cli.errors import OK
from tenure.retention import PreservationContext, plan_retention


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "ls",
        help="list a root's checkpoints, and what a policy would keep",
        description=(
            "One row per committed step: commit time, age, size on disk and metrics; with "
            "--keep, whether the policy would keep the step and which rules say so. "
            "Unfinished saves and interrupted deletions are listed separately. Sizes are "
            "unknown ('-') on s3:// and gs:// roots, whose listings carry none."
        ),
    )
    _args.add_root(parser)
    _args.add_keep(parser, required=False)
    _args.add_json(parser)
    parser.set_defaults(run=run)


def listing(args: argparse.Namespace) -> dict[str, Any]:
    """The `--json` document of `tenure ls`."""
    now = _args.now_or(args.now)
    with _root.open_reader(args.root) as reader:
        checkpoints = reader.checkpoints
    decisions: dict[int, Any] = {}
    if args.keep is not None:
        plan = plan_retention(
            [c.info() for c in checkpoints], args.keep, PreservationContext(now=now)
        )
        decisions = {d.step: d for d in plan.decisions}
    rows: list[dict[str, Any]] = []
    for entry in checkpoints:
        decision = decisions.get(entry.step)
        committed = _root.utc(entry.commit_timestamp_nsecs) or entry.time
        rows.append(
            {
                "step": entry.step,
                "path": str(entry.path),
                "time": _root.iso(entry.time),
                "commit_time": _root.iso(_root.utc(entry.commit_timestamp_nsecs)),
                "age_seconds": None if committed is None else (now - committed).total_seconds(),
                "bytes": _root.disk_bytes(entry.path),
                "metrics": None if entry.metrics is None else dict(entry.metrics),
                "keep": None if decision is None else decision.keep,
                "reasons": None if decision is None else list(decision.reasons),
            }
        )
    return {
        "root": str(args.root),
        "now": now.isoformat(),
        "policy": None if args.keep is None else repr(args.keep),
        "checkpoints": rows,
        "incomplete": [_root.leftover_json(found) for found in _root.leftovers(args.root)],
        "total_bytes": _root.sum_bytes(row["bytes"] for row in rows),
    }


def _local(iso_time: str | None) -> str:
    if iso_time is None:
        return "-"
    return datetime.fromisoformat(iso_time).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def render(doc: dict[str, Any], paint: Painter) -> str:
    """The text report of `tenure ls`."""
    rows = doc["checkpoints"]
    if not rows:
        lines = [f"No committed checkpoints in {doc['root']}."]
    else:
        header = ["step", "committed (local)", "age", "size", "metrics"]
        if doc["policy"] is not None:
            header += ["verdict", "kept by"]
        body = [header]
        for row in rows:
            age = row["age_seconds"]
            cells = [
                f"{row['step']:,}",
                _local(row["commit_time"] or row["time"]),
                "-" if age is None else format_age(age),
                format_size(row["bytes"]),
                format_metrics(row["metrics"]),
            ]
            if row["keep"] is not None:
                verdict = paint.paint("keep", "green") if row["keep"] else "delete"
                if not row["keep"]:
                    verdict = paint.paint(verdict, "yellow")
                cells += [verdict, ", ".join(row["reasons"]) or "-"]
            body.append(cells)
        lines = [table(body, right=(0, 3))]
        summary = f"{len(rows)} checkpoints"
        if doc["total_bytes"] is not None:
            summary += f", {format_bytes(doc['total_bytes'])}"
        if doc["policy"] is not None:
            doomed = [row for row in rows if not row["keep"]]
            summary += f"; {doc['policy']} would delete {len(doomed)}"
            freed = _root.sum_bytes(row["bytes"] for row in doomed)
            if freed is not None:
                summary += f" ({format_bytes(freed)})"
        lines += ["", summary + "."]
    if doc["incomplete"]:
        lines += ["", paint.paint("Not committed (never listed, loaded or pruned):", "bold")]
        lines += [
            f"  {paint.paint(item['kind'], 'red')}  {item['name']}  "
            f"{format_size(item['bytes'])}  modified {_local(item['modified'])}"
            for item in doc["incomplete"]
        ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    doc = listing(args)
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(render(doc, Painter(sys.stdout)))
    return OK
