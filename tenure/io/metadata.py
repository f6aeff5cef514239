"""The JSON documents of a checkpoint: step metadata, tree metadata and tenure's own records."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import attrs

from tenure.io.errors import CorruptCheckpointError, NotACheckpointError
from tenure.io.root import (
    METRICS_FILE,
    METRICS_ITEM,
    STEP_METADATA_FILE,
    TREE_METADATA_FILE,
    PathLike,
)
from tenure.io.storage import Location, ObjectPath

JsonValue = Any
SEQUENCE_KEY = 1
DICT_KEY = 2
ARRAY_VALUE_TYPES = ("jax.Array", "np.ndarray", "scalar")
EMPTY_VALUE_TYPES = ("None", "Dict", "List", "Tuple", "NamedTuple", "Unknown")

PYTREE_HANDLER = "orbax.checkpoint.experimental.v1._src.handlers.pytree_handler.PyTreeHandler"
JSON_HANDLER = "orbax.checkpoint.experimental.v1._src.handlers.json_handler.JsonHandler"
METRICS_HANDLER = "orbax.checkpoint.experimental.v1._src.handlers.json_handler.MetricsHandler"


def read_json(path: PathLike) -> JsonValue:
    """Parse a JSON file, reporting a damaged file as `CorruptCheckpointError`."""
    try:
        if isinstance(path, ObjectPath):
            return json.loads(path.read_bytes())
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptCheckpointError(
            f"{path} is not valid JSON ({e}); the checkpoint is damaged: restore it from "
            "another copy or use an earlier step"
        ) from e


@attrs.frozen
class KeyEntry:
    """One level of a key path: the key as text and whether it indexes a sequence or a mapping."""

    key: str
    key_type: int


KeyPath = tuple[KeyEntry, ...]


def param_name(path: KeyPath) -> str:
    """The name of an array inside the item: its keys joined by '.' (Orbax's convention)."""
    return ".".join(entry.key for entry in path)


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
    def read(cls, item_dir: Location) -> TreeMetadata:
        """Read `<item_dir>/_METADATA`, detecting OCDBT when the flag is absent."""
        path = item_dir / TREE_METADATA_FILE
        if not path.is_file():
            raise NotACheckpointError(
                f"{item_dir} has no {TREE_METADATA_FILE}: it is not a pytree checkpointable; "
                "check the step directory and the checkpointable name"
            )
        doc = read_json(path)
        try:
            entries = []
            for record in doc["tree_metadata"].values():
                keys = tuple(
                    KeyEntry(str(k["key"]), int(k["key_type"])) for k in record["key_metadata"]
                )
                value = record["value_metadata"]
                shape = value.get("write_shape")
                entries.append(
                    TreeEntry(keys, str(value["value_type"]), tuple(shape) if shape else None)
                )
        except (KeyError, TypeError, AttributeError) as e:
            raise CorruptCheckpointError(
                f"{path} does not follow the tree-metadata schema (missing {e}); the checkpoint "
                "is damaged or was written by an unsupported tool"
            ) from e
        ocdbt = doc.get("use_ocdbt")
        if ocdbt is None:
            ocdbt = (item_dir / "manifest.ocdbt").exists()
        return cls(
            entries=tuple(entries),
            use_ocdbt=bool(ocdbt),
            use_zarr3=bool(doc.get("use_zarr3") or False),
            store_array_data_equal_to_fill_value=bool(
                doc.get("store_array_data_equal_to_fill_value", False)
            ),
            custom_metadata=doc.get("custom_metadata"),
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


def read_step_metadata(step_dir: PathLike) -> StepMetadata:
    """Read a step directory's metadata without touching array data.

    Missing `_CHECKPOINT_METADATA` (old Orbax checkpoints) gives handlers inferred from the
    subdirectories and no timestamps.

    Examples:
        >>> import tempfile, numpy as np
        >>> from tenure.io import save_pytree
        >>> d = tempfile.mkdtemp() + "/7"
        >>> save_pytree(d, {"w": np.zeros(2)}, custom_metadata={"run": "a"})
        >>> read_step_metadata(d).custom_metadata
        {'run': 'a'}
    """
    step: str | ObjectPath = (
        os.fspath(step_dir) if not isinstance(step_dir, ObjectPath) else step_dir
    )
    if isinstance(step, str) and "://" in step:
        step = ObjectPath.parse(step)
    # Opening files directly, without exists/is_file checks first: a manager opening a root
    # of many steps calls this once per step.
    path = _join(step, STEP_METADATA_FILE)
    try:
        doc: JsonValue = read_json(path)
    except (FileNotFoundError, NotADirectoryError):
        if not (step.is_dir() if isinstance(step, ObjectPath) else os.path.isdir(step)):
            raise NotACheckpointError(f"{step} does not exist or is not a directory") from None
        doc = {}
    if not isinstance(doc, dict):
        raise CorruptCheckpointError(f"{path} must hold a JSON object, found {type(doc).__name__}")
    handlers = doc.get("item_handlers")
    if not isinstance(handlers, dict):
        handlers = dict.fromkeys(_item_dirs(step), "")
    try:
        metrics = read_json(_join(step, METRICS_ITEM, METRICS_FILE))
    except (FileNotFoundError, NotADirectoryError):
        metrics = None
    custom = dict(doc.get("custom_metadata") or {})
    # Orbax folds unknown top-level keys into custom metadata; do the same.
    custom.update({k: v for k, v in doc.items() if k not in _STEP_FIELDS})
    return StepMetadata(
        item_handlers={str(k): str(v) for k, v in handlers.items()},
        init_timestamp_nsecs=doc.get("init_timestamp_nsecs"),
        commit_timestamp_nsecs=doc.get("commit_timestamp_nsecs"),
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
