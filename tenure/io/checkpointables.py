"""Step directories holding named checkpointables: pytrees, JSON values, PRNG keys, numpy RNGs."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from tenure.io.arrays import ArrayLayout, is_space_error, space_error
from tenure.io.commit import Processes, StepTransaction, write_text
from tenure.io.errors import (
    CheckpointExistsError,
    CorruptCheckpointError,
    InvalidKeyError,
    ItemNotFoundError,
    NotACheckpointError,
    TenureIOError,
)
from tenure.io.jsondoc import parse, plain_numbers, require_shallow
from tenure.io.metadata import (
    GRAIN_HANDLER,
    JSON_HANDLER,
    METRICS_HANDLER,
    PYTREE_HANDLER,
    JsonValue,
    StepMetadata,
    now_nsecs,
    read_json,
    read_step_metadata,
)
from tenure.io.pytree import (
    LoadPlan,
    StagedPytree,
    collector_paused,
    item_metadata,
    load_item,
    plan_item,
    stage,
    write_item,
)
from tenure.io.root import (
    DEFAULT_ITEM,
    ITEM_FILE,
    JSON_DATA_FILE,
    METRICS_FILE,
    METRICS_ITEM,
    PROCESS_STATES_PATTERN,
    TENURE_DIR,
    TREE_METADATA_FILE,
    V0_JSON_FILE,
    ChecksumRecord,
    FileChecksum,
    PathLike,
    check_file,
    check_recorded,
    file_checksums_file,
    is_committed,
    item_checksums,
    process_state_file,
    thinned_items,
    validate_item_name,
    write_checksum_record,
)
from tenure.io.storage import Location, as_location, is_object_store, list_dir
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
    """True when `value` is plain JSON; iterative, so any depth is safe to ask about."""
    stack = [value]
    while stack:
        node = stack.pop()
        if type(node) is list:
            stack.extend(node)
        elif type(node) is dict:
            if not all(isinstance(k, str) for k in node):
                return False
            stack.extend(node.values())
        elif not (node is None or type(node) in (str, int, float, bool)):
            return False
    return True


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
    """One checkpointable after staging: a pytree, a JSON document, or (for a stateful
    object) the text of this process's state and whether the object gave it as bytes."""

    kind: str
    pytree: StagedPytree | None = None
    document: JsonValue = None
    state_type: str = ""


def is_stateful(value: Any) -> bool:
    """True for an object checkpointed through its state: it has `get_state()` and
    `set_state(state)`, as Grain's iterators do."""
    return callable(getattr(value, "get_state", None)) and callable(
        getattr(value, "set_state", None)
    )


@attrs.frozen
class _TakenState:
    """The state of a stateful object, taken when the save was asked for."""

    state: Any

    def get_state(self) -> Any:
        return self.state

    def set_state(self, state: Any) -> None:
        raise TypeError("a state taken for a save is not restored into")


def take_states(checkpointables: Mapping[str, Any]) -> dict[str, Any]:
    """`checkpointables` with each stateful object replaced by its state as of now, so that a
    save staged in the background records the position the caller saved at (an iterator may
    move on before staging starts)."""
    return {
        name: _TakenState(copy.deepcopy(value.get_state())) if is_stateful(value) else value
        for name, value in checkpointables.items()
    }


def _stage_state(name: str, value: Any) -> _Staged:
    state = value.get_state()
    if isinstance(state, bytes):
        try:
            return _Staged("stateful", document=state.decode("utf-8"), state_type="bytes")
        except UnicodeDecodeError:
            raise TenureIOError(
                f"checkpointable {name!r}: get_state() returned bytes that are not UTF-8 text; "
                "tenure stores states as text, as Grain does: return JSON (or its bytes)"
            ) from None
    if not _is_json(state):
        raise TenureIOError(
            f"checkpointable {name!r}: get_state() returned a {type(state).__name__}, which is "
            "neither JSON (dicts with str keys, lists, str, numbers, None) nor bytes; return one"
        )
    require_shallow(state, f"the state of checkpointable {name!r}")
    return _Staged("stateful", document=json.dumps(state, indent=4), state_type="json")


def _stage(name: str, value: Any, processes: Processes, copy: bool, custom: JsonValue) -> _Staged:
    if is_stateful(value):
        return _stage_state(name, value)
    if isinstance(value, np.random.Generator):
        state = value.bit_generator.state
        if state["bit_generator"] not in _BIT_GENERATORS:
            raise TenureIOError(
                f"checkpointable {name!r}: bit generator {state['bit_generator']!r} is not one of "
                f"{sorted(_BIT_GENERATORS)}; use one of those"
            )
        return _Staged("numpy_generator", document=_jsonable(state))
    if _is_json(value) and name != DEFAULT_ITEM:
        require_shallow(value, f"checkpointable {name!r}")
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

    def run(self) -> StepMetadata:
        """Write every item into the temporary directory, then commit it; return the step
        metadata as written."""
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
                        item_dir,
                        staged.pytree,
                        self.layout,
                        self.processes,
                        txn.syncer.submit,
                        kind=staged.kind,
                    )
                    handlers[name] = PYTREE_HANDLER
                elif staged.kind == "stateful":
                    _write_state_item(item_dir, staged, self.processes)
                    handlers[name] = GRAIN_HANDLER
                elif self.processes.primary:
                    # Orbax v1 reads data.json, v0's JsonCheckpointHandler reads `metadata`.
                    _write_json_item(
                        item_dir,
                        {
                            JSON_DATA_FILE: staged.document,
                            V0_JSON_FILE: staged.document,
                            f"{TENURE_DIR}/{ITEM_FILE}": {"format_version": 1, "kind": staged.kind},
                        },
                    )
                    handlers[name] = JSON_HANDLER
            if self.metrics is not None and self.processes.primary:
                _write_json_item(txn.tmp / METRICS_ITEM, {METRICS_FILE: self.metrics})
                handlers[METRICS_ITEM] = METRICS_HANDLER
            return txn.commit(
                StepMetadata(item_handlers=handlers, custom_metadata=self.custom_metadata)
            )
        except BaseException as e:
            txn.abort()
            if isinstance(e, Exception) and not isinstance(e, TenureIOError) and is_space_error(e):
                raise space_error(self.step_dir, e) from e
            raise


def _write_json_item(item_dir: Location, documents: Mapping[str, JsonValue]) -> None:
    """Write JSON files into an item, then the record of their checksums."""
    files = {}
    for name, doc in documents.items():
        text = json.dumps(doc)
        write_text(item_dir / name, text)
        files[name] = FileChecksum.of(text.encode())
    write_checksum_record(item_dir / TENURE_DIR / file_checksums_file(0), ChecksumRecord(files))


def _write_state_item(item_dir: Location, staged: _Staged, processes: Processes) -> None:
    """Every process writes its own state file, and the record of what it wrote."""
    documents = {process_state_file(processes.index, processes.count): staged.document}
    if processes.primary:
        documents[f"{TENURE_DIR}/{ITEM_FILE}"] = json.dumps(
            {"format_version": 1, "kind": staged.kind, "state_type": staged.state_type}
        )
    files = {}
    for name, text in documents.items():
        write_text(item_dir / name, text)
        files[name] = FileChecksum.of(text.encode())
    write_checksum_record(
        item_dir / TENURE_DIR / file_checksums_file(processes.index),
        ChecksumRecord(files, processes.count),
    )


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
    # Checked before anything is written: JSON nested this deep could not be read back.
    require_shallow(metrics, "metrics")
    require_shallow(custom_metadata, "custom_metadata")
    metrics = plain_numbers(metrics, "metrics")
    items = {}
    for name, value in checkpointables.items():
        validate_item_name(name)
        if name == METRICS_ITEM:
            raise TenureIOError("'metrics' is reserved: pass metrics with metrics=...")
        items[name] = _stage(name, value, procs, copy, None)
    layout = layout or _default_layout(procs)
    if not layout.ocdbt:
        _require_file_names(items)
    return PreparedSave(
        step_dir,
        items,
        metrics,
        dict(custom_metadata or {}),
        layout,
        procs,
        now_nsecs() if init_timestamp_nsecs is None else init_timestamp_nsecs,
        replace,
    )


_MAX_NAME_BYTES = 255  # a file name's limit on common file systems


def _require_file_names(items: Mapping[str, _Staged]) -> None:
    """Refuse, before anything is written, an array name too long to be a directory."""
    for staged in items.values():
        for write in staged.pytree.writes if staged.pytree is not None else ():
            if len(write.name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
                raise InvalidKeyError(
                    f"{write.name[:60]!r}... is longer than the {_MAX_NAME_BYTES} bytes a "
                    "directory name may have: shorten its keys, or save with "
                    "ArrayLayout(ocdbt=True), which stores names inside its database"
                )


def _default_layout(processes: Processes) -> ArrayLayout:
    # OCDBT keeps the files of an item few whatever the number of arrays (object stores charge
    # per request, file systems per file), and its small arrays skip tensorstore's per-array
    # cost; it is single-process for now, so several processes keep one directory per array.
    return ArrayLayout(ocdbt=processes.count == 1)


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


def item_kind(item_dir: Location) -> str:
    """What checkpointable `item_dir` holds: "pytree", "bare_leaf", "json" or
    "numpy_generator" (tenure's record, checked against its checksum, says when present)."""
    return _item_kind(item_dir)[0]


def _item_kind(item_dir: Location) -> tuple[str, dict[str, Any] | None]:
    """`item_kind`, and tenure's checked record of the item when there is one (a load uses
    it rather than parse it again)."""
    recorded = item_checksums(item_dir)
    name = f"{TENURE_DIR}/{ITEM_FILE}"
    try:
        record = read_json(item_dir / name, recorded, name)
    except (FileNotFoundError, NotADirectoryError):
        record = None
    if isinstance(record, dict) and record.get("kind") in _KINDS:
        return str(record["kind"]), record
    if record is not None:
        raise CorruptCheckpointError(
            f"{item_dir / name} names no known kind of checkpointable: it is damaged; "
            "restore the step from another copy"
        )
    if (item_dir / TREE_METADATA_FILE).is_file():
        return "pytree", None
    if list_dir(item_dir, PROCESS_STATES_PATTERN):
        return "stateful", None  # written by Orbax with Grain's handler
    return "json", None


_KINDS = ("pytree", "bare_leaf", "json", "numpy_generator", "stateful")


def _load_state(item_dir: Location, abstract: Any) -> Any:
    """This process's saved state; given a stateful object, restored into it (in place)."""
    recorded = item_checksums(item_dir)
    if recorded is not None:
        check_recorded(item_dir, recorded, set())
    processes = Processes()
    file_name = process_state_file(processes.index, processes.count)
    path = item_dir / file_name
    try:
        data = check_file(path, path.read_bytes(), recorded, file_name)
    except (FileNotFoundError, NotADirectoryError):
        saved = sorted(p.name for p in list_dir(item_dir, PROCESS_STATES_PATTERN))
        raise NotACheckpointError(
            f"{item_dir} has no state for process {processes.index} of {processes.count} "
            f"(it has {saved}): each process restores the state it saved, so restore with "
            "the process count that saved it"
        ) from None
    state_type = _state_type(item_dir, recorded, abstract)
    if state_type == "bytes":
        state: Any = data
    else:
        state = parse(data, path)
    if abstract is None:
        return state
    if not is_stateful(abstract):
        raise TenureIOError(
            f"{item_dir} holds the state of a stateful object (e.g. a Grain iterator): pass "
            f"an object with set_state(state) to restore it into, or None; got "
            f"{type(abstract).__name__}"
        )
    abstract.set_state(state)
    # Grain's handler starts a restored iterator's prefetching; so does tenure.
    start = getattr(abstract, "start_prefetch", None)
    if callable(start):
        start()
    return abstract


def _state_type(item_dir: Location, recorded: dict[str, FileChecksum] | None, abstract: Any) -> str:
    """Whether the state goes back as bytes or JSON: tenure's record says; for Orbax's items,
    the object being restored says, by the type of its own current state."""
    name = f"{TENURE_DIR}/{ITEM_FILE}"
    try:
        record = read_json(item_dir / name, recorded, name)
    except (FileNotFoundError, NotADirectoryError):
        record = None
    if isinstance(record, dict) and record.get("state_type") in ("json", "bytes"):
        return str(record["state_type"])
    if record is not None:
        raise CorruptCheckpointError(
            f"{item_dir / name} does not say how the state was given: it is damaged; "
            "restore the step from another copy"
        )
    if is_stateful(abstract) and isinstance(abstract.get_state(), bytes):
        return "bytes"
    return "json"


def _json_document(item_dir: Location) -> JsonValue:
    """The document of a JSON item; with a checksum record, every recorded file is checked."""
    recorded = item_checksums(item_dir)
    for file_name in (JSON_DATA_FILE, V0_JSON_FILE, METRICS_FILE):
        try:
            document = read_json(item_dir / file_name, recorded, file_name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if recorded is not None:
            check_recorded(item_dir, recorded, {file_name})
        return document
    raise NotACheckpointError(f"{item_dir} holds neither a pytree nor a JSON document")


def _item_dir(step_dir: Location, name: str) -> Location:
    """The directory of checkpointable `name`; an error naming the ones the step has."""
    item_dir = step_dir / validate_item_name(name)
    if not item_dir.is_dir():
        available = read_step_metadata(step_dir).item_names
        thinned = thinned_items(step_dir)
        why = (
            " (retention removed it from this step: its policy keeps only some items here)"
            if name in thinned
            else ""
        )
        raise ItemNotFoundError(
            f"{step_dir} has no checkpointable {name!r}{why}; it has {sorted(available)}: "
            "load one of those, or another step",
            available=available,
            thinned=thinned,
        )
    return item_dir


def load_one(step_dir: Location, name: str, abstract: Any = None, *, partial: bool = False) -> Any:
    """Read checkpointable `name` of a committed step, shaped like `abstract` when given
    (a pytree target must name every saved key unless `partial`)."""
    item_dir = _item_dir(step_dir, name)
    # Parsing the item's record allocates an object per leaf or more, and so does the load:
    # one pause for both, so that the collector does not pass over the record in between
    # (1-3 ms of a 4,096-leaf load, more in a process holding many objects), and the record
    # is freed before it resumes.
    with collector_paused():
        return _load_one(item_dir, abstract, partial)


def _load_one(item_dir: Location, abstract: Any, partial: bool) -> Any:
    kind, record = _item_kind(item_dir)
    if kind == "stateful":
        return _load_state(item_dir, abstract)
    if kind == "pytree":
        return load_item(item_dir, abstract, partial=partial, item_doc=record)
    if kind == "bare_leaf":
        target = None if abstract is None else {_BARE_LEAF: abstract}
        return load_item(item_dir, target, item_doc=record)[_BARE_LEAF]
    document = _json_document(item_dir)
    if kind != "numpy_generator":
        return document
    try:
        state = _from_jsonable(document)
        bit_generator = _BIT_GENERATORS.get(str(state.get("bit_generator")))
        if bit_generator is not None:
            generator = bit_generator()
            generator.state = state
            return np.random.Generator(generator)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise CorruptCheckpointError(
            f"{item_dir}: the saved generator state cannot be restored ({e}); the checkpoint "
            "is damaged; restore it from another copy"
        ) from e
    raise CorruptCheckpointError(
        f"{item_dir}: unknown bit generator {state.get('bit_generator')!r}; expected one "
        f"of {sorted(_BIT_GENERATORS)}"
    )


def pytree_item_metadata(directory: PathLike, name: str) -> Any:
    """The tree of `jax.ShapeDtypeStruct`s of pytree checkpointable `name`."""
    return item_metadata(require_step(directory) / validate_item_name(name))


def load_many(
    directory: PathLike, abstract: Mapping[str, Any] | None, *, partial: bool = False
) -> dict[str, Any]:
    """Read the named checkpointables (all of them when `abstract` is None); checkpointables
    left out of `abstract` are not read, whatever `partial` says."""
    step_dir = require_step(directory)
    if abstract is None:
        names = read_step_metadata(step_dir, check=True).item_names
        return {name: load_one(step_dir, name) for name in names}
    return {
        name: load_one(step_dir, name, target, partial=partial) for name, target in abstract.items()
    }


def plan_one(directory: PathLike, name: str, abstract: Any, *, partial: bool) -> LoadPlan:
    """The plan of loading pytree checkpointable `name` shaped like `abstract`."""
    step_dir = require_step(directory)
    item_dir = _item_dir(step_dir, name)
    kind = item_kind(item_dir)
    if kind == "bare_leaf":
        return plan_item(item_dir, None if abstract is None else {_BARE_LEAF: abstract})
    if kind != "pytree":
        raise NotACheckpointError(
            f"{item_dir} holds a {kind} checkpointable, not a pytree: only pytree loads read "
            "arrays, so only they have a plan"
        )
    return plan_item(item_dir, abstract, partial=partial)
