"""`tenure ls`: the committed steps of a root, and what a policy would keep of them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tenure.cli import _args, _root
from tenure.cli._terminal import (
    Painter,
    format_age,
    format_bytes,
    format_metrics,
    format_size,
    print_json,
    table,
)
from tenure.cli.errors import OK

if TYPE_CHECKING:
    from tenure.io import Location
    from tenure.manager import Checkpointer
    from tenure.retention import PreservationPolicy

# How `ls` names each layout of step directories (tenure.compat.kauldron.LAYOUTS).
LAYOUT_NAMES = {"kauldron": "ckpt_<step> (Kauldron's layout)", "orbax": "<step> (Orbax's layout)"}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "ls",
        help="list a root's checkpoints, and what a policy would keep",
        description=(
            "One row per committed step: commit time, age, size on disk, bytes per item and "
            "metrics; with --keep, whether the policy would keep the step (whole, or only "
            "some items: the rest thinned) and which rules say so. "
            "Unfinished saves and interrupted deletions are listed separately. Sizes are "
            "unknown ('-') on s3:// and gs:// roots, whose listings carry none. Steps named "
            "ckpt_<step> (Kauldron's workdir/checkpoints) are read as such, and the report "
            "says which naming the root uses."
        ),
    )
    _args.add_root(parser)
    _args.add_keep(parser, required=False)
    _args.add_json(parser)
    parser.set_defaults(run=run)


def layouts(root: Location) -> list[str]:
    """The layouts of step names in `root`, Kauldron's first (see `LAYOUT_NAMES`)."""
    from tenure.compat.kauldron import layouts_in

    return layouts_in(root)


def _open_reader(
    root: Location, found: Sequence[str], policy: PreservationPolicy | None
) -> Checkpointer:
    """`_root.open_reader`, reading the step names of the root's (first) layout."""
    if not found or found[0] == "orbax":
        return _root.open_reader(root, policy=policy)
    from tenure.compat.kauldron import LAYOUTS

    return _root.open_reader(root, LAYOUTS[found[0]], policy)


def listing(args: argparse.Namespace, found: Sequence[str] = ()) -> dict[str, Any]:
    """The `--json` document of `tenure ls`, listing the steps of layout `found[0]`."""
    now = _args.now_or(args.now)
    decisions: dict[int, Any] = {}
    with _open_reader(args.root, found, args.keep) as reader:
        checkpoints = reader.checkpoints
        damaged = reader.damaged
        if args.keep is not None:
            decisions = {d.step: d for d in reader.plan(now).decisions}
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
                "item_bytes": None if entry.item_bytes is None else dict(entry.item_bytes),
                "metrics": None if entry.metrics is None else dict(entry.metrics),
                "keep": None if decision is None else decision.keep,
                "reasons": None if decision is None else list(decision.reasons),
                "thin": _thinned(entry.item_bytes, decision),
            }
        )
    return {
        "root": str(args.root),
        "now": now.isoformat(),
        "policy": None if args.keep is None else repr(args.keep),
        "layout": found[0] if found else None,
        "checkpoints": rows,
        "damaged": [{"step": d.step, "path": str(d.path), "problem": d.problem} for d in damaged],
        "incomplete": [_root.leftover_json(found) for found in _root.leftovers(args.root)],
        "total_bytes": _root.sum_bytes(row["bytes"] for row in rows),
    }


def _thinned(item_bytes: Mapping[str, int] | None, decision: Any) -> list[str] | None:
    """The items a decision removes from a step it keeps (None without a policy)."""
    if decision is None:
        return None
    kept = getattr(decision, "items", None)
    if not decision.keep or kept is None or item_bytes is None:
        return []
    return sorted(set(item_bytes) - kept)


def format_items(item_bytes: Mapping[str, int] | None, thin: Sequence[str] = ()) -> str:
    """Each item with its size, those a policy would thin marked with a `-`.

    Examples:
        >>> format_items({"params": 2048, "opt_state": 4096}, ["opt_state"])
        '-opt_state 4.0 KiB, params 2.0 KiB'
        >>> format_items(None)
        '-'
    """
    if not item_bytes:
        return "-"
    return ", ".join(
        f"{'-' if name in thin else ''}{name} {format_bytes(size)}"
        for name, size in sorted(item_bytes.items())
    )


def why_no_steps(root: Location) -> str:
    """Why a root lists no step: it is empty, it is one checkpoint rather than a root of
    them, or nothing in it is named and marked as a step.

    Examples:
        >>> import pathlib, tempfile
        >>> why_no_steps(pathlib.Path(tempfile.mkdtemp()))
        'It is empty.'
    """
    from tenure.io import root as rootfs
    from tenure.io.storage import as_location, list_dir

    where = as_location(root)
    if rootfs.has_step_mark(where):
        return (
            "It is itself one checkpoint (as Orbax's StandardCheckpointer or "
            "PyTreeCheckpointer writes), not a root of step directories: pass the directory "
            "that holds the steps, or read it with tenure.io.load_pytree."
        )
    entries = list_dir(where)
    if not entries:
        return "It is empty."
    return (
        f"None of its {len(entries)} entries is a step: a step is a directory named <step> "
        "or ckpt_<step> that holds a checkpoint's files (tenure's or Orbax's)."
    )


def _local(iso_time: str | None) -> str:
    if iso_time is None:
        return "-"
    return datetime.fromisoformat(iso_time).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def render(doc: dict[str, Any], paint: Painter, found: Sequence[str] = ()) -> str:
    """The text report of `tenure ls`, saying which layouts of step names (`found`) the
    root holds."""
    rows = doc["checkpoints"]
    if not rows:
        lines = [f"No committed checkpoints in {doc['root']}."]
        if not doc["damaged"]:
            lines.append(why_no_steps(doc["root"]))
    else:
        header = ["step", "committed (local)", "age", "size", "items", "metrics"]
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
                format_items(row["item_bytes"], row["thin"] or ()),
                format_metrics(row["metrics"]),
            ]
            if row["keep"] is not None:
                verdict = paint.paint("keep", "green") if row["keep"] else "delete"
                if not row["keep"]:
                    verdict = paint.paint(verdict, "yellow")
                elif row["thin"]:
                    verdict = paint.paint("thin", "yellow")
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
            thinned = [row for row in rows if row["keep"] and row["thin"]]
            if thinned:
                summary += f" and thin {len(thinned)} (items marked -)"
        lines += ["", summary + "."]
    if found:
        lines.append(f"Step directories named {LAYOUT_NAMES[found[0]]}.")
    lines += [
        paint.paint(f"Also steps named {LAYOUT_NAMES[other]}: not listed.", "yellow")
        for other in found[1:]
    ]
    if doc["damaged"]:
        lines += ["", paint.paint("Damaged (never loaded or pruned by a policy):", "bold")]
        lines += [
            f"  {paint.paint('damaged', 'red')}  step {item['step']:,}: {item['problem']}"
            for item in doc["damaged"]
        ]
        lines.append("  Run `tenure verify`; `tenure prune --damaged` removes them.")
    if doc["incomplete"]:
        lines += ["", paint.paint("Not committed (never listed, loaded or pruned):", "bold")]
        lines += [
            f"  {paint.paint(item['kind'], 'red')}  {item['name']}  "
            f"{format_size(item['bytes'])}  modified {_local(item['modified'])}"
            for item in doc["incomplete"]
        ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    found = layouts(args.root)
    doc = listing(args, found)
    if args.json:
        print_json(doc)
    else:
        print(render(doc, Painter(sys.stdout), found))
    return OK
