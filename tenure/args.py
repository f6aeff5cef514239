"""Orbax-style args for `tenure.CheckpointManager`: `import tenure.args as args`.

Examples:
    >>> import tenure.args as args
    >>> both = args.Composite(state=args.StandardSave({"w": 1.0}), meta=args.JsonSave([1]))
    >>> both.meta.item
    [1]
"""

from tenure.compat.args import (
    HAS_PROTOBUF,
    ArrayRestore,
    ArraySave,
    CheckpointArgs,
    Composite,
    JaxRandomKeyRestore,
    JaxRandomKeySave,
    JsonRestore,
    JsonSave,
    NumpyRandomKeyRestore,
    NumpyRandomKeySave,
    PyTreeRestore,
    PyTreeSave,
    StandardRestore,
    StandardSave,
    get_registered_args_cls,
    get_registered_handler_cls,
    register_with_handler,
)

__all__ = [
    "ArrayRestore",
    "ArraySave",
    "CheckpointArgs",
    "Composite",
    "JaxRandomKeyRestore",
    "JaxRandomKeySave",
    "JsonRestore",
    "JsonSave",
    "NumpyRandomKeyRestore",
    "NumpyRandomKeySave",
    "PyTreeRestore",
    "PyTreeSave",
    "StandardRestore",
    "StandardSave",
    "get_registered_args_cls",
    "get_registered_handler_cls",
    "register_with_handler",
]

if HAS_PROTOBUF:
    from tenure.compat.args import ProtoRestore, ProtoSave

    __all__ += ["ProtoRestore", "ProtoSave"]
