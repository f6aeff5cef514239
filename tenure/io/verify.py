"""Re-reading a checkpoint end to end and checking every recorded checksum."""

from __future__ import annotations

import numpy as np

from tenure.io.arrays import checksum, open_for_read, resolve_read
from tenure.io.checkpointables import require_step
from tenure.io.errors import CorruptCheckpointError
from tenure.io.metadata import TreeMetadata, param_name, read_json, read_step_metadata
from tenure.io.root import TENURE_DIR, TREE_METADATA_FILE, PathLike
from tenure.io.storage import Location, list_dir


def _verify_item(item_dir: Location) -> int:
    meta = TreeMetadata.read(item_dir)
    recorded: dict[str, list[dict[str, object]]] = {}
    for path in list_dir(item_dir / TENURE_DIR, "checksums.process_*.json"):
        for name, pieces in read_json(path).items():
            recorded.setdefault(name, []).extend(pieces)
    names = [param_name(e.path) for e in meta.entries if e.is_array]
    stores = {name: open_for_read(item_dir, name, meta) for name in names}
    for name in names:
        store = resolve_read(stores[name], item_dir, name)
        # A full read makes tensorstore check every chunk's crc32c and that no chunk is missing.
        data = resolve_read(store.read(), item_dir, name)
        for piece in recorded.get(name, []):
            index = tuple(slice(a, b) for a, b in piece["index"])  # type: ignore[attr-defined]
            if checksum(np.asarray(data[index])) != piece["crc32"]:
                raise CorruptCheckpointError(
                    f"array {name!r} in {item_dir}: bytes of region {piece['index']} do not "
                    "match the checksum recorded at save time; the data is corrupted: "
                    "restore from another step or copy"
                )
    return len(names)


def verify(directory: PathLike) -> int:
    """Re-read every array and JSON file of a step; return how many arrays were checked.

    Raises `CorruptCheckpointError` naming the first damaged array or file.

    Examples:
        >>> import tempfile, numpy as np
        >>> from tenure.io import save_pytree
        >>> d = tempfile.mkdtemp() + "/1"
        >>> save_pytree(d, {"w": np.ones(3), "b": np.zeros(2)})
        >>> verify(d)
        2
    """
    step_dir = require_step(directory)
    read_step_metadata(step_dir)
    checked = 0
    for item_dir in sorted(p for p in step_dir.iterdir() if p.is_dir()):
        for path in item_dir.rglob("*.json"):
            read_json(path)
        if (item_dir / TREE_METADATA_FILE).is_file():
            checked += _verify_item(item_dir)
    return checked
