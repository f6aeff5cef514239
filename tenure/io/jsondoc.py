"""JSON with bounded nesting: what tenure stores and parses never exhausts Python's stack.

`MAX_JSON_DEPTH` bounds every JSON document tenure writes or reads; `MAX_TREE_DEPTH` bounds
the pytrees it saves (a tree level takes two JSON levels in tenure's structure record, and the
walks that rebuild a tree recurse once per level).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tenure.io.errors import CorruptCheckpointError, NestingTooDeepError, UnsupportedLeafError

MAX_JSON_DEPTH = 512
MAX_TREE_DEPTH = 200

JsonValue = Any


def json_depth(value: JsonValue, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply `value` nests (a scalar is 0), counting no further than `limit + 1`.

    Iterative, so it is safe on any input.

    Examples:
        >>> json_depth({"a": [1, {"b": 2}]})
        3
    """
    deepest = 0
    stack: list[tuple[JsonValue, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = list(node.values())
        elif isinstance(node, list | tuple):
            children = list(node)
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


_DEPTH_STEP = np.zeros(256, np.int8)
_DEPTH_STEP[list(b"[{")] = 1
_DEPTH_STEP[list(b"]}")] = -1
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'[]{}"')))


def _bracket_depth(data: bytes) -> int:
    """How deeply a valid JSON document nests, from its bytes (strings left out), at C
    speed: walking the parsed document would cost more than parsing it.

    Examples:
        >>> _bracket_depth(b'{"a": [1, "]]"], "b": {}}')
        2
    """
    # Escapes occur only inside strings, in pairs read from the left: with the escaped
    # backslashes removed, then the escaped quotes, every quote left opens or closes a string.
    # Only brackets and quotes are kept: what numpy then walks is a fraction of the document.
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    data = data.translate(None, _NOT_STRUCTURE)
    raw = np.frombuffer(data, np.uint8)
    steps = _DEPTH_STEP.take(raw)
    # Brackets after an odd number of quotes are inside a string.
    steps[(np.cumsum(raw == ord('"'), dtype=np.int32) & 1) == 1] = 0
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def require_shallow(value: JsonValue, what: str) -> None:
    """Raise `NestingTooDeepError` when `value` nests deeper than `MAX_JSON_DEPTH`.

    Examples:
        >>> require_shallow({"loss": [1.0]}, "metrics")
    """
    if json_depth(value) > MAX_JSON_DEPTH:
        raise NestingTooDeepError(
            f"{what} nests deeper than {MAX_JSON_DEPTH} levels, more than tenure stores; "
            "flatten it (e.g. join nested keys into one string key)"
        )


def parse(data: bytes, where: object) -> JsonValue:
    """Parse a stored JSON document; damage, or nesting past `MAX_JSON_DEPTH`, is corruption.

    Examples:
        >>> parse(b'{"a": [1]}', "x.json")
        {'a': [1]}
        >>> parse(b"[" * 600 + b"]" * 600, "x.json")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tenure.io.errors.CorruptCheckpointError: x.json is nested deeper than 512 levels, ...
    """
    try:
        doc = json.loads(data)
    except RecursionError:
        doc, deep = None, True
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptCheckpointError(
            f"{where} is not valid JSON ({e}); the checkpoint is damaged: restore it from "
            "another copy or use an earlier step"
        ) from e
    else:
        # Cheap test first: a document with few brackets cannot be deep.
        deep = data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH and (
            _bracket_depth(data) > MAX_JSON_DEPTH
        )
    if deep:
        raise CorruptCheckpointError(
            f"{where} is nested deeper than {MAX_JSON_DEPTH} levels, which tenure never "
            "writes: the file is damaged or hostile; restore it from another copy"
        )
    return doc


def plain_numbers(value: JsonValue, what: str) -> JsonValue:
    """`value` with numpy and jax scalars turned into Python numbers, so JSON can store it.

    Iterative, so any depth is safe. An array that is not a scalar is refused with
    `UnsupportedLeafError`.

    Examples:
        >>> plain_numbers({"loss": np.float32(0.5), "n": [np.int64(3)]}, "metrics")
        {'loss': 0.5, 'n': [3]}
    """
    root = [value]
    # (container, key, where): `where` links back to the parent, formatted only for an error.
    stack: list[tuple[Any, Any, Any]] = [(root, 0, None)]
    while stack:
        container, key, where = stack.pop()
        node = container[key]
        if isinstance(node, dict):
            container[key] = node = dict(node)
            stack.extend((node, k, (where, k)) for k in node)
        elif isinstance(node, list | tuple):
            container[key] = node = list(node)
            stack.extend((node, i, (where, i)) for i in range(len(node)))
        elif getattr(node, "shape", None) is not None:
            if tuple(node.shape) != ():
                raise UnsupportedLeafError(
                    f"{what}{_where(where)} is an array of shape {tuple(node.shape)}; it is "
                    "stored as JSON, which holds numbers: pass a scalar (e.g. "
                    "float(x.mean())) or save the array in a checkpointable"
                )
            container[key] = np.asarray(node).item()
    return root[0]


def _where(link: Any) -> str:
    keys = []
    while link is not None:
        link, key = link
        keys.append(f"[{key!r}]")
    return "".join(reversed(keys))
