"""Preservation policies: which existing checkpoints should be kept?

Each policy is a small frozen value with one pure method,
`should_preserve(checkpoints, *, context) -> Sequence[bool]`, over checkpoints sorted by
step (oldest first). Policies combine with `|` (keep what any keeps, each rule counting
on its own, as restic does), `&` (keep what all keep) and `~`.

Policies never delete anything themselves: `tenure.retention.plan_retention` turns their
answer into a plan and adds the safety rules no policy can override.

Parts of steps: `policy.only("params")` keeps just those items of the steps `policy`
keeps. Every built-in policy then answers per (step, item) with `item_reasons`: for each
step, (rule, `ItemSet`) pairs whose union is what it keeps of the step; `|`, `&` and `~`
are the union, intersection and complement of those sets, pointwise. A policy with no
`.only` (or `WithinBytes`) anywhere in it keeps every step whole or not at all, and is
evaluated step by step as before, at no extra cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import attrs

from tenure.retention._combinators import AllOf, AnyOf, CombinablePolicy, Kind, NotOf
from tenure.retention._text_repr import policy_label
from tenure.retention._validators import (
    optional_cap,
    optional_count,
    positive_duration,
    positive_int,
    positive_seconds,
    steps_set,
)
from tenure.retention.errors import MissingNowError, PolicyArgumentError
from tenure.retention.info import CheckpointInfo, PreservationContext, steady_times
from tenure.retention.items import ItemSet, item_names, label_with_items
from tenure.retention.metrics import (
    Mode,
    metric_value,
    rank_order,
    validate_metric_path,
    validate_mode,
)

Reasons = tuple[str, ...]
#: Per step: the rules that keep (part of) it, each with the items it keeps. A pair whose
#: set is empty keeps nothing; it records a rule that let the step go (a budget).
ItemReasons = tuple[tuple[str, ItemSet], ...]


@runtime_checkable
class PreservationPolicy(Protocol):
    """Anything with Orbax's `should_preserve` signature is a preservation policy."""

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        """One flag per checkpoint: True keeps it."""
        ...


def reasons_of(
    policy: PreservationPolicy,
    checkpoints: Sequence[CheckpointInfo],
    context: PreservationContext,
) -> list[Reasons]:
    """For each checkpoint, the rules of `policy` that keep it (empty: not kept).

    Built-in policies name their leaf rules; any other policy is named by its `repr`.
    """
    if isinstance(policy, PreservationPolicyBase):
        return policy.reasons(checkpoints, context=context)
    flags = policy.should_preserve(checkpoints, context=context)
    _check_length(policy, flags, checkpoints)
    label = repr(policy)
    return [(label,) if keep else () for keep in flags]


def item_reasons_of(
    policy: PreservationPolicy,
    checkpoints: Sequence[CheckpointInfo],
    context: PreservationContext,
) -> list[ItemReasons]:
    """For each checkpoint, the rules of `policy` that keep it and the items each keeps.

    A policy that is not built-in keeps each step whole or not at all.
    """
    if isinstance(policy, PreservationPolicyBase):
        return policy.item_reasons(checkpoints, context=context)
    return [_whole(why) for why in reasons_of(policy, checkpoints, context)]


def _whole(reasons: Reasons) -> ItemReasons:
    return tuple([(label, ItemSet.ALL) for label in reasons]) if reasons else ()


def uses_items(policy: object) -> bool:
    """Whether `policy` keeps parts of steps or counts bytes somewhere in its tree; if
    not, it keeps whole steps only and the planner skips the item machinery."""
    return isinstance(policy, PreservationPolicyBase) and policy.uses_items()


def kept_items(pairs: ItemReasons) -> ItemSet:
    """What a step's rules keep of it together: the union of their item sets."""
    kept = ItemSet.NONE
    for _, items in pairs:
        kept |= items
        if kept.is_all:  # the usual case: a rule keeps the whole step
            break
    return kept


def labels_of(pairs: ItemReasons) -> Reasons:
    """The reasons of a step's rules that keep something, each naming the items it keeps."""
    return tuple(label_with_items(label, items) for label, items in pairs if items)


def _restrict(pairs: ItemReasons, to: ItemSet) -> ItemReasons:
    """Each rule with only what it keeps of `to`; rules left keeping nothing drop out, but
    a rule that let the step go (an empty set to begin with) stays on record."""
    result = []
    for label, items in pairs:
        if not items:
            result.append((label, items))
        elif mine := items & to:
            result.append((label, mine))
    return tuple(result)


def _check_length(policy: object, flags: Sequence[bool], checkpoints: Sequence[Any]) -> None:
    if len(flags) != len(checkpoints):
        raise PolicyArgumentError(
            f"{policy!r} returned {len(flags)} flags for {len(checkpoints)} checkpoints; "
            "should_preserve must return exactly one flag per checkpoint"
        )


class PreservationPolicyBase(CombinablePolicy[PreservationPolicy]):
    """Operators, reasons and text `repr` shared by the built-in preservation policies."""

    __slots__ = ()

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        raise NotImplementedError

    def reasons(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> list[Reasons]:
        """For each checkpoint, the rules that keep it; empty when it is not kept."""
        label = policy_label(self)
        flags = self.should_preserve(checkpoints, context=context)
        return [(label,) if keep else () for keep in flags]

    def item_reasons(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> list[ItemReasons]:
        """For each checkpoint, the rules that keep it, each with the items it keeps;
        their union is what the policy keeps of the step (a rule alone keeps it whole)."""
        return [_whole(why) for why in self.reasons(checkpoints, context=context)]

    def uses_items(self) -> bool:
        """Whether a rule in this policy keeps parts of steps (`.only`) or counts bytes."""
        return False

    def only(self, *items: str) -> Only:
        """Keeps just `items` of the steps this policy keeps.

        Examples:
            >>> LatestN(3) | EveryNSteps(10_000).only("params")
            LatestN(n=3) | EveryNSteps(interval_steps=10000).only('params')
        """
        return Only(self, items)


class ReasonedPolicyBase(PreservationPolicyBase):
    """For policies that work out their reasons first: what they keep follows from them."""

    __slots__ = ()

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        return [bool(r) for r in self.reasons(checkpoints, context=context)]


class PartsPolicyBase(PreservationPolicyBase):
    """For policies that work per (step, item): what they keep, and why, follows from
    their `item_reasons`."""

    __slots__ = ()

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        return [bool(kept_items(p)) for p in self.item_reasons(checkpoints, context=context)]

    def reasons(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> list[Reasons]:
        return [labels_of(p) for p in self.item_reasons(checkpoints, context=context)]

    def item_reasons(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> list[ItemReasons]:
        raise NotImplementedError

    def uses_items(self) -> bool:
        return True


PRESERVATION: Kind[PreservationPolicy] = Kind("preservation", PreservationPolicy, "should_preserve")
PreservationPolicyBase.kind = PRESERVATION


def require_preservation(policy: object) -> PreservationPolicy:
    return PRESERVATION.require(policy)


@attrs.frozen(repr=False)
class PreserveAll(PreservationPolicyBase):
    """Keeps every checkpoint (Orbax's default).

    Examples:
        >>> PreserveAll()
        PreserveAll()
    """

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        return [True] * len(checkpoints)


@attrs.frozen(repr=False)
class LatestN(PreservationPolicyBase):
    """Keeps the `n` newest checkpoints; all of them when `n` is None.

    Examples:
        >>> LatestN(3)
        LatestN(n=3)
    """

    n: int | None = attrs.field(default=None, validator=optional_count)

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        count = len(checkpoints)
        if self.n is None or count <= self.n:
            return [True] * count
        return [False] * (count - self.n) + [True] * self.n


@attrs.frozen(repr=False)
class EveryNSeconds(PreservationPolicyBase):
    """Keeps the oldest checkpoint, then each one at least `interval_secs` after the
    previously kept one (greedy from the oldest, as Orbax does).

    Examples:
        >>> EveryNSeconds(3600)
        EveryNSeconds(interval_secs=3600)
    """

    interval_secs: float = attrs.field(validator=positive_seconds)

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        if not checkpoints:
            return []
        interval = timedelta(seconds=self.interval_secs)
        times = steady_times(checkpoints)
        last_kept = times[0]
        result = [True]
        for time in times[1:]:
            keep = time - last_kept >= interval
            if keep:
                last_kept = time
            result.append(keep)
        return result


def _cap(flags: list[bool], max_to_keep: int | None) -> list[bool]:
    """Keeps only the newest `max_to_keep` of the kept flags."""
    if max_to_keep is None:
        return flags
    kept = [i for i, keep in enumerate(flags) if keep]
    for i in kept[: max(len(kept) - max_to_keep, 0)]:
        flags[i] = False
    return flags


@attrs.frozen(repr=False)
class EveryNSteps(PreservationPolicyBase):
    """Keeps checkpoints whose step is a multiple of `interval_steps`.

    With `exact_interval=False` it keeps the oldest checkpoint, then each one at least
    `interval_steps` after the previously kept one. `max_to_keep` keeps only the newest
    of those.

    Examples:
        >>> EveryNSteps(10_000)
        EveryNSteps(interval_steps=10000)
    """

    interval_steps: int = attrs.field(validator=positive_int)
    exact_interval: bool = True
    max_to_keep: int | None = attrs.field(default=None, validator=optional_cap)

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        if self.exact_interval:
            flags = [info.step % self.interval_steps == 0 for info in checkpoints]
        else:
            flags = []
            last_kept: int | None = None
            for info in checkpoints:
                keep = last_kept is None or info.step - last_kept >= self.interval_steps
                if keep:
                    last_kept = info.step
                flags.append(keep)
        return _cap(flags, self.max_to_keep)


@attrs.frozen(repr=False)
class EveryNStepsClosest(PreservationPolicyBase):
    """For each multiple of `interval_steps`, keeps the checkpoint closest to it (the
    newer one on a tie), plus the newest checkpoint. Irregular save steps do not drift.

    Examples:
        >>> EveryNStepsClosest(1000, max_to_keep=10)
        EveryNStepsClosest(interval_steps=1000, max_to_keep=10)
    """

    interval_steps: int = attrs.field(validator=positive_int)
    max_to_keep: int | None = attrs.field(default=None, validator=optional_cap)

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        if not checkpoints:
            return []
        closest: dict[int, tuple[int, int]] = {}  # grid point -> (distance, index)
        for index, info in enumerate(checkpoints):
            grid = round(info.step / self.interval_steps)
            distance = abs(info.step - grid * self.interval_steps)
            if grid not in closest or distance <= closest[grid][0]:
                closest[grid] = (distance, index)
        flags = [False] * len(checkpoints)
        for _, index in closest.values():
            flags[index] = True
        flags[-1] = True
        return _cap(flags, self.max_to_keep)


@attrs.frozen(repr=False)
class CustomSteps(PreservationPolicyBase):
    """Keeps the checkpoints at the given steps.

    Examples:
        >>> CustomSteps([1000, 5000])
        CustomSteps(steps=[1000, 5000])
    """

    steps: frozenset[int] = attrs.field(converter=steps_set)

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        return [info.step in self.steps for info in checkpoints]


def _validate_best_n(policy: BestN) -> None:
    if policy.metric is None and policy.get_metric_fn is None:
        raise PolicyArgumentError(
            "BestN needs a metric: metric='loss' (with mode='min' or 'max') "
            "or get_metric_fn=callable"
        )
    if policy.metric is not None and policy.get_metric_fn is not None:
        raise PolicyArgumentError("BestN takes metric= or get_metric_fn=, not both")
    if policy.metric is not None and policy.mode is None:
        raise PolicyArgumentError(
            f"BestN(metric={policy.metric!r}) needs mode='min' (lower is better) or mode='max'"
        )
    if policy.mode is not None and policy.reverse:
        raise PolicyArgumentError(
            "BestN takes mode= or reverse=, not both (reverse=True means mode='min')"
        )


@attrs.frozen(repr=False, kw_only=True)
class BestN(ReasonedPolicyBase):
    """Keeps the `n` checkpoints with the best metric.

    Name the metric as text (`metric='eval.loss', mode='min'`) or, as in Orbax, give
    `get_metric_fn` and `reverse` (False keeps the highest values, True the lowest).
    NaN and missing values rank worst, ties prefer the newer step, and checkpoints with no
    metrics at all are kept when `keep_checkpoints_without_metrics` is True. As in Orbax,
    `n=None` (or no more checkpoints than `n`) keeps all, and `n=0` keeps none.

    Examples:
        >>> BestN(metric="loss", mode="min", n=2)
        BestN(metric='loss', mode='min', n=2)
    """

    metric: str | None = attrs.field(default=None, validator=validate_metric_path)
    mode: Mode | None = attrs.field(default=None, validator=validate_mode)
    n: int | None = attrs.field(default=None, validator=optional_count)
    keep_checkpoints_without_metrics: bool = True
    get_metric_fn: Callable[[Mapping[str, Any]], Any] | None = None
    reverse: bool = False

    def __attrs_post_init__(self) -> None:
        _validate_best_n(self)

    def _ranks(self, checkpoints: Sequence[CheckpointInfo]) -> list[int | None]:
        """Rank (1 = best) of each checkpoint that has the metric, else None."""
        metric = self.metric if self.metric is not None else self.get_metric_fn
        assert metric is not None  # checked at construction
        mode: Mode = self.mode or ("min" if self.reverse else "max")
        values = [metric_value(info.metrics, metric) for info in checkpoints]
        ranks: list[int | None] = [None] * len(checkpoints)
        for rank, index in enumerate(rank_order(values, mode), start=1):
            ranks[index] = rank
        return ranks

    def reasons(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> list[Reasons]:
        label = policy_label(self)
        if self.n is None or len(checkpoints) <= self.n:
            return [(label,)] * len(checkpoints)
        if self.n == 0:  # as in Orbax: nothing, not even checkpoints without metrics
            return [()] * len(checkpoints)
        result: list[Reasons] = []
        for info, rank in zip(checkpoints, self._ranks(checkpoints), strict=True):
            if rank is not None and rank <= self.n:
                result.append((f"{label}: rank {rank}",))
            elif info.metrics is None and self.keep_checkpoints_without_metrics:
                result.append((f"{label}: no metrics",))
            else:
                result.append(())
        return result


def _validate_relative_to(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in ("now", "newest"):
        raise PolicyArgumentError(
            f"{attribute.name}={value!r} must be 'now' (measure from context.now) or "
            "'newest' (measure from the newest checkpoint, so a stalled run keeps its history)"
        )


@attrs.frozen(repr=False)
class LatestDuration(PreservationPolicyBase):
    """Keeps the checkpoints no older than `duration`, measured from `context.now`, or
    from the newest checkpoint with `relative_to="newest"` (restic's `--keep-within`).

    Examples:
        >>> LatestDuration(timedelta(days=1), relative_to="newest")
        LatestDuration(duration=timedelta(days=1), relative_to='newest')
    """

    duration: timedelta = attrs.field(validator=positive_duration)
    relative_to: Literal["now", "newest"] = attrs.field(
        default="now", validator=_validate_relative_to
    )

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        if not checkpoints:
            return []
        if self.relative_to == "newest":
            times = steady_times(checkpoints)
            reference = times[-1]
        elif context.now is None:
            raise MissingNowError(
                f"{self!r} measures age from now, but PreservationContext.now is None; "
                "pass PreservationContext(now=...) or use relative_to='newest'"
            )
        else:
            # Measured on the steady times, no checkpoint is newer than now: a clock that
            # stepped back neither makes old checkpoints young nor ages new ones.
            times = steady_times(checkpoints, context.now)
            reference = context.now
        return [reference - time <= self.duration for time in times]


_T = TypeVar("_T")


def _joined(
    of: Callable[
        [PreservationPolicy, Sequence[CheckpointInfo], PreservationContext], list[tuple[_T, ...]]
    ],
    policies: Sequence[PreservationPolicy],
    checkpoints: Sequence[CheckpointInfo],
    context: PreservationContext,
) -> list[tuple[_T, ...]]:
    """Each checkpoint's reasons (or item reasons) from every policy, one after another."""
    result: list[tuple[_T, ...]] = [()] * len(checkpoints)
    for policy in policies:
        child = of(policy, checkpoints, context)
        result = [a + b for a, b in zip(result, child, strict=True)]
    return result


def _fold_flags(
    policies: Sequence[PreservationPolicy],
    checkpoints: Sequence[CheckpointInfo],
    context: PreservationContext,
    combine: Callable[[Iterable[bool]], bool],
) -> list[bool]:
    """Each checkpoint's flags from every policy, combined with `any` or `all`."""
    columns = []
    for policy in policies:
        flags = policy.should_preserve(checkpoints, context=context)
        _check_length(policy, flags, checkpoints)
        columns.append(flags)
    return [combine(flags[i] for flags in columns) for i in range(len(checkpoints))]


def _flatten_any(policies: Iterable[PreservationPolicy]) -> tuple[PreservationPolicy, ...]:
    return PRESERVATION.flatten(AnyPreservationPolicy, policies)


def _flatten_all(policies: Iterable[PreservationPolicy]) -> tuple[PreservationPolicy, ...]:
    return PRESERVATION.flatten(AllPreservationPolicy, policies)


@attrs.frozen(repr=False)
class AnyPreservationPolicy(AnyOf, PreservationPolicyBase):
    """Keeps what any of `policies` keeps, each counting on its own; `a | b` builds one.

    Examples:
        >>> LatestN(3) | EveryNSteps(10_000)
        LatestN(n=3) | EveryNSteps(interval_steps=10000)
    """

    policies: tuple[PreservationPolicy, ...] = attrs.field(converter=_flatten_any)

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        return _fold_flags(self.policies, checkpoints, context, any)

    def reasons(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> list[Reasons]:
        return _joined(reasons_of, self.policies, checkpoints, context)

    def item_reasons(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> list[ItemReasons]:
        return _joined(item_reasons_of, self.policies, checkpoints, context)

    def uses_items(self) -> bool:
        return any(uses_items(p) for p in self.policies)


@attrs.frozen(repr=False)
class AllPreservationPolicy(AllOf, PreservationPolicyBase):
    """Keeps what every one of `policies` keeps; `a & b` builds one.

    Examples:
        >>> EveryNSteps(1000) & LatestDuration(timedelta(days=7))
        EveryNSteps(interval_steps=1000) & LatestDuration(duration=timedelta(days=7))
    """

    policies: tuple[PreservationPolicy, ...] = attrs.field(converter=_flatten_all)

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        if self.uses_items():  # parts can be disjoint: a step may keep nothing of either
            return [bool(kept_items(p)) for p in self.item_reasons(checkpoints, context=context)]
        return _fold_flags(self.policies, checkpoints, context, all)

    def reasons(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> list[Reasons]:
        if not self.policies:
            return [(repr(self),)] * len(checkpoints)
        if self.uses_items():
            return [labels_of(p) for p in self.item_reasons(checkpoints, context=context)]
        children = [reasons_of(p, checkpoints, context) for p in self.policies]
        return [sum(column, ()) if all(column) else () for column in zip(*children, strict=True)]

    def item_reasons(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> list[ItemReasons]:
        if not self.policies:
            return [((repr(self), ItemSet.ALL),)] * len(checkpoints)
        children = [item_reasons_of(p, checkpoints, context) for p in self.policies]
        result: list[ItemReasons] = []
        for column in zip(*children, strict=True):
            both = ItemSet.ALL
            for pairs in column:
                both &= kept_items(pairs)
            # Every child keeps some of a non-empty intersection, so every child stays named.
            result.append(_restrict(sum(column, ()), both))
        return result

    def uses_items(self) -> bool:
        return any(uses_items(p) for p in self.policies)


@attrs.frozen(repr=False)
class NotPreservationPolicy(NotOf, PreservationPolicyBase):
    """Keeps what `policy` does not keep; `~a` builds one.

    Examples:
        >>> ~CustomSteps([0])
        ~CustomSteps(steps=[0])
    """

    policy: PreservationPolicy = attrs.field(converter=require_preservation)

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        if self.uses_items():  # ~(part of a step) keeps the rest of it
            return [bool(kept_items(p)) for p in self.item_reasons(checkpoints, context=context)]
        flags = self.policy.should_preserve(checkpoints, context=context)
        _check_length(self.policy, flags, checkpoints)
        return [not keep for keep in flags]

    def reasons(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> list[Reasons]:
        if self.uses_items():
            return [labels_of(p) for p in self.item_reasons(checkpoints, context=context)]
        return super().reasons(checkpoints, context=context)

    def item_reasons(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> list[ItemReasons]:
        label = policy_label(self)
        result: list[ItemReasons] = []
        for pairs in item_reasons_of(self.policy, checkpoints, context):
            kept = ~kept_items(pairs)
            result.append(((label, kept),) if kept else ())
        return result

    def uses_items(self) -> bool:
        return uses_items(self.policy)


def _only_items(items: Iterable[Any]) -> frozenset[str]:
    names = item_names(items)
    if not names:
        raise PolicyArgumentError(
            ".only() needs at least one item name, e.g. .only('params'); to keep nothing, "
            "leave the policy out"
        )
    return names


@attrs.frozen(repr=False)
class Only(PartsPolicyBase):
    """Keeps just `items` of the steps that `policy` keeps; `policy.only(*items)` builds one.

    Examples:
        >>> from datetime import datetime, timezone
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> keep = LatestN(1) | EveryNSteps(10).only("params")
        >>> steps = [CheckpointInfo(s, t, item_bytes={"params": 1, "opt_state": 2})
        ...          for s in (10, 15, 20)]
        >>> [kept_items(p) for p in keep.item_reasons(steps, context=PreservationContext())]
        [ItemSet.of('params'), ItemSet.NONE, ItemSet.ALL]
    """

    policy: PreservationPolicy = attrs.field(converter=require_preservation)
    items: frozenset[str] = attrs.field(converter=_only_items)

    def item_reasons(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> list[ItemReasons]:
        only = ItemSet(self.items)
        return [_restrict(p, only) for p in item_reasons_of(self.policy, checkpoints, context)]

    def __repr__(self) -> str:
        inner = repr(self.policy)
        if isinstance(self.policy, AnyOf | AllOf | NotOf):
            inner = f"({inner})"
        return f"{inner}.only({', '.join(map(repr, sorted(self.items)))})"


PRESERVATION.any_of = AnyPreservationPolicy
PRESERVATION.all_of = AllPreservationPolicy
PRESERVATION.not_of = NotPreservationPolicy
