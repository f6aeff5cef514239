"""Errors raised by tenure's Orbax- and Kauldron-style surfaces; each says what was wrong
and what to do. They subclass the built-in type Orbax raises in the same situation, so
`except ValueError` written for Orbax still catches them."""

from __future__ import annotations


class CompatError(Exception):
    """Base class of every error raised by `tenure.compat`."""


class InvalidOptionsError(CompatError, ValueError):
    """`CheckpointManagerOptions` (or a Kauldron config) holds values that cannot work
    together or alone."""


class ArgsError(CompatError, ValueError):
    """The `args` given to save or restore do not fit the manager's items."""


class HandlerRegistrationError(CompatError, ValueError):
    """An args class is registered wrongly, or has no handler registered."""


class NoCheckpointError(CompatError, FileNotFoundError):
    """There is no checkpoint to restore (or the root does not exist)."""
