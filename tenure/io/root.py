"""The one owner of a checkpoint root and its files: every on-disk name, what a step is, and
the helpers that interpret them."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping
from pathlib import Path

import attrs

from tenure.io.errors import CorruptCheckpointError, InvalidNameError
from tenure.io.jsondoc import parse
from tenure.io.storage import (
    Location,
    ObjectPath,
    as_location,
    is_object_store,
    list_dir,
    remove_tree,
)

TMP_MARKER = ".orbax-checkpoint-tmp"
STEP_METADATA_FILE = "_CHECKPOINT_METADATA"
TREE_METADATA_FILE = "_METADATA"
COMMIT_SUCCESS_FILE = "commit_success.txt"
V1_INDICATOR_FILE = "orbax.checkpoint"
SHARDING_FILE = "_sharding"
STRINGS_FILE = "_strings.json"
ARRAY_METADATAS_DIR = "array_metadatas"
TENURE_DIR = "_tenure"
JSON_DATA_FILE = "data.json"
V0_JSON_FILE = "metadata"
METRICS_ITEM = "metrics"
METRICS_FILE = "metrics"
DEFAULT_ITEM = "state"
ITEM_FILE = "item.json"
ZARR_METADATA_FILE = "zarr.json"
ZARR_CHUNK_DIR = "c"
OCDBT_MANIFEST_FILE = "manifest.ocdbt"
STEP_CHECKSUMS_FILE = "_tenure_checksums.json"
CHECKSUMS_PATTERN = "checksums.process_*.json"
FILE_CHECKSUMS_PATTERN = "files.process_*.json"
# Item-level names a parameter (an array directory) must not take, compared case-folded so
# that case-insensitive file systems are safe too.
RESERVED_ITEM_NAMES = frozenset(
    name.casefold()
    for name in (
        TREE_METADATA_FILE,
        SHARDING_FILE,
        STRINGS_FILE,
        ARRAY_METADATAS_DIR,
        TENURE_DIR,
        OCDBT_MANIFEST_FILE,
        ZARR_METADATA_FILE,
    )
)


def checksums_file(process_index: int) -> str:
    """Name of a process's array-checksum record inside `_tenure/`."""
    return f"checksums.process_{process_index}.json"


def file_checksums_file(process_index: int) -> str:
    """Name of a process's file-checksum record inside `_tenure/`."""
    return f"files.process_{process_index}.json"


def array_metadatas_file(process_index: int) -> str:
    """Path, inside an item, of the array metadata Orbax reads for one process."""
    return f"{ARRAY_METADATAS_DIR}/process_{process_index}"


PathLike = str | os.PathLike[str] | ObjectPath


def is_temporary(path: PathLike) -> bool:
    """True when `path` names an unfinished save (tenure's or Orbax's temporary directory).

    Examples:
        >>> is_temporary("/ckpt/5.orbax-checkpoint-tmp")
        True
        >>> is_temporary("/ckpt/5")
        False
    """
    name = path.name if isinstance(path, ObjectPath) else Path(path).name
    return TMP_MARKER in name


def temporary_path(step_dir: PathLike) -> Location:
    """The temporary directory a save of `step_dir` writes into before the commit rename.

    Examples:
        >>> temporary_path("/ckpt/5").name
        '5.orbax-checkpoint-tmp'
    """
    final = as_location(step_dir)
    return final.with_name(final.name + TMP_MARKER)


def is_committed(step_dir: PathLike, *, require_commit_file: bool = False) -> bool:
    """True when `step_dir` is a finished checkpoint a reader may use.

    A directory is finished when its name carries no temporary marker (commit by rename).
    With `require_commit_file`, `commit_success.txt` must also exist; on object stores, where
    saves write in place, that marker is always what commits a step.

    Examples:
        >>> is_committed("/nonexistent/5")
        False
    """
    path = as_location(step_dir)
    if is_object_store(path):
        return not is_temporary(path) and (path / COMMIT_SUCCESS_FILE).is_file()
    if is_temporary(path) or not path.is_dir():
        return False
    return not require_commit_file or (path / COMMIT_SUCCESS_FILE).is_file()


def remove_temporary(root: PathLike) -> list[Location]:
    """Delete the temporary directories that crashed saves left under `root`; return them.

    Only call this when no save into `root` is running.

    Examples:
        >>> remove_temporary("/nonexistent")
        []
    """
    base = as_location(root)
    if is_object_store(base) or not base.is_dir():
        # Object stores have no temporary names: an uncommitted step is a prefix without
        # its commit marker, which the manager removes when it opens the root.
        return []
    removed: list[Location] = [c for c in list_dir(base) if is_temporary(c)]
    for child in removed:
        remove_tree(child)
    return removed


def validate_item_name(name: str) -> str:
    """Return `name` if it can be a checkpointable directory name, else raise.

    Examples:
        >>> validate_item_name("state")
        'state'
    """
    bad = (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or TMP_MARKER in name
        or name.startswith("_")
    )
    if bad:
        raise InvalidNameError(
            f"checkpointable name {name!r} cannot be a directory name: use a non-empty name "
            f"without '/', '\\', a leading '_', '..' or {TMP_MARKER!r}"
        )
    return name


# -- checksum records --
#
# Every file a load reads has its crc32 and size recorded by the process that wrote it, in
# files Orbax ignores: `<item>/_tenure/files.process_<i>.json` for an item's files (paths
# relative to the item) and `<step>/_tenure_checksums.json` for `_CHECKPOINT_METADATA`. A
# record carries the crc32 of its own entries, so damage to the record itself is detected.
# Steps written by Orbax have no records: their files are checked as far as their formats
# allow.

_RECORD_VERSION = 1


@attrs.frozen
class FileChecksum:
    """The crc32 and size of one recorded file.

    Examples:
        >>> FileChecksum.of(b"abc")
        FileChecksum(crc32=891568578, size=3)
    """

    crc32: int
    size: int

    @classmethod
    def of(cls, data: bytes) -> FileChecksum:
        """The checksum of `data`."""
        return cls(zlib.crc32(data), len(data))


@attrs.frozen
class ChecksumRecord:
    """The checksums of the files one process wrote into a directory.

    `processes` is how many processes wrote records there, so a missing one is noticed.
    `trailers` holds the crc32c that ends each plain chunk file (by its path), so that reads
    which bypass tensorstore still notice a damaged trailer, as tensorstore would.

    Examples:
        >>> record = ChecksumRecord({"_METADATA": FileChecksum.of(b"{}")}, processes=1)
        >>> ChecksumRecord.from_bytes(record.to_bytes(), "x") == record
        True
    """

    files: Mapping[str, FileChecksum]
    processes: int = 1
    trailers: Mapping[str, int] = attrs.field(factory=dict)

    def to_bytes(self) -> bytes:
        """The record as stored."""
        body = {name: [c.crc32, c.size] for name, c in sorted(self.files.items())}
        trailers = dict(sorted(self.trailers.items()))
        seal = zlib.crc32(json.dumps([body, self.processes, trailers]).encode())
        doc = {
            "format_version": _RECORD_VERSION,
            "processes": self.processes,
            "files": body,
            "trailers": trailers,
            "crc32": seal,
        }
        return json.dumps(doc).encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: object) -> ChecksumRecord:
        """Parse a stored record; a damaged one is `CorruptCheckpointError`."""
        doc = parse(data, where)
        try:
            body, processes, trailers = doc["files"], doc["processes"], doc["trailers"]
            seal = zlib.crc32(json.dumps([body, processes, trailers]).encode())
            files = {
                str(name): FileChecksum(int(crc), int(size)) for name, (crc, size) in body.items()
            }
            valid = doc["crc32"] == seal and type(processes) is int and processes >= 1
            trailers = {str(name): int(value) for name, value in trailers.items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            valid = False
        if not valid or not all(is_relative_name(name) for name in [*files, *trailers]):
            raise CorruptCheckpointError(
                f"checksum record {where} is damaged (its own checksum or layout is wrong): "
                "the files it covers cannot be trusted; restore the step from another copy"
            )
        return cls(files, processes, trailers)


def is_relative_name(name: str) -> bool:
    """True when `name` is a relative path that stays inside its directory.

    Examples:
        >>> is_relative_name("w/zarr.json"), is_relative_name("../x"), is_relative_name("/x")
        (True, False, False)
    """
    parts = name.split("/")
    return not any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts)


def write_checksum_record(path: Location, record: ChecksumRecord) -> None:
    """Store `record` at `path` (inside a save's temporary directory; the commit fsyncs it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(record.to_bytes())


def write_step_checksums(step_dir: Location, step_metadata: bytes) -> None:
    """Record the checksum of a step's `_CHECKPOINT_METADATA`, whose bytes are given."""
    files = {STEP_METADATA_FILE: FileChecksum.of(step_metadata)}
    write_checksum_record(step_dir / STEP_CHECKSUMS_FILE, ChecksumRecord(files))


def step_checksums(step_dir: Location) -> dict[str, FileChecksum] | None:
    """The recorded checksums of a step's own files, or None for a step without a record."""
    path = step_dir / STEP_CHECKSUMS_FILE
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return dict(ChecksumRecord.from_bytes(data, path).files)


def item_checksums(item_dir: Location) -> dict[str, FileChecksum] | None:
    """The recorded checksums of an item's files (paths relative to the item), merged over
    every process; None for an item without records (written by Orbax).

    Raises `CorruptCheckpointError` when a record is damaged or one process's is missing.
    """
    record = item_record(item_dir)
    return None if record is None else dict(record.files)


def item_record(item_dir: Location) -> ChecksumRecord | None:
    """The checksum records of every process of an item merged into one (see
    `item_checksums`); None for an item without records."""
    paths = list_dir(item_dir / TENURE_DIR, FILE_CHECKSUMS_PATTERN)
    if not paths:
        return None
    files: dict[str, FileChecksum] = {}
    trailers: dict[str, int] = {}
    expected = set()
    for path in paths:
        record = ChecksumRecord.from_bytes(path.read_bytes(), path)
        files.update(record.files)
        trailers.update(record.trailers)
        expected.add(record.processes)
    names = {p.name for p in paths}
    if len(expected) != 1 or names != {file_checksums_file(i) for i in range(expected.pop())}:
        raise CorruptCheckpointError(
            f"{item_dir / TENURE_DIR}: the checksum records of some processes are missing or "
            "disagree on how many processes saved; restore the step from another copy"
        )
    return ChecksumRecord(files, len(paths), trailers)


def check_file(
    path: Location, data: bytes, recorded: Mapping[str, FileChecksum] | None, name: str
) -> bytes:
    """Return `data`, the bytes read from `path`, if they match the checksum recorded under
    `name`; raise `CorruptCheckpointError` otherwise. Nothing recorded: nothing to check."""
    if recorded is None:
        return data
    expected = recorded.get(name)
    if expected is None:
        raise CorruptCheckpointError(
            f"{path} has no recorded checksum although its directory has a checksum record: "
            "the record is damaged; restore the step from another copy"
        )
    if FileChecksum.of(data) != expected:
        raise CorruptCheckpointError(
            f"{path} does not match the checksum recorded at save time (crc32 "
            f"{FileChecksum.of(data).crc32} of {len(data)} bytes, recorded {expected.crc32} of "
            f"{expected.size} bytes): the file is damaged; restore the step from another copy"
        )
    return data


def check_recorded(
    directory: Location, recorded: Mapping[str, FileChecksum], done: set[str]
) -> None:
    """Read every file in `recorded` (paths relative to `directory`) that is not in `done`
    and check it; a missing or altered file is `CorruptCheckpointError`."""
    for name in sorted(set(recorded) - done):
        path = directory / name
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise CorruptCheckpointError(
                f"{path} is missing although its checksum was recorded at save time: the "
                "checkpoint is damaged; restore it from another copy"
            ) from None
        check_file(path, data, recorded, name)
