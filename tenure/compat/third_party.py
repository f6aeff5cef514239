"""Args and handlers of other libraries, such as Grain's `CheckpointSave` and
`CheckpointRestore` with its `CheckpointHandler`.

Orbax lets any library pair its own args class with its own handler; tenure.compat accepts
such pairs too, whether registered with Orbax's `ocp.args.register_with_handler` (as Grain
registers its own when Orbax is installed) or with `tenure.args.register_with_handler`,
without subclassing anything of tenure's. tenure.io then stores the args' `item` itself:
an object with `get_state()`/`set_state()` (a Grain iterator) as its state, in the files
Grain's handler reads and writes, so Orbax with that handler restores it; anything else as
a pytree or JSON.
"""

from __future__ import annotations

import sys
from typing import Any

from tenure.compat.handlers import CheckpointHandler


class ThirdPartyCheckpointHandler(CheckpointHandler):
    """Stands in for another library's handler: the item is stored as tenure.io stores it,
    and a stateful restore target (an iterator) is restored in place and returned.

    Examples:
        >>> import tempfile
        >>> from tenure import io
        >>> class Counter:
        ...     def __init__(self): self.n = 0
        ...     def get_state(self): return {"n": self.n}
        ...     def set_state(self, state): self.n = state["n"]
        >>> counter, step = Counter(), tempfile.mkdtemp() + "/0"
        >>> counter.n = 5
        >>> handler = ThirdPartyCheckpointHandler()
        >>> io.save_checkpointables(step, {"data": handler.to_store(counter)})
        >>> fresh = Counter()
        >>> loaded = io.load_checkpointables(step, {"data": handler.abstract(fresh)})["data"]
        >>> handler.from_store(loaded, fresh).n
        5
    """


def as_handler(handler: Any) -> CheckpointHandler:
    """A tenure handler for `handler`: itself when it is one, else a stand-in."""
    return handler if isinstance(handler, CheckpointHandler) else ThirdPartyCheckpointHandler()


def handler_from_class(handler_cls: type[Any]) -> CheckpointHandler:
    """A new handler of class `handler_cls`, or a stand-in when it is another library's."""
    if issubclass(handler_cls, CheckpointHandler):
        return handler_cls()
    return ThirdPartyCheckpointHandler()


def orbax_handler_cls(args_cls: type[Any]) -> type[Any] | None:
    """The handler class Orbax has registered for `args_cls`, when Orbax is loaded (no
    registration can exist otherwise, so Orbax is never imported here)."""
    registry = sys.modules.get("orbax.checkpoint.args")
    if registry is None:
        return None
    try:
        handler_cls: type[Any] = registry.get_registered_handler_cls(args_cls)
    except (TypeError, ValueError):
        return None
    return handler_cls
