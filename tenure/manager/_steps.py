"""What the manager knows of its root: the committed steps, described for the policies, and
the damaged ones, read through `tenure.io.root` (which owns what a step is) and named by the
root's `StepNameFormat`.

Not thread-safe on its own: the Checkpointer holds its lock around every change, and never
while this reads the disk (`scan`, `describe` return values to install under the lock).
"""

from __future__ import annotations

import contextlib
import gc
import operator
import warnings
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from tenure.io import root as rootfs
from tenure.io.metadata import StepMetadata
from tenure.io.root import StepNameFormat
from tenure.io.storage import Location
from tenure.manager import _store
from tenure.manager.errors import (
    DamagedCheckpointWarning,
    InvalidStepError,
    RootNotFoundError,
    StepNotFoundError,
)
from tenure.retention import CheckpointInfo


@attrs.frozen
class CheckpointMetadata:
    """One committed checkpoint in the root.

    `time` is when its save was decided (what time-based policies see); `custom_metadata`
    is filled in by `Checkpointer.metadata(step)`, which reads it from disk on demand.
    `commit_timestamp_nsecs` is read from disk: None for a step this Checkpointer saved,
    until `reload()`. `item_bytes` gives the bytes of each checkpointable item the step holds
    (None when unknown: a step on an object store written without tenure's record).

    Examples:
        >>> from pathlib import Path
        >>> CheckpointMetadata(step=5, path=Path("/ckpt/5")).step
        5
    """

    step: int
    path: Location
    metrics: Mapping[str, Any] | None = None
    commit_timestamp_nsecs: int | None = None
    time: datetime | None = None
    custom_metadata: Mapping[str, Any] | None = None
    item_bytes: Mapping[str, int] | None = None

    def info(self) -> CheckpointInfo:
        """What the policies see of this checkpoint."""
        assert self.time is not None, "details are read before any policy runs"
        return CheckpointInfo(self.step, self.time, self.metrics, self.item_bytes)


def step_of(step: int | CheckpointMetadata) -> int:
    """The step number `step` stands for (numpy and jax integer scalars too); raises
    `InvalidStepError` for anything else."""
    number: Any = step.step if isinstance(step, CheckpointMetadata) else step
    if getattr(number, "shape", None) == ():
        with contextlib.suppress(TypeError):  # a float scalar is refused below
            number = operator.index(number)
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise InvalidStepError(f"step={step!r} must be an integer >= 0 or a CheckpointMetadata")
    return number


def describe(
    step: int,
    path: Location,
    now: datetime,
    meta: StepMetadata | None = None,
    item_bytes: Mapping[str, int] | None = None,
) -> CheckpointMetadata:
    """A committed step as the policies see it, read from its metadata (from `meta` and
    `item_bytes` when the listing already read them)."""
    details = _store.read_details(path, now, meta, item_bytes)
    return CheckpointMetadata(
        step=step,
        path=path,
        metrics=details.metrics,
        commit_timestamp_nsecs=details.commit_timestamp_nsecs,
        time=details.time,
        item_bytes=details.item_bytes,
    )


def just_saved(
    step: int,
    path: Location,
    info: CheckpointInfo,
    written: StepMetadata,
    item_bytes: Mapping[str, int] | None,
) -> CheckpointMetadata:
    """A step this process has just committed, described from what it wrote rather than read
    back: its decision time as stored (whole microseconds, so a reload sees the same time),
    the commit time io stamped (None on processes other than the primary) and the bytes of
    its items as recorded."""
    stored = _store.from_nanoseconds(_store.to_nanoseconds(info.time))
    return CheckpointMetadata(
        step=step,
        path=path,
        metrics=info.metrics,
        commit_timestamp_nsecs=written.commit_timestamp_nsecs,
        time=stored,
        item_bytes=item_bytes,
    )


@attrs.define
class Scan:
    """One listing of the root: its committed steps (described when asked) and damaged ones."""

    committed: list[CheckpointMetadata]
    damaged: tuple[rootfs.DamagedStep, ...]


class StepIndex:
    """The committed and damaged steps of one root, oldest first, and their names.

    Examples:
        >>> import tempfile
        >>> from datetime import UTC, datetime
        >>> from tenure.io import save_pytree
        >>> index = StepIndex(tempfile.mkdtemp(), StepNameFormat(prefix="ckpt"))
        >>> save_pytree(index.path_of(7), {"w": 1})
        >>> index.install(index.scan(datetime.now(UTC), details=True))
        >>> [c.step for c in index.committed], index.path_of(7).name
        ([7], 'ckpt_7')
    """

    def __init__(self, root: Any, names: StepNameFormat) -> None:
        from tenure.io.storage import as_location

        self.root: Location = as_location(root)
        self.names = names
        self.committed: list[CheckpointMetadata] = []
        self.damaged: tuple[rootfs.DamagedStep, ...] = ()
        self.described = True  # every committed step has its details (time, metrics)
        self._warned: set[int] = set()

    def path_of(self, step: int) -> Location:
        return self.root / self.names.build(step)

    # -- reading the disk (no lock held) -------------------------------------------------

    def scan(self, now: datetime, *, details: bool) -> Scan:
        """Lists the root through `tenure.io.root`, warning once per damaged step."""
        # A root can hold tens of thousands of steps. The scan makes many small objects and
        # no reference cycles, so pausing the cyclic garbage collector (which would re-walk
        # them again and again) almost halves the time it takes to open such a root.
        collecting = gc.isenabled()
        gc.disable()
        try:
            listing = rootfs.list_steps(self.root, self.names, read_metadata=details)
            if details:
                found = [
                    describe(s.step, s.path, now, s.metadata, s.item_bytes) for s in listing.steps
                ]
            else:
                found = [CheckpointMetadata(s.step, s.path) for s in listing.steps]
        finally:
            if collecting:
                gc.enable()
        for damaged in listing.damaged:
            if damaged.step not in self._warned:
                self._warned.add(damaged.step)
                warnings.warn(
                    f"damaged checkpoint in {self.root}: {damaged.describe()}; it is "
                    "skipped (never loaded, resumed from or deleted by retention): run "
                    "`tenure verify` on the root, and `tenure prune --damaged` to remove it",
                    DamagedCheckpointWarning,
                    stacklevel=5,
                )
        return Scan(found, listing.damaged)

    def undescribed(self) -> list[CheckpointMetadata]:
        """The steps lightweight initialization left without details."""
        return [] if self.described else [c for c in self.committed if c.time is None]

    # -- changes (under the Checkpointer's lock) -----------------------------------------

    def install(self, scan: Scan) -> None:
        self.committed = scan.committed
        self.damaged = scan.damaged
        self.described = all(c.time is not None for c in scan.committed)

    def fill(self, described: list[CheckpointMetadata]) -> None:
        """Puts in the details `undescribed` steps were given (steps deleted since stay out)."""
        by_step = {c.step: c for c in described}
        self.committed = [by_step.get(c.step, c) for c in self.committed]
        self.described = all(c.time is not None for c in self.committed)

    def add(self, entry: CheckpointMetadata) -> None:
        """A committed step; a step it replaced (committed or damaged) goes."""
        self.committed = [c for c in self.committed if c.step != entry.step]
        self.damaged = tuple(d for d in self.damaged if d.step != entry.step)
        self.committed.append(entry)
        if len(self.committed) > 1 and self.committed[-2].step > entry.step:
            self.committed.sort(key=lambda c: c.step)

    def take(self, steps: set[int]) -> list[CheckpointMetadata]:
        """Removes committed `steps` from the index; returns their entries."""
        taken = [c for c in self.committed if c.step in steps]
        self.committed = [c for c in self.committed if c.step not in steps]
        return taken

    def thin(self, thin: Mapping[int, frozenset[str]]) -> list[tuple[Location, frozenset[str]]]:
        """Takes the `thin` items out of the committed steps' descriptions; returns the path
        of each step to thin and the items it holds of those (steps gone since are left out)."""
        work = []
        for index, entry in enumerate(self.committed):
            doomed = thin.get(entry.step, frozenset())
            held = doomed if entry.item_bytes is None else doomed & set(entry.item_bytes)
            if not held:
                continue
            kept = None
            if entry.item_bytes is not None:
                kept = {k: v for k, v in entry.item_bytes.items() if k not in held}
            self.committed[index] = attrs.evolve(entry, item_bytes=kept)
            work.append((entry.path, frozenset(held)))
        return work

    def take_damaged(self, step: int) -> rootfs.DamagedStep | None:
        found = next((d for d in self.damaged if d.step == step), None)
        if found is not None:
            self.damaged = tuple(d for d in self.damaged if d.step != step)
        return found

    # -- lookups -------------------------------------------------------------------------

    def holds(self, step: int) -> str | None:
        """What the root holds under `step`: "committed", "damaged", or None."""
        if any(d.step == step for d in self.damaged):
            return "damaged"
        return "committed" if any(c.step == step for c in self.committed) else None

    def find(self, step: int | None) -> CheckpointMetadata:
        """The committed `step` (the latest when None), or an error saying what exists."""
        if step is None:
            if self.committed:
                return self.committed[-1]
            self._check_root()
            raise StepNotFoundError(
                f"no committed checkpoint in {self.root}; save one first, or check the directory"
            )
        for entry in self.committed:
            if entry.step == step:
                return entry
        raise self.not_found(step)

    def not_found(self, step: int) -> StepNotFoundError:
        self._check_root()
        steps = [c.step for c in self.committed]
        shown = steps if len(steps) <= 10 else [*steps[:5], "...", *steps[-5:]]
        return StepNotFoundError(
            f"step {step} has no committed checkpoint in {self.root}; committed steps: {shown}"
        )

    def _check_root(self) -> None:
        """A missing root is its own error, so that a typo'd path is told apart from an
        empty root. An object-store prefix exists only while it holds objects, so there an
        empty root and a missing one are the same."""
        if isinstance(self.root, Path) and not self.root.is_dir():
            raise RootNotFoundError(
                f"{self.root} does not exist; check the path (a reader started before its "
                "writer sees the steps once the writer has saved and reload() is called)"
            )
