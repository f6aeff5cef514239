"""`tenure.args`: Orbax's `ocp.args` classes, stored through `tenure.io`.

Each args class says how an item is saved or restored; `register_with_handler` pairs it
with a `CheckpointHandler`, so users can add item types of their own.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import attrs

from tenure.compat.errors import ArgsError, HandlerRegistrationError
from tenure.compat.handlers import (
    ArrayCheckpointHandler,
    JaxRandomKeyCheckpointHandler,
    JsonCheckpointHandler,
    NumpyRandomKeyCheckpointHandler,
    ProtoCheckpointHandler,
    PyTreeCheckpointHandler,
    StandardCheckpointHandler,
)
from tenure.compat.third_party import orbax_handler_cls

A = TypeVar("A", bound=type)

# args class -> handler class, and handler class -> (save args class, restore args class).
_HANDLER_OF: dict[type, type[Any]] = {}
_ARGS_OF: dict[type[Any], list[type | None]] = {}


class CheckpointArgs:
    """Base class of every args class; subclasses are usually dataclasses or attrs classes
    with an `item` field.

    Examples:
        >>> import dataclasses
        >>> class NotesHandler(JsonCheckpointHandler): ...
        >>> @register_with_handler(NotesHandler, for_save=True)
        ... @dataclasses.dataclass
        ... class NotesSave(CheckpointArgs):
        ...     item: list[str]
        >>> get_registered_handler_cls(NotesSave(["hi"])).__name__
        'NotesHandler'
    """


def register_with_handler(
    handler_cls: type[Any], for_save: bool = False, for_restore: bool = False
) -> Callable[[A], A]:
    """A class decorator registering an args class as `handler_cls`'s save and/or restore
    args, so a manager knows how to store an item given with it.

    Examples:
        >>> class TagsHandler(JsonCheckpointHandler): ...
        >>> @register_with_handler(TagsHandler, for_save=True, for_restore=True)
        ... class Tags(CheckpointArgs):
        ...     item = None
        >>> get_registered_args_cls(TagsHandler)[1].__name__
        'Tags'
    """
    if not for_save and not for_restore:
        raise HandlerRegistrationError(
            f"register_with_handler({handler_cls.__name__}) needs for_save=True, "
            "for_restore=True, or both"
        )
    # Another library's handler and args (Grain's, say) are accepted as they are, as Orbax
    # accepts them: tenure.io stores the args' item (see tenure.compat.third_party).
    if not isinstance(handler_cls, type):
        raise HandlerRegistrationError(
            f"{handler_cls!r} is not a class; pass the handler class, not an instance"
        )

    def register(args_cls: A) -> A:
        if not isinstance(args_cls, type):
            raise HandlerRegistrationError(f"{args_cls!r} is not a class; decorate a class")
        _HANDLER_OF[args_cls] = handler_cls
        pair = _ARGS_OF.setdefault(handler_cls, [None, None])
        if for_save:
            pair[0] = args_cls
        if for_restore:
            pair[1] = args_cls
        return args_cls

    return register


def get_registered_handler_cls(arg: CheckpointArgs | type[CheckpointArgs]) -> type[Any]:
    """The handler class registered for an args instance or class.

    Examples:
        >>> get_registered_handler_cls(StandardSave).__name__
        'StandardCheckpointHandler'
    """
    args_cls = arg if isinstance(arg, type) else type(arg)
    for cls in args_cls.__mro__:
        if cls in _HANDLER_OF:
            return _HANDLER_OF[cls]
    registered_with_orbax = orbax_handler_cls(args_cls)
    if registered_with_orbax is not None:
        return registered_with_orbax
    raise HandlerRegistrationError(
        f"no handler is registered for {args_cls.__name__}; decorate it with "
        "@tenure.args.register_with_handler(SomeHandler, for_save=..., for_restore=...)"
    )


def get_registered_args_cls(handler: type[Any] | Any) -> tuple[type[Any], type[Any]]:
    """The (save, restore) args classes registered for a handler class or instance.

    Examples:
        >>> [c.__name__ for c in get_registered_args_cls(JsonCheckpointHandler())]
        ['JsonSave', 'JsonRestore']
    """
    handler_cls = handler if isinstance(handler, type) else type(handler)
    save, restore = _ARGS_OF.get(handler_cls, [None, None])
    if save is None or restore is None:
        raise HandlerRegistrationError(
            f"{handler_cls.__name__} has no registered save and restore args classes; "
            "register both with @tenure.args.register_with_handler"
        )
    return save, restore


class Composite(CheckpointArgs, Mapping[str, Any]):
    """Several named items: `Composite(state=StandardSave(s), meta=JsonSave(m))`. Restores
    of several items return one too, with attribute and key access.

    Examples:
        >>> both = Composite(state=StandardSave({"w": 1}), meta=JsonSave({"v": 2}))
        >>> sorted(both), both.meta.item
        (['meta', 'state'], {'v': 2})
    """

    def __init__(self, **items: Any) -> None:
        for name in items:
            if name.startswith("_") or name in _RESERVED:
                raise ArgsError(f"{name!r} cannot name an item; choose another name")
        object.__setattr__(self, "_items", dict(items))

    def __getitem__(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"no item {name!r}; items: {sorted(self._items)}") from None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._items[name]
        except KeyError:
            raise AttributeError(f"no item {name!r}; items: {sorted(self._items)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Composite is immutable; build a new one")

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Composite) and self._items == other._items

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._items.items())
        return f"Composite({inner})"


_RESERVED = frozenset({"metrics", "items", "keys", "values", "get"})


@register_with_handler(StandardCheckpointHandler, for_save=True)
@attrs.frozen
class StandardSave(CheckpointArgs):
    """Saves a pytree of arrays and scalars (the usual train state).

    Examples:
        >>> StandardSave({"w": 1.0}).item
        {'w': 1.0}
    """

    item: Any


@register_with_handler(StandardCheckpointHandler, for_restore=True)
@attrs.frozen
class StandardRestore(CheckpointArgs):
    """Restores a pytree of arrays and scalars; `item`, when given, is the target:
    a tree of arrays or `jax.ShapeDtypeStruct`s giving shapes, dtypes and shardings.

    Examples:
        >>> StandardRestore().item is None
        True
    """

    item: Any = None


@register_with_handler(PyTreeCheckpointHandler, for_save=True)
@attrs.frozen
class PyTreeSave(CheckpointArgs):
    """Saves a generic pytree.

    Examples:
        >>> PyTreeSave([1, 2]).item
        [1, 2]
    """

    item: Any


@register_with_handler(PyTreeCheckpointHandler, for_restore=True)
@attrs.frozen
class PyTreeRestore(CheckpointArgs):
    """Restores a generic pytree; `item`, when given, is a target tree as for
    `StandardRestore`, and must name every saved key unless `partial_restore` (then only
    the keys it names are read).

    Examples:
        >>> PyTreeRestore().item is None
        True
    """

    item: Any = None
    partial_restore: bool = False


@register_with_handler(ArrayCheckpointHandler, for_save=True)
@attrs.frozen
class ArraySave(CheckpointArgs):
    """Saves one array or scalar.

    Examples:
        >>> ArraySave(3.0).item
        3.0
    """

    item: Any


@register_with_handler(ArrayCheckpointHandler, for_restore=True)
@attrs.frozen
class ArrayRestore(CheckpointArgs):
    """Restores one array or scalar; `item`, when given, is the target: an array or a
    `jax.ShapeDtypeStruct`.

    Examples:
        >>> ArrayRestore().item is None
        True
    """

    item: Any = None


@register_with_handler(JsonCheckpointHandler, for_save=True)
@attrs.frozen
class JsonSave(CheckpointArgs):
    """Saves a JSON value.

    Examples:
        >>> JsonSave({"lr": 0.1}).item
        {'lr': 0.1}
    """

    item: Any


@register_with_handler(JsonCheckpointHandler, for_restore=True)
@attrs.frozen
class JsonRestore(CheckpointArgs):
    """Restores a JSON value as it was saved.

    Examples:
        >>> JsonRestore().item is None
        True
    """

    item: Any = None


@register_with_handler(JaxRandomKeyCheckpointHandler, for_save=True)
@attrs.frozen
class JaxRandomKeySave(CheckpointArgs):
    """Saves a JAX PRNG key, typed or raw.

    Examples:
        >>> JaxRandomKeySave("key").item
        'key'
    """

    item: Any


@register_with_handler(JaxRandomKeyCheckpointHandler, for_restore=True)
@attrs.frozen
class JaxRandomKeyRestore(CheckpointArgs):
    """Restores a JAX PRNG key as it was saved (typed or raw).

    Examples:
        >>> JaxRandomKeyRestore().item is None
        True
    """

    item: Any = None


@register_with_handler(NumpyRandomKeyCheckpointHandler, for_save=True)
@attrs.frozen
class NumpyRandomKeySave(CheckpointArgs):
    """Saves numpy random state (a Generator, its state dict, or `np.random.get_state()`).

    Examples:
        >>> NumpyRandomKeySave("state").item
        'state'
    """

    item: Any


@register_with_handler(NumpyRandomKeyCheckpointHandler, for_restore=True)
@attrs.frozen
class NumpyRandomKeyRestore(CheckpointArgs):
    """Restores numpy random state in the form it was saved in.

    Examples:
        >>> NumpyRandomKeyRestore().item is None
        True
    """

    item: Any = None


def _installed(module: str) -> bool:
    """Whether `module` can be imported; `find_spec` of a submodule imports its parent
    package, and raises rather than answer when that package is missing."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


HAS_PROTOBUF = _installed("google.protobuf")

if HAS_PROTOBUF:

    @register_with_handler(ProtoCheckpointHandler, for_save=True)
    @attrs.frozen
    class ProtoSave(CheckpointArgs):
        """Saves a protocol buffer message (defined only when `protobuf` is installed).

        Examples:
            >>> from google.protobuf import duration_pb2
            >>> ProtoSave(duration_pb2.Duration(seconds=1)).item.seconds
            1
        """

        item: Any

    @register_with_handler(ProtoCheckpointHandler, for_restore=True)
    @attrs.frozen
    class ProtoRestore(CheckpointArgs):
        """Restores a protocol buffer message; `item` is its message class.

        Examples:
            >>> from google.protobuf import duration_pb2
            >>> ProtoRestore(duration_pb2.Duration).item.__name__
            'Duration'
        """

        item: Any = None
