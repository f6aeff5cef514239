"""Errors raised by the retention layer.

Every error says what was wrong and what to do about it. All of them derive from
`RetentionError`, and those about bad arguments also derive from `ValueError`.
"""

from __future__ import annotations


class RetentionError(Exception):
    """Base class of every error raised by `tenure.retention`."""


class PolicyArgumentError(RetentionError, ValueError):
    """A policy or context was built with an argument it cannot work with."""


class NaiveDatetimeError(PolicyArgumentError):
    """A datetime without a timezone was given where an absolute time is needed."""


class MissingNowError(RetentionError, ValueError):
    """A policy measures from "now", but the context carries no `now`."""


class UnsortedCheckpointsError(RetentionError, ValueError):
    """Checkpoints were not given in strictly increasing step order."""


class PolicyTextError(RetentionError, ValueError):
    """Policy text could not be parsed; the message points at the offending part."""

    def __init__(self, message: str, text: str, offset: int | None = None) -> None:
        self.text = text
        self.offset = offset
        if offset is not None:
            message = f"{message}\n    {text}\n    {' ' * offset}^"
        super().__init__(message)
