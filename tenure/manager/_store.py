"""Everything the manager asks of storage and of the other processes, in one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from tenure import io
from tenure.io import root as rootfs
from tenure.io.storage import Location, ObjectPath


@attrs.frozen
class StepDetails:
    """What the policies need of a committed step."""

    time: datetime
    commit_timestamp_nsecs: int | None
    metrics: Mapping[str, Any] | None
    item_bytes: Mapping[str, int] | None


def from_nanoseconds(nanoseconds: int) -> datetime:
    return datetime.fromtimestamp(nanoseconds / 1e9, tz=UTC)


def to_nanoseconds(moment: datetime) -> int:
    return round(moment.timestamp() * 1e6) * 1000


def read_details(
    step_dir: Location,
    now: datetime,
    meta: io.StepMetadata | None = None,
    item_bytes: Mapping[str, int] | None = None,
) -> StepDetails:
    """The step's decision time (falling back to commit time, then mtime), metrics and
    bytes per item, from `meta` and `item_bytes` when the listing already read them.

    Object stores tell no modification time through tensorstore, so a step there without
    timestamps (old Orbax versions) counts as saved `now`: time-based policies then keep it
    rather than delete it on a guess.
    """
    if meta is None:
        meta = io.read_step_metadata(step_dir)
    stamp = meta.init_timestamp_nsecs or meta.commit_timestamp_nsecs
    if stamp:
        time = from_nanoseconds(stamp)
    elif isinstance(step_dir, ObjectPath):
        time = now
    else:
        time = datetime.fromtimestamp(step_dir.stat().st_mtime, tz=UTC)
    metrics = meta.metrics if isinstance(meta.metrics, Mapping) else None
    if item_bytes is None:
        item_bytes = rootfs.step_item_bytes(step_dir, meta.item_names)
    return StepDetails(time, meta.commit_timestamp_nsecs, metrics, item_bytes)


def record_item_bytes(step_dir: Location, names: Sequence[str]) -> dict[str, int]:
    """Measures the items of a step just committed and records their bytes in the step."""
    sizes = rootfs.measure_item_bytes(step_dir, names)
    rootfs.write_items_record(step_dir, rootfs.ItemsRecord(sizes))
    return sizes


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
    replace: bool,
) -> io.AsyncSave:
    return io.save_checkpointables_async(
        step_dir,
        items,
        custom_metadata=None if custom_metadata is None else dict(custom_metadata),
        metrics=None if metrics is None else dict(metrics),
        init_timestamp_nsecs=to_nanoseconds(started),
        processes=processes,
        replace=replace,
    )


def load(
    step_dir: Location, abstract: Mapping[str, Any] | None, *, partial: bool = False
) -> dict[str, Any]:
    return io.load_checkpointables(step_dir, abstract, partial=partial)


def plan_load(step_dir: Location, name: str, abstract: Any, *, partial: bool) -> io.LoadPlan:
    return io.plan_load(step_dir, abstract, partial, name=name)


def process_count() -> int:
    import jax

    return int(jax.process_count())
