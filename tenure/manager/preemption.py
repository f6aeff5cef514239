"""Preemption notices: signals set a flag that the next save decision sees."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class PreemptionFlag:
    """Set by the given signals (previous Python handlers still run), read by the manager.

    Examples:
        >>> flag = PreemptionFlag()
        >>> flag.set(); flag.is_set()
        True
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def install(self, signals: Sequence[int] = DEFAULT_SIGNALS) -> None:
        """Installs the handlers; only the main thread may install signal handlers."""
        for number in signals:
            self._previous[number] = signal.signal(number, self._handle)

    def uninstall(self) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous.clear()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self._event.set()
        previous: Callable[[int, FrameType | None], Any] | int | None = self._previous.get(number)
        # SIG_DFL would end the process before the preemption save: only chain callables.
        if callable(previous):
            previous(number, frame)
