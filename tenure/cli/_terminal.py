"""What the commands print: tables, ages, colours and a progress bar, the last two only
on a terminal, so that pipes and log files get plain text."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TextIO

from tenure.retention.report import format_bytes

__all__ = [
    "Painter",
    "Progress",
    "format_age",
    "format_bytes",
    "format_metrics",
    "format_size",
    "print_json",
    "table",
]


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def print_json(doc: Any) -> None:
    """Prints `doc` as JSON, with NaN and infinities (which JSON has not) written as null.

    Examples:
        >>> print_json({"loss": float("nan"), "steps": [1, float("inf")]})
        {
         "loss": null,
         "steps": [
          1,
          null
         ]
        }
    """
    print(json.dumps(_finite(doc), indent=1, allow_nan=False))


_COLOURS = {"red": 31, "green": 32, "yellow": 33, "dim": 2, "bold": 1}


def format_size(nbytes: int | None) -> str:
    """A size, or `-` when it is unknown (on object stores).

    Examples:
        >>> format_size(2048), format_size(None)
        ('2.0 KiB', '-')
    """
    return "-" if nbytes is None else format_bytes(nbytes)


def _is_terminal(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM") != "dumb"


class Painter:
    """Colours text for `stream` when it is a terminal and `NO_COLOR` is unset.

    Examples:
        >>> import io
        >>> Painter(io.StringIO()).paint("ok", "green")
        'ok'
    """

    def __init__(self, stream: TextIO) -> None:
        self.enabled = _is_terminal(stream) and "NO_COLOR" not in os.environ

    def paint(self, text: str, colour: str) -> str:
        if not self.enabled:
            return text
        return f"\x1b[{_COLOURS[colour]}m{text}\x1b[0m"


class Progress:
    """A one-line progress bar on stderr, redrawn with `\\r`; silent when stderr is no
    terminal. Use it as a context manager, calling `advance()` per unit of work.

    Examples:
        >>> with Progress(3, "verifying") as bar:
        ...     for _ in range(3):
        ...         bar.advance()
    """

    _WIDTH = 30

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._enabled = _is_terminal(self._stream) and total > 0
        self._total = total
        self._label = label
        self._done = 0
        self._drawn = 0.0

    def advance(self, count: int = 1, detail: str = "") -> None:
        self._done += count
        # Redrawing more often than 20 times a second only costs time.
        now = time.monotonic()
        if self._enabled and (now - self._drawn > 0.05 or self._done >= self._total):
            self._drawn = now
            filled = self._WIDTH * self._done // self._total
            bar = "#" * filled + "-" * (self._WIDTH - filled)
            line = f"{self._label} [{bar}] {self._done}/{self._total} {detail}"
            self._stream.write(f"\r{line[:100]:<100}")
            self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._enabled and self._drawn:
            self._stream.write("\r" + " " * 100 + "\r")  # leave the terminal as it was
            self._stream.flush()


def format_age(seconds: float) -> str:
    """How long ago, in the largest unit that keeps the number readable.

    Examples:
        >>> format_age(42), format_age(3 * 3600 + 5), format_age(9 * 86400)
        ('42 s ago', '3 h ago', '9 days ago')
        >>> format_age(-120)
        'in 2 min'
    """
    ahead = seconds < 0
    span = abs(seconds)
    if span < 120:
        text = f"{span:.0f} s"
    elif span < 2 * 3600:
        text = f"{span / 60:.0f} min"
    elif span < 2 * 86400:
        text = f"{span / 3600:.0f} h"
    else:
        text = f"{span / 86400:.0f} days"
    return f"in {text}" if ahead else f"{text} ago"


def _flat(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            pairs += _flat(value, f"{prefix}{key}.")
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


def format_metrics(metrics: Mapping[str, Any] | None) -> str:
    """Metrics as `name=value` pairs, nested names joined with dots.

    Examples:
        >>> format_metrics({"loss": 0.012345, "eval": {"acc": 0.9}})
        'loss=0.01235 eval.acc=0.9'
        >>> format_metrics(None)
        '-'
    """
    if not metrics:
        return "-"
    parts = []
    for name, value in _flat(metrics):
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{name}={shown}")
    return " ".join(parts)


def table(rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Rows as aligned columns; columns whose index is in `right` are right-aligned.

    Examples:
        >>> print(table([("step", "size"), ("10", "1 KiB")], right=(0,)))
        step  size
          10  1 KiB
    """
    widths = [max(len(_plain(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            pad = " " * (widths[i] - len(_plain(cell)))
            cells.append(pad + cell if i in right else cell + pad)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _plain(text: str) -> str:
    """`text` without colour codes, for measuring its width."""
    while "\x1b[" in text:
        start = text.index("\x1b[")
        text = text[:start] + text[text.index("m", start) + 1 :]
    return text
