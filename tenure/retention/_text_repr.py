"""`repr` for policies that is also valid policy text (see `tenure.retention.parse_policy`)."""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

import attrs


def format_value(value: Any) -> str:
    """Formats one argument the way `parse_policy` reads it back."""
    if isinstance(value, timedelta):
        parts = [
            f"{name}={amount}"
            for name, amount in (
                ("days", value.days),
                ("seconds", value.seconds),
                ("microseconds", value.microseconds),
            )
            if amount
        ]
        return f"timedelta({', '.join(parts)})"
    if isinstance(value, frozenset):
        return "[" + ", ".join(format_value(v) for v in sorted(value)) + "]"
    if isinstance(value, tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return repr(value)


def policy_repr(policy: Any) -> str:
    """`Name(field=value, ...)` listing only the fields that differ from their defaults."""
    args = []
    for field in attrs.fields(type(policy)):
        if not field.repr:
            continue
        value = getattr(policy, field.name)
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if default is not attrs.NOTHING and value == default:
            continue
        args.append(f"{field.name}={format_value(value)}")
    return f"{type(policy).__name__}({', '.join(args)})"


@functools.lru_cache(maxsize=4096)
def policy_label(policy: Any) -> str:
    """`repr(policy)`, cached: retention plans name their rules on every pass."""
    return repr(policy)
