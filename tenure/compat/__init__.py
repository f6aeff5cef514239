"""Orbax v0 and Kauldron surfaces on tenure's core: code written for them runs on tenure
by changing its import, and gets tenure's safety rules (atomic commits, one writer, the
newest checkpoint never deleted).

Examples:
    >>> from tenure.compat import CheckpointManagerOptions, to_policies
    >>> to_policies(CheckpointManagerOptions(max_to_keep=2, keep_period=100))[1]
    EveryNSteps(interval_steps=100) | LatestN(n=2)
"""

from tenure.compat import args
from tenure.compat.checkpoint_manager import (
    DEFAULT_ITEM_NAME,
    CheckpointManager,
    RootMetadata,
    StepMetadata,
)
from tenure.compat.errors import (
    ArgsError,
    CompatError,
    HandlerRegistrationError,
    InvalidOptionsError,
    NoCheckpointError,
)
from tenure.compat.handlers import (
    ArrayCheckpointHandler,
    CheckpointHandler,
    JaxRandomKeyCheckpointHandler,
    JsonCheckpointHandler,
    NumpyRandomKeyCheckpointHandler,
    ProtoCheckpointHandler,
    PyTreeCheckpointHandler,
    StandardCheckpointHandler,
)
from tenure.compat.orbax_options import CheckpointManagerOptions, to_policies

__all__ = [
    "DEFAULT_ITEM_NAME",
    "ArgsError",
    "ArrayCheckpointHandler",
    "CheckpointHandler",
    "CheckpointManager",
    "CheckpointManagerOptions",
    "CompatError",
    "HandlerRegistrationError",
    "InvalidOptionsError",
    "JaxRandomKeyCheckpointHandler",
    "JsonCheckpointHandler",
    "NoCheckpointError",
    "NumpyRandomKeyCheckpointHandler",
    "ProtoCheckpointHandler",
    "PyTreeCheckpointHandler",
    "RootMetadata",
    "StandardCheckpointHandler",
    "StepMetadata",
    "args",
    "to_policies",
]
