"""Argument types shared by the commands."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tenure.retention import PreservationPolicy, RetentionError, parse_policy

if TYPE_CHECKING:
    from tenure.io import Location


def policy(text: str) -> PreservationPolicy:
    """Policy text -> a preservation policy; argparse reports a mistake as a usage error."""
    try:
        parsed = parse_policy(text)
    except RetentionError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if not isinstance(parsed, PreservationPolicy):
        raise argparse.ArgumentTypeError(
            f"{text!r} is a save-decision policy; --keep takes a preservation policy, "
            "e.g. 'LatestN(3) | EveryNSteps(10_000)'"
        )
    return parsed


def moment(text: str) -> datetime:
    """An ISO 8601 time with a UTC offset, e.g. `2026-01-08T00:00:00+00:00`."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add one, e.g. +00:00")
    return parsed


def root(text: str) -> Location:
    """A local root as given, or an object-store prefix for `s3://` and `gs://` URLs.

    Examples:
        >>> root("ckpt/run")
        PosixPath('ckpt/run')
    """
    if "://" not in text:
        return Path(text)  # not made absolute: outputs show the root as given
    from tenure.io import StorageError, as_location

    try:
        return as_location(text)
    except StorageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "root",
        type=root,
        help="the checkpoint root: a folder of steps, or s3://bucket/prefix, gs://bucket/prefix",
    )


def add_keep(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--keep",
        type=policy,
        required=required,
        metavar="POLICY_TEXT",
        help="preservation policy text, e.g. 'LatestN(3) | EveryNSteps(10_000)'",
    )
    parser.add_argument(
        "--now",
        type=moment,
        default=None,
        metavar="TIME",
        help="judge time-based rules as of TIME (ISO 8601 with offset; default: now)",
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (keys: docs/cli.md)")


def now_or(given: datetime | None) -> datetime:
    return given if given is not None else datetime.now(UTC)
