"""Argument checks shared by the policies; they fail where the policy is written."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

from tenure.retention.errors import PolicyArgumentError

#: The longest interval in seconds that a `timedelta` holds (whole days: exact as a float).
MAX_SECONDS = timedelta.max.days * 86_400


def positive_seconds(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise PolicyArgumentError(
            f"{attribute.name}={value!r} must be a positive number of seconds; a zero or "
            "negative interval would keep or save nothing sensible"
        )
    if not value <= MAX_SECONDS:  # also refuses inf
        raise PolicyArgumentError(
            f"{attribute.name}={value!r} is longer than a timedelta can hold "
            f"({MAX_SECONDS} s); give a finite interval"
        )


def positive_int(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PolicyArgumentError(f"{attribute.name}={value!r} must be a positive integer")


def optional_count(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyArgumentError(
            f"{attribute.name}={value!r} must be None (no limit) or an integer >= 0"
        )


def optional_cap(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyArgumentError(
            f"{attribute.name}={value!r} must be None (no cap) or an integer >= 1; Orbax "
            "silently treats 0 as no cap, so tenure refuses it rather than guess"
        )


def optional_step(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise PolicyArgumentError(f"{attribute.name}={value!r} must be None or an integer step")


def positive_duration(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise PolicyArgumentError(
            f"{attribute.name}={value!r} must be a positive datetime.timedelta, "
            "e.g. timedelta(days=7)"
        )


def optional_positive_duration(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        positive_duration(_, attribute, value)


def steps_set(value: Any) -> frozenset[int]:
    """Converter: any iterable of integer steps into a frozenset (order does not matter)."""
    try:
        steps = frozenset(value)
    except TypeError:
        raise PolicyArgumentError(f"steps={value!r} must be an iterable of integers") from None
    bad = [s for s in steps if isinstance(s, bool) or not isinstance(s, int)]
    if bad:
        raise PolicyArgumentError(f"steps must be integers; got {sorted(map(repr, bad))}")
    return steps


def policy_kinds(save_policy: object, preservation_policy: object) -> None:
    """Refuses a preservation policy given as the save policy, or the other way round."""
    if not callable(getattr(save_policy, "should_save", None)):
        raise PolicyArgumentError(
            f"{save_policy!r} is not a save-decision policy (it has no should_save); "
            "give one such as FixedIntervalPolicy(1000) as the save policy"
        )
    if not callable(getattr(preservation_policy, "should_preserve", None)):
        raise PolicyArgumentError(
            f"{preservation_policy!r} is not a preservation policy (it has no "
            "should_preserve); give one such as LatestN(3) as the preservation policy"
        )
