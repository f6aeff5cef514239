"""Walking pytrees: flattening into named leaves, and rebuilding containers from records."""

from __future__ import annotations

import collections
import keyword
from collections.abc import Callable
from typing import Any

import attrs
import jax
import numpy as np

from tenure.io.errors import (
    InvalidKeyError,
    KeyCollisionError,
    NestingTooDeepError,
    UnsupportedLeafError,
)
from tenure.io.jsondoc import MAX_TREE_DEPTH
from tenure.io.metadata import (
    DICT_KEY,
    SEQUENCE_KEY,
    JsonValue,
    KeyEntry,
    KeyPath,
    TreeEntry,
    display_path,
    key_problem,
    param_name,
)
from tenure.io.root import RESERVED_ITEM_NAMES

# Leaf kinds tenure records so a load gives back exactly the Python types that were saved.
JAX, NUMPY, KEY, STRING = "jax", "numpy", "key", "str"
PY_SCALARS: dict[str, type] = {"bool": bool, "int": int, "float": float, "complex": complex}
NUMPY_SCALAR = "npscalar"

_ORBAX_VALUE_TYPE = {JAX: "jax.Array", KEY: "jax.Array", NUMPY: "np.ndarray", STRING: "string"}


@attrs.frozen
class Leaf:
    """A leaf found while flattening: where it is, what it is, and the value itself.

    `name` is the parameter name the leaf is stored under (computed once: states have
    thousands of leaves).
    """

    path: KeyPath
    kind: str
    value: Any
    name: str = attrs.field(
        init=False, default=attrs.Factory(lambda self: param_name(self.path), takes_self=True)
    )

    @property
    def value_type(self) -> str:
        """Orbax's name for the kind of value."""
        return _ORBAX_VALUE_TYPE.get(self.kind, "scalar")


def leaf_kind(value: Any) -> str | None:
    """The kind of a storable leaf, or None when `value` is not a leaf."""
    if isinstance(value, jax.Array):
        # A key's dtype is one of jax's own, never a numpy dtype: most leaves are told apart
        # without the slower subtype test.
        dtype = value.dtype
        if isinstance(dtype, np.dtype):
            return JAX
        return KEY if jax.numpy.issubdtype(dtype, jax.dtypes.prng_key) else JAX
    if isinstance(value, np.ndarray):
        return NUMPY
    if isinstance(value, np.generic):
        return NUMPY_SCALAR if not isinstance(value, np.str_ | np.bytes_ | np.void) else None
    if isinstance(value, str):
        return STRING
    for kind, cls in PY_SCALARS.items():
        if type(value) is cls:
            return kind
    return None


def _is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")


def children(node: Any, path: KeyPath) -> tuple[str, list[tuple[KeyEntry, Any]]]:
    """Split a container into its kind and its `(key, child)` pairs.

    Registered pytree nodes (dataclasses, optax states) use their own key paths; attribute
    and dict keys are recorded as mapping keys, indices as sequence keys, as Orbax does.
    """
    kind, pairs, _ = _children(node, path)
    return kind, pairs


def dict_key_text(key: Any) -> str | None:
    """A dict key as its key path records it, for the keys tenure stores (str and int); None
    for any other.

    Orbax records an int key as its text with the dict key type, as jax's DictKey does;
    tenure's structure record keeps the int, so it comes back an int.

    Examples:
        >>> dict_key_text("w"), dict_key_text(3), dict_key_text(True), dict_key_text(1.5)
        ('w', '3', None, None)
    """
    if type(key) is str:
        return key
    if type(key) is int:
        return str(key)
    return None


def _children(node: Any, path: KeyPath) -> tuple[str, list[tuple[KeyEntry, Any]], list[Any]]:
    """`children`, plus the mapping keys as Python has them (ints stay ints) for the record."""
    if node is None:
        return "None", [], []
    if isinstance(node, dict):
        pairs = []
        for key, value in node.items():
            text = dict_key_text(key)
            if text is None:
                raise InvalidKeyError(
                    f"dict key {key!r} ({type(key).__name__}) at {display_path(path)} cannot "
                    "be stored: tenure stores str and int dict keys; convert the key to one "
                    "of those before saving"
                )
            pairs.append((KeyEntry(text, DICT_KEY), value))
        return "Dict", pairs, list(node)
    if _is_namedtuple(node):
        fields = node._fields
        return "NamedTuple", [(KeyEntry(f, DICT_KEY), getattr(node, f)) for f in fields], []
    if isinstance(node, tuple | list):
        kind = "Tuple" if isinstance(node, tuple) else "List"
        return kind, [(KeyEntry(str(i), SEQUENCE_KEY), v) for i, v in enumerate(node)], []
    flat, _ = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)
    if len(flat) == 1 and flat[0][0] == () and flat[0][1] is node:
        raise UnsupportedLeafError(
            f"leaf at {display_path(path)} has type {type(node).__qualname__}, which tenure "
            "cannot store: use jax/numpy arrays, scalars, strings, None or containers of them "
            "(register custom classes as pytree nodes)"
        )
    pairs = []
    raw: list[Any] = []
    for key_path, child in flat:
        (key,) = key_path
        if isinstance(key, jax.tree_util.SequenceKey | jax.tree_util.FlattenedIndexKey):
            text = str(getattr(key, "idx", getattr(key, "key", "")))
            pairs.append((KeyEntry(text, SEQUENCE_KEY), child))
            raw.append(text)
        elif isinstance(key, jax.tree_util.GetAttrKey):
            pairs.append((KeyEntry(key.name, DICT_KEY), child))
            raw.append(key.name)
        else:
            value = getattr(key, "key", key)
            pairs.append((KeyEntry(str(value), DICT_KEY), child))
            # An int key of a registered mapping (nnx.State of an nnx.List) stays an int.
            raw.append(value if type(value) is int else str(value))
    return "Unknown", pairs, raw


@attrs.frozen
class FlatTree:
    """A pytree taken apart: its leaves, its empty nodes, and a JSON description of its shape."""

    leaves: tuple[Leaf, ...]
    empties: tuple[TreeEntry, ...]
    structure: JsonValue


def flatten(tree: Any) -> FlatTree:
    """Take `tree` apart, checking every key can be encoded and no two names collide.

    Examples:
        >>> flat = flatten({"a": 1, "b": [2.0, None]})
        >>> [leaf.name for leaf in flat.leaves]
        ['a', 'b.0']
    """
    leaves: list[Leaf] = []
    empties: list[TreeEntry] = []
    structure = _flatten(tree, (), leaves, empties)
    seen: dict[str, KeyPath] = {}
    for leaf in leaves:
        other = seen.setdefault(leaf.name, leaf.path)
        if other is not leaf.path:
            raise KeyCollisionError(
                f"{display_path(other)} and {display_path(leaf.path)} are both stored as "
                f"{leaf.name!r}; rename one of the keys so the '.'-joined paths differ"
            )
    return FlatTree(tuple(leaves), tuple(empties), structure)


def _flatten(node: Any, path: KeyPath, leaves: list[Leaf], empties: list[TreeEntry]) -> JsonValue:
    """The structure record of `node` at `path`; its leaves and empty nodes are appended."""
    kind = leaf_kind(node)
    if kind is not None:
        if not path:
            raise UnsupportedLeafError(
                f"the root of the tree is a bare {type(node).__name__}: wrap it in a "
                "container such as {'value': x}"
            )
        leaf = Leaf(path, kind, node)
        _check_name(leaf)
        leaves.append(leaf)
        return {"t": "leaf", "kind": kind}
    if len(path) >= MAX_TREE_DEPTH:
        raise NestingTooDeepError(
            f"the tree nests deeper than {MAX_TREE_DEPTH} levels at {display_path(path[:3])}"
            "...; tenure stores trees up to that depth: flatten the nesting (e.g. a dict "
            "keyed by joined paths)"
        )
    container, pairs, raw = _children(node, path)
    if not pairs:
        empties.append(TreeEntry(path, container))
    nodes = [_flatten(child, (*path, key), leaves, empties) for key, child in pairs]
    doc: dict[str, JsonValue] = {"t": container, "c": nodes}
    if container in ("Dict", "Unknown"):
        doc["k"] = raw
    elif container == "NamedTuple":
        doc["k"] = [key.key for key, _ in pairs]
    if container == "NamedTuple":
        doc["name"] = type(node).__name__
    if container == "Unknown":
        doc["kt"] = [key.key_type for key, _ in pairs]
    return doc


def _check_name(leaf: Leaf) -> None:
    """Refuse a leaf whose name could not be its own directory inside the item."""
    for entry in leaf.path:
        problem = key_problem(entry.key)
        if problem is not None:
            raise InvalidKeyError(
                f"key {entry.key!r} in {display_path(leaf.path)} cannot be stored: it {problem}; "
                "keys must be non-empty, not '.' or '..', and contain no '/' or NUL: rename it"
            )
    name = leaf.name
    if name.casefold() in RESERVED_ITEM_NAMES:
        raise InvalidKeyError(
            f"{display_path(leaf.path)} would be stored as {name!r}, a name reserved for the "
            "checkpoint's own files; rename the key"
        )


def validate_structure(structure: JsonValue) -> None:
    """Raise `ValueError` unless `structure` is a well-formed record written by `flatten`.

    Iterative, so it is safe on hostile input; the rebuilding walks rely on it.
    """
    stack = [(structure, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict) or depth > MAX_TREE_DEPTH:
            raise ValueError(f"a node is not an object or is deeper than {MAX_TREE_DEPTH}")
        kind = node.get("t")
        if kind in ("leaf", "None"):
            if kind == "leaf" and not isinstance(node.get("kind"), str):
                raise ValueError("a leaf has no kind")
            continue
        kids = node.get("c")
        if kind not in _CONTAINERS or not isinstance(kids, list):
            raise ValueError(f"unknown node type {kind!r}")
        if kind in ("Dict", "NamedTuple", "Unknown"):
            keys = node.get("k")
            if not isinstance(keys, list) or len(keys) != len(kids):
                raise ValueError("keys and children differ in number")
            allowed = (str,) if kind == "NamedTuple" else (str, int)
            if not all(type(k) in allowed for k in keys):
                raise ValueError("a key is not a string (nor an int, in a mapping)")
            if len({str(k) for k in keys}) != len(keys):
                raise ValueError("a mapping has two keys with the same text")
        if kind == "Unknown":
            types = node.get("kt")
            if not isinstance(types, list) or len(types) != len(kids):
                raise ValueError("key types and children differ in number")
        if kind == "NamedTuple":
            fields = [node.get("name"), *node["k"]]
            plain = all(isinstance(f, str) and f.isidentifier() for f in fields)
            if (
                not plain
                or any(keyword.iskeyword(f) for f in fields)
                or any(f.startswith("_") for f in node["k"])
            ):
                raise ValueError("a namedtuple name or field is not a plain identifier")
            if len(set(node["k"])) != len(node["k"]):
                raise ValueError("a namedtuple has a repeated field")
        stack.extend((child, depth + 1) for child in kids)


_CONTAINERS = ("Dict", "NamedTuple", "Unknown", "List", "Tuple")


def leaf_kinds(structure: JsonValue) -> dict[str, str]:
    """The kind of every leaf of a recorded structure, by parameter name.

    Examples:
        >>> leaf_kinds(flatten({"a": 1, "b": [np.zeros(2), None]}).structure)
        {'a': 'int', 'b.0': 'numpy'}
    """
    return index_structure(structure).kinds


@attrs.frozen
class StructureIndex:
    """A recorded structure's leaves and holes: the kind of every leaf by parameter name, and
    the key texts of the path of every None and of every empty container.

    Examples:
        >>> index = index_structure(flatten({"a": [np.zeros(2), None], "e": {}}).structure)
        >>> index.kinds, index.nones, index.empties
        ({'a.0': 'numpy'}, {('a', '1')}, {('e',)})
    """

    kinds: dict[str, str]
    nones: set[tuple[str, ...]]
    empties: set[tuple[str, ...]]


def index_structure(structure: JsonValue) -> StructureIndex:
    """The `StructureIndex` of a checked structure record, in one walk."""
    index = StructureIndex({}, set(), set())
    _index(structure, (), index)
    return index


def _index(node: JsonValue, keys: tuple[str, ...], index: StructureIndex) -> None:
    # Key texts only, joined once per leaf: no key paths are built for a lookup table.
    kind = node["t"]
    if kind == "leaf":
        index.kinds[".".join(keys)] = node["kind"]
        return
    if kind == "None":
        index.nones.add(keys)
        return
    children = node["c"]
    if not children:
        index.empties.add(keys)
    texts = (
        [str(k) for k in node["k"]]
        if kind in ("Dict", "NamedTuple", "Unknown")
        else [str(i) for i in range(len(children))]
    )
    for text, child in zip(texts, children, strict=True):
        _index(child, (*keys, text), index)


def _structure_keys(structure: JsonValue) -> list[KeyEntry]:
    kind = structure["t"]
    if kind in ("Dict", "NamedTuple"):
        return [KeyEntry(str(k), DICT_KEY) for k in structure["k"]]
    if kind == "Unknown":
        return [KeyEntry(str(k), t) for k, t in zip(structure["k"], structure["kt"], strict=True)]
    return [KeyEntry(str(i), SEQUENCE_KEY) for i in range(len(structure["c"]))]


def build_from_structure(structure: JsonValue, leaf: Callable[[KeyPath], Any]) -> Any:
    """Rebuild a tree recorded by `flatten`, asking `leaf(path)` for every leaf value.

    Namedtuples come back as fresh namedtuple classes with the same name and fields (no code
    from the checkpoint is run); other registered nodes come back as dicts.
    """
    return _build(structure, (), leaf)


# The recursive walks here are module functions, not closures: a recursive closure refers to
# itself, so it and all it holds (a load's reader, through `leaf`) would outlive the call
# until the collector's next pass.


def _build(node: JsonValue, path: KeyPath, leaf: Callable[[KeyPath], Any]) -> Any:
    kind = node["t"]
    if kind == "leaf":
        return leaf(path)
    if kind == "None":
        return None
    keys = _structure_keys(node)
    values = [_build(c, (*path, k), leaf) for k, c in zip(keys, node["c"], strict=True)]
    if kind == "List":
        return values
    if kind == "Tuple":
        return tuple(values)
    if kind == "NamedTuple":
        cls = collections.namedtuple(node["name"], node["k"])  # type: ignore[misc]
        return cls(*values)
    if kind in ("Dict", "Unknown"):
        return dict(zip(node["k"], values, strict=True))
    return {k.key: v for k, v in zip(keys, values, strict=True)}


def build_from_entries(entries: tuple[TreeEntry, ...], leaf: Callable[[KeyPath], Any]) -> Any:
    """Rebuild a tree from Orbax tree metadata alone: mappings become dicts, sequences lists."""
    empty_values: dict[str, Callable[[], Any]] = {
        "Dict": dict,
        "List": list,
        "Tuple": tuple,
        "NamedTuple": tuple,
        "Unknown": dict,
        "None": lambda: None,
    }
    root: dict[str, Any] = {}
    for entry in entries:
        node = root
        for key in entry.path[:-1]:
            node = node.setdefault(key.key, {})
        value = (
            empty_values[entry.value_type]()
            if not entry.is_array and entry.value_type != "string"
            else leaf(entry.path)
        )
        if entry.path:
            node[entry.path[-1].key] = value
        else:
            return value

    sequence_levels = {
        tuple(k.key for k in entry.path[: i + 1])
        for entry in entries
        for i, k in enumerate(entry.path)
        if k.key_type == SEQUENCE_KEY
    }

    return _as_sequences(root, (), sequence_levels)


def _as_sequences(node: Any, prefix: tuple[str, ...], levels: set[tuple[str, ...]]) -> Any:
    """`node` with the dicts whose every key path is in `levels` turned into lists."""
    if not isinstance(node, dict):
        return node
    fixed = {k: _as_sequences(v, (*prefix, k), levels) for k, v in node.items()}
    if fixed and all((*prefix, k) in levels for k in fixed):
        return [fixed[k] for k in sorted(fixed, key=int)]
    return fixed
