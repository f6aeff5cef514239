"""What the commands read of a root beyond the Checkpointer's listing: sizes, leftovers of
unfinished saves and deletions, and the per-array records tenure.io writes (checksums,
shardings), read from the files io documents in docs/format.md.

A root is a local `Path` or an object-store `ObjectPath`; `isinstance(root, Path)` tells
them apart without importing tenure.io (and with it jax)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenure.cli.errors import DamagedError, RootBusyError, UsageError

if TYPE_CHECKING:
    from tenure.io import Location
    from tenure.io import root as rootfs
    from tenure.io.root import StepNameFormat
    from tenure.manager import Checkpointer, CheckpointMetadata
    from tenure.retention import PreservationPolicy


def disk_bytes(path: Location) -> int | None:
    """The total size of the files under `path` (what deleting it frees); None on object
    stores, whose listing gives no sizes: sizing would cost a request per object.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "a").write_bytes(b"12345")
        >>> disk_bytes(folder)
        5
    """
    if not isinstance(path, Path):
        return None
    total = 0
    for parent, _, files in os.walk(path):
        for name in files:
            # A file deleted while we walk frees nothing.
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(parent, name)).st_size
    return total


def sum_bytes(sizes: Iterable[int | None]) -> int | None:
    """The total of `sizes`, or None when any of them is unknown.

    Examples:
        >>> sum_bytes([1, 2]), sum_bytes([1, None]), sum_bytes([])
        (3, None, 0)
    """
    total = 0
    for size in sizes:
        if size is None:
            return None
        total += size
    return total


def utc(nanoseconds: int | None) -> datetime | None:
    return None if nanoseconds is None else datetime.fromtimestamp(nanoseconds / 1e9, tz=UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def leftover_json(leftover: rootfs.Leftover) -> dict[str, Any]:
    """One leftover of an unfinished save or deletion, as `tenure ls --json` shows it."""
    path = leftover.path
    doc: dict[str, Any] = {
        "name": path.name,
        "path": str(path),
        "step": leftover.step,
        "kind": leftover.kind,
    }
    if not isinstance(path, Path):
        # Object-store listings carry neither sizes nor times.
        return {**doc, "bytes": None, "modified": None}
    stat = path.lstat()
    return {
        **doc,
        "bytes": disk_bytes(path) if path.is_dir() else stat.st_size,
        "modified": datetime.fromtimestamp(stat.st_mtime, tz=UTC).isoformat(),
    }


def leftovers(root: Location) -> list[rootfs.Leftover]:
    """What unfinished saves and interrupted deletions left under `root`. The Checkpointer
    lists none of them; prune never touches them (a writer removes tenure's own at open)."""
    from tenure.io import root as rootfs

    return rootfs.leftovers(root)


def _require_root(root: Location) -> None:
    if not root.is_dir():
        what = "is not a directory" if isinstance(root, Path) else "holds no objects"
        raise UsageError(f"{root} {what}; pass the checkpoint root")


@contextlib.contextmanager
def _damage_notes() -> Iterator[None]:
    """The Checkpointer's warnings about damaged steps, as one plain line each on stderr."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield
    for warning in seen:
        sys.stderr.write(f"tenure: warning: {warning.message}\n")


def open_reader(
    root: Location,
    step_names: StepNameFormat | None = None,
    policy: PreservationPolicy | None = None,
) -> Checkpointer:
    """A read-only Checkpointer on `root` (steps named as `step_names` says, by default
    `<step>`; planning with `policy`), or a `UsageError` saying what is wrong."""
    _require_root(root)
    from tenure.io import StorageError, TenureIOError
    from tenure.manager import Checkpointer

    try:
        with _damage_notes():
            return Checkpointer(
                root, read_only=True, step_name_format=step_names, preservation_policy=policy
            )
    except StorageError:
        raise  # the store failed, not the root's files; main reports it
    except TenureIOError as error:
        raise DamagedError(f"cannot list {root}: {error}; run tenure verify on it") from None


def open_writer(root: Location, policy: PreservationPolicy) -> Checkpointer:
    """A writing Checkpointer on `root`: on a local disk it takes the root's lock, as the
    training job's does, so that prune and a training job never delete from the same root
    at once. Object stores have no exclusive create to build a lock on, so there is none."""
    _require_root(root)
    from tenure.io import StorageError, TenureIOError
    from tenure.manager import Checkpointer, RootLockedError

    try:
        with _damage_notes():
            return Checkpointer(root, preservation_policy=policy)
    except RootLockedError as error:
        raise RootBusyError(str(error)) from None
    except StorageError:
        raise  # the store failed, not the root's files; main reports it
    except TenureIOError as error:
        raise DamagedError(f"cannot list {root}: {error}; run tenure verify on it") from None


def step_entry(reader: Checkpointer, step: int | None) -> CheckpointMetadata:
    """The committed step `step` (the latest when None), with its custom metadata."""
    from tenure.manager import StepNotFoundError

    try:
        return reader.metadata(step)
    except StepNotFoundError as error:
        raise UsageError(str(error)) from None


# -- the records of one item, as tenure.io writes them ---------------------------------


def _json(path: Location) -> Any:
    from tenure.io import CorruptCheckpointError
    from tenure.io.jsondoc import parse

    try:
        return parse(path.read_bytes(), path)
    except FileNotFoundError:
        return None
    except CorruptCheckpointError as error:
        raise DamagedError(f"{error}; run tenure verify") from None


def item_kind(item_dir: Location) -> str:
    """`pytree`, `json`, `numpy_generator` or `bare_leaf` (io's own record of an item, or
    for Orbax-written items, pytree when it has tree metadata)."""
    from tenure.io.root import ITEM_FILE, TENURE_DIR, TREE_METADATA_FILE

    record = _json(item_dir / TENURE_DIR / ITEM_FILE)
    if isinstance(record, Mapping) and "kind" in record:
        return str(record["kind"])
    return "pytree" if (item_dir / TREE_METADATA_FILE).is_file() else "json"


def recorded_checksums(item_dir: Location) -> dict[str, list[dict[str, Any]]]:
    """The crc32 of every piece each array was written in, by array name; empty for
    Orbax-written items, which record none (their chunks still carry tensorstore's)."""
    from tenure.io.root import CHECKSUMS_PATTERN, TENURE_DIR
    from tenure.io.storage import list_dir

    sums: dict[str, list[dict[str, Any]]] = {}
    for path in list_dir(item_dir / TENURE_DIR, CHECKSUMS_PATTERN):
        for name, pieces in (_json(path) or {}).items():
            sums.setdefault(name, []).extend(pieces)
    return sums


def recorded_shardings(item_dir: Location) -> dict[str, dict[str, Any]]:
    """The sharding each jax array was saved with, by array name, as recorded (so it can
    be shown on a machine with other devices)."""
    from tenure.io.root import SHARDING_FILE

    recorded = _json(item_dir / SHARDING_FILE) or {}
    shardings = {}
    for key, text in recorded.items():
        try:
            name = base64.urlsafe_b64decode(key.encode()).decode()
            shardings[name] = json.loads(text)
        except ValueError:
            continue  # an entry from a newer writer; the array itself is still listed
    return shardings


def describe_sharding(doc: Mapping[str, Any] | None) -> str:
    """A recorded sharding in one short line.

    Examples:
        >>> describe_sharding({"sharding_type": "NamedSharding", "shape": [4, 2],
        ...     "axis_names": ["x", "y"], "partition_spec": ["x", None]})
        "NamedSharding(mesh x=4 y=2, spec ('x', None))"
        >>> describe_sharding(None)
        '-'
    """
    if not doc:
        return "-"
    kind = doc.get("sharding_type", "?")
    if kind == "NamedSharding":
        mesh = " ".join(
            f"{name}={size}"
            for name, size in zip(doc.get("axis_names", []), doc.get("shape", []), strict=False)
        )
        spec = tuple(tuple(e) if isinstance(e, list) else e for e in doc.get("partition_spec", []))
        return f"NamedSharding(mesh {mesh}, spec {spec})"
    if kind == "SingleDeviceSharding":
        return f"SingleDevice({doc.get('device_str', '?')})"
    return str(kind)
