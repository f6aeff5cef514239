"""The Checkpointer that joins retention policies and I/O."""

from tenure.manager.checkpointer import Checkpointer, CheckpointMetadata, SaveResponse
from tenure.manager.errors import (
    BackgroundSaveError,
    CheckpointerError,
    ClosedError,
    ProcessesTimedOutError,
    ReadOnlyError,
    RootLockedError,
    RootNotUsableError,
    StepAlreadyExistsError,
    StepNotFoundError,
)
from tenure.manager.naming import StepNameFormat

__all__ = [
    "BackgroundSaveError",
    "CheckpointMetadata",
    "Checkpointer",
    "CheckpointerError",
    "ClosedError",
    "ProcessesTimedOutError",
    "ReadOnlyError",
    "RootLockedError",
    "RootNotUsableError",
    "SaveResponse",
    "StepAlreadyExistsError",
    "StepNameFormat",
    "StepNotFoundError",
]
