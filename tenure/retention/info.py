"""The data that policies see: checkpoint descriptions and decision contexts.

Time is data here. No policy reads the clock; the caller passes times in.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from tenure.retention.errors import NaiveDatetimeError


def require_aware(name: str, value: datetime) -> None:
    """Raises `NaiveDatetimeError` unless `value` carries a timezone."""
    # A fixed-offset `timezone` always has an offset; skip the slower utcoffset() call,
    # since the simulator builds a CheckpointInfo for every step.
    if type(value.tzinfo) is timezone:
        return
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(
            f"{name}={value!r} has no timezone; pass an aware datetime, "
            "e.g. datetime.now(timezone.utc) or dt.replace(tzinfo=timezone.utc)"
        )


def _validate_time(_: object, attribute: attrs.Attribute[datetime], value: datetime) -> None:
    if type(value.tzinfo) is not timezone:  # the common case, checked inline: it runs per step
        require_aware(attribute.name, value)


def _validate_optional_time(
    _: object, attribute: attrs.Attribute[datetime | None], value: datetime | None
) -> None:
    if value is not None:
        require_aware(attribute.name, value)


@attrs.frozen(slots=True)
class CheckpointInfo:
    """One checkpoint (or candidate step) as the policies see it.

    It has the attributes of Orbax's `PolicyCheckpointInfo`, so policies written for
    Orbax accept it. `item_bytes` gives the bytes of each checkpointable item the step
    holds (None when unknown).

    Examples:
        >>> from datetime import datetime, timezone
        >>> info = CheckpointInfo(1000, datetime(2026, 1, 1, tzinfo=timezone.utc), {"loss": 0.5})
        >>> info.step
        1000
    """

    step: int
    time: datetime = attrs.field(validator=_validate_time)
    metrics: Mapping[str, Any] | None = None
    item_bytes: Mapping[str, int] | None = None


@attrs.frozen(slots=True)
class DecisionContext:
    """What a save-decision policy may know beyond the steps themselves.

    `save_cost` is the mean number of seconds the training loop was blocked by its recent
    saves, as the Checkpointer measures it (None before its first save).

    Examples:
        >>> DecisionContext(reached_preemption=True).reached_preemption
        True
        >>> DecisionContext(save_cost=20.0).save_cost
        20.0
    """

    is_saving_in_progress: bool = False
    reached_preemption: bool = False
    save_cost: float | None = None


def _step_set(steps: Iterable[int]) -> frozenset[int]:
    return steps if type(steps) is frozenset else frozenset(steps)


@attrs.frozen(slots=True)
class PreservationContext:
    """What a preservation policy may know beyond the checkpoints: the current time, and
    the steps the planner keeps whatever the policy says (`plan_retention` fills
    `protected` in from its own argument; byte budgets leave room for them).

    Examples:
        >>> from datetime import datetime, timezone
        >>> PreservationContext(now=datetime(2026, 1, 1, tzinfo=timezone.utc)).now.year
        2026
        >>> PreservationContext(protected=[5, 7]).protected
        frozenset({5, 7})
    """

    now: datetime | None = attrs.field(default=None, validator=_validate_optional_time)
    protected: frozenset[int] = attrs.field(default=frozenset(), converter=_step_set)


def steady_times(
    checkpoints: Sequence[CheckpointInfo], now: datetime | None = None
) -> list[datetime]:
    """The checkpoints' times with every backward step of the clock taken out.

    Checkpoints come in step order, so each was written after the one before. A time
    earlier than the one before means the clock stepped back (an NTP correction, a VM
    migration). The newest clock is taken as right: every earlier time moves back by the
    step, and the time across the step counts as zero. `now`, when given, is the newest
    clock of all. Without a backward step the times come back unchanged.

    Examples:
        >>> t = datetime(2026, 1, 2, tzinfo=timezone.utc)
        >>> hour = timedelta(hours=1)
        >>> stamps = [t, t + hour, t - 24 * hour, t - 23 * hour]  # back one day, then on
        >>> steady = steady_times([CheckpointInfo(i, s) for i, s in enumerate(stamps)])
        >>> [(s - t) / hour for s in steady]  # the first two move back by the 25 h step
        [-25.0, -24.0, -24.0, -23.0]
    """
    times = [info.time for info in checkpoints]
    if now is not None:
        times.append(now)
    if all(a <= b for a, b in itertools.pairwise(times)):  # the usual case
        return times[: len(checkpoints)]
    steady = times[:]
    for i in range(len(times) - 2, -1, -1):
        forward = max(times[i + 1] - times[i], _ZERO)
        steady[i] = steady[i + 1] - forward
    return steady[: len(checkpoints)]


_ZERO = timedelta(0)
