"""The Checkpointer that joins retention policies and I/O."""

from tenure.io.root import StepNameFormat
from tenure.manager.checkpointer import Checkpointer, CheckpointMetadata, SaveResponse
from tenure.manager.errors import (
    BackgroundSaveError,
    CheckpointerError,
    ClosedError,
    DamagedCheckpointWarning,
    InvalidStepError,
    OverBudgetWarning,
    ProcessesTimedOutError,
    ReadOnlyError,
    ReservedNameError,
    RootLockedError,
    RootNotFoundError,
    RootNotUsableError,
    SaveInProgressError,
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
    "InvalidStepError",
    "OverBudgetWarning",
    "ProcessesTimedOutError",
    "ReadOnlyError",
    "ReservedNameError",
    "RootLockedError",
    "RootNotFoundError",
    "RootNotUsableError",
    "SaveInProgressError",
    "SaveResponse",
    "StepAlreadyExistsError",
    "StepNameFormat",
    "StepNotFoundError",
]
