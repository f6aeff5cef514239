"""The one owner of a checkpoint root and its files: every on-disk name, what a step is,
listing, leftovers, retiring and removing steps.

What is a step: a directory (never a symlink) whose name has the step format and that carries
a mark tenure or Orbax writes (step metadata, the commit marker, or an item with tree
metadata); on object stores, a prefix with its commit marker. Anything else in a root is
foreign: never listed, counted by a policy, or touched. A step whose own metadata cannot be
read is *damaged*: listed apart, skipped by resume and retention, removed only on request.

No module imports jax here, so the command line can list roots cheaply.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from tenure.io.errors import CorruptCheckpointError, InvalidNameError, StorageError, TenureIOError
from tenure.io.jsondoc import parse
from tenure.io.storage import (
    Location,
    ObjectPath,
    as_location,
    list_dir,
    remove_tree,
)

if TYPE_CHECKING:
    from tenure.io.metadata import StepMetadata

TMP_MARKER = ".orbax-checkpoint-tmp"
STEP_METADATA_FILE = "_CHECKPOINT_METADATA"
TREE_METADATA_FILE = "_METADATA"
COMMIT_SUCCESS_FILE = "commit_success.txt"
V1_INDICATOR_FILE = "orbax.checkpoint"
SHARDING_FILE = "_sharding"
STRINGS_FILE = "_strings.json"
ARRAY_METADATAS_DIR = "array_metadatas"
TENURE_DIR = "_tenure"
ITEM_FILE = "item.json"
CHECKSUMS_PATTERN = "checksums.process_*.json"
JSON_DATA_FILE = "data.json"
V0_JSON_FILE = "metadata"
METRICS_ITEM = "metrics"
METRICS_FILE = "metrics"
DEFAULT_ITEM = "state"
ZARR_METADATA_FILE = "zarr.json"
ZARR_CHUNK_DIR = "c"
OCDBT_MANIFEST_FILE = "manifest.ocdbt"
STEP_CHECKSUMS_FILE = "_tenure_checksums.json"
# Bytes per checkpointable item, and the items retention removed (see `ItemsRecord`).
ITEMS_FILE = "_tenure_items.json"
FILE_CHECKSUMS_PATTERN = "files.process_*.json"
# A stateful checkpointable (a Grain iterator) keeps one state file per process, named as
# Grain's Orbax handler names them.
PROCESS_STATES_PATTERN = "process_*-of-*.json"
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

# tenure's own names beside the steps, all ignored by Orbax (none parses as a step).
RETIRED_SUFFIX = ".tenure-deleting"
REPLACED_SUFFIX = ".tenure-replaced"
THINNING_SUFFIX = ".tenure-thinning"
# Inside a thinning's aside directory: written last, it says the thinning may go ahead.
THINNING_INTENT_FILE = "_thinning.json"
LOCK_FILE = ".tenure-writer.lock"
ROOT_METADATA_DIR = "metadata"
ROOT_METADATA_FILE = "_ROOT_METADATA"
# Files only a checkpoint holds: an uncommitted object-store prefix holding one of them is a
# crashed save; one holding none of them is somebody else's.
_FORMAT_FILES = (TREE_METADATA_FILE, STEP_METADATA_FILE, ZARR_METADATA_FILE, OCDBT_MANIFEST_FILE)


def checksums_file(process_index: int) -> str:
    """Name of a process's array-checksum record inside `_tenure/`."""
    return f"checksums.process_{process_index}.json"


def file_checksums_file(process_index: int) -> str:
    """Name of a process's file-checksum record inside `_tenure/`."""
    return f"files.process_{process_index}.json"


def process_state_file(process_index: int, process_count: int) -> str:
    """The state file of one process in a stateful checkpointable (Grain's name for it).

    Examples:
        >>> process_state_file(0, 2)
        'process_0-of-2.json'
    """
    return f"process_{process_index}-of-{process_count}.json"


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

    On a local disk: a directory (not a symlink) whose name carries no temporary marker
    (commit by rename) and that holds a step's mark (see `has_step_mark`). With
    `require_commit_file`, `commit_success.txt` must also exist; on object stores, where
    saves write in place, that marker is always what commits a step.

    Examples:
        >>> is_committed("/nonexistent/5")
        False
    """
    path = as_location(step_dir)
    if isinstance(path, ObjectPath):
        return not is_temporary(path) and (path / COMMIT_SUCCESS_FILE).is_file()
    if is_temporary(path) or path.is_symlink() or not path.is_dir():
        return False
    if require_commit_file:
        return (path / COMMIT_SUCCESS_FILE).is_file()
    return has_step_mark(path)


def remove_temporary(root: PathLike) -> list[Location]:
    """Delete every temporary directory under `root` (unfinished saves, interrupted
    deletions), putting back a step whose replacement was interrupted; return what went.

    Only call this when no save into `root` is running.

    Examples:
        >>> remove_temporary("/nonexistent")
        []
    """
    return [leftover.path for leftover in remove_leftovers(root, every_temporary=True)]


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


# -- step names ----------------------------------------------------------------------------


def _optional_prefix(_: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and (not value or "/" in value or value.startswith(".")):
        raise InvalidNameError(f"{attribute.name}={value!r} must be a plain, non-empty name")


@attrs.frozen
class StepNameFormat:
    """How a step's directory is named, e.g. `1000`, `ckpt_1000` or `00001000`.

    Examples:
        >>> fmt = StepNameFormat(prefix="ckpt", fixed_length=8)
        >>> fmt.build(1000)
        'ckpt_00001000'
        >>> fmt.parse("ckpt_00001000"), fmt.parse("1000.orbax-checkpoint-tmp")
        (1000, None)
    """

    prefix: str | None = attrs.field(default=None, validator=_optional_prefix)
    fixed_length: int | None = None
    _pattern: re.Pattern[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        head = re.escape(f"{self.prefix}_") if self.prefix else ""
        digits = rf"\d{{{self.fixed_length},}}" if self.fixed_length else r"0|[1-9]\d*"
        object.__setattr__(self, "_pattern", re.compile(rf"^{head}({digits})$"))

    def build(self, step: int) -> str:
        """The directory name of `step`."""
        if step < 0:
            raise ValueError(f"step {step} is negative; steps are integers >= 0")
        digits = str(step).zfill(self.fixed_length) if self.fixed_length else str(step)
        return f"{self.prefix}_{digits}" if self.prefix else digits

    def parse(self, name: str) -> int | None:
        """The step a directory name stands for, or None when it names no step."""
        match = self._pattern.match(name)
        return int(match.group(1)) if match else None


DEFAULT_NAMES = StepNameFormat()


# -- listing -------------------------------------------------------------------------------


@attrs.frozen
class FoundStep:
    """A committed step of a root, with its step metadata when the listing read it.

    Examples:
        >>> FoundStep(5, Path("/ckpt/5")).step
        5
    """

    step: int
    path: Location
    metadata: StepMetadata | None = None
    item_bytes: Mapping[str, int] | None = None


@attrs.frozen
class DamagedStep:
    """A step whose own metadata cannot be read: quarantined, never loaded or deleted by
    retention, removed only on request (`tenure prune --damaged`).

    Examples:
        >>> DamagedStep(5, Path("/ckpt/5"), "truncated").describe()
        'step 5 (/ckpt/5): truncated'
    """

    step: int
    path: Location
    problem: str

    def describe(self) -> str:
        """One line naming the step, where it is and what is wrong with it."""
        return f"step {self.step} ({self.path}): {self.problem}"


@attrs.frozen
class RootListing:
    """What a root holds: its committed steps and its damaged ones, each sorted by step.

    Examples:
        >>> list_steps("/nonexistent").steps
        ()
    """

    steps: tuple[FoundStep, ...] = ()
    damaged: tuple[DamagedStep, ...] = ()


def has_step_mark(path: Location) -> bool:
    """True when `path` holds a file only tenure or Orbax write into a step: the step
    metadata, the commit marker, or an item with tree metadata. Symlinks are never steps.

    Examples:
        >>> import tempfile
        >>> has_step_mark(Path(tempfile.mkdtemp()))
        False
    """
    if isinstance(path, ObjectPath):
        return (path / COMMIT_SUCCESS_FILE).is_file()
    if path.is_symlink():
        return False
    if (path / STEP_METADATA_FILE).is_file() or (path / COMMIT_SUCCESS_FILE).is_file():
        return True
    try:
        with os.scandir(path) as entries:
            items: list[str] = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return False
    return any(os.path.isfile(os.path.join(item, TREE_METADATA_FILE)) for item in items)


def _candidates(root: Location, names: StepNameFormat) -> list[tuple[int, Location]]:
    """Entries whose names are steps: real directories on disk, prefixes with their commit
    marker on object stores (where the marker is the mark). Empty for a missing root."""
    found: list[tuple[int, Location]] = []
    if isinstance(root, ObjectPath):
        marker = "/" + COMMIT_SUCCESS_FILE
        for key in root.list_keys():
            step = names.parse(key[: -len(marker)]) if key.endswith(marker) else None
            if step is not None:
                found.append((step, root / key[: -len(marker)]))
        return found
    try:
        entries = os.scandir(root)
    except (FileNotFoundError, NotADirectoryError):
        return found
    with entries:
        # scandir knows each entry's type without a stat call; a symlink is not a step.
        for entry in entries:
            step = names.parse(entry.name)
            if step is not None and entry.is_dir(follow_symlinks=False):
                found.append((step, Path(entry.path)))
    return found


_MAX_NSECS = 2**63


def _field_problem(meta: StepMetadata) -> str | None:
    for field in ("init_timestamp_nsecs", "commit_timestamp_nsecs"):
        value = getattr(meta, field)
        valid = value is None or (
            isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_NSECS
        )
        if not valid:
            return f"{STEP_METADATA_FILE}: {field} must be nanoseconds since 1970, found {value!r}"
    return None


def _describe_error(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "a metadata file is nested too deeply to read"
    return f"{type(error).__name__}: {error}"


def list_steps(
    root: PathLike, names: StepNameFormat = DEFAULT_NAMES, *, read_metadata: bool = True
) -> RootListing:
    """The committed and the damaged steps of `root` (see the module's docstring for what a
    step is). With `read_metadata`, each step's metadata is read and checked, and a step
    whose metadata is unreadable is listed as damaged; without it, only marks are checked.
    A step deleted while it is listed is left out; a missing root lists nothing.

    Examples:
        >>> import tempfile
        >>> from tenure.io import save_pytree
        >>> root = Path(tempfile.mkdtemp())
        >>> save_pytree(root / "10", {"w": 1})
        >>> (root / "15").mkdir()  # somebody's folder, not a checkpoint
        >>> [s.step for s in list_steps(root).steps]
        [10]
    """
    from tenure.io.metadata import read_step_metadata

    base = as_location(root)
    steps: list[FoundStep] = []
    damaged: list[DamagedStep] = []
    for step, path in sorted(_candidates(base, names), key=lambda pair: pair[0]):
        if not read_metadata:
            if has_step_mark(path):
                steps.append(FoundStep(step, path))
            continue
        try:
            meta = read_step_metadata(path)
        except StorageError:
            raise  # the store failed, not the step
        except (TenureIOError, OSError, ValueError, TypeError, RecursionError) as error:
            if has_step_mark(path):
                damaged.append(DamagedStep(step, path, _describe_error(error)))
            continue  # deleted since the listing, or a numbered folder of somebody else's
        untimed = meta.init_timestamp_nsecs is None and meta.commit_timestamp_nsecs is None
        if untimed and not has_step_mark(path):
            continue  # no step metadata and no other mark: not a checkpoint
        problem = _field_problem(meta)
        if problem is not None:
            damaged.append(DamagedStep(step, path, problem))
        else:
            steps.append(FoundStep(step, path, meta, step_item_bytes(path, meta.item_names)))
    return RootListing(tuple(steps), tuple(damaged))


# -- leftovers, retiring and removing ------------------------------------------------------

_LEADING_STEP = re.compile(r"^(?:.*_)?(\d+)" + re.escape(TMP_MARKER))


@attrs.frozen
class Leftover:
    """What an unfinished save, an interrupted deletion or an interrupted replacement left.

    Examples:
        >>> Leftover.of(Path("/ckpt/100.orbax-checkpoint-tmp")).kind
        'unfinished-save'
        >>> Leftover.of(Path("/ckpt/100.orbax-checkpoint-tmp.tenure-deleting")).kind
        'interrupted-delete'
        >>> Leftover.of(Path("/ckpt/100.orbax-checkpoint-tmp.tenure-thinning")).kind
        'interrupted-thin'
    """

    path: Location
    step: int | None
    kind: str

    @classmethod
    def of(cls, path: Location) -> Leftover:
        """The leftover a temporary name stands for."""
        match = _LEADING_STEP.match(path.name)
        if path.name.endswith(RETIRED_SUFFIX):
            kind = "interrupted-delete"
        elif path.name.endswith(REPLACED_SUFFIX):
            kind = "interrupted-replace"
        elif path.name.endswith(THINNING_SUFFIX):
            kind = "interrupted-thin"
        else:
            kind = "unfinished-save"
        return cls(path, int(match.group(1)) if match else None, kind)


def _is_format_key(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in _FORMAT_FILES or f"{TENURE_DIR}/" in key


def holds_checkpoint_files(prefix: ObjectPath) -> bool:
    """True when an object-store prefix holds a file only a checkpoint holds (so what is
    there is tenure's or Orbax's, and a save of that step may replace it)."""
    return any(_is_format_key(key) for key in prefix.list_keys())


def leftovers(root: PathLike, names: StepNameFormat = DEFAULT_NAMES) -> list[Leftover]:
    """What unfinished saves and interrupted deletions left under `root`, by name. Never
    listed as steps, never counted by a policy.

    On a local disk they are the temporary names. Object-store saves write in place and
    commit with the marker, so there they are step prefixes without the marker that hold
    checkpoint files (a save in flight looks the same), and temporary names copied from a disk.

    Examples:
        >>> leftovers("/nonexistent")
        []
    """
    base = as_location(root)
    if isinstance(base, Path):
        try:
            with os.scandir(base) as entries:
                found = sorted(e.name for e in entries if TMP_MARKER in e.name)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [Leftover.of(base / name) for name in found]
    keys = base.list_keys()
    prefixes = sorted({key.partition("/")[0] for key in keys if "/" in key})
    committed = {key.partition("/")[0] for key in keys if key.endswith("/" + COMMIT_SUCCESS_FILE)}
    result = []
    for name in prefixes:
        step = names.parse(name)
        if TMP_MARKER in name:
            result.append(Leftover.of(base / name))
        elif (
            step is not None
            and name not in committed
            and any(key.startswith(name + "/") and _is_format_key(key) for key in keys)
        ):
            result.append(Leftover(base / name, step, "unfinished-save"))
    return result


def remove_path(path: Location) -> None:
    """Delete a directory tree, a file, or a symlink (the link, never what it points to).

    Examples:
        >>> remove_path(Path("/nonexistent/5"))
    """
    if isinstance(path, Path) and path.is_symlink():
        path.unlink()
        return
    remove_tree(path)


def retire(step_dir: Location) -> Location:
    """Take a committed step out of the root before removing it, so that a crash in the middle
    of a deletion leaves no half-deleted checkpoint: renamed aside on a local disk (to a
    temporary name Orbax ignores), its commit marker removed first on an object store.

    Examples:
        >>> import tempfile
        >>> step = Path(tempfile.mkdtemp()) / "5"
        >>> step.mkdir()
        >>> retire(step).name
        '5.orbax-checkpoint-tmp.tenure-deleting'
    """
    if isinstance(step_dir, ObjectPath):
        (step_dir / COMMIT_SUCCESS_FILE).unlink(missing_ok=True)
        return step_dir
    retired = step_dir.with_name(step_dir.name + TMP_MARKER + RETIRED_SUFFIX)
    remove_path(retired)  # a leftover of an earlier, interrupted deletion of this step
    step_dir.rename(retired)
    return retired


def replaced_path(step_dir: Path) -> Path:
    """Where a committed step waits while its replacement is renamed into place."""
    return step_dir.with_name(step_dir.name + TMP_MARKER + REPLACED_SUFFIX)


def remove_leftovers(root: PathLike, *, every_temporary: bool = False) -> list[Leftover]:
    """Clean what tenure's interrupted deletions, replacements and thinnings left on a local
    disk; return what was removed. A step whose replacement was interrupted before the new
    version was renamed into place is put back instead; a thinning interrupted once it had
    begun to change its step is finished (see `thin_step`). Unfinished saves stay (another
    program's save may be in flight, and tenure replaces its own when it saves that step
    again) unless
    `every_temporary` (Orbax's `cleanup_tmp_directories`). Only call it while no save into
    `root` runs (the writer, at open). On object stores, see `remove_uncommitted`.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "5.orbax-checkpoint-tmp.tenure-deleting").mkdir()
        >>> [leftover.kind for leftover in remove_leftovers(root)], list(root.iterdir())
        (['interrupted-delete'], [])
    """
    base = as_location(root)
    if not isinstance(base, Path):
        return []
    removed = []
    for leftover in leftovers(base):
        path = leftover.path
        assert isinstance(path, Path)
        if leftover.kind == "unfinished-save" and not every_temporary:
            continue
        if leftover.kind == "interrupted-replace":
            original = path.with_name(path.name.removesuffix(TMP_MARKER + REPLACED_SUFFIX))
            if not os.path.lexists(original):
                path.rename(original)  # the new version never arrived: keep the old one
                continue
        if leftover.kind == "interrupted-thin":
            _finish_thinning(path)
        remove_path(path)
        removed.append(leftover)
    return removed


def remove_uncommitted(root: ObjectPath, names: StepNameFormat = DEFAULT_NAMES) -> list[Leftover]:
    """Delete the objects of object-store saves that never wrote their commit marker (only
    step prefixes holding checkpoint files: somebody else's prefix is left alone)."""
    found = [leftover for leftover in leftovers(root, names) if leftover.kind == "unfinished-save"]
    for leftover in found:
        remove_tree(leftover.path)
    return found


# -- the root's own metadata ---------------------------------------------------------------


def write_root_metadata(root: Location, metadata: Mapping[str, Any]) -> None:
    """Write the root's custom metadata once, as Orbax does; an existing one is kept."""
    path = root / ROOT_METADATA_DIR / ROOT_METADATA_FILE
    if path.exists():
        return
    text = json.dumps({"custom_metadata": dict(metadata)})
    if isinstance(path, ObjectPath):
        path.write_text(text)  # a single PUT is atomic
        return
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_root_metadata(root: Location) -> Mapping[str, Any] | None:
    """The root's custom metadata, or None when there is none (or it is unreadable)."""
    path = root / ROOT_METADATA_DIR / ROOT_METADATA_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (ValueError, RecursionError):
        return None
    custom = doc.get("custom_metadata") if isinstance(doc, dict) else None
    return custom if isinstance(custom, dict) else None


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


# -- items: their bytes, and thinning --
#
# `<step>/_tenure_items.json` records the bytes of each checkpointable item of a step (its
# files' sizes, as measured when it was saved) and the items retention has removed from it
# since. Orbax ignores the file; for a step without it (written by Orbax, or a crash between
# the commit and the record), the bytes are measured from the item directories on a local
# disk. Object stores list no sizes, so there an unrecorded step's bytes stay unknown.

_ITEMS_VERSION = 1


@attrs.frozen
class ItemsRecord:
    """The bytes of each item a step holds, and the items retention removed from it.

    Examples:
        >>> record = ItemsRecord({"params": 4096}, thinned=("opt_state",))
        >>> ItemsRecord.from_bytes(record.to_bytes()) == record
        True
        >>> ItemsRecord.from_bytes(b"not json") is None
        True
    """

    item_bytes: Mapping[str, int]
    thinned: tuple[str, ...] = ()

    def to_bytes(self) -> bytes:
        """The record as stored."""
        doc = {
            "format_version": _ITEMS_VERSION,
            "item_bytes": dict(sorted(self.item_bytes.items())),
            "thinned": sorted(self.thinned),
        }
        return json.dumps(doc).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ItemsRecord | None:
        """The stored record, or None when it is unreadable (it is measured again then)."""
        try:
            doc = json.loads(data)
            sizes = {str(k): v for k, v in doc["item_bytes"].items()}
            thinned = tuple(str(name) for name in doc.get("thinned", ()))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None
        if not all(type(v) is int and v >= 0 for v in sizes.values()):
            return None
        return cls(sizes, thinned)


def read_small_file(path: PathLike) -> bytes:
    """A small file's bytes, with as few system calls as Python allows (listing a root calls
    this several times per step); a missing file raises `FileNotFoundError` as `open` does.

    Examples:
        >>> read_small_file("/nonexistent/_CHECKPOINT_METADATA")
        Traceback (most recent call last):
        FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent/_CHECKPOINT_METADATA'
    """
    if isinstance(path, ObjectPath):
        return path.read_bytes()
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, 1 << 16)
        if len(data) < 1 << 16:
            return data
        chunks = [data]
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_ahead(paths: Iterable[Path]) -> None:
    """Ask the kernel to start reading local files into the page cache, without waiting: a
    later `read_small_file` of one then finds it there rather than queued behind large reads
    issued since. Does nothing where the platform cannot (no `posix_fadvise`) or a file is
    missing."""
    if not hasattr(os, "posix_fadvise"):
        return
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)


def _read_small(path: PathLike) -> bytes | None:
    """A small file's bytes, or None when it is missing."""
    try:
        return read_small_file(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_items_record(step_dir: Location) -> ItemsRecord | None:
    """The step's items record, or None when it has none (or an unreadable one).

    Examples:
        >>> read_items_record(Path("/nonexistent/5")) is None
        True
    """
    # A plain string path on a local disk: listing a root reads this for every step.
    where = (
        step_dir / ITEMS_FILE if isinstance(step_dir, ObjectPath) else f"{step_dir}/{ITEMS_FILE}"
    )
    data = _read_small(where)
    return None if data is None else ItemsRecord.from_bytes(data)


def write_items_record(step_dir: Location, record: ItemsRecord) -> None:
    """Store the items record of a committed step (replacing the file in one rename, or one
    PUT on object stores, so that a reader sees the old record or the new one)."""
    path = step_dir / ITEMS_FILE
    if isinstance(path, ObjectPath):
        path.write_bytes(record.to_bytes())
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(record.to_bytes())
    os.replace(tmp, path)


def _tree_bytes(directory: str) -> int:
    """The sizes of every file under `directory` added up (links counted as themselves)."""
    total = 0
    pending = [directory]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                else:
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def measure_item_bytes(step_dir: Location, names: Iterable[str]) -> dict[str, int]:
    """The bytes each named item of a step occupies: its files' sizes added up. On object
    stores, which list no sizes, every object of the items is read to count it.

    Examples:
        >>> import tempfile
        >>> from tenure.io import save_checkpointables
        >>> step = Path(tempfile.mkdtemp()) / "1"
        >>> save_checkpointables(step, {"a": {"x": 1}, "b": {"y": 2}})
        >>> sorted(measure_item_bytes(step, ["a", "b"]))
        ['a', 'b']
    """
    if isinstance(step_dir, ObjectPath):
        sizes = {}
        for name in names:
            item = step_dir / name
            sizes[name] = sum(len((item / key).read_bytes()) for key in item.list_keys())
        return sizes
    return {name: _tree_bytes(os.path.join(step_dir, name)) for name in names}


def step_item_bytes(step_dir: Location, names: Iterable[str]) -> dict[str, int] | None:
    """The bytes of each item `names` lists (a step's items, metrics excluded): as recorded
    when a record of exactly those items exists, else measured on a local disk; None on an
    object store without a record (its sizes would cost a read of every object).

    Examples:
        >>> import tempfile
        >>> from tenure.io import save_pytree
        >>> step = Path(tempfile.mkdtemp()) / "1"
        >>> save_pytree(step, {"w": 1})
        >>> list(step_item_bytes(step, ["state"]))
        ['state']
    """
    wanted = set(names)
    record = read_items_record(step_dir)
    if record is not None and set(record.item_bytes) == wanted:
        return dict(record.item_bytes)
    if isinstance(step_dir, ObjectPath):
        return None
    return measure_item_bytes(step_dir, sorted(wanted))


def thinned_items(step_dir: Location) -> tuple[str, ...]:
    """The items retention removed from a step (none known for a step without a record)."""
    record = read_items_record(step_dir)
    return () if record is None else record.thinned


def thinning_path(step_dir: Location) -> Location:
    """Where a thinning of `step_dir` prepares its new metadata and puts the removed items.

    Examples:
        >>> thinning_path(Path("/ckpt/5")).name
        '5.orbax-checkpoint-tmp.tenure-thinning'
    """
    return step_dir.with_name(step_dir.name + TMP_MARKER + THINNING_SUFFIX)


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# The step's files a thinning rewrites, in the order they are put in place.
_THINNED_FILES = (ITEMS_FILE, STEP_METADATA_FILE, STEP_CHECKSUMS_FILE)


def _thinned_files(
    step_dir: Location, doomed: frozenset[str]
) -> tuple[dict[str, bytes], list[str]]:
    """The step's own files as they must read once `doomed` is gone (the step metadata with
    their handlers left out, its checksum record if it had one, and the items record), and
    which of `doomed` the step holds."""
    from tenure.io.metadata import read_step_metadata

    meta = read_step_metadata(step_dir, check=True)  # never launder damage into a new record
    remaining = [name for name in meta.item_names if name not in doomed]
    if not remaining:
        raise ValueError(
            f"thinning {step_dir} of {sorted(doomed)} would leave no item: delete the step instead"
        )
    files: dict[str, bytes] = {}
    data = _read_small(step_dir / STEP_METADATA_FILE)
    doc = None if data is None else parse(data, step_dir / STEP_METADATA_FILE)
    if isinstance(doc, dict) and isinstance(doc.get("item_handlers"), dict):
        handlers = doc["item_handlers"]
        doc["item_handlers"] = {k: v for k, v in handlers.items() if k not in doomed}
        document = json.dumps(doc).encode()
        files[STEP_METADATA_FILE] = document
        if step_checksums(step_dir) is not None:
            checksum = {STEP_METADATA_FILE: FileChecksum.of(document)}
            files[STEP_CHECKSUMS_FILE] = ChecksumRecord(checksum).to_bytes()
    record = read_items_record(step_dir)
    sizes = None if record is None else record.item_bytes
    if sizes is None or not set(remaining) <= set(sizes):
        sizes = measure_item_bytes(step_dir, remaining)
    gone = doomed & set(meta.item_names)
    thinned = {*(() if record is None else record.thinned), *gone}
    files[ITEMS_FILE] = ItemsRecord(
        {name: sizes[name] for name in remaining}, tuple(sorted(thinned))
    ).to_bytes()
    return files, sorted(gone)


def thin_step(step_dir: Location, items: Iterable[str]) -> list[Location]:
    """Take `items` out of a committed step, which stays a checkpoint of its other items;
    return what is left to remove (the slow part). Items the step lacks are ignored.

    Crash-safe as deleting a step is. The step's new files (its metadata with the removed
    items' handlers left out, the checksum record of that metadata, the items record) are
    written into a temporary directory beside the step (`thinning_path`), then an intent
    file naming the items (last: until it exists, the step is untouched); then the new files
    go into the step and the items out of it. On a local disk these are renames (everything
    fsynced first), and the items land in the temporary directory, removed last. On an
    object store, which has no rename, the new files are copied in (one PUT each) and the
    items' objects deleted. Killed before the intent, the next writable open removes the
    temporary directory; killed after it, the next writable open finishes the thinning
    (`remove_leftovers` on a disk, `finish_thinnings` on an object store).

    Examples:
        >>> import tempfile
        >>> from tenure.io import load_checkpointables, save_checkpointables
        >>> step = Path(tempfile.mkdtemp()) / "7"
        >>> save_checkpointables(step, {"params": {"w": 1}, "opt_state": {"mu": 0}})
        >>> for leftover in thin_step(step, ["opt_state"]):
        ...     remove_path(leftover)
        >>> load_checkpointables(step), thinned_items(step)
        ({'params': {'w': 1}}, ('opt_state',))
    """
    doomed = frozenset(validate_item_name(name) for name in items)
    files, present = _thinned_files(step_dir, doomed)
    if not present:
        return []  # thinned already: a second pass changes nothing
    aside = thinning_path(step_dir)
    remove_path(aside)  # the leftover of an earlier thinning that never began
    intent = json.dumps({"format_version": 1, "items": present}).encode()
    if isinstance(aside, ObjectPath):
        for name, data in files.items():
            (aside / name).write_bytes(data)
        (aside / THINNING_INTENT_FILE).write_bytes(intent)  # each PUT is atomic
    else:
        aside.mkdir()
        for name, data in files.items():
            (aside / name).write_bytes(data)
            _sync(aside / name)
        pending = aside / (THINNING_INTENT_FILE + ".tmp")
        pending.write_bytes(intent)
        _sync(pending)
        os.rename(pending, aside / THINNING_INTENT_FILE)
        _sync(aside)
    _finish_thinning(aside)
    return [aside]


def _finish_thinning(aside: Location) -> None:
    """Put a prepared thinning's new files into its step and take the removed items out
    (each move is skipped once done, so running this again after a crash finishes it).
    Without an intent file the thinning never began, and nothing is done."""
    step_dir = aside.with_name(aside.name.removesuffix(TMP_MARKER + THINNING_SUFFIX))
    try:
        intent = json.loads(_read_small(aside / THINNING_INTENT_FILE) or b"")
        doomed = [validate_item_name(str(name)) for name in intent["items"]]
    except (ValueError, KeyError, TypeError, RecursionError):
        return
    if not is_committed(step_dir):
        return  # the step was deleted since
    if isinstance(aside, ObjectPath):
        for name in _THINNED_FILES:
            data = _read_small(aside / name)
            if data is not None:
                (step_dir / name).write_bytes(data)
        for name in doomed:
            remove_tree(step_dir / name)
        return
    assert isinstance(step_dir, Path)
    for name in _THINNED_FILES:
        if os.path.lexists(aside / name):
            os.replace(aside / name, step_dir / name)
    _sync(step_dir)
    for name in doomed:
        if os.path.lexists(step_dir / name):
            remove_path(aside / name)
            os.rename(step_dir / name, aside / name)
    _sync(step_dir)


def finish_thinnings(root: ObjectPath) -> list[Leftover]:
    """Finish (or drop, when they never began) the thinnings interrupted under an
    object-store root; return what was removed. The local-disk counterpart is part of
    `remove_leftovers`. Only call it while no thinning of `root` runs (the writer, at open).
    """
    found = [leftover for leftover in leftovers(root) if leftover.kind == "interrupted-thin"]
    for leftover in found:
        _finish_thinning(leftover.path)
        remove_tree(leftover.path)
    return found
