"""Re-reading a checkpoint end to end and checking every recorded checksum.

`verify` runs the checks a load runs (the same code opens every item and array) and adds a
full read of every array against the crc32s recorded at save time, so the two agree: what a
load would reject, `verify` reports, and what `verify` passes, a load returns exactly.
"""

from __future__ import annotations

import numpy as np

from tenure.io.arrays import PackedArray, checksum, resolve_read
from tenure.io.checkpointables import item_kind, load_one, require_step
from tenure.io.errors import CorruptCheckpointError, NotACheckpointError, TenureIOError
from tenure.io.metadata import param_name, read_json, read_step_metadata
from tenure.io.pytree import Reader, SavedItem
from tenure.io.root import (
    METRICS_ITEM,
    PathLike,
    check_recorded,
    is_committed,
    item_checksums,
    step_checksums,
)
from tenure.io.storage import Location


def _verify_item(item_dir: Location) -> int:
    reader = Reader(SavedItem.open(item_dir))
    item = reader.item
    names = [param_name(e.path) for e in item.meta.entries if e.is_array]
    for name in names:
        reader.store(name)  # every open in flight before the first is awaited
    for entry in item.meta.entries:
        if entry.value_type == "string" and param_name(entry.path) not in item.strings:
            raise CorruptCheckpointError(
                f"{item_dir}: the string {param_name(entry.path)!r} is missing; the checkpoint "
                "is damaged; restore it from another copy"
            )
    for name in names:
        raw = reader.raw(name)
        if isinstance(raw, PackedArray):
            raw.check_metadata()  # what a load checks instead of opening the array
        store = reader.opened(name)
        item.check_array(name, tuple(store.shape), store.dtype.numpy_dtype)
        # A full read makes tensorstore check every chunk's crc32c and that no chunk is missing.
        data = resolve_read(store.read(), item_dir, name)
        for bounds, crc in item.crcs.get(name, {}).items():
            index = tuple(slice(a, b) for a, b in bounds)
            if checksum(np.asarray(data[index])) != crc:
                raise CorruptCheckpointError(
                    f"array {name!r} in {item_dir}: bytes of region {list(bounds)} do not "
                    "match the checksum recorded at save time; the data is corrupted: "
                    "restore from another step or copy"
                )
    return len(names)


def _verify_step(step_dir: Location) -> int:
    meta = read_step_metadata(step_dir, check=True)
    recorded_step = step_checksums(step_dir) is not None
    names = set(meta.item_names)
    names.update(
        p.name
        for p in step_dir.iterdir()
        if p.is_dir() and not p.name.startswith(("_", ".")) and p.name != METRICS_ITEM
    )
    checked = 0
    for name in sorted(names):
        item_dir = step_dir / name
        if not item_dir.is_dir():
            raise CorruptCheckpointError(
                f"{step_dir}: checkpointable {name!r} is listed in its metadata but missing; "
                "the step is damaged; restore it from another copy"
            )
        if not recorded_step and item_checksums(item_dir) is not None:
            raise CorruptCheckpointError(
                f"{step_dir}: its checksum record is missing although its checkpointables "
                "have theirs; the step is damaged; restore it from another copy"
            )
        kind = item_kind(item_dir)
        if kind in ("pytree", "bare_leaf"):
            checked += _verify_item(item_dir)
        elif kind == "stateful":
            # Each process's state is its own; every file is checked, whatever process this is.
            recorded = item_checksums(item_dir)
            if recorded is not None:
                check_recorded(item_dir, recorded, set())
        else:
            load_one(step_dir, name)
        if item_checksums(item_dir) is None:
            # Written by Orbax: no records, so at least every JSON file must parse.
            for path in item_dir.rglob("*.json"):
                read_json(path)
    return checked


def verify(directory: PathLike) -> int:
    """Re-read every file and array of a step; return how many arrays were checked.

    Raises `CorruptCheckpointError` naming the step, checkpointable and file of the first
    damage found, and `NotACheckpointError` when the step is not (or no longer) committed.

    Examples:
        >>> import tempfile, numpy as np
        >>> from tenure.io import save_pytree
        >>> d = tempfile.mkdtemp() + "/1"
        >>> save_pytree(d, {"w": np.ones(3), "b": np.zeros(2)})
        >>> verify(d)
        2
    """
    step_dir = require_step(directory)
    try:
        return _verify_step(step_dir)
    except (TenureIOError, OSError) as e:
        if not is_committed(step_dir):
            raise NotACheckpointError(
                f"{step_dir} was deleted (or moved) while it was being verified; nothing "
                "is known about its damage: verify it again if it still exists"
            ) from e
        if isinstance(e, TenureIOError) or not isinstance(
            e, FileNotFoundError | NotADirectoryError | IsADirectoryError
        ):
            raise
        raise CorruptCheckpointError(
            f"{step_dir}: a file it needs is missing or is a directory ({e}); the step is "
            "damaged; restore it from another copy"
        ) from e
