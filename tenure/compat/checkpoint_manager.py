"""`tenure.CheckpointManager`: Orbax v0's `CheckpointManager` surface on `tenure.Checkpointer`.

Options become tenure policies (`to_policies`), each item is stored through `tenure.io`
by the handler its args are registered with, and the Checkpointer does the rest: one save
at a time, atomic commits, retention by `plan_retention`, the newest checkpoint never
deleted. A single unnamed item lives in `default/`, as Orbax v0 stores it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import attrs
import jax
import numpy as np

from tenure import io
from tenure.compat.args import CheckpointArgs, Composite, get_registered_handler_cls
from tenure.compat.errors import ArgsError, NoCheckpointError
from tenure.compat.handlers import CheckpointHandler
from tenure.compat.orbax_options import CheckpointManagerOptions, to_policies
from tenure.compat.third_party import as_handler, handler_from_class, orbax_handler_cls
from tenure.io.root import list_steps
from tenure.io.storage import Location, ObjectPath, as_location
from tenure.manager import Checkpointer
from tenure.retention import best

DEFAULT_ITEM_NAME = "default"


@attrs.frozen
class RootMetadata:
    """What `metadata()` returns: the metadata given to the manager that created the root.

    Examples:
        >>> RootMetadata(custom_metadata={"version": 1}).custom_metadata
        {'version': 1}
    """

    custom_metadata: Mapping[str, Any]


@attrs.frozen
class StepMetadata:
    """What `metadata(step)` returns, with Orbax's field names.

    Examples:
        >>> StepMetadata(item_metadata=None, custom_metadata={"lr": 0.1}).custom_metadata
        {'lr': 0.1}
    """

    item_metadata: Any
    custom_metadata: Mapping[str, Any]
    metrics: Mapping[str, Any] | None = None
    item_handlers: Mapping[str, str] = attrs.field(factory=dict)
    init_timestamp_nsecs: int | None = None
    commit_timestamp_nsecs: int | None = None


class CheckpointManager:
    """Orbax v0's `CheckpointManager` on tenure: code written for `ocp.CheckpointManager`
    runs by changing its import.

    `item_handlers` (one handler, or a mapping of item names to handlers) and
    `handler_registry` (a mapping of item names to handlers) tell the manager how to
    restore items before any save or restore with args has; without either, tenure
    restores an item as its step says it was stored. `item_names` only declares that the
    items are named.

    Examples:
        >>> import tempfile, numpy as np
        >>> import tenure.args as args
        >>> options = CheckpointManagerOptions(save_interval_steps=2, max_to_keep=2)
        >>> with CheckpointManager(tempfile.mkdtemp(), options=options) as mngr:
        ...     for step in range(7):
        ...         _ = mngr.save(step, args=args.StandardSave({"w": np.full(2, step)}))
        ...     mngr.wait_until_finished()
        ...     print(mngr.all_steps(), mngr.restore(mngr.latest_step())["w"])
        [4, 6] [6 6]
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | ObjectPath,
        options: CheckpointManagerOptions | None = None,
        metadata: Mapping[str, Any] | None = None,
        item_names: Sequence[str] | None = None,
        item_handlers: CheckpointHandler | Mapping[str, CheckpointHandler] | None = None,
        handler_registry: Mapping[str, CheckpointHandler] | None = None,
    ) -> None:
        self._options = options or CheckpointManagerOptions()
        self._metadata = dict(metadata) if metadata is not None else None
        self._handlers: dict[str, CheckpointHandler] = {}
        self._default_mode = self._item_mode(item_names, item_handlers, handler_registry)
        root = as_location(directory)
        o = self._options
        if not o.create and not o.read_only and not root.is_dir():
            raise NoCheckpointError(
                f"{root} does not exist and options.create is False; create the directory "
                "first, or pass CheckpointManagerOptions(create=True)"
            )
        save_policy, preservation_policy = to_policies(o)
        self._ckptr = Checkpointer(
            root,
            save_decision_policy=save_policy,
            preservation_policy=preservation_policy,
            step_name_format=o.name_format(),
            custom_metadata=self._metadata if o.save_root_metadata else None,
            cleanup_tmp_directories=o.cleanup_tmp_directories,
            lightweight_initialize=o.lightweight_initialize,
            read_only=o.read_only,
            background_delete=o.enable_background_delete,
            todelete_subdir=o.todelete_subdir,
        )

    def _item_mode(
        self,
        item_names: Sequence[str] | None,
        item_handlers: CheckpointHandler | Mapping[str, CheckpointHandler] | None,
        handler_registry: Mapping[str, CheckpointHandler] | None,
    ) -> bool | None:
        """True for one unnamed item, False for named items, None until a save or a
        restore tells."""
        if item_handlers is not None and not isinstance(item_handlers, Mapping):
            item_handlers = as_handler(item_handlers)  # another library's, e.g. Grain's
        if handler_registry is not None and (item_names or item_handlers):
            raise ArgsError(
                "handler_registry is mutually exclusive with item_names and item_handlers; "
                "put every item's handler in handler_registry"
            )
        if item_names and isinstance(item_handlers, CheckpointHandler):
            raise ArgsError(
                "a single item_handlers handler means one unnamed item, which has no "
                "item_names; pass item_handlers={name: handler, ...} for named items"
            )
        if isinstance(item_handlers, CheckpointHandler):
            self._handlers[DEFAULT_ITEM_NAME] = item_handlers
            return True
        given = item_handlers or handler_registry or {}
        self._handlers.update({name: as_handler(h) for name, h in given.items()})
        if item_names or self._handlers:
            return list(self._handlers) == [DEFAULT_ITEM_NAME] and not item_names
        return None

    # -- steps ---------------------------------------------------------------------------

    @property
    def directory(self) -> Location:
        """The root directory holding the step directories."""
        return self._ckptr.directory

    @property
    def checkpointer(self) -> Checkpointer:
        """The `tenure.Checkpointer` that does the work (its `plan`, `iter_new_checkpoints`)."""
        return self._ckptr

    def all_steps(self, read: bool = False) -> Sequence[int]:
        """The steps saved, oldest first, including an asynchronous save still being
        written (as in Orbax); `read=True` rescans the root first."""
        if read:
            self.reload()
        steps = [c.step for c in self._ckptr.checkpoints]
        in_flight = self._ckptr.in_flight
        if in_flight is not None and in_flight.step not in steps:
            steps.append(in_flight.step)
        return steps

    def latest_step(self) -> int | None:
        """The newest step saved, or None."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def best_step(self) -> int | None:
        """The step whose metrics `best_fn` rates best (the newer one on a tie); the latest
        step without `best_fn`; None when no step has metrics."""
        best_fn = self._options.best_fn
        if best_fn is None:
            return self.latest_step()
        # The retention layer's ranking: NaN ranks worst, missing is not ranked.
        minimize = self._options.best_mode == "min"
        top = best(self._ckptr.checkpoints, best_fn, "min" if minimize else "max")
        return None if top is None else top.step

    def reload(self) -> None:
        """Rescans the root, e.g. after another process wrote to it."""
        self._ckptr.reload()

    def reached_preemption(self, step: int) -> bool:
        """Whether a preemption notice has arrived."""
        return self._ckptr.reached_preemption(step)

    def should_save(self, step: int, metrics: Mapping[str, Any] | None = None) -> bool:
        """Whether the options' save policy saves `step` now, given its `metrics` (never when
        read-only)."""
        plain = None if metrics is None else _plain(metrics)
        return not self._options.read_only and self._ckptr.should_save(step, metrics=plain)

    def delete(self, step: int) -> None:
        """Deletes a committed step now (a no-op when read-only, as in Orbax)."""
        if not self._options.read_only:
            self._ckptr.delete(step)

    def is_saving_in_progress(self) -> bool:
        """Whether a save is still being written."""
        return self._ckptr.is_saving_in_progress()

    # -- saving --------------------------------------------------------------------------

    def save(
        self,
        step: int,
        *,
        args: CheckpointArgs,
        metrics: Mapping[str, Any] | None = None,
        force: bool = False,
        custom_metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """Saves the items in `args` if the save policy (or `force`) says so; returns
        whether it saved. A forced save still never overwrites an existing step."""
        items = self._named(args, on_save=True)
        # Decided here rather than by the Checkpointer's save, since the policy sees the
        # metrics even when prevent_write_metrics keeps them off the disk.
        if self._options.read_only or (not force and not self.should_save(step, metrics)):
            return False
        stored = {}
        for name, item_args in items.items():
            handler = handler_from_class(get_registered_handler_cls(item_args))
            stored[name] = handler.to_store(getattr(item_args, "item", None))
            self._handlers[name] = handler
        written = None if metrics is None or self._options.prevent_write_metrics else metrics
        options: dict[str, Any] = {
            "force": True,  # the decision was made above, with Orbax's rules
            "metrics": None if written is None else _plain(written),
            "custom_metadata": custom_metadata,
        }
        if not self._options.enable_async_checkpointing:
            return self._ckptr.save_checkpointables(step, stored, **options)
        response = self._ckptr.save_checkpointables_async(step, stored, **options)
        assert response is not None  # forced
        response.staged()  # the caller may change its arrays once this returns
        return True

    def _named(self, args: Any, *, on_save: bool) -> dict[str, Any]:
        """`args` as {item name: args or None}, checked against the manager's item mode."""
        if not isinstance(args, CheckpointArgs) and orbax_handler_cls(type(args)) is None:
            raise ArgsError(
                f"args must be a tenure.args.CheckpointArgs, e.g. args=StandardSave(state); "
                f"found {type(args).__name__}. Pass it by keyword: save(step, args=...)"
            )
        composite = isinstance(args, Composite)
        if self._default_mode is None and on_save:
            self._default_mode = not composite
        if self._default_mode and composite:
            raise ArgsError(
                "this manager holds one unnamed item; pass its args directly, e.g. "
                "args=StandardSave(state), not a Composite"
            )
        if self._default_mode is False and not composite:
            raise ArgsError(
                "this manager holds named items; pass args=Composite(name=StandardSave(...))"
            )
        return dict(args) if isinstance(args, Composite) else {DEFAULT_ITEM_NAME: args}

    # -- restoring -----------------------------------------------------------------------

    def restore(
        self,
        step: int | None,
        args: CheckpointArgs | None = None,
        directory: str | os.PathLike[str] | ObjectPath | None = None,
    ) -> Any:
        """Restores `step` (the latest when None), from `directory` when given. Returns the
        item, or a `Composite` of named items. Without args, each item is restored the way
        it was last saved or restored by this manager, or else as its step records it."""
        root = None if directory is None else as_location(directory)
        step, step_dir = self._resolve(step, root)
        if self._default_mode is None:
            self._default_mode = (step_dir / DEFAULT_ITEM_NAME).is_dir()
        if args is not None:
            requested = self._named(args, on_save=False)
        elif self._default_mode:
            requested = {DEFAULT_ITEM_NAME: None}
        else:
            requested = dict.fromkeys(io.read_step_metadata(step_dir).item_names)
        handlers, targets = {}, {}
        for name, item_args in requested.items():
            handler = self._handler_for(name, item_args)
            handlers[name] = handler
            targets[name] = handler.abstract(getattr(item_args, "item", None))
        loaded = {}
        # Orbax's partial_restore is per item: load the partial items apart from the strict.
        for partial in (False, True):
            group = {
                name: target
                for name, target in targets.items()
                if bool(getattr(requested[name], "partial_restore", False)) is partial
            }
            if not group:
                continue
            if root is None:  # the Checkpointer protects the step it loads
                loaded.update(self._ckptr.load_checkpointables(step, group, partial=partial))
            else:
                loaded.update(io.load_checkpointables(step_dir, group, partial=partial))
        values = {
            name: handlers[name].from_store(loaded[name], getattr(requested[name], "item", None))
            for name in requested
        }
        return values[DEFAULT_ITEM_NAME] if self._default_mode else Composite(**values)

    def _handler_for(self, name: str, item_args: Any) -> CheckpointHandler:
        if item_args is None:
            return self._handlers.get(name, CheckpointHandler())
        handler = handler_from_class(get_registered_handler_cls(item_args))
        self._handlers[name] = handler  # restores without args reuse it
        return handler

    def _resolve(self, step: int | None, root: Location | None) -> tuple[int, Location]:
        """The step to read (the latest when None) and its directory."""
        names = self._options.name_format()
        if root is None:
            steps = self.all_steps()
            in_flight = self._ckptr.in_flight
            if in_flight is not None and step in (None, in_flight.step):
                self.wait_until_finished()  # reads only committed steps
            where = self.directory
        else:
            steps = [found.step for found in list_steps(root, names, read_metadata=False).steps]
            where = root
        if step is None and steps:
            step = steps[-1]
        if step is None or step not in steps:
            raise NoCheckpointError(
                f"no checkpoint for step {step} in {where}; committed steps: {list(steps)}"
            )
        return step, where / names.build(step)

    def item_metadata(self, step: int) -> Any:
        """The item's tree of `jax.ShapeDtypeStruct`s (None for items without a tree, such
        as JSON), or a `Composite` of them for named items; reads no array data."""
        step, step_dir = self._resolve(step, None)
        if self._default_mode is None:
            self._default_mode = (step_dir / DEFAULT_ITEM_NAME).is_dir()
        names = (
            [DEFAULT_ITEM_NAME]
            if self._default_mode
            else list(io.read_step_metadata(step_dir).item_names)
        )
        found = {name: self._item_metadata(step_dir, name) for name in names}
        return found[DEFAULT_ITEM_NAME] if self._default_mode else Composite(**found)

    def _item_metadata(self, step_dir: Location, name: str) -> Any:
        handler = self._handlers.get(name)
        if handler is not None:
            return handler.metadata(step_dir, name)
        try:
            return io.pytree_metadata(step_dir, name=name)
        except io.NotACheckpointError:  # a JSON item: no tree to describe
            return None

    def metrics(self, step: int) -> Mapping[str, Any] | None:
        """The metrics saved with `step`, or None when it has none (or does not exist)."""
        if step not in self.all_steps():
            return None
        _, step_dir = self._resolve(step, None)
        metrics = io.read_step_metadata(step_dir).metrics
        return metrics if isinstance(metrics, Mapping) else None

    def metadata(self, step: int | None = None) -> RootMetadata | StepMetadata:
        """The root's metadata (step None), or `step`'s metadata."""
        if step is None:
            saved = self._ckptr.root_metadata()
            chosen = saved if saved is not None else self._metadata
            return RootMetadata(custom_metadata=dict(chosen or {}))
        _, step_dir = self._resolve(step, None)
        meta = io.read_step_metadata(step_dir)
        return StepMetadata(
            item_metadata=self.item_metadata(step),
            custom_metadata=meta.custom_metadata,
            metrics=meta.metrics if isinstance(meta.metrics, Mapping) else None,
            item_handlers=meta.item_handlers,
            init_timestamp_nsecs=meta.init_timestamp_nsecs,
            commit_timestamp_nsecs=meta.commit_timestamp_nsecs,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def wait_until_finished(self) -> None:
        """Blocks until the save in flight is committed and old steps are deleted."""
        self._ckptr.wait()

    def check_for_errors(self) -> None:
        """Raises the error of a finished asynchronous save, if it failed."""
        self._ckptr.check_for_errors()

    def close(self) -> None:
        """Waits for the save in flight, then releases the root."""
        self._ckptr.close()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _plain(value: Any) -> Any:
    """Metrics as JSON values: arrays and numpy or jax scalars become Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, jax.Array | np.ndarray | np.generic):
        return np.asarray(value).tolist()
    return value
