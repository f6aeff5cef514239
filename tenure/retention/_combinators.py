"""The `|`, `&` and `~` algebra, written once for both policy kinds.

A kind (save-decision or preservation) is a `Kind`: its protocol, the method it decides
with, and its three combinator classes. `CombinablePolicy` gives every built-in policy of
a kind the operators; `AnyOf`, `AllOf` and `NotOf` give that kind's combinators their
`repr` (which is policy text) and `~~a == a`. Only the decision methods stay per kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Generic, TypeVar, cast

from tenure.retention._text_repr import policy_repr

P = TypeVar("P")


class Kind(Generic[P]):
    """One kind of policy and its combinators (set once its module defined them)."""

    __slots__ = ("all_of", "any_of", "method", "name", "not_of", "protocol")

    def __init__(self, name: str, protocol: type, method: str) -> None:
        self.name = name
        self.protocol = protocol
        self.method = method
        self.any_of: Callable[[list[P]], P]
        self.all_of: Callable[[list[P]], P]
        self.not_of: Callable[[P], P]

    def require(self, policy: object) -> P:
        """`policy` itself, if it is of this kind; else a TypeError that says so."""
        if not isinstance(policy, self.protocol):
            raise TypeError(
                f"{policy!r} is not a {self.name} policy (it has no {self.method} method); "
                "save and preservation policies cannot be combined with each other"
            )
        return cast(P, policy)  # `protocol` is P, checked at run time

    def flatten(self, combinator: type, policies: Iterable[Any]) -> tuple[P, ...]:
        """Children of `combinator` nested inside it are lifted: `(a | b) | c` is
        `a | b | c`, so a long chain is one flat tuple, evaluated and printed in a loop."""
        flat: list[P] = []
        for policy in policies:
            if type(policy) is combinator:
                flat.extend(getattr(policy, "policies"))  # noqa: B009 (any combinator)
            else:
                flat.append(self.require(policy))
        return tuple(flat)


class CombinablePolicy(Generic[P]):
    """`|`, `&`, `~` and the text `repr`, for the built-in policies of one kind."""

    __slots__ = ()
    kind: ClassVar[Kind[Any]]

    def __or__(self, other: P) -> P:
        kind = self.kind
        return kind.any_of([kind.require(self), kind.require(other)])  # type: ignore[no-any-return]

    def __ror__(self, other: P) -> P:
        kind = self.kind
        return kind.any_of([kind.require(other), kind.require(self)])  # type: ignore[no-any-return]

    def __and__(self, other: P) -> P:
        kind = self.kind
        return kind.all_of([kind.require(self), kind.require(other)])  # type: ignore[no-any-return]

    def __rand__(self, other: P) -> P:
        kind = self.kind
        return kind.all_of([kind.require(other), kind.require(self)])  # type: ignore[no-any-return]

    def __invert__(self) -> P:
        kind = self.kind
        return kind.not_of(kind.require(self))  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return policy_repr(self)


class AnyOf:
    """The `repr` of a union: `a | b | c`."""

    __slots__ = ()
    policies: tuple[Any, ...]

    def __repr__(self) -> str:
        if len(self.policies) < 2:
            return policy_repr(self)
        return join_repr(self.policies, "|", ())


class AllOf:
    """The `repr` of an intersection: `a & b`, with unions in parentheses."""

    __slots__ = ()
    policies: tuple[Any, ...]

    def __repr__(self) -> str:
        if len(self.policies) < 2:
            return policy_repr(self)
        return join_repr(self.policies, "&", (AnyOf,))


class NotOf:
    """The `repr` of a complement, `~a`, and `~~a == a`."""

    __slots__ = ()
    policy: Any

    def __invert__(self) -> Any:
        return self.policy

    def __repr__(self) -> str:
        inner = repr(self.policy)
        return f"~({inner})" if isinstance(self.policy, AnyOf | AllOf) else f"~{inner}"


def join_repr(policies: Sequence[Any], operator: str, parenthesize: tuple[type, ...]) -> str:
    """`a | b | c`, with parentheses around children that bind more loosely."""
    parts = [f"({p!r})" if isinstance(p, parenthesize) else repr(p) for p in policies]
    return f" {operator} ".join(parts)
