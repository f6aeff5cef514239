"""Calendar and bucket retention with restic's `forget` semantics (restic >= 0.16).

A bucket policy walks the checkpoints from newest to oldest and keeps the newest one of
each non-empty bucket (an hour, a day, an ISO week, ..., or any key), up to `n` buckets.
`within` only considers checkpoints newer than (newest - within). When the walk runs out
of checkpoints before `n` buckets were kept, the oldest checkpoint is kept as well
(`keep_oldest`), which keeps the longest history the count allows.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from tenure.retention._text_repr import policy_label
from tenure.retention._validators import (
    optional_count,
    optional_positive_duration,
    positive_int,
)
from tenure.retention.errors import PolicyArgumentError
from tenure.retention.info import CheckpointInfo, PreservationContext, steady_times
from tenure.retention.preservation_policies import ReasonedPolicyBase, Reasons

BucketKey = Callable[[CheckpointInfo], Hashable]


def keep_per_bucket(
    checkpoints: Sequence[CheckpointInfo],
    key: BucketKey,
    *,
    n: int | None,
    within: timedelta | None,
    keep_oldest: bool,
    label: str,
) -> list[Reasons]:
    """The restic walk shared by every bucket policy; returns reasons per checkpoint."""
    result: list[Reasons] = [()] * len(checkpoints)
    if not checkpoints:
        return result
    cutoff = max(info.time for info in checkpoints) - within if within is not None else None
    remaining = n
    previous_key: Hashable = object()  # matches no real key
    for index in range(len(checkpoints) - 1, -1, -1):
        if remaining == 0:
            break
        info = checkpoints[index]
        if cutoff is not None and not info.time > cutoff:
            continue
        bucket = key(info)
        if bucket != previous_key:
            result[index] = (label,)
        elif keep_oldest and index == 0:
            result[index] = (f"{label}: oldest",)
        else:
            continue
        previous_key = bucket
        if remaining is not None:
            remaining -= 1
    return result


class _BucketPolicyBase(ReasonedPolicyBase):
    __slots__ = ()
    n: int | None
    within: timedelta | None
    keep_oldest: bool

    def _key(self, info: CheckpointInfo) -> Hashable:
        raise NotImplementedError

    def reasons(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> list[Reasons]:
        # Buckets and `within` read the steady times (see `steady_times`): after the clock
        # stepped back, earlier checkpoints move back with it rather than share buckets.
        times = steady_times(checkpoints)
        steady = [
            info if info.time == time else attrs.evolve(info, time=time)
            for info, time in zip(checkpoints, times, strict=True)
        ]
        return keep_per_bucket(
            steady,
            self._key,
            n=self.n,
            within=self.within,
            keep_oldest=self.keep_oldest,
            label=policy_label(self),
        )


def _validate_tz(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise PolicyArgumentError(
            f"{attribute.name}={value!r} is not a known IANA time zone; use e.g. 'UTC' "
            "or 'Europe/Paris'"
        ) from None


@attrs.frozen(repr=False)
class _CalendarPolicy(_BucketPolicyBase):
    n: int | None = attrs.field(default=None, validator=optional_count)
    within: timedelta | None = attrs.field(
        default=None, kw_only=True, validator=optional_positive_duration
    )
    keep_oldest: bool = attrs.field(default=True, kw_only=True)
    tz: str = attrs.field(default="UTC", kw_only=True, validator=_validate_tz)

    def _local(self, info: CheckpointInfo) -> datetime:
        return info.time.astimezone(ZoneInfo(self.tz))


@attrs.frozen(repr=False)
class Hourly(_CalendarPolicy):
    """Keeps the newest checkpoint of each of the `n` newest hours.

    Examples:
        >>> Hourly(24)
        Hourly(n=24)
    """

    def _key(self, info: CheckpointInfo) -> Hashable:
        t = self._local(info)
        return (t.year, t.month, t.day, t.hour)


@attrs.frozen(repr=False)
class Daily(_CalendarPolicy):
    """Keeps the newest checkpoint of each of the `n` newest days (in `tz`).

    Examples:
        >>> Daily(7, tz="Europe/Paris")
        Daily(n=7, tz='Europe/Paris')
    """

    def _key(self, info: CheckpointInfo) -> Hashable:
        t = self._local(info)
        return (t.year, t.month, t.day)


@attrs.frozen(repr=False)
class Weekly(_CalendarPolicy):
    """Keeps the newest checkpoint of each of the `n` newest ISO weeks.

    Examples:
        >>> Weekly(4)
        Weekly(n=4)
    """

    def _key(self, info: CheckpointInfo) -> Hashable:
        year, week, _ = self._local(info).isocalendar()
        return (year, week)


@attrs.frozen(repr=False)
class Monthly(_CalendarPolicy):
    """Keeps the newest checkpoint of each of the `n` newest months.

    Examples:
        >>> Monthly(12)
        Monthly(n=12)
    """

    def _key(self, info: CheckpointInfo) -> Hashable:
        t = self._local(info)
        return (t.year, t.month)


@attrs.frozen(repr=False)
class Yearly(_CalendarPolicy):
    """Keeps the newest checkpoint of each of the `n` newest years.

    Examples:
        >>> Yearly(3)
        Yearly(n=3)
    """

    def _key(self, info: CheckpointInfo) -> Hashable:
        return self._local(info).year


@attrs.frozen(repr=False)
class PerBucket(_BucketPolicyBase):
    """Keeps the newest checkpoint of each of the `n` newest buckets, where `key` maps a
    checkpoint to its bucket. Its `repr` names the function, so it is not policy text.

    Examples:
        >>> by_epoch = PerBucket(lambda info: info.metrics["epoch"], n=5)
    """

    key: BucketKey
    n: int | None = attrs.field(default=None, validator=optional_count)
    within: timedelta | None = attrs.field(default=None, validator=optional_positive_duration)
    keep_oldest: bool = True

    def _key(self, info: CheckpointInfo) -> Hashable:
        bucket: Hashable = self.key(info)
        return bucket


@attrs.frozen(repr=False)
class PerStepBucket(_BucketPolicyBase):
    """Keeps the newest checkpoint of each of the `n` newest blocks of `size` steps
    (steps `[k * size, (k + 1) * size)` form block k).

    Examples:
        >>> PerStepBucket(10_000, n=5)
        PerStepBucket(size=10000, n=5)
    """

    size: int = attrs.field(validator=positive_int)
    n: int | None = attrs.field(default=None, validator=optional_count)
    keep_oldest: bool = attrs.field(default=True, kw_only=True)
    within: timedelta | None = attrs.field(default=None, init=False, repr=False)

    def _key(self, info: CheckpointInfo) -> Hashable:
        return info.step // self.size
