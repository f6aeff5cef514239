"""`tenure prune`: apply a preservation policy to an existing root, as the manager would."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from tenure.cli import _args, _root
from tenure.cli._terminal import Painter, Progress, format_bytes, format_size, print_json, table
from tenure.cli.errors import OK, UsageError
from tenure.retention import PreserveAll


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "prune",
        help="delete the checkpoints (or items of them) a preservation policy lets go",
        description=(
            "Plans with the manager's planner and safety rules (never the newest step, never "
            "an unfinished save, never a file that is not a step) while holding the root's "
            "writer lock; refuses to run while another writer holds it. Shows the plan, asks, "
            "deletes, thins the steps the policy keeps only some items of (e.g. "
            "EveryNSteps(10).only('params')), and prints the bytes freed. Damaged steps "
            "(unreadable metadata) are never deleted by a policy: --damaged removes them. On "
            "s3:// and gs:// roots there is no lock (run it when no job writes there) and "
            "sizes are unknown."
        ),
    )
    _args.add_root(parser)
    _args.add_keep(parser, required=False)
    parser.add_argument(
        "--damaged",
        action="store_true",
        help="also delete the damaged steps (run tenure verify first to see them)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show the plan; delete nothing")
    parser.add_argument("--yes", action="store_true", help="delete without asking")
    _args.add_json(parser)
    parser.set_defaults(run=run)


def _amount(nbytes: int | None) -> str:
    """` (SIZE)` after a count, or nothing when the size is unknown."""
    return "" if nbytes is None else f" ({format_bytes(nbytes)})"


def _items_bytes(item_bytes: Mapping[str, int] | None, items: list[str]) -> int | None:
    """The bytes of `items` of a step (None when its sizes are unknown)."""
    if item_bytes is None:
        return None
    return sum(item_bytes.get(name, 0) for name in items)


def _confirm(count: int, thin: int, freed: int | None) -> bool:
    if not sys.stdin.isatty():
        raise UsageError(
            "not deleting: stdin is not a terminal, so there is no one to ask; pass --yes "
            "to delete, or --dry-run to only show the plan"
        )
    thinning = f" and thin {thin}" if thin else ""
    sys.stderr.write(f"Delete {count} checkpoints{thinning}{_amount(freed)}? [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _render_plan(doc: dict[str, Any], paint: Painter) -> str:
    rows = [("step", "size", "verdict", "kept by")]
    for row in doc["checkpoints"]:
        verdict = paint.paint("keep", "green") if row["keep"] else paint.paint("delete", "yellow")
        thin = doc["thin"].get(str(row["step"]))
        if thin:
            verdict = paint.paint(f"thin {', '.join(thin)}", "yellow")
        rows.append(
            (f"{row['step']:,}", format_size(row["bytes"]), verdict, ", ".join(row["reasons"]))
        )
    for row in doc["damaged"]:
        rows.append((f"{row['step']:,}", "-", paint.paint("delete", "red"), "damaged"))
    kept = len(doc["checkpoints"]) + len(doc["damaged"]) - len(doc["delete"])
    thinning = f", thins {len(doc['thin'])}" if doc["thin"] else ""
    summary = (
        f"{doc['policy']}: keeps {kept}, deletes {len(doc['delete'])}{thinning}"
        f"{_amount(doc['bytes_to_free'])}."
    )
    return table(rows, right=(0, 1)) + "\n\n" + summary


def run(args: argparse.Namespace) -> int:
    if args.keep is None and not args.damaged:
        raise UsageError("say what to delete: --keep POLICY_TEXT, --damaged, or both")
    keep = args.keep if args.keep is not None else PreserveAll()
    now = _args.now_or(args.now)
    paint = Painter(sys.stdout)
    # The lock is held from planning to the last deletion, so the plan stays true.
    with _root.open_writer(args.root, keep) as writer:
        checkpoints = writer.checkpoints
        damaged = writer.damaged if args.damaged else []
        plan = writer.plan(now)
        sizes = {c.step: _root.disk_bytes(c.path) for c in checkpoints}
        sizes.update({d.step: _root.disk_bytes(d.path) for d in damaged})
        doomed = [*plan.delete, *(d.step for d in damaged)]
        thin = {step: sorted(items) for step, items in sorted(plan.thin.items())}
        item_sizes = {c.step: c.item_bytes for c in checkpoints}
        thin_bytes = {
            step: _items_bytes(item_sizes.get(step), items) for step, items in thin.items()
        }
        doc: dict[str, Any] = {
            "root": str(args.root),
            "policy": repr(keep),
            "now": now.isoformat(),
            "dry_run": args.dry_run,
            "checkpoints": [
                {"step": d.step, "keep": d.keep, "reasons": list(d.reasons), "bytes": sizes[d.step]}
                for d in plan.decisions
            ],
            "damaged": [{"step": d.step, "problem": d.problem} for d in damaged],
            "delete": doomed,
            "deleted": [],
            # JSON keys are text: the steps to thin, and the items to remove of each.
            "thin": {str(step): items for step, items in thin.items()},
            "thinned": {},
            "bytes_to_free": _root.sum_bytes(
                [*(sizes[step] for step in doomed), *thin_bytes.values()]
            ),
            "bytes_freed": 0,
        }
        if not args.json:
            shown = checkpoints or damaged
            print(_render_plan(doc, paint) if shown else f"No checkpoints in {args.root}.")
            sys.stdout.flush()  # the plan must be on screen before the question
        go = bool(doomed or thin) and not args.dry_run
        if go and not args.yes:
            go = _confirm(len(doomed), len(thin), doc["bytes_to_free"])
        if go:
            with Progress(len(doomed) + len(thin), "deleting") as bar:
                for step in doomed:
                    writer.delete(step)
                    doc["deleted"].append(step)
                    bar.advance(1, f"step {step}")
                for step, items in thin.items():
                    writer.thin(step, items)
                    doc["thinned"][str(step)] = items
                    bar.advance(1, f"thinning step {step}")
            doc["bytes_freed"] = _root.sum_bytes(
                [
                    *(sizes[step] for step in doc["deleted"]),
                    *(thin_bytes[int(step)] for step in doc["thinned"]),
                ]
            )
    if args.json:
        print_json(doc)
    elif doc["deleted"] or doc["thinned"]:
        freed = doc["bytes_freed"]
        thinned = f", thinned {len(doc['thinned'])}" if doc["thinned"] else ""
        print(
            f"Deleted {len(doc['deleted'])} checkpoints{thinned}"
            + ("." if freed is None else f", freed {format_bytes(freed)}.")
        )
    elif doomed or thin:
        print("Nothing deleted" + (" (dry run)." if args.dry_run else "."))
    return OK
