"""Everything the manager asks of storage and of the other processes, in one place."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from tenure import io
from tenure.io.storage import Location, ObjectPath, remove_tree

ROOT_METADATA = Path("metadata") / "_ROOT_METADATA"
RETIRED_SUFFIX = ".tenure-deleting"
COMMIT_MARKER = io.root.COMMIT_SUCCESS_FILE


@attrs.frozen
class StepDetails:
    """What the policies need of a committed step."""

    time: datetime
    commit_timestamp_nsecs: int | None
    metrics: Mapping[str, Any] | None


def _from_nanoseconds(nanoseconds: int) -> datetime:
    return datetime.fromtimestamp(nanoseconds / 1e9, tz=UTC)


def to_nanoseconds(moment: datetime) -> int:
    return round(moment.timestamp() * 1e6) * 1000


def read_details(step_dir: Location, now: datetime) -> StepDetails:
    """The step's decision time (falling back to commit time, then mtime) and metrics.

    Object stores tell no modification time through tensorstore, so a step there without
    timestamps (old Orbax versions) counts as saved `now`: time-based policies then keep it
    rather than delete it on a guess.
    """
    meta = io.read_step_metadata(step_dir)
    stamp = meta.init_timestamp_nsecs or meta.commit_timestamp_nsecs
    if stamp:
        time = _from_nanoseconds(stamp)
    elif isinstance(step_dir, ObjectPath):
        time = now
    else:
        time = datetime.fromtimestamp(step_dir.stat().st_mtime, tz=UTC)
    metrics = meta.metrics if isinstance(meta.metrics, Mapping) else None
    return StepDetails(time, meta.commit_timestamp_nsecs, metrics)


def read_custom_metadata(step_dir: Location) -> Mapping[str, Any]:
    return io.read_step_metadata(step_dir).custom_metadata


def save_async(
    step_dir: Location,
    items: Mapping[str, Any],
    custom_metadata: Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None,
    *,
    started: datetime,
    processes: io.Processes | None,
) -> io.AsyncSave:
    return io.save_checkpointables_async(
        step_dir,
        items,
        custom_metadata=None if custom_metadata is None else dict(custom_metadata),
        metrics=None if metrics is None else dict(metrics),
        init_timestamp_nsecs=to_nanoseconds(started),
        processes=processes,
    )


def load(step_dir: Location, abstract: Mapping[str, Any] | None) -> dict[str, Any]:
    return io.load_checkpointables(step_dir, abstract)


is_temporary = io.is_temporary
remove_temporary = io.remove_temporary


def retire(step_dir: Location) -> Location:
    """Takes a step out of the committed ones before deleting it, so that a crash in the
    middle of a deletion leaves no half-deleted checkpoint: renamed aside on a local disk,
    its commit marker removed first on an object store."""
    if isinstance(step_dir, ObjectPath):
        (step_dir / COMMIT_MARKER).unlink()
        return step_dir
    retired = step_dir.with_name(step_dir.name + io.root.TMP_MARKER + RETIRED_SUFFIX)
    step_dir.rename(retired)
    return retired


def remove_uncommitted(root: ObjectPath, is_step: Callable[[str], bool]) -> None:
    """Deletes the objects of steps whose save never wrote its commit marker."""
    keys = root.list_keys()
    names = {key.partition("/")[0] for key in keys}
    committed = {key.partition("/")[0] for key in keys if key.endswith("/" + COMMIT_MARKER)}
    for name in sorted(names - committed):
        if is_step(name):
            remove_tree(root / name)


def write_root_metadata(root: Location, metadata: Mapping[str, Any]) -> None:
    """Writes the root's custom metadata once, as Orbax does; an existing one is kept."""
    path = root / ROOT_METADATA
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
    path = root / ROOT_METADATA
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    custom = doc.get("custom_metadata") if isinstance(doc, dict) else None
    return custom if isinstance(custom, dict) else None


def process_count() -> int:
    import jax

    return int(jax.process_count())
