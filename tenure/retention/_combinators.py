"""Helpers shared by the `|`, `&` and `~` combinators of both policy kinds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

P = TypeVar("P")


def flatten(kind: type, policies: Iterable[Any], require: Callable[[Any], P]) -> tuple[P, ...]:
    """Children of `kind` nested inside `kind` are lifted, so `(a | b) | c` is `a | b | c`."""
    flat: list[P] = []
    for policy in policies:
        if type(policy) is kind:
            flat.extend(getattr(policy, "policies"))  # noqa: B009 (any combinator class)
        else:
            flat.append(require(policy))
    return tuple(flat)


def join_repr(policies: Sequence[Any], operator: str, parenthesize: tuple[type, ...]) -> str:
    """`a | b | c`, with parentheses around children that bind more loosely."""
    parts = [f"({p!r})" if isinstance(p, parenthesize) else repr(p) for p in policies]
    return f" {operator} ".join(parts)
