"""Opening a root: what makes a path unusable, and what a writer does first (create the
root, take its lock, write the root's metadata, clean what interrupted work left)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tenure.io import root as rootfs
from tenure.io.root import StepNameFormat
from tenure.io.storage import Location, ObjectPath
from tenure.manager.errors import RootNotUsableError
from tenure.manager.lock import RootLock


def check_root(directory: Location, todelete_subdir: str | None) -> Location:
    """`directory`, or an error when no Checkpointer can use it (a reader included). A
    missing root is usable: a reader may start before its writer (an evaluator job).

    Examples:
        >>> check_root(Path("/nonexistent/root"), None)
        PosixPath('/nonexistent/root')
    """
    if isinstance(directory, Path) and directory.is_file():
        raise RootNotUsableError(
            f"{directory} is a file, not a directory; pass the directory that holds "
            "(or will hold) the step directories"
        )
    if todelete_subdir is not None and isinstance(directory, ObjectPath):
        raise RootNotUsableError(
            f"todelete_subdir needs a rename, which {directory.scheme}:// roots do not "
            "have: leave it unset there (deleted steps are removed)"
        )
    return directory


def open_for_writing(
    directory: Location,
    names: StepNameFormat,
    *,
    lock: RootLock | None,
    primary: bool,
    custom_metadata: Mapping[str, Any] | None,
    cleanup_tmp_directories: bool,
) -> None:
    """Creates the root and takes `lock` (object stores have none: they have no exclusive
    create to build one on, see docs/storage.md); then, in the primary process, writes the
    root's metadata, removes the leftovers of interrupted deletions and replacements (and
    of unfinished saves, when `cleanup_tmp_directories`) and finishes interrupted thinnings."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if lock is not None:
            lock.acquire()
    except OSError as error:
        raise RootNotUsableError(
            f"cannot use {directory} as a checkpoint root ({error.strerror}); check "
            "that the path and its parents are writable directories, or choose another"
        ) from None
    if not primary:
        return
    if custom_metadata is not None:
        rootfs.write_root_metadata(directory, custom_metadata)
    if isinstance(directory, ObjectPath):
        rootfs.finish_thinnings(directory)
        if cleanup_tmp_directories:
            rootfs.remove_uncommitted(directory, names)
    else:
        rootfs.remove_leftovers(directory, every_temporary=cleanup_tmp_directories)
