"""`tenure inspect`: what one step holds, array by array."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import TYPE_CHECKING, Any

from tenure.cli import _args, _root
from tenure.cli._terminal import (
    Painter,
    format_bytes,
    format_metrics,
    format_size,
    print_json,
    table,
)
from tenure.cli.errors import OK, DamagedError

if TYPE_CHECKING:
    from tenure.io import Location


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "inspect",
        help="show a step's checkpointables, arrays, metadata and metrics",
        description=(
            "The checkpointables of STEP (default: the latest) and the tree of arrays, with "
            "shape, dtype, bytes, saved sharding and recorded checksum; the custom metadata "
            "and metrics. Reads metadata only, no array data."
        ),
    )
    _args.add_root(parser)
    parser.add_argument("step", type=int, nargs="?", help="the step (default: the latest)")
    _args.add_json(parser)
    parser.set_defaults(run=run)


def key_name(key: Any) -> str:
    """One entry of a jax key path as the text io records it under."""
    for attribute in ("key", "idx", "name"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def leaves(tree: Any) -> list[tuple[tuple[str, ...], Any]]:
    """The leaves of a `pytree_metadata` tree, with their key paths as text."""
    import jax

    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(tuple(key_name(k) for k in path), leaf) for path, leaf in flat]


def _pytree(step_dir: Location, name: str) -> dict[str, Any]:
    from tenure import io

    item_dir = step_dir / name
    try:
        tree = io.pytree_metadata(step_dir, name=name)
    except io.TenureIOError as error:
        raise DamagedError(f"cannot read the tree of {name!r}: {error}") from None
    checksums = _root.recorded_checksums(item_dir)
    shardings = _root.recorded_shardings(item_dir)
    arrays, strings = [], []
    for keys, leaf in leaves(tree):
        array_name = ".".join(keys)
        if leaf is str:
            strings.append(array_name)
            continue
        arrays.append(
            {
                "name": array_name,
                "keys": list(keys),
                "shape": list(leaf.shape),
                "dtype": str(leaf.dtype),
                "bytes": math.prod(leaf.shape) * leaf.dtype.itemsize,
                "sharding": shardings.get(array_name),
                "checksums": checksums.get(array_name),
            }
        )
    return {"arrays": arrays, "strings": strings, "bytes": sum(a["bytes"] for a in arrays)}


def inspection(args: argparse.Namespace) -> dict[str, Any]:
    """The `--json` document of `tenure inspect`."""
    from tenure import io

    with _root.open_reader(args.root) as reader:
        entry = _root.step_entry(reader, args.step)
    step, step_dir = entry.step, entry.path
    meta = io.read_step_metadata(step_dir)
    items = []
    for name in meta.item_names:
        item: dict[str, Any] = {"name": name, "kind": "unknown"}
        # One unreadable item is reported in its place; the readable ones are still shown.
        try:
            item["kind"] = kind = _root.item_kind(step_dir / name)
            if kind in ("pytree", "bare_leaf"):
                item.update(_pytree(step_dir, name))
            elif kind == "json":
                try:
                    item["value"] = io.load_checkpointables(step_dir, {name: None})[name]
                except io.TenureIOError as error:
                    raise DamagedError(f"cannot read {name!r}: {error}") from None
        except DamagedError as error:
            item["error"] = str(error)
        items.append(item)
    return {
        "root": str(args.root),
        "step": step,
        "path": str(step_dir),
        "time": _root.iso(entry.time),
        "commit_time": _root.iso(_root.utc(entry.commit_timestamp_nsecs)),
        "bytes": _root.disk_bytes(step_dir),
        "metrics": None if entry.metrics is None else dict(entry.metrics),
        "custom_metadata": dict(entry.custom_metadata or {}),
        "checkpointables": items,
    }


def _checksum(pieces: list[dict[str, Any]] | None) -> str:
    if not pieces:
        return "-"
    if len(pieces) == 1:
        return f"crc32 {pieces[0]['crc32']:08x}"
    return f"{len(pieces)} pieces, crc32 each"


def render(doc: dict[str, Any], paint: Painter) -> str:
    """The text report of `tenure inspect`."""
    lines = [
        paint.paint(f"step {doc['step']:,}", "bold") + f"  {doc['path']}",
        f"committed   {doc['commit_time'] or '-'} (decided {doc['time']})",
        f"on disk     {format_size(doc['bytes'])}",
        f"metrics     {format_metrics(doc['metrics'])}",
        f"custom      {json.dumps(doc['custom_metadata']) if doc['custom_metadata'] else '-'}",
    ]
    for item in doc["checkpointables"]:
        lines.append("")
        if "error" in item:
            problem = paint.paint(f"unreadable: {item['error']}", "red")
            lines.append(f"{paint.paint(item['name'], 'bold')} ({item['kind']}) {problem}")
            continue
        if "arrays" not in item:
            value = json.dumps(item["value"]) if "value" in item else ""
            shown = value if len(value) <= 60 else value[:57] + "..."
            lines.append(f"{paint.paint(item['name'], 'bold')} ({item['kind']}) {shown}")
            continue
        lines.append(
            f"{paint.paint(item['name'], 'bold')} ({item['kind']}, {len(item['arrays'])} "
            f"arrays, {format_bytes(item['bytes'])})"
        )
        rows = [("array", "dtype[shape]", "bytes", "saved sharding", "checksum")]
        rows += [
            (
                "  " + array["name"],
                f"{array['dtype']}[{','.join(map(str, array['shape']))}]",
                format_bytes(array["bytes"]),
                _root.describe_sharding(array["sharding"]),
                _checksum(array["checksums"]),
            )
            for array in item["arrays"]
        ]
        rows += [("  " + name, "str", "-", "-", "-") for name in item["strings"]]
        lines.append(table(rows, right=(2,)))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    doc = inspection(args)
    if args.json:
        print_json(doc)
    else:
        print(render(doc, Painter(sys.stdout)))
    unreadable = [item["name"] for item in doc["checkpointables"] if "error" in item]
    if unreadable:
        sys.stdout.flush()  # the report first, then the verdict
        raise DamagedError(
            f"step {doc['step']}: {', '.join(map(repr, unreadable))} cannot be read (shown "
            "above); run `tenure verify` on the root for the arrays' checksums"
        )
    return OK
