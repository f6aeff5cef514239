"""Watching a root for new checkpoints, as an evaluator does: poll, yield, wait."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from tenure.manager._steps import CheckpointMetadata


def new_checkpoints(
    look: Callable[[], Sequence[CheckpointMetadata]],
    after: int,
    *,
    min_interval_secs: float,
    timeout: float | None,
    poll_secs: float,
    timeout_fn: Callable[[], bool] | None,
    newest_only: bool,
    sleep: Callable[[float], None],
    monotonic: Callable[[], float],
) -> Iterator[CheckpointMetadata]:
    """The checkpoints that `look()` (a fresh listing, oldest first) shows with a step above
    `after`, as they appear; see `Checkpointer.iter_new_checkpoints` for the rules.

    Examples:
        >>> from pathlib import Path
        >>> step = lambda n: CheckpointMetadata(n, Path(f"/c/{n}"))
        >>> listings = iter([[], [step(5), step(6)], [step(5), step(6)]])
        >>> ticks = iter(range(100))  # a fake clock: one second per reading
        >>> found = new_checkpoints(lambda: next(listings, []), -1, min_interval_secs=0,
        ...     timeout=3, poll_secs=1, timeout_fn=None, newest_only=False,
        ...     sleep=lambda s: None, monotonic=lambda: float(next(ticks)))
        >>> [c.step for c in found]  # each new step once, then none for 3 s: done
        [5, 6]
    """
    seen = after
    last_yield: float | None = None
    waiting_since = monotonic()
    while True:
        fresh = [c for c in look() if c.step > seen]
        if fresh:
            if last_yield is not None:
                early = min_interval_secs - (monotonic() - last_yield)
                if early > 0:
                    sleep(early)
                    continue  # a newer step may have arrived meanwhile
            entry = fresh[-1] if newest_only or min_interval_secs else fresh[0]
            seen = entry.step
            waiting_since = last_yield = monotonic()
            yield entry
            continue
        if timeout is not None and monotonic() - waiting_since >= timeout:
            if timeout_fn is None or timeout_fn():
                return
            waiting_since = monotonic()
        sleep(poll_secs)
