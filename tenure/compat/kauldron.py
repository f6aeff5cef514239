"""`tenure.compat.kauldron.Checkpointer`: Kauldron's `kd.ckpts.Checkpointer` config on tenure.

A frozen config whose fields translate into `CheckpointManagerOptions`, and so into
tenure's policies; the manager behind it is opened on first use. Checkpoints live in
`<workdir>/checkpoints`, as Kauldron puts them, with the state as the unnamed item.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import attrs
import jax

from tenure.compat.args import StandardRestore, StandardSave
from tenure.compat.checkpoint_manager import CheckpointManager
from tenure.compat.errors import InvalidOptionsError, NoCheckpointError
from tenure.compat.handlers import abstract_of
from tenure.compat.orbax_options import CheckpointManagerOptions
from tenure.io.storage import Location, as_location
from tenure.retention._metrics import lookup_metric

State = TypeVar("State")
CHECKPOINTS_DIRNAME = "checkpoints"
POLL_SECS = 1.0
# Module-level so tests can replace the clock; the iterator is the only code that waits.
_sleep: Callable[[float], None] = time.sleep
_monotonic: Callable[[], float] = time.monotonic


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

    `multiprocessing_options` and `fast` are accepted for compatibility and have no effect.

    Examples:
        >>> import tempfile, numpy as np
        >>> ckpt = Checkpointer(workdir=tempfile.mkdtemp(), save_interval_steps=10)
        >>> for step in range(31):
        ...     _ = ckpt.save({"w": np.full(2, step)}, step=step)
        >>> ckpt.wait_until_finished()
        >>> ckpt.all_steps, ckpt.restore({"w": np.zeros(2, int)})["w"]
        ([10, 20, 30], array([30, 30]))
        >>> ckpt.close()
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
    _manager: list[CheckpointManager] = attrs.field(init=False, factory=list, eq=False, repr=False)

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
            read_only=not self.create,
        )

    @property
    def directory(self) -> Location:
        """Where the step directories are."""
        return as_location(self.workdir) / CHECKPOINTS_DIRNAME

    @property
    def manager(self) -> CheckpointManager:
        """The manager behind this config, opened on first use."""
        if not self._manager:
            self._manager.append(CheckpointManager(self.directory, self.options()))
        return self._manager[0]

    # -- saving --------------------------------------------------------------------------

    def should_save(self, step: int) -> bool:
        """Whether the save policy saves `step` now."""
        return self.manager.should_save(step)

    def save(
        self, state: Any, *, step: int, force: bool = False, metrics: Any | None = None
    ) -> bool:
        """Saves `state` at `step` if the policy (or `force`) says so; returns whether it did."""
        return self.manager.save(step, args=StandardSave(state), metrics=metrics, force=force)

    def maybe_save(self, state: Any, *, step: int, force: bool = False) -> bool:
        """Saves `state` at `step` if the policy (or `force`) says so."""
        return self.save(state, step=step, force=force)

    # -- restoring -----------------------------------------------------------------------

    def restore(
        self, state: State, *, step: int = -1, noop_if_missing: bool = False, donate: bool = True
    ) -> State:
        """Restores `step` (-1: the latest) into the structure, dtypes and shardings of
        `state`. With `donate`, the arrays of `state` are freed before the checkpoint is
        read, so memory holds one copy of the state at a time; do not use `state` after.
        Without a checkpoint, returns `state` when `noop_if_missing`, else raises."""
        if step == -1:
            found = self.manager.latest_step()
            if found is None:
                if noop_if_missing:
                    return state
                raise NoCheckpointError(
                    f"no checkpoint in {self.directory}; train first, or pass noop_if_missing"
                )
            step = found
        elif step not in self.manager.all_steps():
            raise NoCheckpointError(
                f"no checkpoint for step {step} in {self.directory}; steps: {self.all_steps}"
            )
        target = abstract_of(state)  # shapes and shardings only: `state` is no longer needed
        if donate:
            for leaf in jax.tree.leaves(state):
                if isinstance(leaf, jax.Array) and not leaf.is_deleted():
                    leaf.delete()
        restored: State = self.manager.restore(step, args=StandardRestore(target))
        return restored

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
        self.manager.delete(step)

    def reload(self) -> None:
        """Rescans the directory, e.g. in an evaluator while training writes."""
        self.manager.reload()

    def iter_new_checkpoints(
        self,
        *,
        min_interval_secs: int = 0,
        timeout: int | None = None,
        timeout_fn: Callable[[], bool] | None = None,
    ) -> Iterator[int]:
        """Yields the latest step, then each newer step as it appears (for evaluators).
        After `timeout` seconds without a new step it stops, unless `timeout_fn` returns
        False, in which case it keeps waiting. Steps arriving faster than
        `min_interval_secs` are skipped in favour of the newest."""
        last: int | None = None
        last_yield: float | None = None
        waiting_since = _monotonic()
        while True:
            self.reload()
            latest = self.latest_step
            if latest is not None and (last is None or latest > last):
                if last_yield is not None:
                    early = min_interval_secs - (_monotonic() - last_yield)
                    if early > 0:
                        _sleep(early)
                        continue  # a newer step may have arrived meanwhile
                last, last_yield = latest, _monotonic()
                yield latest
                waiting_since = _monotonic()
                continue
            if timeout is not None and _monotonic() - waiting_since >= timeout:
                if timeout_fn is None or timeout_fn():
                    return
                waiting_since = _monotonic()
            _sleep(POLL_SECS)

    # -- lifecycle -----------------------------------------------------------------------

    def wait_until_finished(self) -> None:
        """Blocks until the save in flight is committed."""
        if self._manager:
            self._manager[0].wait_until_finished()

    def close(self) -> None:
        """Waits for the save in flight and releases the directory."""
        if self._manager:
            self._manager.pop().close()
