"""`tenure.compat.kauldron.Checkpointer`: Kauldron's `kd.ckpts.Checkpointer` config on tenure.

A frozen config whose fields translate into `CheckpointManagerOptions`, and so into
tenure's policies; the manager behind it is opened on first use. Checkpoints live where
Kauldron puts them, `<workdir>/checkpoints/ckpt_<step>/default/` (Kauldron's
`step_prefix="ckpt"`, and the state as Orbax's unnamed item), so tenure and Kauldron resume
each other's runs. Workdirs written by earlier tenure versions (`checkpoints/<step>/`) are
detected and kept in their layout.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar, overload

import attrs
import jax

from tenure.compat.args import StandardRestore, StandardSave
from tenure.compat.checkpoint_manager import CheckpointManager
from tenure.compat.errors import ArgsError, InvalidOptionsError, NoCheckpointError
from tenure.compat.handlers import abstract_of
from tenure.compat.orbax_options import CheckpointManagerOptions
from tenure.io.root import StepNameFormat, list_steps
from tenure.io.storage import Location, as_location
from tenure.retention import lookup_metric

__all__ = ["LAYOUTS", "Checkpointer", "StandardCheckpointItem", "layouts_in"]

State = TypeVar("State")
CHECKPOINTS_DIRNAME = "checkpoints"
# How step directories are named, by layout. "kauldron" is what Kauldron's Checkpointer
# writes (kauldron/checkpoints/checkpointer.py: `step_prefix="ckpt"`, no fixed length);
# "orbax" is Orbax's and tenure's default, and what this surface wrote before it followed
# Kauldron. A new workdir gets Kauldron's.
LAYOUTS: Mapping[str, StepNameFormat] = {
    "kauldron": StepNameFormat(prefix="ckpt"),
    "orbax": StepNameFormat(),
}
# Module-level so tests can replace the clock; the iterator is the only code that waits.
_sleep: Callable[[float], None] = time.sleep
_monotonic: Callable[[], float] = time.monotonic


def layouts_in(directory: Location) -> list[str]:
    """The layouts (names in `LAYOUTS`) whose step directories `directory` holds; empty
    when it holds none or does not exist.

    Examples:
        >>> import pathlib, tempfile
        >>> from tenure.io import save_pytree
        >>> from tenure.io.root import temporary_path
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> save_pytree(root / "ckpt_100", {"w": 1})
        >>> temporary_path(root / "ckpt_200").mkdir()  # an unfinished save
        >>> (root / "300").mkdir()  # somebody's folder, not a step
        >>> layouts_in(root), layouts_in(root / "missing")
        (['kauldron'], [])
    """
    # Only marked steps count: a folder named like a step is not a layout (tenure.io.root).
    return [
        layout
        for layout, steps in LAYOUTS.items()
        if list_steps(directory, steps, read_metadata=False).steps
    ]


class StandardCheckpointItem:
    """Kauldron's `kd.ckpts.items.StandardCheckpointItem`. An instance of this class itself,
    given to `Checkpointer.restore`, restores a state whose structure is not known, as the
    nested dicts and lists it was saved as. Subclasses (such as a state dataclass) are
    restored like any other state: into their own structure.

    Examples:
        >>> import tempfile, numpy as np
        >>> with Checkpointer(workdir=tempfile.mkdtemp(), save_interval_steps=1) as ckpt:
        ...     _ = ckpt.save({"params": {"w": np.arange(3)}}, step=5)
        ...     ckpt.wait_until_finished()
        ...     restored = ckpt.restore(StandardCheckpointItem())
        >>> type(restored).__name__, np.asarray(restored["params"]["w"])
        ('dict', array([0, 1, 2]))
    """


@attrs.frozen
class _Opened:
    """The manager behind a config, the layout it names steps by, and whether it was
    opened read-only."""

    manager: CheckpointManager
    layout: str
    reading: bool


@attrs.frozen
class _MetricAt:
    """`best_fn` for `best_metric_path`: the metric at a dotted path ("eval.loss")."""

    path: str

    def __call__(self, metrics: Mapping[str, Any]) -> float:
        value = lookup_metric(metrics, self.path)
        return float("nan") if value is None else value


def _check_mode(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ("min", "max"):
        raise InvalidOptionsError(f"best_mode={value!r} must be 'min' or 'max'")


@attrs.frozen(kw_only=True)
class Checkpointer:
    """Kauldron's checkpointer config: save every `save_interval_steps` (and at
    `save_on_steps`), keep `max_to_keep` (the best by `best_metric_path` when given), plus
    every `keep_period`-th step and one per `keep_time_interval`.

    Steps go to `<workdir>/checkpoints/ckpt_<step>/default/`, as Kauldron writes them; a
    workdir holding only `checkpoints/<step>/` steps (earlier tenure versions) keeps that
    layout. With `create=False` (an evaluator) the workdir is not created and is read
    without taking the writer's lock, so an evaluator reads beside its trainer; a workdir
    that does not exist yet is an empty one (no steps; `iter_new_checkpoints` waits for the
    trainer's first). The first `save`, `maybe_save`, `should_save` or `delete` opens an
    existing workdir for writing, as Kauldron's evaluators keep their own `_eval_*`
    workdirs with `create=False`.

    `maybe_save` saves only the steps the policy saves, `force` or not, as in Kauldron;
    `save(..., force=True)` saves any step. `multiprocessing_options` and `fast` are
    accepted for compatibility and have no effect.

    Examples:
        >>> import os, tempfile, numpy as np
        >>> workdir = tempfile.mkdtemp()
        >>> with Checkpointer(workdir=workdir, save_interval_steps=10) as ckpt:
        ...     for step in range(31):
        ...         _ = ckpt.maybe_save({"w": np.full(2, step)}, step=step)
        ...     ckpt.wait_until_finished()
        ...     print(ckpt.all_steps, ckpt.restore({"w": np.zeros(2, int)})["w"])
        [10, 20, 30] [30 30]
        >>> sorted(os.listdir(os.path.join(workdir, "checkpoints")))
        ['ckpt_10', 'ckpt_20', 'ckpt_30']
    """

    workdir: str | os.PathLike[str]
    save_interval_steps: int
    max_to_keep: int | None = 3
    keep_time_interval: timedelta | None = None
    keep_period: int | None = None
    save_on_steps: Sequence[int] | None = None
    best_metric_path: str | None = None
    best_mode: str = attrs.field(default="max", validator=_check_mode)
    multiprocessing_options: Any = None
    fast: bool = True
    create: bool = True
    _opened: list[_Opened] = attrs.field(init=False, factory=list, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self.options()  # invalid settings fail where the config is written

    def options(self) -> CheckpointManagerOptions:
        """The Orbax options these fields stand for."""
        best = None if self.best_metric_path is None else _MetricAt(self.best_metric_path)
        return CheckpointManagerOptions(
            save_interval_steps=self.save_interval_steps,
            max_to_keep=self.max_to_keep,
            keep_time_interval=self.keep_time_interval,
            keep_period=self.keep_period,
            save_on_steps=self.save_on_steps,
            best_fn=best,
            best_mode=self.best_mode,
            create=self.create,
        )

    @property
    def directory(self) -> Location:
        """Where the step directories are."""
        return as_location(self.workdir) / CHECKPOINTS_DIRNAME

    @property
    def layout(self) -> str:
        """The layout of the step directories: "kauldron" (`ckpt_<step>`), or "orbax"
        (`<step>`) for a workdir an earlier tenure version wrote. Found when the workdir
        is first used, and kept: a workdir without steps gets Kauldron's."""
        if self._opened:
            return self._opened[0].layout
        found = layouts_in(self.directory)
        if len(found) > 1:
            raise InvalidOptionsError(
                f"{self.directory} holds steps named both `ckpt_<step>` (Kauldron's layout) "
                "and `<step>` (earlier tenure versions'); move one set to another workdir"
            )
        return found[0] if found else "kauldron"

    @property
    def manager(self) -> CheckpointManager:
        """The manager behind this config, opened on first use."""
        return self._open(write=False)

    def _open(self, *, write: bool) -> CheckpointManager:
        """The manager, opened read-only while `create=False` and nothing was written, so
        that a reader takes no lock; reopened to write on the first write."""
        reading = not self.create and not write
        if self._opened and self._opened[0].reading and not reading:
            self._opened.pop().manager.close()
        if not self._opened:
            layout = self.layout
            options = attrs.evolve(
                self.options(), step_name_format=LAYOUTS[layout], read_only=reading
            )
            manager = CheckpointManager(self.directory, options)
            self._opened.append(_Opened(manager, layout, reading))
        return self._opened[0].manager

    # -- saving --------------------------------------------------------------------------

    def should_save(self, step: int) -> bool:
        """Whether the save policy saves `step` now."""
        return self._open(write=True).should_save(step)

    def save(
        self, state: Any, *, step: int, force: bool = False, metrics: Any | None = None
    ) -> bool:
        """Saves `state` at `step` if the policy (or `force`) says so; returns whether it did."""
        writer = self._open(write=True)
        return writer.save(step, args=StandardSave(state), metrics=metrics, force=force)

    def maybe_save(self, state: Any, *, step: int, force: bool = False) -> bool:
        """Saves `state` at `step` if the policy says so, as Kauldron does: `force` does not
        make a step the policy skips be saved (use `save(..., force=True)` for that)."""
        if not self.should_save(step):
            return False
        return self.save(state, step=step, force=force)

    # -- restoring -----------------------------------------------------------------------

    @overload
    def restore(
        self,
        state: StandardCheckpointItem,
        *,
        step: int = -1,
        noop_if_missing: bool = False,
        donate: bool = True,
    ) -> Any: ...  # the saved tree, whatever its structure

    @overload
    def restore(
        self, state: State, *, step: int = -1, noop_if_missing: bool = False, donate: bool = True
    ) -> State: ...

    def restore(
        self, state: Any, *, step: int = -1, noop_if_missing: bool = False, donate: bool = True
    ) -> Any:
        """Restores `step` (-1: the latest) into the structure, dtypes and shardings of
        `state`; `state=StandardCheckpointItem()` restores the tree as it was saved. With
        `donate`, the arrays of `state` are freed before the checkpoint is read, so memory
        holds one copy of the state at a time; do not use `state` after. Without any
        checkpoint, returns `state` when `noop_if_missing`, else raises."""
        if state is None:
            raise ArgsError(
                "restore needs the state to restore into; to restore a state whose "
                "structure is not known, pass kauldron.StandardCheckpointItem()"
            )
        latest = self.manager.latest_step()
        if latest is None:
            if noop_if_missing:
                return state
            where = "" if self.directory.is_dir() else " (that directory does not exist)"
            raise NoCheckpointError(
                f"no checkpoint in {self.directory}{where}; check the workdir, or pass "
                "noop_if_missing=True to start from `state`"
            )
        if step == -1:
            step = latest
        elif step not in self.manager.all_steps():
            raise NoCheckpointError(
                f"no checkpoint for step {step} in {self.directory}; steps: {self.all_steps}"
            )
        if type(state) is StandardCheckpointItem:  # not a subclass: a state with fields
            target = None
        else:
            target = abstract_of(state)  # shapes and shardings only: `state` is not needed
            if donate:
                for leaf in jax.tree.leaves(state):
                    if isinstance(leaf, jax.Array) and not leaf.is_deleted():
                        leaf.delete()
        return self.manager.restore(step, args=StandardRestore(target))

    def item_metadata(self, step: int = -1) -> Any:
        """The saved state's tree of `jax.ShapeDtypeStruct`s; reads no array data."""
        found = self.manager.latest_step() if step == -1 else step
        if found is None:
            raise NoCheckpointError(f"no checkpoint in {self.directory}")
        return self.manager.item_metadata(found)

    # -- steps ---------------------------------------------------------------------------

    @property
    def latest_step(self) -> int | None:
        """The newest saved step, or None."""
        return self.manager.latest_step()

    @property
    def all_steps(self) -> Sequence[int]:
        """The saved steps, oldest first."""
        return self.manager.all_steps()

    def delete(self, step: int) -> None:
        """Deletes `step` now."""
        self._open(write=True).delete(step)

    def reload(self) -> None:
        """Rescans the directory, e.g. in an evaluator while training writes."""
        self.manager.reload()

    def iter_new_checkpoints(
        self,
        *,
        min_interval_secs: int = 0,
        seconds_to_sleep: int = 1,
        timeout: int | None = None,
        timeout_fn: Callable[[], bool] | None = None,
    ) -> Iterator[int]:
        """Yields the latest step, then the newest step of each look that finds a newer one
        (for evaluators; `tenure.Checkpointer.iter_new_checkpoints` with `from_latest`),
        looking every `seconds_to_sleep` seconds; before the first step (even before the
        workdir exists) it waits. After `timeout` seconds without a new step it stops,
        unless `timeout_fn` returns False, in which case it keeps waiting. Steps arriving
        faster than `min_interval_secs` are skipped in favour of the newest."""
        checkpointer = self.manager.checkpointer
        new = checkpointer.iter_new_checkpoints(
            min_interval_secs,
            timeout,
            poll_secs=seconds_to_sleep,
            timeout_fn=timeout_fn,
            from_latest=True,
            sleep=_sleep,
            monotonic=_monotonic,
        )
        for entry in new:
            yield entry.step

    # -- lifecycle -----------------------------------------------------------------------

    def wait_until_finished(self) -> None:
        """Blocks until the save in flight is committed."""
        if self._opened:
            self._opened[0].manager.wait_until_finished()

    def close(self) -> None:
        """Waits for the save in flight and releases the directory; a later call reopens it."""
        if self._opened:
            self._opened.pop().manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
