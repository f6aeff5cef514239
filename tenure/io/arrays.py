"""Array storage through tensorstore: specs as plain dicts, all I/O issued before any wait."""

from __future__ import annotations

import errno
import functools
import itertools
import json
import math
import mmap
import os
import sys
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import numpy as np
import tensorstore as ts

from tenure.io.errors import (
    CorruptCheckpointError,
    InsufficientSpaceError,
    StorageError,
    TenureIOError,
)
from tenure.io.metadata import TreeMetadata
from tenure.io.root import (
    OCDBT_MANIFEST_FILE,
    ZARR_CHUNK_DIR,
    ZARR_METADATA_FILE,
    is_relative_name,
)
from tenure.io.storage import (
    Location,
    context,
    describe_store_error,
    is_object_store,
    kvstore_spec,
    new_context,
)

Index = tuple[slice, ...]
_OBJECT_DATA_FILE_BYTES = 64 * 2**20
_SPACE_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_SPACE_TEXT = ("No space left", "File too large", "Disk quota exceeded")
_TRAILER_BYTES = 4
OCDBT_DATA_DIR = "d"
# Inside OCDBT, pieces up to this size are written by tenure as plain key-value pairs instead
# of through one tensorstore array each: opening an array costs more than writing this much.
# Their bytes are copied once (tensorstore's key-value writes take `bytes`), which this size
# keeps to a small part of any array.
PACKED_PIECE_BYTES = 256 * 2**10


@attrs.frozen
class ArrayLayout:
    """How array data is laid out inside an item.

    `ocdbt=True` (the default for single-process saves, local or object store) packs every
    array into a few large files, whatever the number of arrays: Orbax's own default layout.
    `ocdbt=False` (the default with several processes) stores one zarr3 directory per array.
    `compression` adds zstd (slower, rarely smaller for float weights). Inside OCDBT on a local
    disk (and for small arrays anywhere), chunks are plain bytes, checked on every read against
    the crc32 tenure records for each piece; other chunks carry a crc32c tensorstore checks.

    Examples:
        >>> ArrayLayout(ocdbt=True).ocdbt
        True
    """

    ocdbt: bool = False
    compression: bool = False


def _kvstore(item_dir: Location, name: str, ocdbt: bool, db: str = "") -> dict[str, Any]:
    base = item_dir / db if db else item_dir
    if not ocdbt:
        return kvstore_spec(item_dir / name)
    return {
        "driver": "ocdbt",
        "base": kvstore_spec(base),
        "path": name,
        "cache_pool": "cache_pool#ocdbt",
    }


def ocdbt_spec(item_dir: Location, *, write: bool = False) -> dict[str, Any]:
    """The kvstore spec of the OCDBT database of an item (with the options a writer sets)."""
    spec = _kvstore(item_dir, "", True)
    del spec["path"]
    if write:
        spec.update(_ocdbt_write_options(item_dir))
    return spec


def _ocdbt_write_options(item_dir: Location) -> dict[str, Any]:
    remote = is_object_store(item_dir)
    return {
        "config": {
            # Locally no value is inline in the index: each packed array's zarr.json then lies
            # beside its chunks, located and read with them rather than key by key. On object
            # stores, where nothing is located, small values stay in the index's few reads.
            "max_inline_value_bytes": 1024 if remote else 0,
            "max_decoded_node_bytes": 100_000_000,
        },
        # Locally one data file per commit is fastest. On object stores a bounded size keeps
        # each data file under a single PUT's limit (5 GiB on S3) and lets several upload
        # in parallel.
        "target_data_file_size": _OBJECT_DATA_FILE_BYTES if remote else 0,
    }


@functools.cache
def zarr3_dtype(dtype: np.dtype[Any]) -> str:
    """The zarr3 name of a numpy dtype (byte order aside: data is stored little-endian)."""
    return "bool" if dtype == np.bool_ else dtype.name


@functools.cache
def numpy_dtype(data_type: str) -> np.dtype[Any]:
    """The numpy dtype of a zarr3 (tensorstore) data type name; `ValueError` when unknown.

    Examples:
        >>> numpy_dtype("bool"), numpy_dtype("float32")
        (dtype('bool'), dtype('float32'))
    """
    try:
        return np.dtype(ts.dtype(data_type).numpy_dtype)
    except TypeError as e:
        raise ValueError(f"unknown data type {data_type!r}") from e


@functools.cache
def tensorstore_name(dtype: np.dtype[Any]) -> str:
    """tensorstore's name of a numpy dtype (`TypeError`/`ValueError` when it has none)."""
    return str(ts.dtype(dtype).name)


@functools.cache
def _plain_metadata_template(data_type: str) -> str:
    """The `zarr.json` tensorstore writes for a `data_type` array with plain chunks, with
    `{shape}` and `{chunk_shape}` to fill in."""
    store = ts.open(
        {
            "driver": "zarr3",
            "kvstore": {"driver": "memory"},
            "create": True,
            "metadata": {
                "shape": [1],
                "data_type": data_type,
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1]}},
                "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            },
        }
    ).result()
    assert store.kvstore is not None
    doc = json.loads(store.kvstore.read(ZARR_METADATA_FILE).result().value)
    doc["shape"] = "{shape}"
    doc["chunk_grid"]["configuration"]["chunk_shape"] = "{chunk_shape}"
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return (
        text.replace("{", "{{")
        .replace("}", "}}")
        .replace('"{{shape}}"', "{shape}")
        .replace('"{{chunk_shape}}"', "{chunk_shape}")
    )


def plain_metadata(dtype: np.dtype[Any], shape: Sequence[int], chunk_shape: Sequence[int]) -> bytes:
    """The `zarr.json` of an array whose chunks are plain little-endian bytes, byte for byte
    what tensorstore itself would write.

    Examples:
        >>> json.loads(plain_metadata(np.dtype("int8"), (4,), (2,)))["chunk_grid"]
        {'configuration': {'chunk_shape': [2]}, 'name': 'regular'}
    """
    template = _plain_metadata_template(zarr3_dtype(dtype))
    shape_text = ",".join(str(int(n)) for n in shape)
    chunk_text = ",".join(str(int(n)) for n in chunk_shape)
    return template.format(shape=f"[{shape_text}]", chunk_shape=f"[{chunk_text}]").encode()


@functools.lru_cache(maxsize=256)
def _plain_metadata_size(
    dtype: np.dtype[Any], shape: tuple[int, ...], chunk_shape: tuple[int, ...]
) -> int:
    """The size of `plain_metadata` (the leaves of a state share a few shapes)."""
    return len(plain_metadata(dtype, shape, chunk_shape))


def _plain_keys(write: ArrayWrite, max_bytes: float) -> list[tuple[Region, str]] | None:
    """The bounds and chunk key of each piece of `write` when every piece is one non-empty
    chunk of at most `max_bytes` native bytes (so it can be stored as plain bytes and read
    back as such); else None."""
    if (write.dtype.itemsize > 1 and not write.dtype.isnative) or sys.byteorder != "little":
        return None
    keys = []
    for index, data in write.pieces:
        if not 0 < data.nbytes <= max_bytes or data.shape != write.chunk_shape:
            return None
        bounds = region(index, write.shape)
        key = chunk_path(write.name, bounds, write.chunk_shape)
        if key is None:
            return None
        keys.append((bounds, key))
    return keys or None


def write_spec(
    item_dir: Location,
    name: str,
    shape: Sequence[int],
    dtype: np.dtype[Any],
    chunk_shape: Sequence[int],
    layout: ArrayLayout,
    db: str = "",
    *,
    primary: bool = True,
    plain: bool = False,
) -> dict[str, Any]:
    """The spec that creates array `name` as zarr3 with checksummed chunks, or with `plain`
    ones (no crc32c: tenure records a crc32 of each and checks it on every read).

    Only the primary process creates the array's metadata; the others write their chunks
    under the same metadata without reading or writing it, so no process waits on another.
    """
    codecs: list[dict[str, Any]] = [{"name": "bytes", "configuration": {"endian": "little"}}]
    if layout.compression:
        codecs.append({"name": "zstd", "configuration": {"level": 1}})
    if not plain:
        codecs.append({"name": "crc32c"})
    kvstore = _kvstore(item_dir, name, layout.ocdbt, db)
    if layout.ocdbt:
        kvstore.update(_ocdbt_write_options(item_dir))
    return {
        "driver": "zarr3",
        "kvstore": kvstore,
        "metadata": {
            "shape": list(shape),
            "data_type": zarr3_dtype(dtype),
            "chunk_grid": {
                "name": "regular",
                "configuration": {"chunk_shape": [max(1, c) for c in chunk_shape]},
            },
            "codecs": codecs,
        },
        **({"create": True} if primary else {"open": True, "assume_metadata": True}),
        "store_data_equal_to_fill_value": True,
        "recheck_cached_data": False,
        "recheck_cached_metadata": False,
    }


def read_spec(item_dir: Location, name: str, meta: TreeMetadata) -> dict[str, Any]:
    """The spec that opens stored array `name` (zarr v2 or v3, OCDBT or not) for reading."""
    return {
        "driver": "zarr3" if meta.use_zarr3 else "zarr",
        "kvstore": _kvstore(item_dir, name, meta.use_ocdbt),
        "open": True,
        "recheck_cached_data": False,
        "recheck_cached_metadata": False,
        # A missing chunk must be an error, not zeros, when every chunk was written.
        "fill_missing_data_reads": not meta.store_array_data_equal_to_fill_value,
    }


def is_space_error(error: BaseException) -> bool:
    """True when `error` means the disk (or a file-size limit) is full."""
    if isinstance(error, OSError) and error.errno in _SPACE_ERRNOS:
        return True
    return any(text in str(error) for text in _SPACE_TEXT)


def space_error(where: Location, error: BaseException) -> InsufficientSpaceError:
    """An `InsufficientSpaceError` for a save into `where`."""
    return InsufficientSpaceError(
        f"ran out of space while saving {where} ({error}); nothing was committed and earlier "
        "checkpoints are intact: free disk space or delete old steps, then save again"
    )


def checksum(data: np.ndarray) -> int:
    """crc32 of an array's C-order bytes in native byte order (the order a load returns).

    Examples:
        >>> checksum(np.arange(3, dtype=">i4")) == checksum(np.arange(3, dtype="<i4"))
        True
    """
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    flat = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return zlib.crc32(flat.data)


@functools.cache
def memory_bytes() -> int:
    """This machine's physical memory in bytes (0 when unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return 0


def check_read_size(item_dir: Location, name: str, shape: Sequence[int], dtype: Any) -> None:
    """Refuse, before anything is allocated, a read larger than this machine's memory.

    Such a shape comes from damaged or hostile metadata (or a checkpoint that cannot be
    loaded here at all); allocating it would abort the process instead of raising.
    """
    nbytes = np.dtype(dtype).itemsize
    for n in shape:
        nbytes *= int(n)
    limit = memory_bytes()
    if limit and nbytes > limit:
        raise _corrupt(
            name,
            item_dir,
            f"its metadata declares shape {tuple(shape)} of {np.dtype(dtype).name}, "
            f"{nbytes} bytes, more than this machine's {limit} bytes of memory",
        )


@attrs.frozen
class ArrayWrite:
    """One array to store: global shape and dtype, chunk shape, and the pieces this process owns."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    chunk_shape: tuple[int, ...]
    pieces: tuple[tuple[Index, np.ndarray], ...]


def index_to_json(index: Index, shape: Sequence[int]) -> list[list[int]]:
    """A tuple of slices as `[[start, stop], ...]` against `shape`."""
    return [list(s.indices(n)[:2]) for s, n in zip(index, shape, strict=True)]


def write_arrays(
    item_dir: Location,
    writes: Sequence[ArrayWrite],
    layout: ArrayLayout,
    *,
    written: Callable[[Location], None] | None = None,
    db: str = "",
    primary: bool = True,
) -> WrittenArrays:
    """Create every array and write this process's pieces; return what to record of them.

    All opens are in flight together, and all writes of a batch; crc32s are computed, and
    metadata files and chunk trailers read back, on a thread pool while tensorstore writes.
    Inside OCDBT, small arrays skip tensorstore's array layer: their `zarr.json` and plain
    chunks are written as keys of the database, in the first transaction. On a local disk the
    larger arrays' chunks are plain too (no crc32c, which costs tensorstore a copy of the
    data): they are recorded as packed, read straight from the data files, and checked by
    their crc32 like the small ones (see `PackedArray`). `written` gets each
    file or directory once its data is written (not yet fsynced): each array's directory
    without OCDBT, with it each batch's data file once tensorstore has written it, before
    that batch's commit is awaited (see `_BATCH_BYTES`).
    """
    ctx = new_context() if layout.ocdbt else context()
    local = item_dir if isinstance(item_dir, Path) else None
    pack = layout.ocdbt and primary and not layout.compression and not db
    packed: list[tuple[ArrayWrite, list[tuple[Region, str]]]] = []
    unpacked: list[ArrayWrite] = []
    large: set[str] = set()  # larger arrays whose chunks tensorstore writes as plain bytes
    for w in writes:
        keys = _plain_keys(w, PACKED_PIECE_BYTES) if pack else None
        if keys is None:
            unpacked.append(w)
            if pack and local is not None and _plain_keys(w, math.inf) is not None:
                large.add(w.name)
        else:
            packed.append((w, keys))
    writes = unpacked
    spec = ocdbt_spec(item_dir, write=True)
    kvstore = ts.KvStore.open(spec, context=ctx) if packed or large else None
    opened = [
        ts.open(
            write_spec(
                item_dir,
                w.name,
                w.shape,
                w.dtype,
                w.chunk_shape,
                layout,
                db,
                primary=primary,
                plain=w.name in large,
            ),
            context=ctx,
        )
        for w in writes
    ]
    batches = _batches(writes, layout.ocdbt and local is not None)
    checksums: dict[str, list[dict[str, Any]]] = {}
    recorded_packed: dict[str, PackedRecord] = {}
    located_keys: list[str] = []  # packed values, located once committed
    synced: set[Path] = set()
    commits: list[Any] = []  # of batches, awaited in order, `_COMMITS_IN_FLIGHT` at a time

    def hand_on() -> None:
        if written is not None and local is not None:
            # A data file appears once complete and is never written again: its writeback
            # overlaps the batches still being written.
            for data_file in _data_files(local) - synced:
                written(data_file)
                synced.add(data_file)

    def committed() -> None:
        _wait(commits.pop(0), item_dir, "<ocdbt manifest>")
        if commits:
            hand_on()

    # Raw reads bypass tensorstore's check of each chunk's crc32c trailer, so for the chunks
    # they can read (plain, local) the trailer is recorded and compared instead.
    trailed = local is not None and not layout.ocdbt and not layout.compression
    with ThreadPoolExecutor(max_workers=2) as pool:
        sums: list[list[tuple[Index, Future[int]]]] = []
        metadata_files: dict[str, Future[bytes]] = {}
        trailers: dict[str, Future[int | None]] = {}
        for number, batch in enumerate(batches):
            txn = ts.Transaction() if layout.ocdbt else None
            if packed and number == 0:
                assert txn is not None
                assert kvstore is not None
                store = _wait(kvstore, item_dir, "<ocdbt>").with_transaction(txn)
                for w, keys in packed:
                    metadata = plain_metadata(w.dtype, w.shape, w.chunk_shape)
                    recorded_packed[w.name] = PackedRecord(zlib.crc32(metadata), w.chunk_shape)
                    key = f"{w.name}/{ZARR_METADATA_FILE}"
                    # A transaction's writes succeed or fail with its commit, awaited below.
                    store.write(key, metadata)
                    located_keys.append(key)
                    recorded = []
                    for (_, data), (bounds, key) in zip(w.pieces, keys, strict=True):
                        value = np.ascontiguousarray(data).tobytes()
                        store.write(key, value)
                        located_keys.append(key)
                        crc = zlib.crc32(value)
                        recorded.append({"index": [list(b) for b in bounds], "crc32": crc})
                    checksums[w.name] = recorded
            pending = []
            for i in batch:
                w, store = writes[i], _wait(opened[i], item_dir, writes[i].name)
                if txn is not None:
                    store = store.with_transaction(txn)
                elif primary:
                    # The primary's open wrote the array's metadata; its checksum is recorded.
                    path = f"{w.name}/{ZARR_METADATA_FILE}"
                    metadata_files[path] = pool.submit((item_dir / path).read_bytes)
                sums.append([(index, pool.submit(checksum, data)) for index, data in w.pieces])
                pending.append(
                    [
                        store[index].write(data, can_reference_source_data_indefinitely=True)
                        for index, data in w.pieces
                    ]
                )
            for i, array_writes in zip(batch, pending, strict=True):
                w = writes[i]
                for write in array_writes:
                    _wait(write.commit, item_dir, w.name)
                if written is not None and txn is None:
                    written(item_dir / w.name)
                for index, _ in w.pieces:
                    chunk = chunk_path(w.name, region(index, w.shape), w.chunk_shape)
                    if trailed and local is not None and chunk is not None:
                        trailers[chunk] = pool.submit(_read_trailer, local / chunk)
            if txn is not None:
                commits.append(txn.commit_async())
                # Earlier batches' data files are synced as soon as they are complete: waiting
                # for their commits delayed the disk's first write by 50-90 ms of a 1 GiB save.
                hand_on()
                if len(commits) >= _COMMITS_IN_FLIGHT:
                    committed()
        while commits:
            committed()
        if large:
            # What a load checks their `zarr.json` against: the bytes tensorstore wrote.
            assert kvstore is not None
            store = _wait(kvstore, item_dir, "<ocdbt>")
            reads = [
                (w, store.read(f"{w.name}/{ZARR_METADATA_FILE}")) for w in writes if w.name in large
            ]
            for w, read in reads:
                metadata = _wait(read, item_dir, w.name).value
                recorded_packed[w.name] = PackedRecord(zlib.crc32(metadata), w.chunk_shape)
        located: list[LocatedValues] = []
        if located_keys and local is not None:
            located = locate_values(local, located_keys, ctx)
        for w, pieces in zip(writes, sums, strict=True):
            checksums[w.name] = [
                {"index": index_to_json(index, w.shape), "crc32": s.result()} for index, s in pieces
            ]
        return WrittenArrays(
            checksums,
            {path: f.result() for path, f in metadata_files.items()},
            {path: t for path, f in trailers.items() if (t := f.result()) is not None},
            recorded_packed,
            located,
        )


# Local OCDBT saves commit their arrays in batches of about this many bytes, so that the disk
# writes back one batch's data file while the next is being written: a 1 GiB save took 0.56 s
# in 64 MiB batches, 0.65 s in 128 MiB ones, 0.75 s in 256 MiB ones (medians of 4, same
# machine, same hour; the disk's 8-thread write+fsync 0.38 s). Each batch adds a file or two:
# at most `_MAX_BATCHES` keep an item's files few whatever its size. Batches are committed
# `_COMMITS_IN_FLIGHT` at a time: a 1 GiB save took 0.94 s one at a time, 0.73-0.83 s two,
# 0.76 s three, 0.72 s four, 1.00 s all sixteen (medians of 5; the disk's own 0.61-0.63 s).
_BATCH_BYTES = 64 * 2**20
_MAX_BATCHES = 16
_COMMITS_IN_FLIGHT = 3


def _batches(writes: Sequence[ArrayWrite], split: bool) -> list[list[int]]:
    """The indices of `writes` in consecutive batches, each but the last of at least
    `_BATCH_BYTES` and of a `_MAX_BATCHES`th of all bytes (so at most `_MAX_BATCHES` + 1
    batches; one when not `split`); always at least one, for the packed keys."""
    sizes = [sum(data.nbytes for _, data in w.pieces) for w in writes]
    target = max(_BATCH_BYTES, sum(sizes) / _MAX_BATCHES)
    batches: list[list[int]] = [[]]
    size = 0
    for i, nbytes in enumerate(sizes):
        if split and size >= target:
            batches.append([])
            size = 0
        batches[-1].append(i)
        size += nbytes
    return batches


def _data_files(item_dir: Path) -> set[Path]:
    """The item's OCDBT data files written so far (tensorstore writes each under a temporary
    name with a suffix, then renames it)."""
    try:
        return {p for p in (item_dir / OCDBT_DATA_DIR).iterdir() if "." not in p.name}
    except FileNotFoundError:
        return set()


@attrs.frozen
class PackedRecord:
    """What tenure records of an array it wrote as plain keys inside OCDBT: the crc32 of its
    `zarr.json` and its chunk shape, so that a load reads its chunks without tensorstore's
    array layer (and checks the metadata it skips, as `verify` does)."""

    metadata_crc32: int
    chunk_shape: tuple[int, ...]

    def to_json(self) -> list[Any]:
        """The record as stored in tenure's item file."""
        return [self.metadata_crc32, list(self.chunk_shape)]

    @classmethod
    def from_json(cls, doc: Any) -> PackedRecord:
        """Parse a stored record (`ValueError`/`TypeError` when malformed)."""
        crc, chunk_shape = doc
        return cls(int(crc), tuple(int(n) for n in chunk_shape))


@attrs.frozen
class WrittenArrays:
    """What `write_arrays` wrote: crc32s of pieces by array name, the bytes of each
    `zarr.json` the primary wrote (by path in the item), chunk trailers by path, and the
    arrays written as plain keys inside OCDBT."""

    checksums: dict[str, list[dict[str, Any]]]
    metadata: dict[str, bytes]
    trailers: dict[str, int]
    packed: dict[str, PackedRecord] = attrs.field(factory=dict)
    located: list[LocatedValues] = attrs.field(factory=list)


@attrs.frozen
class LocatedValues:
    """Where packed values of an item lie in one of its OCDBT data files: `file` (relative to
    the item) and each value's offset by key; `manifest`, the crc32 of the database's manifest
    when they were found.

    A save reads these from the database's own index (`ts.ocdbt.dump`) once it commits, so
    that a load reads a run of values with a few large reads instead of key by key. A
    database written since has another manifest: its values are then read key by key, as
    `verify` reads them.
    """

    file: str
    offsets: dict[str, int]
    end: int  # where the last located value ends
    manifest: int | None = None  # None: an earlier save's record, which had none

    def to_json(self) -> dict[str, Any]:
        """The record as stored in tenure's item file."""
        doc: dict[str, Any] = {"file": self.file, "offsets": self.offsets, "end": self.end}
        return doc if self.manifest is None else {**doc, "manifest": self.manifest}

    @classmethod
    def from_json(cls, doc: Any) -> LocatedValues:
        """Parse a stored record (`ValueError`/`TypeError`/`KeyError` when malformed)."""
        file = str(doc["file"])
        if not file.startswith(f"{OCDBT_DATA_DIR}/") or not is_relative_name(file):
            raise ValueError(f"{file!r} is not a data file of the item")
        offsets = {str(k): int(v) for k, v in doc["offsets"].items()}
        end = int(doc["end"])
        if not offsets or any(not 0 <= v < end for v in offsets.values()):
            raise ValueError("offsets outside the located span")
        manifest = doc.get("manifest")
        return cls(file, offsets, end, None if manifest is None else int(manifest))


def manifest_crc32(item_dir: Path) -> int | None:
    """The crc32 of the item's OCDBT manifest; None when it cannot be read."""
    try:
        return zlib.crc32((item_dir / OCDBT_MANIFEST_FILE).read_bytes())
    except OSError:
        return None


def locate_values(item_dir: Path, keys: Sequence[str], ctx: ts.Context) -> list[LocatedValues]:
    """Where the item's OCDBT index puts the values of `keys`: one record per run of them in a
    data file with no large gap inside (a save may interleave them with other arrays' chunks),
    so that a load reads each run with a few large reads. Empty when the index cannot be read
    (a load then reads the values key by key)."""
    manifest = manifest_crc32(item_dir)
    if manifest is None:
        return []
    try:
        where = value_locations(item_dir, ctx)
    except (ValueError, OSError):
        return []
    by_file: dict[str, list[tuple[int, int, str]]] = {}
    for key in keys:
        if key in where:
            file, offset, length = where[key]
            by_file.setdefault(file, []).append((offset, length, key))
    records: list[LocatedValues] = []
    for file, values in sorted(by_file.items()):
        run: dict[str, int] = {}
        end = 0
        for offset, length, key in sorted(values):
            if run and offset > end + _SPAN_GAP_BYTES:
                records.append(LocatedValues(file, run, end, manifest))
                run, end = {}, 0
            run[key] = offset
            end = max(end, offset + length)
        records.append(LocatedValues(file, run, end, manifest))
    return sorted(records, key=lambda r: -len(r.offsets))


def value_locations(item_dir: Path, ctx: ts.Context) -> dict[str, tuple[str, int, int]]:
    """Every value the item's OCDBT database keeps outside its index: data file (relative to
    the item), offset and length by key, as the latest version's B+tree records them.
    `ValueError` or `OSError` when the index cannot be read or is not as expected."""
    base = ts.KvStore.open(kvstore_spec(item_dir), context=ctx).result()
    try:
        return _walk_index(base, ctx)
    except (KeyError, TypeError, AttributeError, IndexError, UnicodeDecodeError) as e:
        raise ValueError(f"the OCDBT index of {item_dir} is not as expected ({e!r})") from e


def _walk_index(base: Any, ctx: ts.Context) -> dict[str, tuple[str, int, int]]:
    manifest = ts.ocdbt.dump(base, context=ctx).result()
    versions = manifest.get("versions") or []
    root = versions[-1]["root"].get("location") if versions else None
    found: dict[str, tuple[str, int, int]] = {}
    files: dict[str, bool] = {}  # whether each data file named is one of the item's
    # Each level's nodes are read together; a key is its ancestors' common prefixes + its own.
    level = [] if root is None else [(b"", ts.ocdbt.dump(base, root, context=ctx))]
    while level:
        deeper = []
        for prefix, pending in level:
            for entry in pending.result()["entries"]:
                key = prefix + entry["key"]
                if "location" in entry:
                    child = prefix + entry.get("subtree_common_prefix", b"")
                    deeper.append((child, ts.ocdbt.dump(base, entry["location"], context=ctx)))
                elif "indirect_value" in entry:
                    _, file, offset, length = entry["indirect_value"].rsplit(":", 3)
                    if file not in files:
                        files[file] = file.startswith(f"{OCDBT_DATA_DIR}/") and is_relative_name(
                            file
                        )
                    if files[file]:
                        found[key.decode()] = (file, int(offset), int(length))
        level = deeper
    return found


class ValueIndex:
    """Where an item's OCDBT index places each value (see `value_locations`), read on first
    call; empty when it cannot be read (values are then read key by key)."""

    def __init__(self, item_dir: Path, ctx: ts.Context) -> None:
        self._item_dir = item_dir
        self._ctx = ctx
        self._locations: dict[str, tuple[str, int, int]] | None = None

    def __call__(self) -> dict[str, tuple[str, int, int]]:
        if self._locations is None:
            try:
                self._locations = value_locations(self._item_dir, self._ctx)
            except (ValueError, OSError):
                self._locations = {}
        return self._locations


# A gap between values larger than this starts a new run: reading it costs more than a
# request of its own.
_SPAN_GAP_BYTES = 2**20
_SPAN_PART_BYTES = 8 * 2**20
# A span is read by one thread per run of this many bytes, front to back: the kernel's
# readahead then keeps the disk busy, where parts read side by side (as a chunk's are, see
# `_SPAN_PART_BYTES`) defeat it (64 MiB in two files, cold: 41-45 ms against 59).
_SPAN_RUN_BYTES = 32 * 2**20


class PackedSpan:
    """The located packed chunks of an item, read on first use front to back (by a thread per
    run of `_SPAN_RUN_BYTES`), then handed out by key.

    Each value is read to an address aligned for jax to adopt, however tensorstore placed it
    in the file: the span is cut at its values' offsets, and each piece read (by `preadv`s of
    up to `_IOV_MAX` pieces) into its own aligned place.
    """

    def __init__(self, item_dir: Path, located: LocatedValues) -> None:
        self.item_dir = item_dir
        self.located = located
        self._buffer: np.ndarray | None = None
        # Each piece's offset in the file (in file order), its place in the buffer and its
        # length; the piece holding each key's value; the first piece of each run to read.
        self._starts = self._slots = self._lengths = self._of_key = np.zeros(0, np.int64)
        self._bounds: list[int] = []
        self._places: dict[str, tuple[int, int]] | None = None
        self._parts: list[Future[int]] | None = None  # the reads, once started
        self._read = False

    def _layout(self) -> None:
        """Place every piece in a new buffer (once), without reading anything."""
        if self._buffer is not None:
            return
        offsets = np.fromiter(self.located.offsets.values(), np.int64)
        starts = np.unique(offsets)
        lengths = np.diff(starts, append=self.located.end)
        padded = -(-lengths // _ALIGNMENT) * _ALIGNMENT
        size = int(padded.sum())
        check_read_size(self.item_dir, self.located.file, (size,), np.uint8)
        self._buffer = aligned_empty((size,), np.dtype(np.uint8))
        self._starts, self._lengths = starts, lengths
        self._slots = np.cumsum(padded) - padded
        self._of_key = np.searchsorted(starts, offsets)
        # Runs of about `_SPAN_RUN_BYTES`.
        bounds = [0]
        ends = np.cumsum(lengths)
        while bounds[-1] < len(starts):
            first = bounds[-1]
            by_size = int(np.searchsorted(ends, ends[first] - lengths[first] + _SPAN_RUN_BYTES))
            bounds.append(min(max(by_size, first + 1), len(starts)))
        self._bounds = bounds

    def read(self) -> None:
        """Start the span's reads, unless they are started."""
        if self._parts is not None:
            return
        self._layout()
        assert self._buffer is not None
        path = self.item_dir / self.located.file
        view = self._buffer.data
        self._parts = []
        # Each run is submitted as soon as its pieces are cut, so the first read starts at
        # once rather than after thousands of slices.
        for i, j in itertools.pairwise(self._bounds):
            slots, lengths = self._slots[i:j].tolist(), self._lengths[i:j].tolist()
            pieces = [view[p : p + n] for p, n in zip(slots, lengths, strict=True)]
            self._parts.append(read_pool().submit(_read_pieces, path, pieces, int(self._starts[i])))

    def places(self) -> dict[str, tuple[int, int]]:
        """Each key's place in the span's buffer and the length of its piece there (reads
        nothing: see `read`)."""
        if self._places is None:
            self._layout()
            of_key = self._of_key
            self._places = dict(
                zip(
                    self.located.offsets,
                    zip(self._slots[of_key].tolist(), self._lengths[of_key].tolist(), strict=True),
                    strict=True,
                )
            )
        return self._places

    def locate(self, name: str, key: str, nbytes: int) -> int:
        """The offset in the span's buffer of the `nbytes` bytes of chunk `key` (reads
        nothing: see `read`)."""
        place, length = self.places()[key]
        if nbytes > length:
            raise _corrupt(name, self.item_dir, f"chunk {key} lies outside the recorded span")
        return place

    def data(self, name: str) -> np.ndarray:
        """The span's bytes, once read (`name`: the array that needs them)."""
        if not self._read:
            self.read()
            assert self._parts is not None
            try:
                for part in self._parts:
                    part.result()
            except (OSError, ValueError) as e:
                raise _corrupt(name, self.item_dir, e) from e
            self._read = True
        assert self._buffer is not None
        return self._buffer

    def view(self, name: str, key: str, nbytes: int) -> Callable[[], np.ndarray]:
        """Start the span's reads (once); return the function that waits for them and gives
        the `nbytes` bytes of chunk `key`."""
        offset = self.locate(name, key, nbytes)
        self.read()
        return lambda: self.data(name)[offset : offset + nbytes]


class PackedSpans:
    """The spans of an item's located packed chunks (one per data file), by chunk key."""

    def __init__(self, item_dir: Path, located: Sequence[LocatedValues]) -> None:
        # Chunks are handed out as views of the spans (which they keep alive) when a load
        # reads most of them; as copies otherwise, so that a few leaves do not hold them all.
        self.views = False
        self.by_key: dict[str, PackedSpan] = {}
        self._spans = [PackedSpan(item_dir, record) for record in located]
        for span in self._spans:
            self.by_key.update(dict.fromkeys(span.located.offsets, span))
        self._placed: dict[str, tuple[PackedSpan, int, int]] | None = None

    def read(self) -> None:
        """Start reading every span."""
        for span in self._spans:
            span.read()

    def placed(self) -> dict[str, tuple[PackedSpan, int, int]]:
        """Every key's span, and its piece's place there and length (see `PackedSpan.locate`):
        one lookup per value for a load of thousands."""
        if self._placed is None:
            self._placed = {}
            for span in self._spans:
                self._placed.update(
                    (key, (span, place, length)) for key, (place, length) in span.places().items()
                )
        return self._placed


class _InSpan(NamedTuple):
    """A value found with others in a span: its key and size."""

    span: PackedSpan
    key: str
    nbytes: int


class WholeForm(NamedTuple):
    """What reading a whole array of one dtype and shape, stored as one chunk, needs to know:
    the same for every such array of a state (see `whole_form`)."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    region: Region  # all of the array
    recorded_index: list[list[int]]  # `region` as tenure's checksum records write it
    chunk: str  # the chunk's key after the array's name, from its '/'
    nbytes: int
    metadata_nbytes: int  # the size of the `zarr.json` tenure writes for it


@functools.lru_cache(maxsize=256)
def whole_form(dtype: np.dtype[Any], shape: tuple[int, ...]) -> WholeForm | None:
    """The `WholeForm` of an array of `dtype` and `shape` stored as one chunk (see
    `chunk_path`); None when it has none (an empty array). `ValueError` or `TypeError` when
    tenure writes no `zarr.json` for such an array.

    Examples:
        >>> form = whole_form(np.dtype(np.float32), (4, 2))
        >>> form.region, form.recorded_index, form.chunk, form.nbytes
        (((0, 4), (0, 2)), [[0, 4], [0, 2]], '/c/0/0', 32)
    """
    full = tuple((0, n) for n in shape)
    key = chunk_path("", full, shape)
    if key is None:
        return None
    nbytes = math.prod(shape) * dtype.itemsize
    meta_nbytes = _plain_metadata_size(dtype, shape, shape)
    return WholeForm(dtype, shape, full, [list(b) for b in full], key, nbytes, meta_nbytes)


def metadata_in_span(
    spans: PackedSpans | None,
    item_dir: Location,
    name: str,
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    chunk_shape: tuple[int, ...],
) -> _InSpan | None:
    """Where the packed array `name`'s `zarr.json` lies in `spans`, if it was located there:
    as long as the one tenure writes for such an array."""
    key = f"{name}/{ZARR_METADATA_FILE}"
    span = None if spans is None else spans.by_key.get(key)
    if span is None:
        return None
    return _InSpan(span, key, _metadata_size(item_dir, name, dtype, shape, chunk_shape))


def _metadata_size(
    item_dir: Location,
    name: str,
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    chunk_shape: tuple[int, ...],
) -> int:
    """The size of the `zarr.json` tenure writes for packed array `name` as recorded."""
    try:
        return _plain_metadata_size(dtype, shape, chunk_shape)
    except (TypeError, ValueError) as e:
        raise _corrupt(name, item_dir, f"its record does not describe it ({e})") from e


_METADATA_KEY = f"/{ZARR_METADATA_FILE}"

# An array read by `LocatedBatch`: its name, dtype and shape, then its chunk and its
# `zarr.json`, each as the span holding it, the offset there, the size and the recorded crc32.
_Checked = tuple[
    str, np.dtype[Any], tuple[int, ...], PackedSpan, int, int, int, PackedSpan, int, int, int
]


class LocatedBatch:
    """Whole arrays whose one chunk and `zarr.json` were located in spans, checked together.

    Such arrays are a state's many small ones. Each is checked as `PackedArray` checks it
    (its chunk and its `zarr.json` against their recorded crc32), but in one pass over all
    arrays added since the last, half of it on a reading thread, instead of through a chain
    of calls per array.
    """

    def __init__(self, item_dir: Location, spans: PackedSpans) -> None:
        self.item_dir = item_dir
        self.spans = spans
        self._arrays: list[_Checked] = []
        self._values: list[np.ndarray] = []

    def form(self, name: str, dtype: np.dtype[Any], shape: tuple[int, ...]) -> WholeForm | None:
        """`whole_form(dtype, shape)`, as recorded for array `name` (`CorruptCheckpointError`
        when tenure writes no such array)."""
        try:
            return whole_form(dtype, shape)
        except (TypeError, ValueError) as e:
            raise _corrupt(name, self.item_dir, f"its record does not describe it ({e})") from e

    def whole(
        self,
        name: str,
        dtype: np.dtype[Any],
        shape: tuple[int, ...],
        record: PackedRecord,
        crcs: dict[Region, int],
    ) -> int | None:
        """Add array `name` (its recorded dtype, shape, record and crc32 of each piece) to be
        read whole, when it is one chunk and that chunk and its `zarr.json` lie in the spans;
        its number for `value` (None: it cannot be read this way). Reads nothing: `read`."""
        if len(crcs) != 1 or record.chunk_shape != shape:
            return None
        form = self.form(name, dtype, shape)
        ((bounds, crc),) = crcs.items()
        if form is None or bounds != form.region:
            return None
        return self.add_whole(name, form, crc, record.metadata_crc32)

    def add_whole(self, name: str, form: WholeForm, crc: int, metadata_crc: int) -> int | None:
        """`whole` for an array recorded as one chunk of `form` (nothing else is checked), with
        the crc32 of that chunk and of its `zarr.json`."""
        placed = self.spans.placed()
        key, meta_key = name + form.chunk, name + _METADATA_KEY
        chunk, meta = placed.get(key), placed.get(meta_key)
        if chunk is None or meta is None:
            return None
        nbytes, meta_nbytes = form.nbytes, form.metadata_nbytes
        span, place, length = chunk
        meta_span, meta_place, meta_length = meta
        if nbytes > length or meta_nbytes > meta_length:
            outside = key if nbytes > length else meta_key
            raise _corrupt(name, self.item_dir, f"chunk {outside} lies outside the recorded span")
        self._arrays.append(
            (
                name,
                form.dtype,
                form.shape,
                span,
                place,
                nbytes,
                crc,
                meta_span,
                meta_place,
                meta_nbytes,
                metadata_crc,
            )
        )
        return len(self._arrays) - 1

    def add(
        self, array: PackedArray, index: Index | None = None
    ) -> Callable[[], np.ndarray] | None:
        """Start reading `index` of `array` (None: all of it) when it can be read this way
        (the whole array); the function that gives its checked value (None: read it with
        `array.start`)."""
        if array.cast is not None or type(array.metadata) is not _InSpan:
            return None
        if index is not None and {region(index, array.shape)} != set(array.crcs):
            return None
        number = self.whole(array.name, array.dtype, array.shape, array.record, array.crcs)
        if number is None:
            return None
        _, _, _, span, _, _, _, meta_span, *_ = self._arrays[number]
        span.read()
        meta_span.read()
        return functools.partial(self.value, number)

    def read(self) -> None:
        """Start reading the spans that hold the arrays added."""
        spans = {id(a[3]): a[3] for a in self._arrays}
        spans.update((id(a[7]), a[7]) for a in self._arrays)
        for span in spans.values():
            span.read()

    def value(self, number: int) -> np.ndarray:
        """The checked value of the array added as `number` (see `whole`)."""
        if number >= len(self._values):
            self._check(self._arrays[len(self._values) :])
        return self._values[number]

    def _check(self, arrays: list[_Checked]) -> None:
        # Each span's bytes, by identity, once its reads are done (or raised what they raised,
        # naming the first array there).
        spans = {a[3] for a in arrays} | {a[7] for a in arrays}
        data = {
            id(span): span.data(next(a[0] for a in arrays if span in (a[3], a[7])))
            for span in spans
        }
        # Slices of a memoryview cost less than numpy's, thousands of times over.
        views = {key: buffer.data for key, buffer in data.items()}
        half = len(arrays) // 2
        other = read_pool().submit(_first_damaged, arrays[half:], views)
        damaged = _first_damaged(arrays[:half], views)
        damaged = other.result() if damaged is None else damaged
        if damaged is not None:
            name, why = damaged
            raise _corrupt(name, self.item_dir, why)
        # One constructor call each: a slice, a view and a reshape cost 2.5x as much.
        values = [np.ndarray(a[2], a[1], data[id(a[3])], a[4]) for a in arrays]
        self._values.extend(values if self.spans.views else [v.copy() for v in values])


def _first_damaged(arrays: list[_Checked], data: dict[int, memoryview]) -> tuple[str, str] | None:
    """The name of the first of `arrays` whose chunk or `zarr.json` differs from the recorded
    one, and how (`data`: the bytes of each span, by its identity)."""
    for (
        name,
        _,
        _,
        span,
        offset,
        nbytes,
        crc,
        meta_span,
        meta_offset,
        meta_nbytes,
        meta_crc,
    ) in arrays:
        if zlib.crc32(data[id(span)][offset : offset + nbytes]) != crc:
            return name, "its crc32 differs from the recorded one"
        if zlib.crc32(data[id(meta_span)][meta_offset : meta_offset + meta_nbytes]) != meta_crc:
            return name, "its zarr.json differs from the recorded one"
    return None


# The most pieces one `preadv` takes (POSIX requires at least 16; Linux allows 1024).
_IOV_MAX = max(16, min(1024, os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16))


def _read_pieces(path: Path, pieces: list[memoryview], offset: int) -> int:
    """Fill `pieces` in turn with the bytes of `path` from `offset`."""
    done = first = 0
    with open(path, "rb", buffering=0) as f:
        while first < len(pieces):
            count = os.preadv(f.fileno(), pieces[first : first + _IOV_MAX], offset + done)
            if not count:
                raise ValueError(f"{path.name} ended early")
            done += count
            # A short read: go on from where it stopped.
            while first < len(pieces) and count >= len(pieces[first]):
                count -= len(pieces[first])
                first += 1
            if count:
                pieces[first] = pieces[first][count:]
    return done


def _read_trailer(path: Path) -> int | None:
    """The crc32c that ends a chunk file, or None when there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        tail = os.pread(fd, _TRAILER_BYTES, size - _TRAILER_BYTES) if size >= 4 else b""
    finally:
        os.close(fd)
    return int.from_bytes(tail, "little") if len(tail) == _TRAILER_BYTES else None


def chunk_path(name: str, bounds: Region, chunk_shape: Sequence[int]) -> str | None:
    """The path, inside the item, of the chunk file holding exactly `bounds` of array `name`
    (zarr3's default chunk keys), or None when `bounds` is not exactly one chunk.

    Examples:
        >>> chunk_path("w", ((4, 8), (0, 2)), (4, 2))
        'w/c/1/0'
    """
    coords = []
    for (start, stop), size in zip(bounds, chunk_shape, strict=True):
        if size <= 0 or start % size or stop - start != size:
            return None
        coords.append(str(start // size))
    return "/".join([name, ZARR_CHUNK_DIR, *coords])


def _wait(future: Any, item_dir: Location, name: str) -> Any:
    try:
        return future.result()
    except Exception as e:
        if is_space_error(e):
            raise space_error(item_dir, e) from e
        if is_object_store(item_dir):
            raise StorageError(
                describe_store_error(f"writing array {name!r} under {item_dir}", e)
            ) from e
        raise TenureIOError(f"writing array {name!r} under {item_dir} failed: {e}") from e


def open_database(item_dir: Location, ctx: ts.Context) -> Any:
    """The item's OCDBT database opened for reading (`ts.KvStore`); damage is corruption."""
    try:
        return ts.KvStore.open(ocdbt_spec(item_dir), context=ctx).result()
    except (ValueError, OSError) as e:
        raise _corrupt("<ocdbt>", item_dir, e) from e


def open_for_read(
    item_dir: Location, name: str, meta: TreeMetadata, ctx: ts.Context | None = None
) -> Any:
    """Start opening stored array `name`; resolve it with `resolve_read`."""
    return ts.open(read_spec(item_dir, name, meta), context=ctx or context())


def resolve_read(future: Any, item_dir: Location, name: str) -> Any:
    """Wait for a tensorstore open or read of `name`, reporting damage as corruption."""
    try:
        return future.result()
    except (ValueError, OSError) as e:
        raise _corrupt(name, item_dir, e) from e


# XLA's CPU client adopts host buffers aligned to 64 bytes instead of copying them.
_HUGE_PAGE = 2 * 2**20
_ALIGNMENT = 64

Region = tuple[tuple[int, int], ...]


def aligned_empty(shape: Sequence[int], dtype: np.dtype[Any]) -> np.ndarray:
    """An uninitialised C-order array whose data `jax.device_put` can adopt on CPU."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes >= _HUGE_PAGE and hasattr(mmap, "MADV_HUGEPAGE"):
        # A fresh buffer is filled page by page: with 2 MiB pages instead of 4 KiB, filling
        # it takes 512 times fewer page faults. Anonymous mappings are page-aligned, which
        # satisfies jax's alignment.
        mapping = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        mapping.madvise(mmap.MADV_HUGEPAGE)
        return np.frombuffer(mapping, np.uint8).view(dtype).reshape(tuple(shape))
    buffer = np.empty(nbytes + _ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % _ALIGNMENT
    return buffer[start : start + nbytes].view(dtype).reshape(tuple(shape))


def region(index: Index, shape: Sequence[int]) -> Region:
    """A tuple of slices as hashable `((start, stop), ...)` against `shape`."""
    return tuple(s.indices(n)[:2] for s, n in zip(index, shape, strict=True))


@attrs.frozen
class RawArray:
    """A stored zarr3 array whose chunks are plain little-endian bytes (tenure's default layout).

    Such a chunk is read with one `readinto` straight into the output buffer, which is an
    order of magnitude faster than tensorstore's decode path. Integrity comes from the crc32
    tenure recorded for each written piece, so only recorded pieces are read this way.
    """

    array_dir: Path
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    chunk_shape: tuple[int, ...]
    crcs: dict[Region, int]
    trailers: dict[str, int]

    @classmethod
    def open(
        cls, array_dir: Path, crcs: dict[Region, int], trailers: dict[str, int], metadata: bytes
    ) -> RawArray | None:
        """The raw view of the array in `array_dir` whose checked `zarr.json` holds `metadata`
        (`trailers`: recorded chunk trailers by path in the item), or None when its codecs
        need tensorstore."""
        if not crcs or sys.byteorder != "little":
            return None
        try:
            doc = json.loads(metadata)
            shape = tuple(int(n) for n in doc["shape"])
            grid = doc["chunk_grid"]
            chunk_shape = tuple(int(n) for n in grid["configuration"]["chunk_shape"])
            dtype = ts.dtype(doc["data_type"]).numpy_dtype
            codecs = [c["name"] for c in doc["codecs"]]
            endian = doc["codecs"][0].get("configuration", {}).get("endian", "little")
            encoding = doc.get("chunk_key_encoding", {"name": "default"})
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            return None  # tensorstore reads it, or reports the damage
        plain = (
            grid["name"] == "regular"
            and codecs == ["bytes", "crc32c"]
            and endian == "little"
            and encoding == {"name": "default"}
            and len(chunk_shape) == len(shape)
            and all(shape)
        )
        if not plain:
            return None
        return cls(array_dir, shape, dtype, chunk_shape, crcs, trailers)

    def chunk(self, index: Index) -> tuple[Path, int, int] | None:
        """The chunk file that holds exactly `index`, its recorded crc32 and trailer; None
        when not exactly one chunk, or nothing is recorded for it."""
        bounds = region(index, self.shape)
        crc = self.crcs.get(bounds)
        relative = chunk_path(self.array_dir.name, bounds, self.chunk_shape)
        trailer = None if relative is None else self.trailers.get(relative)
        if crc is None or relative is None or trailer is None:
            return None
        return self.array_dir.parent / relative, crc, trailer

    def start(self, index: Index) -> Callable[[], np.ndarray] | None:
        """Start reading `index` when it is exactly one recorded chunk; return the function
        that waits for it (None: tensorstore must read it)."""
        chunk = self.chunk(index)
        if chunk is None:
            return None
        return read_pool().submit(self.read, self.array_dir.name, *chunk).result

    def read(self, name: str, path: Path, crc: int, trailer: int) -> np.ndarray:
        """Read one chunk into a fresh aligned buffer, checking its size, crc32 and trailer."""
        nbytes = int(np.prod(self.chunk_shape, dtype=np.int64)) * self.dtype.itemsize
        try:
            with open(path, "rb", buffering=0) as f:
                # The size is checked before the buffer is allocated: a damaged shape must
                # not allocate more than the file holds.
                if os.fstat(f.fileno()).st_size != nbytes + _TRAILER_BYTES:
                    raise ValueError(f"{path.name} has the wrong size")
                out = aligned_empty(self.chunk_shape, self.dtype)
                view = out.reshape(-1).view(np.uint8).data
                done = 0
                while done < out.nbytes:
                    count = f.readinto(view[done:])
                    if not count:
                        raise ValueError(f"{path.name} ended early")
                    done += count
                if int.from_bytes(f.read(_TRAILER_BYTES), "little") != trailer:
                    raise ValueError("its crc32c trailer differs from the recorded one")
        except (OSError, ValueError) as e:
            raise _corrupt(name, self.array_dir.parent, e) from e
        if zlib.crc32(view) != crc:
            raise _corrupt(name, self.array_dir.parent, "its crc32 differs from the recorded one")
        return out


@functools.cache
def read_pool() -> ThreadPoolExecutor:
    """Threads for raw chunk reads: `readinto` and `crc32` release the GIL."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="tenure-read")


@attrs.frozen
class PackedArray:
    """An array tenure wrote as plain keys inside an item's OCDBT database (see `PackedRecord`).

    Its recorded pieces are read as single key-value reads, all in flight together, and each
    is checked against its recorded size and crc32 (tensorstore checks none: the chunks carry
    no crc32c). The array's `zarr.json`, which this path does not need, is read too and
    checked against its recorded crc32, so that a load rejects what `verify` rejects.

    On a local disk, a chunk not located with the others (a larger array's, which
    tensorstore wrote) is read straight from its data file, where `locate` (the database's
    index, see `value_locations`) places it, into an aligned buffer jax adopts.
    """

    item_dir: Location
    name: str
    kvstore: Any  # the opened OCDBT database (a `ts.KvStore`)
    # The future of the read of its `zarr.json`, or the function that starts reading it
    # where it was located with the chunks.
    metadata: Any
    record: PackedRecord
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    crcs: dict[Region, int]
    spans: PackedSpans | None = None
    cast: np.dtype[Any] | None = None
    locate: Callable[[], dict[str, tuple[str, int, int]]] | None = None

    @classmethod
    def open(
        cls,
        item_dir: Location,
        name: str,
        kvstore: Any,
        record: PackedRecord,
        saved: tuple[str, tuple[int, ...]],
        crcs: dict[Region, int],
        spans: PackedSpans | None = None,
        locate: Callable[[], dict[str, tuple[str, int, int]]] | None = None,
    ) -> PackedArray:
        """Start reading the array's metadata; `saved` is its recorded dtype and shape;
        `locate` gives where the index places each value, when a chunk needs it."""
        try:
            dtype = numpy_dtype(saved[0])
        except (TypeError, ValueError) as e:
            raise _corrupt(name, item_dir, f"its recorded dtype {saved[0]!r} is unknown") from e
        metadata: Any = metadata_in_span(
            spans, item_dir, name, dtype, saved[1], record.chunk_shape
        ) or kvstore.read(f"{name}/{ZARR_METADATA_FILE}")
        return cls(
            item_dir, name, kvstore, metadata, record, saved[1], dtype, crcs, spans, locate=locate
        )

    def read_ahead(self) -> None:
        """Start reading the span that holds the array's values, when it has one."""
        if type(self.metadata) is _InSpan:
            self.metadata.span.read()

    def check_metadata(self) -> None:
        """Raise `CorruptCheckpointError` unless the stored `zarr.json` is the one written."""
        if type(self.metadata) is _InSpan:
            span, key, nbytes = self.metadata
            value: Any = span.view(self.name, key, nbytes)().data
        else:
            value = self._value(self.metadata, ZARR_METADATA_FILE)
        if zlib.crc32(value) != self.record.metadata_crc32:
            raise _corrupt(self.name, self.item_dir, "its zarr.json differs from the recorded one")

    def cast_to(self, dtype: np.dtype[Any]) -> PackedArray:
        """The same array, read then converted to `dtype` as tensorstore converts."""
        return attrs.evolve(self, cast=dtype)

    def start(self, index: Index) -> Callable[[], np.ndarray]:
        """Start reading `index`: its recorded piece, or every piece when it is not one. The
        function returned checks the array's `zarr.json` too, so that its read overlaps the
        data's."""
        bounds = region(index, self.shape)
        if bounds in self.crcs:
            read = self._start_piece(bounds)

            def finish() -> np.ndarray:
                self.check_metadata()
                return self._converted(read())

            return finish
        pieces = {b: self._start_piece(b) for b in self.crcs}

        def assemble() -> np.ndarray:
            self.check_metadata()
            covered = sum(int(np.prod([b - a for a, b in piece])) for piece in pieces)
            if covered != int(np.prod(self.shape)):
                raise _corrupt(self.name, self.item_dir, "its recorded pieces do not cover it")
            full = aligned_empty(self.shape, self.dtype)
            for piece, read in pieces.items():
                full[tuple(slice(a, b) for a, b in piece)] = read()
            return self._converted(np.array(full[index]))

        return assemble

    def _start_piece(self, bounds: Region) -> Callable[[], np.ndarray]:
        shape = tuple(b - a for a, b in bounds)
        key = chunk_path(self.name, bounds, self.record.chunk_shape)
        if key is None or shape != self.record.chunk_shape:
            raise _corrupt(self.name, self.item_dir, f"piece {list(bounds)} is not one chunk")
        crc = self.crcs[bounds]
        nbytes = math.prod(shape) * self.dtype.itemsize
        spans = self.spans
        span = None if spans is None else spans.by_key.get(key)
        where = None
        if span is None and self.locate is not None and isinstance(self.item_dir, Path):
            where = self.locate().get(key)
        if where is not None and where[2] == nbytes:
            assert isinstance(self.item_dir, Path)
            return self._start_direct(self.item_dir / where[0], where[1], shape, crc)
        if spans is not None and span is not None:
            located = span.view(self.name, key, nbytes)

            def finish_located() -> np.ndarray:
                value = located()
                if zlib.crc32(value.data) != crc:
                    raise _corrupt(
                        self.name, self.item_dir, "its crc32 differs from the recorded one"
                    )
                value = value.view(self.dtype).reshape(shape)
                return value if spans.views else value.copy()

            return finish_located
        pending = self.kvstore.read(key)

        def finish() -> np.ndarray:
            value = self._value(pending, key)
            if len(value) != nbytes:
                raise _corrupt(self.name, self.item_dir, f"chunk {key} has the wrong size")
            if zlib.crc32(value) != crc:
                raise _corrupt(self.name, self.item_dir, "its crc32 differs from the recorded one")
            # A writable copy; small enough that jax's adopting aligned buffers does not matter.
            return np.frombuffer(value, self.dtype).reshape(shape).copy()

        return finish

    def _start_direct(
        self, path: Path, offset: int, shape: tuple[int, ...], crc: int
    ) -> Callable[[], np.ndarray]:
        # Into a buffer jax adopts, in parts read in parallel (a virtual disk needs requests
        # in flight); the size was checked against the index and the memory when planned.
        out = aligned_empty(shape, self.dtype)
        data = out.reshape(-1).view(np.uint8)
        view = data.data
        parts = [
            read_pool().submit(_read_pieces, path, [view[a : a + _SPAN_PART_BYTES]], offset + a)
            for a in range(0, data.size, _SPAN_PART_BYTES)
        ]

        def finish() -> np.ndarray:
            try:
                for part in parts:
                    part.result()
            except (OSError, ValueError) as e:
                raise _corrupt(self.name, self.item_dir, e) from e
            if zlib.crc32(data.data) != crc:
                raise _corrupt(self.name, self.item_dir, "its crc32 differs from the recorded one")
            return out

        return finish

    def _value(self, pending: Any, key: str) -> bytes:
        try:
            result = pending.result()
        except (ValueError, OSError) as e:
            raise _corrupt(self.name, self.item_dir, e) from e
        if result.state != "value":
            raise _corrupt(self.name, self.item_dir, f"{key} is missing")
        return bytes(result.value)

    def _converted(self, data: np.ndarray) -> np.ndarray:
        if self.cast is None:
            return data
        return np.asarray(ts.cast(ts.array(data), self.cast).read().result())


def _corrupt(name: str, item_dir: Location, why: object) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f"array {name!r} in {item_dir} cannot be read ({why}): its data is missing, "
        "truncated or corrupted; restore from another step or copy"
    )
