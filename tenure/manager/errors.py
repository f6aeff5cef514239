"""Errors raised by `tenure.Checkpointer`; each says what was wrong and what to do."""

from __future__ import annotations


class CheckpointerError(Exception):
    """Base class of every error raised by the manager."""


class StepAlreadyExistsError(CheckpointerError, ValueError):
    """A committed checkpoint already exists for this step (as in Orbax)."""


class StepNotFoundError(CheckpointerError, FileNotFoundError):
    """No committed checkpoint exists for the requested step (as in Orbax)."""


class RootNotFoundError(CheckpointerError, FileNotFoundError):
    """A step was asked of a root that does not exist (a reader opened before its writer, or
    a typo'd path)."""


class InvalidStepError(CheckpointerError, ValueError):
    """A step is not an integer >= 0 (or a `CheckpointMetadata`)."""


class ReservedNameError(CheckpointerError, ValueError):
    """A checkpointable is named like one the manager writes itself (`metrics`)."""


class SaveInProgressError(CheckpointerError):
    """The step is being saved; wait() for the save before acting on it."""


class RootLockedError(CheckpointerError):
    """Another writer holds the root's lock; two writers would corrupt each other."""


class ReadOnlyError(CheckpointerError, PermissionError):
    """A write was asked of a Checkpointer opened with `read_only=True`."""


class RootNotUsableError(CheckpointerError, OSError):
    """The root path is a file, or cannot be created or written."""


class BackgroundSaveError(CheckpointerError):
    """An asynchronous save failed; raised on the next call so it is never lost."""


class ClosedError(CheckpointerError):
    """The Checkpointer was closed."""


class ProcessesTimedOutError(CheckpointerError, TimeoutError):
    """Under jax.distributed, some processes did not reach a save's barrier in time."""


class DamagedCheckpointWarning(UserWarning):
    """A step in the root has unreadable metadata: it is quarantined (never loaded, resumed
    from or deleted by retention) until it is removed on request (`tenure prune --damaged`)."""


class OverBudgetWarning(UserWarning):
    """A byte budget (`WithinBytes`) cannot be met: the steps retention may never delete (the
    newest and the protected ones) alone exceed it. Warned once per Checkpointer."""
