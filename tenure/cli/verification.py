"""`tenure verify`: re-read every array and check it against its checksums."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from tenure.cli import _args, _root
from tenure.cli._terminal import Painter, Progress, print_json
from tenure.cli.errors import DAMAGED, OK
from tenure.cli.inspection import leaves

if TYPE_CHECKING:
    from tenure.io import Location


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "verify",
        help="re-read every array of every step (or of STEP) and check its checksums",
        description=(
            "Re-reads every array and metadata file of each committed step (or of STEP) and "
            "checks the checksums recorded at save time. Steps whose metadata cannot be read "
            "are reported damaged; a step a writer deletes meanwhile is no damage. Exit status "
            "0 when all is intact, 1 with the list of damaged steps and arrays otherwise."
        ),
    )
    _args.add_root(parser)
    parser.add_argument("step", type=int, nargs="?", help="only this step (default: all)")
    _args.add_json(parser)
    parser.set_defaults(run=run)


def _damage(item: str | None, array: str | None, error: BaseException | str) -> dict[str, Any]:
    return {"checkpointable": item, "array": array, "error": str(error)}


def _selector(keys: tuple[str, ...]) -> Any:
    """An abstract tree that asks `load_pytree` for the one leaf at `keys`: nested dicts
    whose keys are the recorded key names, which io matches for lists and tuples too."""
    tree: Any = None
    for key in reversed(keys):
        tree = {key: tree}
    return tree


def itemise(step_dir: Location) -> tuple[list[dict[str, Any]], int]:
    """Every damaged array and file of a step, found by reading each on its own (the
    io-level `verify` stops at the first); also returns how many arrays were read."""
    from tenure import io

    errors = (io.TenureIOError, OSError, ValueError)
    try:
        names = io.read_step_metadata(step_dir).item_names
    except errors as error:
        return [_damage(None, None, error)], 0
    damaged, checked = [], 0
    for name in names:
        if _root.item_kind(step_dir / name) not in ("pytree", "bare_leaf"):
            try:
                io.load_checkpointables(step_dir, {name: None})
            except errors as error:
                damaged.append(_damage(name, None, error))
            continue
        try:
            tree = io.pytree_metadata(step_dir, name=name)
        except errors as error:
            damaged.append(_damage(name, None, error))
            continue
        for keys, leaf in leaves(tree):
            if leaf is str:
                continue
            try:
                io.load_pytree(step_dir, _selector(keys), name=name, partial=True)
            except errors as error:
                damaged.append(_damage(name, ".".join(keys), error))
            checked += 1
    return damaged, checked


def verify_step(step: int, step_dir: Location) -> dict[str, Any] | None:
    """One step's entry of the `--json` document; None when the step was deleted while it
    was read (a writer's retention at work), which is no damage."""
    from tenure import io
    from tenure.io.root import has_step_mark

    try:
        checked = io.verify(step_dir)
    except io.StorageError:
        raise  # the store failed, not the checkpoint: no verdict, the command exits 2
    except (io.TenureIOError, OSError, ValueError) as error:
        if not has_step_mark(step_dir):
            return None
        damaged, checked = itemise(step_dir)
        # Damage only the whole-step check sees (a JSON file, a recorded checksum).
        damaged = damaged or [_damage(None, None, error)]
        if not has_step_mark(step_dir):
            return None
    else:
        damaged = []
    return _entry(step, step_dir, checked, damaged)


def _entry(
    step: int, step_dir: Location, checked: int, damaged: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "step": step,
        "path": str(step_dir),
        "ok": not damaged,
        "arrays_checked": checked,
        "damaged": damaged,
    }


def verification(args: argparse.Namespace) -> dict[str, Any]:
    """The `--json` document of `tenure verify`."""
    with _root.open_reader(args.root) as reader:
        # Steps whose metadata the listing could not read: damaged without reading further.
        quarantined = [d for d in reader.damaged if args.step in (None, d.step)]
        if args.step is None:
            targets = [(c.step, c.path) for c in reader.checkpoints]
        elif quarantined:
            targets = []
        else:
            entry = _root.step_entry(reader, args.step)
            targets = [(entry.step, entry.path)]
    results = [_entry(d.step, d.path, 0, [_damage(None, None, d.problem)]) for d in quarantined]
    deleted = []
    with Progress(len(targets), "verifying") as bar:
        for step, step_dir in targets:
            bar.advance(0, f"step {step}")
            result = verify_step(step, step_dir)
            if result is None:
                deleted.append(step)
            else:
                results.append(result)
            bar.advance(1, f"step {step}")
    results.sort(key=lambda r: int(r["step"]))
    return {
        "root": str(args.root),
        "ok": all(r["ok"] for r in results),
        "steps": results,
        "deleted_while_verifying": deleted,
    }


def render(doc: dict[str, Any], paint: Painter) -> str:
    """The text report of `tenure verify`."""
    lines = []
    for result in doc["steps"]:
        if result["ok"]:
            lines.append(
                f"step {result['step']:,}: {paint.paint('ok', 'green')} "
                f"({result['arrays_checked']} arrays)"
            )
            continue
        lines.append(f"step {result['step']:,}: {paint.paint('DAMAGED', 'red')}")
        for damage in result["damaged"]:
            where = "/".join(p for p in (damage["checkpointable"], damage["array"]) if p)
            lines.append(f"  {where or result['path']}: {damage['error']}")
    for step in doc["deleted_while_verifying"]:
        lines.append(f"step {step:,}: deleted while verifying (by a writer's retention; no damage)")
    bad = sum(not r["ok"] for r in doc["steps"])
    lines.append(
        f"{len(doc['steps'])} steps verified, "
        + (paint.paint(f"{bad} damaged", "red") if bad else "all intact")
        + "."
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    doc = verification(args)
    if args.json:
        print_json(doc)
    else:
        print(render(doc, Painter(sys.stdout)))
    return OK if doc["ok"] else DAMAGED
