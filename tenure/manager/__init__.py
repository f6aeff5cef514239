"""The Checkpointer that joins retention policies and I/O."""

from tenure.io.root import StepNameFormat
from tenure.manager.checkpointer import Checkpointer, CheckpointMetadata, SaveResponse
from tenure.manager.errors import (
    BackgroundSaveError,
    CheckpointerError,
    ClosedError,
    DamagedCheckpointWarning,
    ProcessesTimedOutError,
    ReadOnlyError,
    RootLockedError,
    RootNotUsableError,
    StepAlreadyExistsError,
    StepNotFoundError,
)

__all__ = [
    "BackgroundSaveError",
    "CheckpointMetadata",
    "Checkpointer",
    "CheckpointerError",
    "ClosedError",
    "DamagedCheckpointWarning",
    "ProcessesTimedOutError",
    "ReadOnlyError",
    "RootLockedError",
    "RootNotUsableError",
    "SaveResponse",
    "StepAlreadyExistsError",
    "StepNameFormat",
    "StepNotFoundError",
]
