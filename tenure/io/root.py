"""The one owner of a checkpoint root and its files: every on-disk name, what a step is, and
the helpers that interpret them."""

from __future__ import annotations

import os
from pathlib import Path

from tenure.io.errors import InvalidNameError
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
