"""Step directories holding named checkpointables: pytrees, JSON values, PRNG keys, numpy RNGs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from tenure.io.arrays import ArrayLayout, is_space_error, space_error
from tenure.io.commit import Processes, StepTransaction, write_json
from tenure.io.errors import (
    CheckpointExistsError,
    CorruptCheckpointError,
    NotACheckpointError,
    TenureIOError,
)
from tenure.io.metadata import (
    JSON_HANDLER,
    METRICS_HANDLER,
    PYTREE_HANDLER,
    JsonValue,
    StepMetadata,
    now_nsecs,
    read_json,
    read_step_metadata,
)
from tenure.io.pytree import ITEM_FILE, StagedPytree, item_metadata, load_item, stage, write_item
from tenure.io.root import (
    DEFAULT_ITEM,
    JSON_DATA_FILE,
    METRICS_FILE,
    METRICS_ITEM,
    TENURE_DIR,
    TREE_METADATA_FILE,
    V0_JSON_FILE,
    PathLike,
    is_committed,
    validate_item_name,
)
from tenure.io.storage import Location, as_location, is_object_store
from tenure.io.tree import leaf_kind

# Bit generators whose state is plain data; only these are rebuilt, so loading runs no code.
_BIT_GENERATORS: dict[str, type[np.random.BitGenerator]] = {
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "MT19937": np.random.MT19937,
    "Philox": np.random.Philox,
    "SFC64": np.random.SFC64,
}
_BARE_LEAF = "value"


def _is_json(value: Any) -> bool:
    if value is None or type(value) in (str, int, float, bool):
        return True
    if type(value) is list:
        return all(_is_json(v) for v in value)
    if type(value) is dict:
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value.item() if isinstance(value, np.generic) else value


def _from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        return {k: _from_jsonable(v) for k, v in value.items()}
    return value


@attrs.frozen
class _Staged:
    """One checkpointable after staging: either a pytree or a JSON document."""

    kind: str
    pytree: StagedPytree | None = None
    document: JsonValue = None


def _stage(name: str, value: Any, processes: Processes, copy: bool, custom: JsonValue) -> _Staged:
    if isinstance(value, np.random.Generator):
        state = value.bit_generator.state
        if state["bit_generator"] not in _BIT_GENERATORS:
            raise TenureIOError(
                f"checkpointable {name!r}: bit generator {state['bit_generator']!r} is not one of "
                f"{sorted(_BIT_GENERATORS)}; use one of those"
            )
        return _Staged("numpy_generator", document=_jsonable(state))
    if _is_json(value) and name != DEFAULT_ITEM:
        return _Staged("json", document=value)
    if leaf_kind(value) is not None:
        tree = {_BARE_LEAF: value}
        return _Staged(
            "bare_leaf", pytree=stage(tree, processes, copy=copy, custom_metadata=custom)
        )
    return _Staged("pytree", pytree=stage(value, processes, copy=copy, custom_metadata=custom))


@attrs.frozen
class PreparedSave:
    """A save whose data is staged in host memory; `run` writes and commits it."""

    step_dir: Location
    items: dict[str, _Staged]
    metrics: JsonValue
    custom_metadata: dict[str, JsonValue]
    layout: ArrayLayout
    processes: Processes
    init_timestamp_nsecs: int
    replace: bool = False

    def run(self) -> None:
        """Write every item into the temporary directory, then commit it."""
        txn = StepTransaction(
            self.step_dir, self.processes, self.init_timestamp_nsecs, replace=self.replace
        )
        txn.begin()
        try:
            handlers: dict[str, str] = {}
            for name, staged in self.items.items():
                item_dir = txn.tmp / name
                if staged.pytree is not None:
                    write_item(
                        item_dir, staged.pytree, self.layout, self.processes, txn.syncer.submit
                    )
                    handlers[name] = PYTREE_HANDLER
                elif self.processes.primary:
                    write_json(item_dir / JSON_DATA_FILE, staged.document)
                    # Orbax v1 reads data.json, v0's JsonCheckpointHandler reads `metadata`.
                    write_json(item_dir / V0_JSON_FILE, staged.document)
                    handlers[name] = JSON_HANDLER
                if self.processes.primary:
                    write_json(item_dir / TENURE_DIR / ITEM_FILE, _item_record(staged, item_dir))
            if self.metrics is not None and self.processes.primary:
                write_json(txn.tmp / METRICS_ITEM / METRICS_FILE, self.metrics)
                handlers[METRICS_ITEM] = METRICS_HANDLER
            txn.commit(StepMetadata(item_handlers=handlers, custom_metadata=self.custom_metadata))
        except BaseException as e:
            txn.abort()
            if isinstance(e, Exception) and not isinstance(e, TenureIOError) and is_space_error(e):
                raise space_error(self.step_dir, e) from e
            raise


def _item_record(staged: _Staged, item_dir: Location) -> JsonValue:
    if staged.pytree is None:
        return {"format_version": 1, "kind": staged.kind}
    record = read_json(item_dir / TENURE_DIR / ITEM_FILE)
    record["kind"] = staged.kind
    return record


def prepare_save(
    directory: PathLike,
    checkpointables: Mapping[str, Any],
    *,
    custom_metadata: dict[str, JsonValue] | None,
    metrics: JsonValue,
    layout: ArrayLayout | None,
    processes: Processes | None,
    copy: bool,
    init_timestamp_nsecs: int | None = None,
    replace: bool = False,
) -> PreparedSave:
    """Validate names and stage every checkpointable (the blocking part of any save).
    With `replace`, a committed step is replaced once the new one is committed."""
    step_dir = as_location(directory)
    procs = processes or Processes()
    if not replace and is_committed(step_dir):
        raise CheckpointExistsError(
            f"{step_dir} is already a committed checkpoint; save under another step"
        )
    if not checkpointables:
        raise TenureIOError("nothing to save: pass at least one checkpointable")
    items = {}
    for name, value in checkpointables.items():
        validate_item_name(name)
        if name == METRICS_ITEM:
            raise TenureIOError("'metrics' is reserved: pass metrics with metrics=...")
        items[name] = _stage(name, value, procs, copy, None)
    return PreparedSave(
        step_dir,
        items,
        metrics,
        dict(custom_metadata or {}),
        layout or _default_layout(step_dir, procs),
        procs,
        now_nsecs() if init_timestamp_nsecs is None else init_timestamp_nsecs,
        replace,
    )


def _default_layout(step_dir: Location, processes: Processes) -> ArrayLayout:
    # Object stores charge per request and list slowly, so they get OCDBT's few large
    # objects; OCDBT is single-process for now, so several processes keep one array each.
    return ArrayLayout(ocdbt=is_object_store(step_dir) and processes.count == 1)


def require_step(directory: PathLike) -> Location:
    """`directory` as a location, if it is a committed step; else `NotACheckpointError`."""
    step_dir = as_location(directory)
    if not is_committed(step_dir):
        if is_object_store(step_dir):
            # A GET in a missing bucket looks like a missing key; a listing says which it is.
            step_dir.is_dir()
        raise NotACheckpointError(
            f"{step_dir} is not a committed checkpoint (missing, or an unfinished save); "
            "pass a committed step directory"
        )
    return step_dir


def _item_kind(item_dir: Location) -> str:
    record_path = item_dir / TENURE_DIR / ITEM_FILE
    if record_path.is_file():
        return str(read_json(record_path).get("kind", "pytree"))
    if (item_dir / TREE_METADATA_FILE).is_file():
        return "pytree"
    return "json"


def load_one(step_dir: Location, name: str, abstract: Any = None) -> Any:
    """Read checkpointable `name` of a committed step, shaped like `abstract` when given."""
    item_dir = step_dir / validate_item_name(name)
    if not item_dir.is_dir():
        raise NotACheckpointError(
            f"{step_dir} has no checkpointable {name!r}; it has "
            f"{sorted(read_step_metadata(step_dir).item_names)}"
        )
    kind = _item_kind(item_dir)
    if kind == "pytree":
        return load_item(item_dir, abstract)
    if kind == "bare_leaf":
        target = None if abstract is None else {_BARE_LEAF: abstract}
        return load_item(item_dir, target)[_BARE_LEAF]
    for file_name in (JSON_DATA_FILE, V0_JSON_FILE, METRICS_FILE):
        if (item_dir / file_name).is_file():
            document = read_json(item_dir / file_name)
            break
    else:
        raise NotACheckpointError(f"{item_dir} holds neither a pytree nor a JSON document")
    if kind != "numpy_generator":
        return document
    state = _from_jsonable(document)
    bit_generator = _BIT_GENERATORS.get(str(state.get("bit_generator")))
    if bit_generator is None:
        raise CorruptCheckpointError(
            f"{item_dir}: unknown bit generator {state.get('bit_generator')!r}; expected one "
            f"of {sorted(_BIT_GENERATORS)}"
        )
    generator = bit_generator()
    generator.state = state
    return np.random.Generator(generator)


def pytree_item_metadata(directory: PathLike, name: str) -> Any:
    """The tree of `jax.ShapeDtypeStruct`s of pytree checkpointable `name`."""
    return item_metadata(require_step(directory) / validate_item_name(name))


def load_many(directory: PathLike, abstract: Mapping[str, Any] | None) -> dict[str, Any]:
    """Read the named checkpointables (all of them when `abstract` is None)."""
    step_dir = require_step(directory)
    if abstract is None:
        names = read_step_metadata(step_dir).item_names
        return {name: load_one(step_dir, name) for name in names}
    return {name: load_one(step_dir, name, target) for name, target in abstract.items()}
