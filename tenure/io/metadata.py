"""The JSON documents of a checkpoint: step metadata, tree metadata and tenure's own records."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import attrs

from tenure.io.errors import CorruptCheckpointError, NotACheckpointError
from tenure.io.jsondoc import MAX_TREE_DEPTH, parse
from tenure.io.root import (
    METRICS_FILE,
    METRICS_ITEM,
    OCDBT_MANIFEST_FILE,
    RESERVED_ITEM_NAMES,
    STEP_METADATA_FILE,
    TREE_METADATA_FILE,
    FileChecksum,
    PathLike,
    check_file,
    item_checksums,
    read_small_file,
    step_checksums,
)
from tenure.io.storage import Location, ObjectPath, as_location

JsonValue = Any
SEQUENCE_KEY = 1
DICT_KEY = 2
ARRAY_VALUE_TYPES = ("jax.Array", "np.ndarray", "scalar")
EMPTY_VALUE_TYPES = ("None", "Dict", "List", "Tuple", "NamedTuple", "Unknown")

PYTREE_HANDLER = "orbax.checkpoint.experimental.v1._src.handlers.pytree_handler.PyTreeHandler"
JSON_HANDLER = "orbax.checkpoint.experimental.v1._src.handlers.json_handler.JsonHandler"
METRICS_HANDLER = "orbax.checkpoint.experimental.v1._src.handlers.json_handler.MetricsHandler"
# Grain's Orbax handler; recorded for stateful checkpointables, whose files it reads.
GRAIN_HANDLER = "grain._src.python.checkpoint.handler.CheckpointHandler"


def read_json(
    path: PathLike, recorded: Mapping[str, FileChecksum] | None = None, name: str = ""
) -> JsonValue:
    """Parse a JSON file, reporting a damaged file as `CorruptCheckpointError`.

    With `recorded` (the checksums of the file's directory), the bytes must also match the
    checksum recorded under `name`, and a missing file is damage, not absence.
    """
    try:
        data = read_small_file(path)
    except (FileNotFoundError, NotADirectoryError):
        if recorded is not None and name in recorded:
            raise CorruptCheckpointError(
                f"{path} is missing although its checksum was recorded at save time: the "
                "checkpoint is damaged; restore it from another copy"
            ) from None
        raise
    # Parsed before the checksum is compared, so that a file that is not even JSON says so.
    doc = parse(data, path)
    if recorded is not None and name:
        check_file(as_location(path), data, recorded, name)
    return doc


def key_problem(key: str) -> str | None:
    """Why a recorded key cannot name a file inside its item, or None when it can.

    Examples:
        >>> key_problem("w"), key_problem("../x")
        (None, "contains '/'")
    """
    if key in ("", ".", ".."):
        return f"is {key!r}"
    if "/" in key:
        return "contains '/'"
    if "\x00" in key:
        return "contains a NUL byte"
    return None


@attrs.frozen
class KeyEntry:
    """One level of a key path: the key as text and whether it indexes a sequence or a mapping."""

    key: str
    key_type: int


KeyPath = tuple[KeyEntry, ...]


def param_name(path: KeyPath) -> str:
    """The name of an array inside the item: its keys joined by '.' (Orbax's convention)."""
    return ".".join([entry.key for entry in path])


def display_path(path: KeyPath) -> str:
    """A key path as Python-ish text for error messages, e.g. `['opt'][0]['mu']`."""
    parts = [f"[{e.key}]" if e.key_type == SEQUENCE_KEY else f"[{e.key!r}]" for e in path]
    return "".join(parts) or "<root>"


@attrs.frozen
class TreeEntry:
    """One recorded node of the saved tree: a leaf, or an empty container or None."""

    path: KeyPath
    value_type: str
    write_shape: tuple[int, ...] | None = None
    # Its parameter name, computed once: loads look entries up by name, thousands of them.
    name: str = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(lambda self: param_name(self.path), takes_self=True),
    )

    @property
    def is_array(self) -> bool:
        """True for entries whose value lives in tensorstore."""
        return self.value_type in ARRAY_VALUE_TYPES


@attrs.frozen
class TreeMetadata:
    """The item's `_METADATA` document, as Orbax writes and reads it."""

    entries: tuple[TreeEntry, ...]
    use_ocdbt: bool
    use_zarr3: bool
    store_array_data_equal_to_fill_value: bool = True
    custom_metadata: JsonValue = None

    def to_json(self) -> dict[str, JsonValue]:
        """The document as a JSON object."""
        tree: dict[str, JsonValue] = {}
        for entry in self.entries:
            value: dict[str, JsonValue] = {
                "value_type": entry.value_type,
                "skip_deserialize": entry.value_type in EMPTY_VALUE_TYPES,
            }
            if entry.write_shape is not None:
                value["write_shape"] = list(entry.write_shape)
            display = str(tuple(e.key for e in entry.path))
            tree[display] = {
                "key_metadata": [{"key": e.key, "key_type": e.key_type} for e in entry.path],
                "value_metadata": value,
            }
        return {
            "tree_metadata": tree,
            "use_ocdbt": self.use_ocdbt,
            "use_zarr3": self.use_zarr3,
            "store_array_data_equal_to_fill_value": self.store_array_data_equal_to_fill_value,
            "custom_metadata": self.custom_metadata,
        }

    @classmethod
    def read(
        cls, item_dir: Location, recorded: Mapping[str, FileChecksum] | None = None
    ) -> TreeMetadata:
        """Read `<item_dir>/_METADATA`, detecting OCDBT when the flag is absent.

        Every key must name a file inside the item: metadata naming a path outside it (an
        absolute path, '..') or one of the item's own files is `CorruptCheckpointError`.
        """
        path = item_dir / TREE_METADATA_FILE
        if recorded is None and not path.is_file():
            raise NotACheckpointError(
                f"{item_dir} has no {TREE_METADATA_FILE}: it is not a pytree checkpointable; "
                "check the step directory and the checkpointable name"
            )
        doc = read_json(path, recorded, TREE_METADATA_FILE)
        # Most keys recur (a model's layers share their parameters' names): one entry each.
        key_entries: dict[tuple[str, int], KeyEntry] = {}
        try:
            entries = []
            for record in doc["tree_metadata"].values():
                keys = []
                for k in record["key_metadata"]:
                    text, key_type = str(k["key"]), int(k["key_type"])
                    key = key_entries.get((text, key_type))
                    if key is None:
                        key = key_entries[text, key_type] = KeyEntry(text, key_type)
                    keys.append(key)
                value = record["value_metadata"]
                shape = value.get("write_shape")
                entries.append(
                    TreeEntry(
                        tuple(keys), str(value["value_type"]), tuple(shape) if shape else None
                    )
                )
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise CorruptCheckpointError(
                f"{path} does not follow the tree-metadata schema ({type(e).__name__}: {e}); "
                "the checkpoint is damaged or was written by an unsupported tool"
            ) from e
        refused = {key.key for key in key_entries.values() if key_problem(key.key) is not None}
        for entry in entries:
            _require_inside(path, entry, refused)
        ocdbt = doc.get("use_ocdbt")
        if ocdbt is None:
            ocdbt = (item_dir / OCDBT_MANIFEST_FILE).exists()
        return cls(
            entries=tuple(entries),
            use_ocdbt=bool(ocdbt),
            use_zarr3=bool(doc.get("use_zarr3") or False),
            store_array_data_equal_to_fill_value=bool(
                doc.get("store_array_data_equal_to_fill_value", False)
            ),
            custom_metadata=doc.get("custom_metadata"),
        )


def _require_inside(path: Location, entry: TreeEntry, refused: set[str]) -> None:
    """`refused`: the keys `key_problem` refuses (each distinct key is checked once)."""
    if len(entry.path) > MAX_TREE_DEPTH:
        raise CorruptCheckpointError(
            f"{path} records a key path {len(entry.path)} keys long, deeper than the "
            f"{MAX_TREE_DEPTH} levels a saved tree may have: the metadata is damaged or hostile"
        )
    # Nearly always none: the keys are then not looked at one by one.
    problems = (
        [p for k in entry.path if k.key in refused and (p := key_problem(k.key))] if refused else []
    )
    name = entry.name
    if entry.is_array and name.casefold() in RESERVED_ITEM_NAMES:
        problems.append(f"names the item's own file {name!r}")
    if problems:
        raise CorruptCheckpointError(
            f"{path} records key path {display_path(entry.path)} whose key {problems[0]}: it "
            "would name a file outside its array's directory; the metadata is damaged or "
            "hostile, so nothing of this checkpointable is read"
        )


_STEP_FIELDS = (
    "item_handlers",
    "metrics",
    "performance_metrics",
    "init_timestamp_nsecs",
    "commit_timestamp_nsecs",
    "custom_metadata",
)


@attrs.frozen
class StepMetadata:
    """What a step directory says about itself (`_CHECKPOINT_METADATA` plus `metrics/metrics`).

    Examples:
        >>> meta = StepMetadata(item_handlers={"state": PYTREE_HANDLER}, init_timestamp_nsecs=1)
        >>> meta.item_names
        ('state',)
    """

    item_handlers: dict[str, str] = attrs.field(factory=dict)
    init_timestamp_nsecs: int | None = None
    commit_timestamp_nsecs: int | None = None
    custom_metadata: dict[str, JsonValue] = attrs.field(factory=dict)
    metrics: JsonValue = None

    @property
    def item_names(self) -> tuple[str, ...]:
        """Names of the checkpointables in the step, metrics excluded."""
        return tuple(sorted(n for n in self.item_handlers if n != METRICS_ITEM))

    @property
    def commit_time(self) -> float | None:
        """Commit time in seconds since the epoch, when recorded."""
        ns = self.commit_timestamp_nsecs
        return None if ns is None else ns / 1e9

    def to_json(self) -> dict[str, JsonValue]:
        """The `_CHECKPOINT_METADATA` document (metrics live in their own item)."""
        return {
            "item_handlers": dict(self.item_handlers),
            "metrics": {},
            "performance_metrics": {},
            "init_timestamp_nsecs": self.init_timestamp_nsecs,
            "commit_timestamp_nsecs": self.commit_timestamp_nsecs,
            "custom_metadata": self.custom_metadata,
        }


def now_nsecs() -> int:
    """Wall-clock time in nanoseconds, the unit Orbax records."""
    return time.time_ns()


def read_step_metadata(step_dir: PathLike, *, check: bool = False) -> StepMetadata:
    """Read a step directory's metadata without touching array data.

    Missing `_CHECKPOINT_METADATA` (old Orbax checkpoints) gives handlers inferred from the
    subdirectories and no timestamps. With `check`, the files must also match the checksums
    tenure recorded when saving (as `load_checkpointables` and `verify` require); without it,
    listing many steps costs one read each.

    Examples:
        >>> import tempfile, numpy as np
        >>> from tenure.io import save_pytree
        >>> d = tempfile.mkdtemp() + "/7"
        >>> save_pytree(d, {"w": np.zeros(2)}, custom_metadata={"run": "a"})
        >>> read_step_metadata(d, check=True).custom_metadata
        {'run': 'a'}
    """
    step: str | ObjectPath = (
        os.fspath(step_dir) if not isinstance(step_dir, ObjectPath) else step_dir
    )
    if isinstance(step, str) and "://" in step:
        step = ObjectPath.parse(step)
    recorded = step_checksums(as_location(step)) if check else None
    # Opening files directly, without exists/is_file checks first: a manager opening a root
    # of many steps calls this once per step.
    path = _join(step, STEP_METADATA_FILE)
    try:
        doc: JsonValue = read_json(path, recorded, STEP_METADATA_FILE)
    except (FileNotFoundError, NotADirectoryError):
        if not (step.is_dir() if isinstance(step, ObjectPath) else os.path.isdir(step)):
            raise NotACheckpointError(f"{step} does not exist or is not a directory") from None
        doc = {}
    if not isinstance(doc, dict):
        raise CorruptCheckpointError(f"{path} must hold a JSON object, found {type(doc).__name__}")
    handlers = doc.get("item_handlers")
    if not isinstance(handlers, dict):
        handlers = dict.fromkeys(_item_dirs(step), "")
    metrics_recorded = None
    if check:
        metrics_recorded = item_checksums(as_location(_join(step, METRICS_ITEM)))
        if metrics_recorded is None and recorded is not None:
            metrics_recorded = {}  # tenure recorded the step: an unrecorded metrics file is damage
    try:
        # A plain string path: listing a root reads this for every step.
        metrics_file = _join(step, METRICS_ITEM, METRICS_FILE)
        metrics = read_json(metrics_file, metrics_recorded, METRICS_FILE)
    except (FileNotFoundError, NotADirectoryError):
        metrics = None
    custom = doc.get("custom_metadata") or {}
    stamps = [doc.get(k) for k in ("init_timestamp_nsecs", "commit_timestamp_nsecs")]
    if not isinstance(custom, dict) or not all(t is None or type(t) is int for t in stamps):
        raise CorruptCheckpointError(
            f"{path} does not follow the step-metadata schema (custom_metadata must be an "
            "object, timestamps integers): the step is damaged; restore it from another copy"
        )
    custom = dict(custom)
    # Orbax folds unknown top-level keys into custom metadata; do the same.
    custom.update({k: v for k, v in doc.items() if k not in _STEP_FIELDS})
    return StepMetadata(
        item_handlers={str(k): str(v) for k, v in handlers.items()},
        init_timestamp_nsecs=stamps[0],
        commit_timestamp_nsecs=stamps[1],
        custom_metadata=custom,
        metrics=metrics,
    )


def _join(step: str | ObjectPath, *names: str) -> str | ObjectPath:
    return step / "/".join(names) if isinstance(step, ObjectPath) else os.path.join(step, *names)


def _item_dirs(step: str | ObjectPath) -> list[str]:
    """Subdirectories that can be checkpointables (no leading '_' or '.')."""
    if isinstance(step, ObjectPath):
        children = [(c.name, c.is_dir) for c in step.iterdir()]
    else:
        with os.scandir(step) as entries:
            children = [(e.name, e.is_dir) for e in entries]
    return [name for name, is_dir in children if not name.startswith(("_", ".")) and is_dir()]
