"""Errors of the command line, each carrying the exit status it ends the command with."""

from __future__ import annotations

OK = 0
DAMAGED = 1
USAGE = 2
LOCKED = 3
BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a program a closed pipe ended


class CliError(Exception):
    """A command could not do what was asked; the message says why and what to do.

    Examples:
        >>> UsageError("no such step").exit_status
        2
    """

    exit_status = USAGE


class UsageError(CliError):
    """Bad arguments or input: a missing root, an unknown step, a refused prompt."""


class DamagedError(CliError):
    """A checkpoint's files are damaged; `tenure verify` tells which arrays."""

    exit_status = DAMAGED


class RootBusyError(CliError):
    """Another writer holds the root's lock."""

    exit_status = LOCKED
