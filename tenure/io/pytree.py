"""One pytree checkpointable: staging its leaves, writing its item directory, reading it back."""

from __future__ import annotations

import collections
import contextlib
import fnmatch
import gc
import json
import math
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import jax
import numpy as np
import tensorstore as ts

from tenure.io import shardings
from tenure.io.arrays import (
    ArrayLayout,
    ArrayWrite,
    Index,
    LocatedBatch,
    LocatedValues,
    PackedArray,
    PackedRecord,
    PackedSpans,
    RawArray,
    Region,
    ValueIndex,
    WholeForm,
    WrittenArrays,
    aligned_empty,
    check_read_size,
    manifest_crc32,
    numpy_dtype,
    open_database,
    open_for_read,
    read_pool,
    region,
    resolve_read,
    tensorstore_name,
    write_arrays,
    zarr3_dtype,
)
from tenure.io.commit import Processes, write_text
from tenure.io.devices import put_on_device
from tenure.io.errors import (
    CorruptCheckpointError,
    InvalidKeyError,
    StructureMismatchError,
    TenureIOError,
    TopologyMismatchError,
    UnsupportedLeafError,
)
from tenure.io.metadata import (
    JsonValue,
    KeyPath,
    TreeEntry,
    TreeMetadata,
    display_path,
    param_name,
    read_json,
)
from tenure.io.root import (
    ARRAY_METADATAS_DIR,
    CHECKSUMS_PATTERN,
    ITEM_FILE,
    SHARDING_FILE,
    STEP_CHECKSUMS_FILE,
    STRINGS_FILE,
    TENURE_DIR,
    TREE_METADATA_FILE,
    ZARR_METADATA_FILE,
    ChecksumRecord,
    FileChecksum,
    array_metadatas_file,
    check_file,
    check_recorded,
    checksums_file,
    file_checksums_file,
    item_record,
    read_ahead,
    write_checksum_record,
)
from tenure.io.storage import Location, context, list_dir, new_context
from tenure.io.tree import (
    JAX,
    KEY,
    NUMPY,
    NUMPY_SCALAR,
    PY_SCALARS,
    STRING,
    FlatTree,
    StructureIndex,
    build_from_entries,
    build_from_structure,
    children,
    dict_key_text,
    flatten,
    index_structure,
    leaf_kind,
    leaf_kinds,
    validate_structure,
)


@attrs.frozen
class StagedPytree:
    """A pytree ready to write: host buffers of this process's pieces, plus what to record."""

    flat: FlatTree
    writes: tuple[ArrayWrite, ...]
    strings: dict[str, str]
    shardings: dict[str, str]
    key_impls: dict[str, str]
    custom_metadata: JsonValue
    device_arrays: frozenset[str]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector, unless another thread already has.

    Saving or loading thousands of leaves allocates objects by the hundred thousand, which
    triggers the collector's passes over every live object again and again: a third of a load's
    time. Nothing here creates cycles that must be freed promptly; they are collected after.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _host(data: Any, copy: bool) -> np.ndarray:
    return np.array(data, copy=True) if copy else np.asarray(data)


def stage(
    tree: Any, processes: Processes, *, copy: bool, custom_metadata: JsonValue = None
) -> StagedPytree:
    """Flatten `tree` and take host views (or copies, when the caller keeps mutating) of its data.

    Only pieces this process owns are kept: replica 0 of each shard on its own devices, and
    host values (numpy, scalars, strings) on the primary process.
    """
    with collector_paused():
        return _stage(tree, processes, copy=copy, custom_metadata=custom_metadata)


def _stage(
    tree: Any, processes: Processes, *, copy: bool, custom_metadata: JsonValue
) -> StagedPytree:
    flat = flatten(tree)
    writes: list[ArrayWrite] = []
    strings: dict[str, str] = {}
    recorded_shardings: dict[str, str] = {}
    key_impls: dict[str, str] = {}
    for leaf in flat.leaves:
        if leaf.kind == STRING:
            strings[leaf.name] = leaf.value
            continue
        if leaf.kind in (JAX, KEY):
            array = leaf.value
            if leaf.kind == KEY:
                key_impls[leaf.name] = str(jax.random.key_impl(array))
                array = jax.random.key_data(array)
            shape = tuple(array.shape)
            sharding = array.sharding
            # jax arrays are immutable, so a view is a safe snapshot: on CPU it keeps the
            # buffer alive (a donation then copies instead of reusing it), and on an
            # accelerator np.asarray is the device-to-host copy itself.
            pieces: tuple[tuple[Index, np.ndarray], ...]
            if type(sharding) is jax.sharding.SingleDeviceSharding:
                # Its one shard is the whole array (replica 0, indexed as jax indexes it):
                # taken without building jax's shard objects, for each of thousands of leaves.
                device: Any
                (device,) = sharding.device_set
                mine = device.process_index == processes.index
                pieces = (((slice(None),) * len(shape), np.asarray(array)),) if mine else ()
                chunk = shape
            else:
                pieces = tuple(
                    (s.index, np.asarray(s.data))
                    for s in array.addressable_shards
                    if s.replica_id == 0 and s.device.process_index == processes.index
                )
                chunk = tuple(sharding.shard_shape(shape))
            # For keys, the sharding of their data, as Orbax records it.
            recorded = shardings.to_json(sharding)
            if recorded is not None:
                recorded_shardings[leaf.name] = recorded
            writes.append(ArrayWrite(leaf.name, shape, np.dtype(array.dtype), chunk, pieces))
            continue
        host = _host(leaf.value, copy and leaf.kind == NUMPY)
        full = tuple(slice(0, n) for n in host.shape)
        pieces = ((full, host),) if processes.primary else ()
        writes.append(ArrayWrite(leaf.name, host.shape, host.dtype, host.shape, pieces))
    return StagedPytree(
        flat,
        tuple(writes),
        strings,
        recorded_shardings,
        key_impls,
        custom_metadata,
        frozenset(leaf.name for leaf in flat.leaves if leaf.kind in (JAX, KEY)),
    )


def write_item(
    item_dir: Location,
    staged: StagedPytree,
    layout: ArrayLayout,
    processes: Processes,
    written: Callable[[Location], None] | None = None,
    kind: str = "pytree",
) -> None:
    """Write arrays, then the item's metadata files (shared ones from the primary only), then
    this process's record of every file's checksum.

    `written` gets each array directory as soon as its data is written (see `write_arrays`).
    `kind` is what tenure's own record says the item holds.
    """
    if layout.ocdbt and processes.count > 1:
        raise TenureIOError(
            "the OCDBT layout is single-process for now (its per-process databases would need "
            "a merge); save with ArrayLayout(ocdbt=False) when running several processes"
        )
    item_dir.mkdir(parents=True, exist_ok=True)
    with collector_paused():
        _write_item(item_dir, staged, layout, processes, written, kind)


def _write_item(
    item_dir: Location,
    staged: StagedPytree,
    layout: ArrayLayout,
    processes: Processes,
    written: Callable[[Location], None] | None,
    kind: str,
) -> None:
    arrays = write_arrays(
        item_dir, staged.writes, layout, written=written, primary=processes.primary
    )
    files = {path: FileChecksum.of(data) for path, data in arrays.metadata.items()}

    def put(name: str, doc: JsonValue) -> None:
        text = json.dumps(doc)
        write_text(item_dir / name, text)
        files[name] = FileChecksum.of(text.encode())

    put(
        array_metadatas_file(processes.index),
        {
            "array_metadatas": [
                {
                    "array_metadata": {
                        "param_name": w.name,
                        "write_shape": list(w.chunk_shape),
                        "chunk_shape": [max(1, c) for c in w.chunk_shape],
                        "ext_metadata": (
                            {"random_key_impl": staged.key_impls[w.name]}
                            if w.name in staged.key_impls
                            else None
                        ),
                    }
                }
                for w in staged.writes
                # Orbax records only device arrays here; it reads anything listed as one.
                if w.name in staged.device_arrays
            ]
        },
    )
    put(f"{TENURE_DIR}/{checksums_file(processes.index)}", arrays.checksums)
    if processes.primary:
        _write_shared(item_dir, staged, layout, kind, arrays, put)
    write_checksum_record(
        item_dir / TENURE_DIR / file_checksums_file(processes.index),
        ChecksumRecord(files, processes.count, arrays.trailers),
    )


def _write_shared(
    item_dir: Location,
    staged: StagedPytree,
    layout: ArrayLayout,
    kind: str,
    arrays: WrittenArrays,
    put: Callable[[str, JsonValue], None],
) -> None:
    """The primary's files: strings, shardings, tenure's record, and `_METADATA` last."""
    shapes = {w.name: w.chunk_shape for w in staged.writes}
    entries = [
        TreeEntry(
            leaf.path, leaf.value_type, shapes.get(leaf.name) if leaf.kind in (JAX, KEY) else None
        )
        for leaf in staged.flat.leaves
    ]
    meta = TreeMetadata(
        entries=tuple(sorted([*entries, *staged.flat.empties], key=lambda e: e.name)),
        use_ocdbt=layout.ocdbt,
        use_zarr3=True,
        custom_metadata=staged.custom_metadata,
    )
    # A state's arrays share a few dtypes: each is named once.
    dtype_names = {dtype: zarr3_dtype(dtype) for dtype in {w.dtype for w in staged.writes}}
    if staged.strings:
        put(STRINGS_FILE, staged.strings)
    put(SHARDING_FILE, {shardings.sharding_key(k): v for k, v in staged.shardings.items()})
    put(
        f"{TENURE_DIR}/{ITEM_FILE}",
        {
            "format_version": 1,
            "kind": kind,
            "structure": staged.flat.structure,
            "key_impls": staged.key_impls,
            # What each array's metadata must say, checked on every load (inside OCDBT no
            # zarr.json of ours can be checksummed).
            "arrays": {w.name: [dtype_names[w.dtype], list(w.shape)] for w in staged.writes},
            "packed": {name: record.to_json() for name, record in arrays.packed.items()},
            **({"located": [r.to_json() for r in arrays.located]} if arrays.located else {}),
        },
    )
    put(TREE_METADATA_FILE, meta.to_json())


@attrs.frozen
class SavedItem:
    """What is known about a stored pytree item before reading any array.

    Opening an item reads every metadata file (checking each against the checksums tenure
    recorded, when it did) and rejects anything malformed, so that reading arrays later
    meets no surprise but damaged array data.
    """

    item_dir: Location
    meta: TreeMetadata
    structure: JsonValue
    kinds: dict[str, str]
    key_impls: dict[str, str]
    shardings: dict[str, str]
    strings: dict[str, str]
    by_name: dict[str, TreeEntry]
    crcs: dict[str, dict[Region, int]]
    recorded: dict[str, FileChecksum] | None
    arrays: dict[str, tuple[str, tuple[int, ...]]]
    trailers: dict[str, int]
    packed: dict[str, PackedRecord]
    located: tuple[LocatedValues, ...]

    @classmethod
    def open(cls, item_dir: Location, item_doc: dict[str, Any] | None = None) -> SavedItem:
        """Read and check the item's metadata files (tenure's, if present, and Orbax's);
        `item_doc`: tenure's item file, already read and checked."""
        record = item_record(item_dir)
        recorded = None if record is None else dict(record.files)
        if recorded is None and (item_dir.parent / STEP_CHECKSUMS_FILE).is_file():
            raise CorruptCheckpointError(
                f"{item_dir / TENURE_DIR} has no checksum record although tenure saved the "
                "step: the checkpoint is damaged; restore it from another copy"
            )
        meta = TreeMetadata.read(item_dir, recorded)
        files = _Files(item_dir, recorded)
        try:
            if item_doc is None:
                doc = files.json(f"{TENURE_DIR}/{ITEM_FILE}", {})
            else:
                doc = item_doc
                files.read.add(f"{TENURE_DIR}/{ITEM_FILE}")
            structure = doc.get("structure")
            kinds: dict[str, str] = {}
            if structure is not None:
                validate_structure(structure)
                kinds = leaf_kinds(structure)
            key_impls = _strings_map(doc.get("key_impls") or {})
            arrays = {
                str(name): (str(dtype), tuple([int(n) for n in shape]))
                for name, (dtype, shape) in (doc.get("arrays") or {}).items()
            }
            packed = {
                str(name): PackedRecord.from_json(record)
                for name, record in (doc.get("packed") or {}).items()
            }
            # One record per data file; a single record (not in a list) is an earlier save's.
            records = doc.get("located") or []
            located = tuple(
                LocatedValues.from_json(r)
                for r in ([records] if type(records) is dict else records)
            )
            saved_shardings = _strings_map(files.json(SHARDING_FILE, {}))
            strings = _strings_map(files.json(STRINGS_FILE, {}))
            crcs = _recorded_crcs(files)
            if "key_impls" not in doc:
                # Not recorded by tenure: Orbax records them with its array metadata. (Where
                # tenure recorded them, that file is still checked against its checksum.)
                key_impls = _orbax_key_impls(files)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CorruptCheckpointError(
                f"{item_dir}: a metadata file does not follow its schema ({type(e).__name__}: "
                f"{e}); the checkpoint is damaged; restore it from another copy"
            ) from e
        if recorded is not None:
            # Files this load does not otherwise read (Orbax's array metadata) are checked too,
            # so a load fails exactly when verify does.
            check_recorded(item_dir, recorded, files.read | _array_metadata_files(recorded))
        return cls(
            item_dir,
            meta,
            structure,
            kinds,
            key_impls,
            saved_shardings,
            strings,
            {e.name: e for e in meta.entries},
            crcs,
            recorded,
            arrays,
            {} if record is None else dict(record.trailers),
            packed,
            located,
        )

    def entry(self, path: KeyPath) -> TreeEntry | None:
        """The recorded entry at exactly `path`, if any."""
        return self.by_name.get(param_name(path)) if path else None

    def saved_sharding(self, name: str) -> jax.sharding.Sharding | None:
        """The sharding the array was saved with, when this machine can rebuild it."""
        text = self.shardings.get(shardings.sharding_key(name))
        return shardings.from_json(text) if text else None

    def array_metadata(self, name: str) -> bytes | None:
        """The checked bytes of array `name`'s `zarr.json`, when tenure recorded them."""
        path = f"{name}/{ZARR_METADATA_FILE}"
        if self.recorded is None or self.meta.use_ocdbt or path not in self.recorded:
            return None
        return check_file(self.item_dir / path, _read(self.item_dir / path), self.recorded, path)

    def check_array(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        """Raise `CorruptCheckpointError` unless the opened array `name` has the shape and
        dtype tenure recorded, and fits in memory (checked before anything is allocated)."""
        expected = self.arrays.get(name)
        if expected is not None:
            try:
                matches = expected == (tensorstore_name(np.dtype(dtype)), shape)
            except (TypeError, ValueError):
                matches = False
            if not matches:
                raise CorruptCheckpointError(
                    f"array {name!r} in {self.item_dir}: its metadata says {np.dtype(dtype).name} "
                    f"{shape}, but {expected[0]} {expected[1]} was saved; the array metadata is "
                    "damaged; restore the step from another copy"
                )
        check_read_size(self.item_dir, name, shape, dtype)


def _read(path: Location) -> bytes:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise CorruptCheckpointError(
            f"{path} is missing although its checksum was recorded at save time: the "
            "checkpoint is damaged; restore it from another copy"
        ) from None


def _array_metadata_files(recorded: dict[str, FileChecksum]) -> set[str]:
    """The recorded `zarr.json` files: each is checked when its array is opened."""
    return {name for name in recorded if name.endswith(f"/{ZARR_METADATA_FILE}")}


def _strings_map(doc: JsonValue) -> dict[str, str]:
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise TypeError("expected an object of strings")
    return dict(doc)


@attrs.define
class _Files:
    """An item's metadata files, checked against their recorded checksums when there are any."""

    item_dir: Location
    recorded: dict[str, FileChecksum] | None
    read: set[str] = attrs.field(factory=set)

    def names(self, folder: str, pattern: str) -> list[str]:
        """Paths (relative to the item) of the files in `folder` matching `pattern`."""
        if self.recorded is not None:
            return sorted(n for n in self.recorded if fnmatch.fnmatchcase(n, f"{folder}/{pattern}"))
        return [f"{folder}/{p.name}" for p in list_dir(self.item_dir / folder, pattern)]

    def json(self, name: str, default: JsonValue) -> JsonValue:
        """The parsed file `name`, or `default` when it does not exist (nor was recorded)."""
        self.read.add(name)
        try:
            return read_json(self.item_dir / name, self.recorded, name)
        except (FileNotFoundError, NotADirectoryError):
            return default


def _recorded_crcs(files: _Files) -> dict[str, dict[Region, int]]:
    """The crc32 tenure recorded for each written piece, by array name and region."""
    crcs: dict[str, dict[Region, int]] = {}
    for path in files.names(TENURE_DIR, CHECKSUMS_PATTERN):
        for name, pieces in files.json(path, {}).items():
            recorded = crcs.setdefault(str(name), {})
            for piece in pieces:
                bounds = tuple([(int(a), int(b)) for a, b in piece["index"]])
                recorded[bounds] = int(piece["crc32"])
    return crcs


def _orbax_key_impls(files: _Files) -> dict[str, str]:
    impls: dict[str, str] = {}
    for path in files.names(ARRAY_METADATAS_DIR, "*"):
        for record in files.json(path, {}).get("array_metadatas", []):
            meta = record.get("array_metadata", {})
            ext = meta.get("ext_metadata") or {}
            if "random_key_impl" in ext:
                impls[str(meta["param_name"])] = str(ext["random_key_impl"])
    return impls


@attrs.frozen
class LeafPlan:
    """How one saved array will be read: worked out from metadata alone, before any read."""

    path: KeyPath
    name: str
    kind: str
    target: Any
    shape: tuple[int, ...]
    saved_dtype: np.dtype[Any]
    cast: np.dtype[Any] | None
    # None: the array is read onto the host (numpy, scalars, or keys on the default device).
    sharding: jax.sharding.Sharding | None
    resharded: bool

    def bytes_per_process(self) -> dict[int, int]:
        """Bytes of saved data each process reads for this array."""
        itemsize = self.saved_dtype.itemsize
        if self.sharding is None or self.kind == KEY:
            size = int(np.prod(self.shape, dtype=np.int64)) * itemsize
            return dict.fromkeys(range(jax.process_count()), size)
        regions: dict[int, set[Region]] = {}
        for device, index in self.sharding.devices_indices_map(self.shape).items():
            full = _full(self.shape) if index is None else index
            process = int(getattr(device, "process_index", 0))
            regions.setdefault(process, set()).add(region(full, self.shape))
        return {
            p: sum(int(np.prod([b - a for a, b in r], dtype=np.int64)) * itemsize for r in rs)
            for p, rs in regions.items()
        }


class _Whole:
    """The placeholder of a leaf the reader's `LocatedBatch` reads whole (see
    `Reader._whole`): its number there, and the sharding of the one device it goes to
    (None: it is returned as numpy)."""

    __slots__ = ("number", "sharding")

    def __init__(self, number: int, sharding: jax.sharding.Sharding | None) -> None:
        self.number = number
        self.sharding = sharding


class _Pending:
    """A leaf being read, in three steps so that every check precedes every read (but the
    spans `Reader.read_ahead` starts) and all reads of a load overlap: `plan` (metadata only),
    `start` (issues reads), `resolve` (waits)."""

    def __init__(
        self,
        reader: Reader,
        path: KeyPath,
        kind: str,
        target: Any,
        numpy_default: bool,
        name: str,
    ) -> None:
        self._args = (path, kind, target, numpy_default, name)
        self.name = name
        self._reader = reader
        self._plan: LeafPlan | None = None
        self._finish: Callable[[], Any] | None = None

    def plan(self) -> LeafPlan:
        """Check the saved array against the target and decide how to read it."""
        if self._plan is None:
            self._plan = self._reader.plan(*self._args)
        return self._plan

    @property
    def started(self) -> bool:
        """True once this leaf's reads are issued."""
        return self._finish is not None

    def start(self) -> None:
        """Issue this leaf's reads without waiting for them."""
        if self._finish is None:
            self._finish = self._reader.start(self.plan())

    def resolve(self) -> Any:
        """Wait for the reads and return the leaf's value; let the reader issue more."""
        self.start()
        assert self._finish is not None
        value = self._finish()
        self._reader.finished(self)
        return value


# Bytes of array data a load keeps in flight: enough reads to keep a disk busy (64 MiB held
# a 1 GiB state of 64 MiB arrays to one read at a time: 1.9 s against 1.0 s at 128 MiB), while
# the buffers that tensorstore decodes from (as large as the data) stay a small part of a
# large state, whose peak memory then stays near the state itself.
_READ_WINDOW_BYTES = 128 * 2**20


def _mismatch(path: KeyPath, what: str) -> StructureMismatchError:
    return StructureMismatchError(
        f"{display_path(path)}: {what}; pass an abstract tree that matches the checkpoint "
        "(see pytree_metadata)"
    )


# Targets read onto devices (a tuple, not a union built at each leaf's test).
_DEVICE_TARGETS = (jax.ShapeDtypeStruct, jax.Array)


def _to_device(target: Any, numpy_default: bool, kind: str) -> bool:
    """Whether a leaf is read onto devices: its target is abstract or a jax array, or it has
    none and was saved as a jax array (and the caller did not ask for numpy)."""
    return isinstance(target, _DEVICE_TARGETS) or (
        target is None and not numpy_default and kind == JAX
    )


def _full(shape: tuple[int, ...]) -> Index:
    return tuple(slice(0, n) for n in shape)


@attrs.define
class Reader:
    """Reads leaves of one item: every open and read is issued before any is awaited."""

    item: SavedItem
    stores: dict[str, Any] = attrs.field(factory=dict)
    raws: dict[str, RawArray | PackedArray | None] = attrs.field(factory=dict)
    database: Any = None
    spans: PackedSpans | None = None
    batch: LocatedBatch | None = None  # the located arrays read together
    # Where the item's OCDBT index places each value, read when first needed.
    index: ValueIndex | None = None
    # An OCDBT database is opened afresh by each reader (see `new_context`).
    context: ts.Context = attrs.field(
        default=attrs.Factory(
            lambda self: new_context() if self.item.meta.use_ocdbt else context(), takes_self=True
        )
    )
    # The leaves read whole by `batch` (see `_whole`); None when the reader only plans.
    wholes: list[_Whole] | None = None
    matched: list[str] = attrs.field(factory=list)
    pending: list[_Pending] = attrs.field(factory=list)
    _queue: collections.deque[_Pending] = attrs.field(factory=collections.deque)
    _in_flight: dict[_Pending, int] = attrs.field(factory=dict)
    _in_flight_bytes: int = 0
    _placements: dict[tuple[str | None, Any, int], tuple[Any, bool]] = attrs.field(factory=dict)
    _default: jax.sharding.Sharding | None = None  # for leaves saved with no sharding
    # Whether each sharding (by identity) is one device of this process.
    _single: dict[int, bool] = attrs.field(factory=dict)

    def read_ahead(self, *, every: bool = False) -> None:
        """Start reading the spans that hold the values of the leaves the reader reads, or
        `every` span (before the target is matched, for a load of every saved array).

        The only reads issued before the checks of `plan_pending` and `_whole`: those take
        long for thousands of leaves, and the spans (small arrays' data, read whole however
        few of them a load needs) would otherwise be read after them. A failed check
        discards them.
        """
        if every:
            self._database()
            if self.spans is not None:
                self.spans.read()
        if self.batch is not None:
            self.batch.read()
        for raw in self.raws.values():
            if type(raw) is PackedArray:
                raw.read_ahead()

    def plan_pending(self) -> None:
        """Check every pending leaf (shapes, dtypes, devices) before any read is issued (but
        the spans read ahead)."""
        for leaf in self.pending:
            leaf.plan()

    def start_pending(self) -> None:
        """Issue the reads of pending leaves, in order, up to `_READ_WINDOW_BYTES` of data in
        flight; `finished` issues more as leaves are resolved."""
        if self.spans is not None:
            raws = [self.raws.get(leaf.name) for leaf in self.pending]
            pieces = sum(len(raw.crcs) for raw in raws if isinstance(raw, PackedArray))
            pieces += len(self.wholes or ())
            self.spans.views = 2 * pieces >= len(self.spans.by_key)
        self._queue.extend(self.pending)
        self._admit()

    def finished(self, leaf: _Pending) -> None:
        """`leaf` was resolved: its bytes are no longer in flight."""
        self._in_flight_bytes -= self._in_flight.pop(leaf, 0)
        self._admit()

    def _admit(self) -> None:
        while self._queue and (not self._in_flight or self._in_flight_bytes < _READ_WINDOW_BYTES):
            leaf = self._queue.popleft()
            if not leaf.started:
                plan = leaf.plan()
                leaf.start()
                size = math.prod(plan.shape) * plan.saved_dtype.itemsize
                self._in_flight[leaf] = size
                self._in_flight_bytes += size

    def store(self, name: str) -> Any:
        """Start opening array `name` with tensorstore (its metadata checked first)."""
        if name not in self.stores:
            self.raw(name)
            self.stores[name] = open_for_read(
                self.item.item_dir, name, self.item.meta, self.context
            )
        return self.stores[name]

    def opened(self, name: str) -> Any:
        """Array `name` opened with tensorstore."""
        return resolve_read(self.store(name), self.item.item_dir, name)

    def raw(self, name: str) -> RawArray | PackedArray | None:
        """The array `name` read without tensorstore, when it can be (see `RawArray` and
        `PackedArray`); None when tensorstore reads it."""
        if name not in self.raws:
            self.raws[name] = None
            crcs = self.item.crcs.get(name, {})
            item_dir = self.item.item_dir
            packed = self.item.packed.get(name)
            if packed is not None and crcs and self.item.meta.use_ocdbt:
                saved = self.item.arrays.get(name)
                if saved is None:
                    raise CorruptCheckpointError(
                        f"array {name!r} in {item_dir} is recorded as packed without its dtype "
                        "and shape: tenure's record is damaged; restore it from another copy"
                    )
                if self.index is None and isinstance(item_dir, Path):
                    self.index = ValueIndex(item_dir, self.context)
                self.raws[name] = PackedArray.open(
                    item_dir, name, self._database(), packed, saved, crcs, self.spans, self.index
                )
                return self.raws[name]
            # Reading the metadata checks it against its recorded checksum, for either path.
            metadata = self.item.array_metadata(name)
            plain = bool(crcs) and not self.item.meta.use_ocdbt and self.item.meta.use_zarr3
            # Raw reads open chunk files directly: local disks only.
            if plain and metadata is not None and isinstance(item_dir, Path):
                trailers = self.item.trailers
                self.raws[name] = RawArray.open(item_dir / name, crcs, trailers, metadata)
        return self.raws[name]

    def _database(self) -> Any:
        """The item's OCDBT database, opened once (with the spans of its located values)."""
        if self.database is None:
            item_dir = self.item.item_dir
            self.database = open_database(item_dir, self.context)
            if self.item.located and isinstance(item_dir, Path):
                if self.spans is None:
                    # Values located in another version of the database are not read.
                    manifest = manifest_crc32(item_dir)
                    located = [r for r in self.item.located if r.manifest in (None, manifest)]
                    self.spans = PackedSpans(item_dir, located)
                self.batch = LocatedBatch(item_dir, self.spans)
        return self.database

    def leaf(
        self, path: KeyPath, target: Any, *, numpy_default: bool, name: str | None = None
    ) -> Any:
        """A placeholder for the saved leaf at `path`, converted as `target` asks (`name`:
        its parameter name, when the caller has it)."""
        if name is None:
            name = param_name(path)
        entry = self.item.by_name.get(name) if path else None
        if entry is None:
            raise _mismatch(path, "the checkpoint has no value at this key")
        if entry.value_type == "string":
            value = self.item.strings.get(name)
            if value is None:
                raise CorruptCheckpointError(
                    f"{self.item.item_dir}: the string at {display_path(path)} is missing from "
                    f"{STRINGS_FILE}; the checkpoint is damaged; restore it from another copy"
                )
            self.matched.append(name)
            return value
        if not entry.is_array:
            raise _mismatch(path, f"the checkpoint holds an empty {entry.value_type} here")
        kind = self.item.kinds.get(name)
        if kind is None:
            kind = {"jax.Array": JAX, "np.ndarray": NUMPY}.get(entry.value_type, "scalar")
            if kind == JAX and name in self.item.key_impls:
                kind = KEY
        if self.wholes is not None and kind in (JAX, NUMPY):
            whole = self._whole(path, target, numpy_default, kind, name)
            if whole is not None:
                self.matched.append(name)
                self.wholes.append(whole)
                return whole
        if self.raw(name) is None:
            self.store(name)
        self.matched.append(name)
        self.pending.append(_Pending(self, path, kind, target, numpy_default, name))
        return self.pending[-1]

    def _whole(
        self, path: KeyPath, target: Any, numpy_default: bool, kind: str, name: str
    ) -> _Whole | None:
        """The placeholder of array `name` when the reader's `LocatedBatch` reads it: whole,
        as saved, onto one device or as numpy. Anything else (a cast, a mismatch, other
        devices, damage to tenure's records) is None: `plan` decides it, or says what is
        wrong.

        The state's many small arrays are read so. Each is checked against its target here
        as `plan` checks it (its shape and dtype are tenure's record itself, which `plan`
        compares with the array's metadata), but without the steps of a `_Pending`: for
        thousands of leaves, those cost more than the reads.
        """
        item = self.item
        record, saved, crcs = item.packed.get(name), item.arrays.get(name), item.crcs.get(name)
        if record is None or saved is None or not crcs or not item.meta.use_ocdbt:
            return None
        self._database()
        try:
            dtype = numpy_dtype(saved[0])
        except (TypeError, ValueError):
            return None
        shape = saved[1]
        target_shape = getattr(target, "shape", None)
        target_dtype = getattr(target, "dtype", None)
        if (target_shape is not None and tuple(target_shape) != shape) or (
            target_dtype is not None and np.dtype(target_dtype) != dtype
        ):
            return None
        sharding = None
        if _to_device(target, numpy_default, kind):
            explicit = getattr(target, "sharding", None)
            sharding = self._device_placement(path, name, explicit, len(shape))[0]
            # By identity: `_placement` gives the leaves of equal shardings one object, and
            # keeps it.
            single = self._single.get(id(sharding))
            if single is None:
                single = self._single[id(sharding)] = (
                    type(sharding) is jax.sharding.SingleDeviceSharding
                    and sharding.is_fully_addressable
                )
            if not single:
                return None
        elif not (type(target) is np.ndarray or target is None):
            return None
        number = None if self.batch is None else self.batch.whole(name, dtype, shape, record, crcs)
        return None if number is None else _Whole(number, sharding)

    def plan(
        self, path: KeyPath, kind: str, target: Any, numpy_default: bool, name: str
    ) -> LeafPlan:
        """Check the saved array `name` at `path` against `target`; decide dtype and placement."""
        raw = self.raw(name)
        if raw is None:
            store = self.opened(name)
            shape, saved_dtype = tuple(store.shape), np.dtype(store.dtype.numpy_dtype)
        else:
            shape, saved_dtype = raw.shape, np.dtype(raw.dtype)
        self.item.check_array(name, shape, saved_dtype)
        explicit = getattr(target, "sharding", None)
        if kind == KEY:
            sharding, resharded = self._placement(path, name, explicit, len(shape) - 1)
            return LeafPlan(path, name, kind, target, shape, saved_dtype, None, sharding, resharded)
        target_shape = getattr(target, "shape", None)
        if target_shape is not None and tuple(target_shape) != shape:
            raise _mismatch(
                path, f"saved shape {shape} differs from requested shape {tuple(target_shape)}"
            )
        dtype = getattr(target, "dtype", None)
        cast = None
        if dtype is not None and (requested := np.dtype(dtype)) != saved_dtype:
            cast = requested
        sharding, resharded = None, False
        if _to_device(target, numpy_default, kind):
            sharding, resharded = self._device_placement(path, name, explicit, len(shape))
        return LeafPlan(path, name, kind, target, shape, saved_dtype, cast, sharding, resharded)

    def _device_placement(
        self, path: KeyPath, name: str, explicit: Any, ndim: int
    ) -> tuple[jax.sharding.Sharding, bool]:
        """`_placement` of a leaf read onto devices."""
        sharding, resharded = self._placement(path, name, explicit, ndim)
        if sharding is None:
            # Nothing was recorded (Orbax without `_sharding`, or a numpy save): one sharding
            # for all such leaves, so that they go to the device together.
            if self._default is None:
                self._default = jax.sharding.SingleDeviceSharding(jax.devices()[0])
            sharding = self._default
        return sharding, resharded

    def _placement(
        self, path: KeyPath, name: str, explicit: Any, ndim: int
    ) -> tuple[jax.sharding.Sharding | None, bool]:
        """The sharding to load onto and whether it differs from the saved one.

        Without one in the target, the saved sharding is used; when this process lacks its
        devices, the load is refused rather than moved to another device.
        """
        recorded = self.item.shardings.get(shardings.sharding_key(name))
        # Leaves share a few recorded shardings and target shardings (equal, though often
        # one object per leaf): each pair is decided once, and every leaf of a pair gets the
        # same sharding object, which later steps then group by identity.
        key = (recorded, explicit, ndim)
        known = self._placements.get(key)
        if known is None:
            known = self._placements[key] = self._place(path, recorded, explicit, ndim)
        return known

    def _place(
        self, path: KeyPath, recorded: str | None, explicit: Any, ndim: int
    ) -> tuple[jax.sharding.Sharding | None, bool]:
        saved = shardings.from_json(recorded) if recorded else None
        if explicit is not None:
            try:
                same = saved is not None and bool(explicit.is_equivalent_to(saved, ndim))
            except (ValueError, TypeError):
                same = False
            return explicit, recorded is not None and not same
        if recorded is not None and saved is None:
            raise TopologyMismatchError(
                f"{display_path(path)} was saved with sharding {recorded}, whose devices this "
                f"process does not have ({jax.device_count()} devices here): pass an "
                "abstract_state (abstract tree) giving each array the sharding to load onto, "
                "e.g. jax.ShapeDtypeStruct(shape, dtype, sharding=...)"
            )
        return saved, False

    def start(self, plan: LeafPlan) -> Callable[[], Any]:
        """Issue the reads `plan` describes; return the function that builds the value."""
        name = plan.name
        raw, store = self.raw(name), None
        if raw is None:
            store = self.opened(name)
        if plan.kind == KEY:
            read_keys = self._issue(name, raw, store, _full(plan.shape))
            impl, sharding = self.item.key_impls[name], plan.sharding
            # A target's sharding is for the keys; a saved one is for their data (Orbax's).
            of_keys = getattr(plan.target, "sharding", None) is not None

            def keys() -> Any:
                data = read_keys()
                if sharding is not None and not of_keys:
                    data = jax.device_put(data, sharding)
                keys = jax.random.wrap_key_data(jax.numpy.asarray(data), impl=impl)
                return jax.device_put(keys, sharding) if of_keys else keys

            return keys
        if plan.cast is not None and isinstance(raw, PackedArray):
            raw = raw.cast_to(plan.cast)
        elif plan.cast is not None:
            raw, store = None, ts.cast(self.opened(name), plan.cast)
        if plan.sharding is not None:
            return self._start_sharded(name, raw, store, plan.shape, plan.sharding)
        read = self._issue(name, raw, store, _full(plan.shape))
        return lambda: _host_value(read(), plan.kind, plan.target)

    def _issue(
        self, name: str, raw: RawArray | PackedArray | None, store: Any, index: Index
    ) -> Any:
        """Start reading `index` of `name`; return the function that waits for the numpy data."""
        read = None
        if type(raw) is PackedArray and self.batch is not None:
            read = self.batch.add(raw, index)
        if read is None and raw is not None:
            read = raw.start(index)
        if read is not None:
            return read
        if store is None:
            store = self.opened(name)
        source = store[index] if index else store
        # Into an aligned buffer of our own: jax then adopts it instead of copying it, so a
        # load holds one copy of the state, not the reads' and the devices' both.
        out = aligned_empty(source.shape, source.dtype.numpy_dtype)
        future = ts.array(out, copy=False, write=True).write(source)
        return lambda: (resolve_read(future, self.item.item_dir, name), out)[1]

    def _start_sharded(
        self,
        name: str,
        raw: RawArray | PackedArray | None,
        store: Any,
        shape: tuple[int, ...],
        sharding: jax.sharding.Sharding,
    ) -> Callable[[], jax.Array | _DevicePut]:
        if type(sharding) is jax.sharding.SingleDeviceSharding and sharding.is_fully_addressable:
            # The whole array on one device: put with others in one batch (see `_resolve_all`),
            # without mapping indices to devices for each of thousands of leaves.
            read = self._issue(name, raw, store, _full(shape))
            return lambda: _DevicePut(read(), sharding)
        # Each distinct index is read once, however many devices hold a replica of it.
        index_map = sharding.addressable_devices_indices_map(shape)
        reads: dict[Region, Any] = {}
        indices = {d: _full(shape) if i is None else i for d, i in index_map.items()}
        for index in indices.values():
            key = region(index, shape)
            if key not in reads:
                reads[key] = self._issue(name, raw, store, index)

        whole = len(indices) == 1 and next(iter(reads)) == region(_full(shape), shape)
        if whole and sharding.is_fully_addressable:
            # The whole array on one device: put with others in one batch (see `_resolve_all`).
            (read,) = reads.values()
            return lambda: _DevicePut(read(), sharding)

        def assemble() -> jax.Array:
            pieces = {key: read() for key, read in reads.items()}
            # On CPU, device_put adopts the aligned buffers instead of copying them.
            arrays = [jax.device_put(pieces[region(i, shape)], d) for d, i in indices.items()]
            return jax.make_array_from_single_device_arrays(shape, sharding, arrays)

        return assemble


def _host_value(value: np.ndarray, kind: str, target: Any) -> Any:
    """A leaf read as numpy, converted to the type `target` (or the saved `kind`) asks for."""
    if isinstance(target, np.ndarray) or (target is None and kind in (JAX, NUMPY)):
        return value
    scalar = target if target is not None and not isinstance(target, type) else None
    if scalar is not None:
        return type(scalar)(value.item()) if not isinstance(scalar, np.generic) else value[()]
    if kind in PY_SCALARS:
        return PY_SCALARS[kind](value.item())
    if kind == NUMPY_SCALAR:
        return value[()]
    return value.item() if value.ndim == 0 else value


def _saved_subtree(reader: Reader, path: KeyPath, numpy_default: bool) -> Any:
    """The saved subtree at `path` with natural types (numpy for arrays when `numpy_default`)."""
    item = reader.item
    if item.structure is not None:
        node = item.structure
        for key in path:
            if node["t"] == "leaf" or node["t"] == "None":
                raise _mismatch(path, "the checkpoint has a leaf above this key")
            texts = [str(k) for k in node.get("k") or range(len(node["c"]))]
            if key.key not in texts:
                raise _mismatch(path, "the checkpoint has no value at this key")
            node = node["c"][texts.index(key.key)]
        return build_from_structure(
            node, lambda p: reader.leaf((*path, *p), None, numpy_default=numpy_default)
        )
    prefix = len(path)
    keys = tuple(k.key for k in path)
    entries = tuple(
        attrs.evolve(e, path=e.path[prefix:])
        for e in item.meta.entries
        if tuple(k.key for k in e.path[:prefix]) == keys
    )
    if not entries:
        raise _mismatch(path, "the checkpoint has no value at this key")
    return build_from_entries(
        entries, lambda p: reader.leaf((*path, *p), None, numpy_default=numpy_default)
    )


def _is_target_leaf(node: Any) -> bool:
    return isinstance(node, jax.ShapeDtypeStruct | type) or leaf_kind(node) is not None


_LISTED = 10  # keys an error message names before it just counts


def _listing(paths: list[KeyPath]) -> str:
    shown = ", ".join(display_path(p) for p in paths[:_LISTED])
    more = len(paths) - _LISTED
    return shown + (f" and {more} more" if more > 0 else "")


@attrs.frozen
class _Match:
    """The target tree with a placeholder for every leaf to read; the saved keys it omits."""

    tree: Any
    unexpected: tuple[KeyPath, ...]


@attrs.define
class _Matcher:
    """The walk of `_match`: a class, since a recursive closure refers to itself, and would
    keep the reader and all it holds alive until the collector's next pass."""

    reader: Reader
    named: set[tuple[str, ...]] = attrs.field(factory=set)  # paths the target names exactly
    # Paths under which a None target takes everything.
    whole: set[tuple[str, ...]] = attrs.field(factory=set)
    missing: list[KeyPath] = attrs.field(factory=list)
    # Every saved path and its ancestors, when needed.
    prefixes: set[tuple[str, ...]] = attrs.field(factory=set)

    def is_saved_prefix(self, keys: tuple[str, ...]) -> bool:
        if not self.prefixes:
            self.prefixes.update(
                tuple(k.key for k in e.path[:i])
                for e in self.reader.item.meta.entries
                for i in range(len(e.path) + 1)
            )
        return keys in self.prefixes

    def walk(self, node: Any, path: KeyPath, keys: tuple[str, ...]) -> Any:
        """`node` of the target at `path` with placeholders; `keys`: the texts of `path`,
        extended as the walk descends rather than rebuilt."""
        item = self.reader.item
        if node is None:
            entry = item.entry(path)
            if entry is not None and entry.value_type == "None":
                self.named.add(keys)
                return None
            if not self.is_saved_prefix(keys):
                self.missing.append(path)
                return None
            self.whole.add(keys)
            return _saved_subtree(self.reader, path, numpy_default=True)
        if _is_target_leaf(node):
            name = ".".join(keys)
            if not path or name not in item.by_name:
                self.missing.append(path)
                return None
            self.named.add(keys)
            return self.reader.leaf(path, node, numpy_default=True, name=name)
        container, pairs = children(node, path)
        if not pairs:
            self.named.add(keys)
        values = [self.walk(child, (*path, key), (*keys, key.key)) for key, child in pairs]
        return _rebuilt(node, container, values)


def _rebuilt(node: Any, container: str, values: list[Any]) -> Any:
    """A container like `node` (of `children`'s kind `container`) holding `values` in place of
    its children, in its order."""
    if isinstance(node, dict):
        return dict(zip(node, values, strict=True))
    if container == "NamedTuple":
        return type(node)(*values)
    if isinstance(node, tuple | list):
        return type(node)(values)
    return jax.tree_util.tree_unflatten(
        jax.tree_util.tree_structure(node, is_leaf=lambda x: x is not node), values
    )


def _match(reader: Reader, abstract: Any, partial: bool) -> _Match:
    """Lay `abstract` over the saved tree: every key it names must be saved, and (unless
    `partial`) every saved key must be named; otherwise `StructureMismatchError` lists them."""
    item = reader.item
    if abstract is None:
        return _Match(_saved_subtree(reader, (), numpy_default=False), ())
    matcher = _Matcher(reader)
    tree = matcher.walk(abstract, (), ())
    named, whole, missing = matcher.named, matcher.whole, matcher.missing
    unexpected = []
    for entry in item.meta.entries:
        keys = tuple([k.key for k in entry.path])
        if keys in named or (whole and any(keys[:i] in whole for i in range(len(keys) + 1))):
            continue
        unexpected.append(entry.path)
    if missing or (unexpected and not partial):
        raise _structure_error(item.item_dir, missing, [] if partial else unexpected)
    return _Match(tree, tuple(unexpected))


def _structure_error(
    item_dir: Location, missing: list[KeyPath], unexpected: list[KeyPath]
) -> StructureMismatchError:
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} target key(s) are not in the checkpoint: {_listing(missing)}"
        )
    if unexpected:
        problems.append(
            f"{len(unexpected)} saved key(s) are not in the target: {_listing(unexpected)}"
        )
    advice = (
        "remove the missing keys from the target (pytree_metadata shows what was saved)"
        if missing
        else "pass partial=True to load only the keys the target names, or add them to it"
    )
    return StructureMismatchError(
        f"the target tree does not match the checkpoint in {item_dir}: "
        f"{'; '.join(problems)}. To load it, {advice}",
        missing=tuple(param_name(p) for p in missing),
        unexpected=tuple(param_name(p) for p in unexpected),
    )


class _DevicePut(NamedTuple):
    """A leaf read onto the host that goes to one device, with others in one batch (a tuple:
    one is made per leaf)."""

    data: np.ndarray
    sharding: jax.sharding.Sharding


# jax's per-call cost dominates the transfer of a small array; one call per sharding and batch
# of this many bytes keeps it low without holding many host copies on an accelerator.
_PUT_BATCH_BYTES = 64 * 2**20


def _resolve_all(
    batch: LocatedBatch | None, wholes: list[_Whole], pending: list[_Pending]
) -> dict[_Whole | _Pending, Any]:
    """The value of every placeholder: those `batch` reads whole first (their runs were read
    ahead), then the pending ones in the order their reads were issued."""
    values: dict[_Whole | _Pending, Any] = {}
    # By the sharding's identity (see `Reader._placement`): the sharding, leaves and data.
    groups: dict[int, tuple[jax.sharding.Sharding, list[_Whole | _Pending], list[np.ndarray]]] = {}
    batched = 0

    def put() -> None:
        for sharding, leaves, data in groups.values():
            values.update(zip(leaves, put_on_device(data, sharding), strict=True))
        groups.clear()

    def add(leaf: _Whole | _Pending, data: np.ndarray, sharding: jax.sharding.Sharding) -> None:
        nonlocal batched
        group = groups.get(id(sharding))
        if group is None:
            group = groups[id(sharding)] = (sharding, [], [])
        group[1].append(leaf)
        group[2].append(data)
        batched += data.nbytes
        if batched >= _PUT_BATCH_BYTES:
            put()
            batched = 0

    if batch is not None:
        value = batch.value
        for whole in wholes:
            if whole.sharding is None:
                values[whole] = value(whole.number)
            else:
                add(whole, value(whole.number), whole.sharding)
    for leaf in pending:
        resolved = leaf.resolve()
        if type(resolved) is _DevicePut:
            add(leaf, resolved.data, resolved.sharding)
        else:
            values[leaf] = resolved
    put()
    return values


_PLACEHOLDERS = (_Whole, _Pending)


def _resolved(node: Any, values: dict[_Whole | _Pending, Any]) -> Any:
    """`node` with every placeholder replaced by its value.

    Dicts are walked here rather than by jax, which cannot order mixed int and str keys.
    """
    if isinstance(node, _Pending | _Whole):
        return values[node]
    if type(node) is dict:
        # A dict's placeholders are looked up here: thousands of leaves, a call fewer each.
        return {
            k: values[v] if type(v) in _PLACEHOLDERS else _resolved(v, values)
            for k, v in node.items()
        }
    if type(node) is list:
        return [_resolved(v, values) for v in node]
    if type(node) is tuple:
        return tuple(_resolved(v, values) for v in node)
    if node is None or leaf_kind(node) is not None:
        return node
    return jax.tree_util.tree_map(
        lambda child: _resolved(child, values), node, is_leaf=lambda x: x is not node
    )


class _NotLocated(Exception):
    """`_load_located` cannot do this load: the general one does (and says what is wrong),
    with the `spans` it started reading, if any (the same as its own)."""

    def __init__(self, spans: PackedSpans | None = None) -> None:
        super().__init__()
        self.spans = spans


@attrs.define
class _LocatedTargets:
    """The walk of `_load_located`: the target with a `_Whole` for each of its leaves, and
    each leaf's parameter name, target and placeholder, in order."""

    leaves: list[tuple[str, Any, _Whole]] = attrs.field(factory=list)
    nones: set[tuple[str, ...]] = attrs.field(factory=set)  # paths of None
    empties: set[tuple[str, ...]] = attrs.field(factory=set)  # paths of empty containers

    def walk(self, node: Any, keys: tuple[str, ...]) -> Any:
        if type(node) is dict:
            return self._dict(node, keys)
        if type(node) is jax.ShapeDtypeStruct or type(node) is np.ndarray:
            return self._leaf(node, keys)
        if isinstance(node, jax.Array | np.generic) or type(node) in _SCALAR_TARGETS:
            return self._leaf(node, keys)
        if node is None:
            self.nones.add(keys)
            return None
        if _is_target_leaf(node):
            raise _NotLocated  # strings and types: not located arrays
        container, pairs = children(node, ())
        if not pairs:
            self.empties.add(keys)
        return _rebuilt(node, container, [self.walk(c, (*keys, k.key)) for k, c in pairs])

    def _leaf(self, node: Any, keys: tuple[str, ...]) -> _Whole:
        whole = _Whole(len(self.leaves), None)
        self.leaves.append((".".join(keys), node, whole))
        return whole

    def _dict(self, node: dict[Any, Any], keys: tuple[str, ...]) -> dict[Any, Any]:
        """`walk` of a plain dict, the usual container of thousands of leaves: keys as
        `children` records them, and abstract leaves placed without a call each."""
        if not node:
            self.empties.add(keys)
        prefix = "".join(f"{k}." for k in keys)
        leaves = self.leaves
        out = {}
        for key, child in node.items():
            text = dict_key_text(key)
            if text is None:
                raise _NotLocated  # a key tenure does not store: the general load says so
            if type(child) is jax.ShapeDtypeStruct:
                whole = out[key] = _Whole(len(leaves), None)
                leaves.append((prefix + text, child, whole))
            else:
                out[key] = self.walk(child, (*keys, text))
        return out


# Python scalars a target may hold: the value comes back as one of its type.
_SCALAR_TARGETS = (int, float, bool, complex)
# Saved scalars, each kept as a 0-d array.
_LOCATED_SCALARS = frozenset([NUMPY_SCALAR, *PY_SCALARS])


def _load_located(item_dir: Location, abstract: Any, doc: dict[str, Any]) -> Any:
    """`load_item(item_dir, abstract, item_doc=doc)` when every saved leaf is an array tenure
    packed and located in the spans and the target asks for each, as saved, onto one device
    or as numpy: a state's many small arrays, restored whole. `_NotLocated` otherwise.

    The general load takes several steps per leaf, each a call with checks of its own (a
    reader's placeholder, its metadata entry, its packed record, its placement); for thousands
    of leaves, those cost more than the reads. This one checks each leaf in one pass over
    tenure's record as parsed, then reads and checks the data as the general load does
    (`LocatedBatch`), and checks every other recorded file against its checksum.
    """
    if not isinstance(item_dir, Path):
        raise _NotLocated
    record = item_record(item_dir)
    if record is None:
        raise _NotLocated
    recorded = dict(record.files)
    try:
        validate_structure(doc["structure"])
        index = index_structure(doc["structure"])
        located = [LocatedValues.from_json(r) for r in doc["located"]]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _NotLocated from e
    manifest = manifest_crc32(item_dir)
    if not located or any(r.manifest not in (None, manifest) for r in located):
        raise _NotLocated
    files = _Files(item_dir, recorded)
    files.read.add(f"{TENURE_DIR}/{ITEM_FILE}")
    crc_files = files.names(TENURE_DIR, CHECKSUMS_PATTERN)
    # Read ahead of the spans: cold, a read queued behind their tens of MiB kept a 4,096-leaf
    # load waiting 18-26 ms for the crc32s it parses first.
    read_ahead([item_dir / name for name in crc_files])
    # The recorded files this load does not parse are checked on a reading thread meanwhile:
    # cold, reading them took 11 ms of a 4,096-leaf load that waited for them.
    parsed = files.read | set(crc_files)
    others = set(recorded) - parsed - _array_metadata_files(recorded)
    checking = _Checking(
        others, read_pool().submit(check_recorded, item_dir, recorded, set(recorded) - others)
    )
    # Read while the target is walked and the leaves checked (a load that is not partial reads
    # every saved array); a general load after all goes on with these reads.
    spans = PackedSpans(item_dir, located)
    spans.views = True  # every value is read: hand them out as views of the spans
    spans.read()
    try:
        return _load_targets(item_dir, abstract, doc, index, spans, files, checking)
    except _NotLocated as e:
        raise _NotLocated(spans) from e.__cause__


class _Checking(NamedTuple):
    """Recorded files being checked on another thread, and the check."""

    names: set[str]
    done: Future[None]


def _load_targets(
    item_dir: Path,
    abstract: Any,
    doc: dict[str, Any],
    index: StructureIndex,
    spans: PackedSpans,
    files: _Files,
    checking: _Checking,
) -> Any:
    """The rest of `_load_located`, once its spans are being read: match the target to the
    saved structure, then load the leaves."""
    targets = _LocatedTargets()
    try:
        tree = targets.walk(abstract, ())
    except (InvalidKeyError, UnsupportedLeafError) as e:
        raise _NotLocated from e
    leaves = targets.leaves
    if len(leaves) != len(index.kinds):
        raise _NotLocated
    # As the general load matches them: a None target names a saved None (anything else, it
    # takes the saved subtree); every saved None and empty container must be named.
    if targets.nones != index.nones or not index.empties <= targets.empties:
        raise _NotLocated
    batch = LocatedBatch(item_dir, spans)
    return _load_leaves(item_dir, tree, leaves, doc, index.kinds, files, batch, checking)


def _load_leaves(
    item_dir: Path,
    tree: Any,
    leaves: list[tuple[str, Any, _Whole]],
    doc: dict[str, Any],
    kinds: dict[str, str],
    files: _Files,
    batch: LocatedBatch,
    checking: _Checking,
) -> Any:
    """The second half of `_load_located`, once its spans are being read: check each leaf
    against tenure's record and the target, then read the data and check every file."""
    try:
        arrays, packed = doc["arrays"], doc["packed"]
        crcs: dict[str, Any] = {}
        for path in files.names(TENURE_DIR, CHECKSUMS_PATTERN):
            crcs.update(files.json(path, {}))
        placements = _LocatedPlacements(files)
        # By recorded dtype name and shape: what the leaves of a state share.
        forms: dict[tuple[str, tuple[int, ...]], WholeForm] = {}
        scalars: list[tuple[_Whole, str, Any]] = []  # leaves read as numpy, then converted
        add = batch.add_whole
        for name, target, whole in leaves:
            kind = kinds.get(name)
            if kind != JAX and kind != NUMPY and kind not in _LOCATED_SCALARS:
                raise _NotLocated  # strings and keys are not located arrays
            dtype_name, shape_list = arrays[name]
            shape = tuple(shape_list)
            form = forms.get((dtype_name, shape))
            if form is None:
                found = batch.form(name, numpy_dtype(dtype_name), shape)
                if found is None:
                    raise _NotLocated  # an empty array has no chunk
                form = forms[dtype_name, shape] = found
            if type(target) in _SCALAR_TARGETS:
                # A Python scalar asks for no dtype: the value comes back as one of its type.
                if shape:
                    raise _NotLocated
                scalars.append((whole, kind, target))
            elif tuple(target.shape) != shape or target.dtype != form.dtype:
                raise _NotLocated  # a cast or a mismatch
            elif isinstance(target, np.generic):
                scalars.append((whole, kind, target))
            metadata_crc, chunk_shape = packed[name]
            (piece,) = crcs[name]
            crc = piece["crc32"]
            if chunk_shape != shape_list or piece["index"] != form.recorded_index:
                raise _NotLocated
            if type(crc) is not int or type(metadata_crc) is not int:
                raise _NotLocated
            if isinstance(target, _DEVICE_TARGETS):
                whole.sharding = placements.get(name, target.sharding)
            if add(name, form, crc, metadata_crc) != whole.number:
                raise _NotLocated
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _NotLocated from e
    if len({name for name, _, _ in leaves}) != len(leaves):
        raise _NotLocated  # two target keys with one parameter name
    recorded = files.recorded
    assert recorded is not None
    done = files.read | _array_metadata_files(recorded) | checking.names
    check_recorded(item_dir, recorded, done)
    checking.done.result()
    values = _resolve_all(batch, [whole for _, _, whole in leaves], [])
    for whole, kind, target in scalars:
        values[whole] = _host_value(values[whole], kind, target)
    return _resolved(tree, values)


@attrs.define
class _LocatedPlacements:
    """The one device each leaf of `_load_located` goes to, as `Reader._placement` decides it
    (one object per distinct sharding); `_NotLocated` for anything but one device here."""

    files: _Files
    by_target: dict[jax.sharding.Sharding, jax.sharding.Sharding] = attrs.field(factory=dict)
    by_record: dict[str | None, jax.sharding.Sharding] = attrs.field(factory=dict)
    saved: dict[str, str] | None = None

    def get(self, name: str, explicit: jax.sharding.Sharding | None) -> jax.sharding.Sharding:
        if explicit is not None:
            sharding = self.by_target.get(explicit)
            if sharding is None:
                sharding = self.by_target[explicit] = self._one_device(explicit)
            return sharding
        if self.saved is None:
            self.saved = _strings_map(self.files.json(SHARDING_FILE, {}))
        text = self.saved.get(shardings.sharding_key(name))
        sharding = self.by_record.get(text)
        if sharding is None:
            saved: jax.sharding.Sharding | None
            if text is None:
                saved = jax.sharding.SingleDeviceSharding(jax.devices()[0])
            else:
                saved = shardings.from_json(text)
                if saved is None:
                    raise _NotLocated  # not on this machine's devices: the general load says so
            sharding = self.by_record[text] = self._one_device(saved)
        return sharding

    @staticmethod
    def _one_device(sharding: jax.sharding.Sharding) -> jax.sharding.Sharding:
        if type(sharding) is not jax.sharding.SingleDeviceSharding:
            raise _NotLocated
        if not sharding.is_fully_addressable:
            raise _NotLocated
        return sharding


def load_item(
    item_dir: Location,
    abstract: Any = None,
    *,
    partial: bool = False,
    item_doc: dict[str, Any] | None = None,
) -> Any:
    """Read a pytree item, shaped like `abstract` when given (see `load_pytree`); `item_doc`:
    tenure's item file, already read and checked."""
    with collector_paused():
        spans = None
        if item_doc is not None and abstract is not None and not partial:
            try:
                return _load_located(item_dir, abstract, item_doc)
            except _NotLocated as e:
                spans = e.spans
        reader = Reader(SavedItem.open(item_dir, item_doc), spans=spans, wholes=[])
        if not partial:
            # Every saved array is read (or the load fails): its spans are read while the
            # target is matched.
            reader.read_ahead(every=True)
        tree = _match(reader, abstract, partial).tree
        if partial:
            reader.read_ahead()
        reader.plan_pending()
        reader.start_pending()
        loaded = _resolved(tree, _resolve_all(reader.batch, reader.wholes or [], reader.pending))
        # The reader and its placeholders refer to each other: let go of here, before the
        # collector resumes, they are freed at once instead of by a pass over all of them
        # (no loop variable of this frame may still hold one).
        reader.pending.clear()
        del reader, tree
        return loaded


@attrs.frozen
class LoadPlan:
    """What a load would do, worked out from metadata without reading array data.

    Keys are parameter names (the '.'-joined key paths). A plan is returned only when the load
    would start: its errors are the load's errors, so keys the target names but the checkpoint
    lacks are `StructureMismatchError.missing`, never part of a plan.

    Examples:
        >>> import tempfile, jax, numpy as np
        >>> from tenure.io import save_pytree, plan_load
        >>> d = tempfile.mkdtemp() + "/1"
        >>> save_pytree(d, {"w": np.zeros(4), "b": np.zeros(2)})
        >>> plan = plan_load(d, {"w": jax.ShapeDtypeStruct((4,), np.float32)}, partial=True)
        >>> plan.matched, plan.unexpected, plan.casts
        (('w',), ('b',), {'w': ('float64', 'float32')})
        >>> plan.bytes_per_process
        {0: 32}
    """

    matched: tuple[str, ...]
    unexpected: tuple[str, ...]
    casts: dict[str, tuple[str, str]]
    resharded: tuple[str, ...]
    bytes_per_process: dict[int, int]


def plan_item(item_dir: Location, abstract: Any = None, *, partial: bool = False) -> LoadPlan:
    """The plan of `load_item(item_dir, abstract, partial=partial)`."""
    reader = Reader(SavedItem.open(item_dir))
    match = _match(reader, abstract, partial)
    plans = [leaf.plan() for leaf in reader.pending]
    per_process: dict[int, int] = {}
    for plan in plans:
        for process, size in plan.bytes_per_process().items():
            per_process[process] = per_process.get(process, 0) + size
    return LoadPlan(
        matched=tuple(reader.matched),
        unexpected=tuple(param_name(p) for p in match.unexpected),
        casts={p.name: (p.saved_dtype.name, p.cast.name) for p in plans if p.cast is not None},
        resharded=tuple(p.name for p in plans if p.resharded),
        bytes_per_process=dict(sorted(per_process.items())),
    )


def item_metadata(item_dir: Location) -> Any:
    """The saved tree with `jax.ShapeDtypeStruct` leaves (sharding set for saved jax arrays)."""
    reader = Reader(SavedItem.open(item_dir))

    def describe(path: KeyPath) -> Any:
        name = param_name(path)
        entry = reader.item.entry(path)
        if entry is not None and entry.value_type == "string":
            return str
        store = reader.opened(name)
        shape = tuple(store.shape)
        dtype = store.dtype.numpy_dtype
        reader.item.check_array(name, shape, dtype)
        sharding = (
            reader.item.saved_sharding(name) if entry and entry.value_type == "jax.Array" else None
        )
        if name in reader.item.key_impls:
            impl = reader.item.key_impls[name]
            key = jax.random.key(0, impl=impl)
            return jax.ShapeDtypeStruct(shape[:-1], key.dtype, sharding=sharding)  # type: ignore[no-untyped-call]
        return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)  # type: ignore[no-untyped-call]

    for entry in reader.item.meta.entries:
        if entry.is_array:
            reader.store(param_name(entry.path))
    if reader.item.structure is not None:
        return build_from_structure(reader.item.structure, describe)
    return build_from_entries(reader.item.meta.entries, describe)
