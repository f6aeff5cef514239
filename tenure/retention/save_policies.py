"""Save-decision policies: should this step be saved?

Each policy is a small frozen value with one pure method,
`should_save(step, previous_steps, *, context) -> bool`. `previous_steps` are the
checkpoints that exist (committed or being written), oldest first. Policies combine
with `|` (any), `&` (all) and `~` (not); the result is again a policy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

import attrs

from tenure.retention._combinators import AllOf, AnyOf, CombinablePolicy, Kind, NotOf
from tenure.retention._validators import (
    optional_step,
    positive_duration,
    positive_int,
    positive_seconds,
    steps_set,
)
from tenure.retention.cadence import daly_interval, young_interval
from tenure.retention.errors import PolicyArgumentError
from tenure.retention.info import CheckpointInfo, DecisionContext
from tenure.retention.metrics import (
    Mode,
    is_better,
    lookup_metric,
    validate_metric_path,
    validate_mode,
)

_ZERO = timedelta(0)


@runtime_checkable
class SaveDecisionPolicy(Protocol):
    """Anything with Orbax's `should_save` signature is a save-decision policy."""

    def should_save(
        self,
        step: CheckpointInfo,
        previous_steps: Sequence[CheckpointInfo],
        *,
        context: DecisionContext,
    ) -> bool:
        """Whether `step` should be saved."""
        ...


class SavePolicyBase(CombinablePolicy[SaveDecisionPolicy]):
    """Operators and text `repr` shared by the built-in save-decision policies."""

    __slots__ = ()


SAVE: Kind[SaveDecisionPolicy] = Kind("save-decision", SaveDecisionPolicy, "should_save")
SavePolicyBase.kind = SAVE


@attrs.frozen(repr=False)
class FixedIntervalPolicy(SavePolicyBase):
    """Saves every step that is a multiple of `interval`.

    Examples:
        >>> FixedIntervalPolicy(1000)
        FixedIntervalPolicy(interval=1000)
    """

    interval: int = attrs.field(validator=positive_int)

    def should_save(
        self,
        step: CheckpointInfo,
        previous_steps: Sequence[CheckpointInfo],
        *,
        context: DecisionContext,
    ) -> bool:
        return step.step % self.interval == 0


@attrs.frozen(repr=False)
class SpecificStepsPolicy(SavePolicyBase):
    """Saves exactly the given steps.

    Examples:
        >>> SpecificStepsPolicy([500, 100])
        SpecificStepsPolicy(steps=[100, 500])
    """

    steps: frozenset[int] = attrs.field(converter=steps_set)

    def should_save(
        self,
        step: CheckpointInfo,
        previous_steps: Sequence[CheckpointInfo],
        *,
        context: DecisionContext,
    ) -> bool:
        return step.step in self.steps


def _optional_positive_secs(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        positive_seconds(_, attribute, value)


@attrs.frozen(repr=False)
class ContinuousCheckpointingPolicy(SavePolicyBase):
    """Saves as often as possible: whenever no save is in flight and, if given, at least
    `minimum_interval_secs` have passed since the newest existing checkpoint.

    Unlike Orbax's, it never talks to other hosts: the manager broadcasts the primary
    host's decision, so the policy stays a pure function.

    Examples:
        >>> ContinuousCheckpointingPolicy(minimum_interval_secs=600)
        ContinuousCheckpointingPolicy(minimum_interval_secs=600)
    """

    minimum_interval_secs: float | None = attrs.field(
        default=None, validator=_optional_positive_secs
    )

    def should_save(
        self,
        step: CheckpointInfo,
        previous_steps: Sequence[CheckpointInfo],
        *,
        context: DecisionContext,
    ) -> bool:
        if context.is_saving_in_progress:
            return False
        if not previous_steps or self.minimum_interval_secs is None:
            return True
        elapsed = step.time - previous_steps[-1].time
        # A newest checkpoint stamped after this step means the clock stepped back: the
        # time since it is unknown, so save now, and the interval restarts from this save.
        return elapsed < _ZERO or elapsed >= timedelta(seconds=self.minimum_interval_secs)


@attrs.frozen(repr=False)
class PreemptionCheckpointingPolicy(SavePolicyBase):
    """Saves when the job has been told it will be preempted.

    Examples:
        >>> PreemptionCheckpointingPolicy()
        PreemptionCheckpointingPolicy()
    """

    def should_save(
        self,
        step: CheckpointInfo,
        previous_steps: Sequence[CheckpointInfo],
        *,
        context: DecisionContext,
    ) -> bool:
        return context.reached_preemption


@attrs.frozen(repr=False)
class InitialSavePolicy(SavePolicyBase):
    """Saves when no checkpoint exists yet.

    Examples:
        >>> InitialSavePolicy()
        InitialSavePolicy()
    """

    def should_save(
        self,
        step: CheckpointInfo,
        previous_steps: Sequence[CheckpointInfo],
        *,
        context: DecisionContext,
    ) -> bool:
        return not previous_steps


@attrs.frozen(repr=False)
class StepRangePolicy(SavePolicyBase):
    """True for steps in `[start, stop)`; with `&` it builds piecewise schedules.

    Examples:
        >>> early = FixedIntervalPolicy(1000) & StepRangePolicy(stop=10_000)
        >>> late = FixedIntervalPolicy(5000) & StepRangePolicy(start=10_000)
        >>> schedule = early | late
    """

    start: int | None = attrs.field(default=None, validator=optional_step)
    stop: int | None = attrs.field(default=None, validator=optional_step)

    def __attrs_post_init__(self) -> None:
        if self.start is not None and self.stop is not None and self.stop <= self.start:
            raise PolicyArgumentError(
                f"StepRangePolicy(start={self.start}, stop={self.stop}) is empty; "
                "stop must be greater than start"
            )

    def should_save(
        self,
        step: CheckpointInfo,
        previous_steps: Sequence[CheckpointInfo],
        *,
        context: DecisionContext,
    ) -> bool:
        if self.start is not None and step.step < self.start:
            return False
        return self.stop is None or step.step < self.stop


@attrs.frozen(repr=False)
class MinimumStepGapPolicy(SavePolicyBase):
    """Saves when at least `steps` steps passed since the newest existing checkpoint
    (or when there is none), like TensorFlow's `checkpoint_interval`.

    Examples:
        >>> MinimumStepGapPolicy(500)
        MinimumStepGapPolicy(steps=500)
    """

    steps: int = attrs.field(validator=positive_int)

    def should_save(
        self,
        step: CheckpointInfo,
        previous_steps: Sequence[CheckpointInfo],
        *,
        context: DecisionContext,
    ) -> bool:
        return not previous_steps or step.step - previous_steps[-1].step >= self.steps


@attrs.frozen(repr=False)
class NewBestPolicy(SavePolicyBase):
    """Saves when this step's metric beats that of every existing checkpoint.

    A step without the metric is not saved; NaN never beats anything, and any number
    beats a NaN.

    Examples:
        >>> NewBestPolicy("eval.loss", mode="min")
        NewBestPolicy(metric='eval.loss', mode='min')
    """

    metric: str = attrs.field(validator=validate_metric_path)
    mode: Mode = attrs.field(validator=validate_mode)

    def should_save(
        self,
        step: CheckpointInfo,
        previous_steps: Sequence[CheckpointInfo],
        *,
        context: DecisionContext,
    ) -> bool:
        value = lookup_metric(step.metrics, self.metric)
        if value is None or math.isnan(value):
            return False
        for previous in previous_steps:
            incumbent = lookup_metric(previous.metrics, self.metric)
            if incumbent is not None and not is_better(value, incumbent, self.mode):
                return False
        return True


@functools.lru_cache(maxsize=256)
def _save_period(formula: str, mtbf: timedelta, save_cost: float) -> timedelta:
    """Cached: the policy asks at every step, and the measured cost changes only per save."""
    formula_of = daly_interval if formula == "daly" else young_interval
    return timedelta(seconds=formula_of(save_cost, mtbf.total_seconds()) + save_cost)


def _validate_formula(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ("daly", "young"):
        raise PolicyArgumentError(f"{attribute.name}={value!r} must be 'daly' or 'young'")


@attrs.frozen(repr=False)
class YoungDalyPolicy(SavePolicyBase):
    """Saves when the time since the newest checkpoint reaches the interval that minimises
    the expected wall time, for the measured save cost and the given mean time between
    failures (see docs/cadence.md).

    The interval is Daly's higher-order formula of `context.save_cost` and `mtbf`
    (`formula="young"` for Young's `sqrt(2 C M)`), plus the save cost itself, since the
    checkpoint's time is when its save started. It follows the cost as it changes. With
    no measured cost yet (before the first save, and after a restart), it saves, which
    measures one.

    Examples:
        >>> from datetime import datetime, timedelta, timezone
        >>> policy = YoungDalyPolicy(mtbf=timedelta(hours=6))
        >>> policy
        YoungDalyPolicy(mtbf=timedelta(seconds=21600))
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> last = [CheckpointInfo(0, t)]
        >>> def saves(seconds_later):
        ...     now = CheckpointInfo(1, t + timedelta(seconds=seconds_later))
        ...     return policy.should_save(now, last, context=DecisionContext(save_cost=20.0))
        >>> saves(935), saves(937)  # 916.2 s of compute plus the 20 s save
        (False, True)
    """

    mtbf: timedelta = attrs.field(validator=positive_duration)
    formula: str = attrs.field(default="daly", validator=_validate_formula)

    def interval(self, save_cost: float) -> timedelta:
        """Wall time from the start of one save to the start of the next."""
        return _save_period(self.formula, self.mtbf, save_cost)

    def should_save(
        self,
        step: CheckpointInfo,
        previous_steps: Sequence[CheckpointInfo],
        *,
        context: DecisionContext,
    ) -> bool:
        if context.save_cost is None or not previous_steps:
            return True
        elapsed = step.time - previous_steps[-1].time
        # As ContinuousCheckpointingPolicy: after the clock stepped back, save and restart.
        return elapsed < _ZERO or elapsed >= self.interval(context.save_cost)


def _flatten_any(policies: Iterable[SaveDecisionPolicy]) -> tuple[SaveDecisionPolicy, ...]:
    return SAVE.flatten(AnySavePolicy, policies)


def _flatten_all(policies: Iterable[SaveDecisionPolicy]) -> tuple[SaveDecisionPolicy, ...]:
    return SAVE.flatten(AllSavePolicy, policies)


@attrs.frozen(repr=False)
class AnySavePolicy(AnyOf, SavePolicyBase):
    """Saves when any of `policies` says so; `a | b` builds one.

    Examples:
        >>> FixedIntervalPolicy(1000) | PreemptionCheckpointingPolicy()
        FixedIntervalPolicy(interval=1000) | PreemptionCheckpointingPolicy()
    """

    policies: tuple[SaveDecisionPolicy, ...] = attrs.field(converter=_flatten_any)

    def should_save(
        self,
        step: CheckpointInfo,
        previous_steps: Sequence[CheckpointInfo],
        *,
        context: DecisionContext,
    ) -> bool:
        for policy in self.policies:  # a plain loop: this runs on every training step
            if policy.should_save(step, previous_steps, context=context):
                return True
        return False


@attrs.frozen(repr=False)
class AllSavePolicy(AllOf, SavePolicyBase):
    """Saves when every one of `policies` says so; `a & b` builds one.

    Examples:
        >>> FixedIntervalPolicy(100) & StepRangePolicy(stop=1000)
        FixedIntervalPolicy(interval=100) & StepRangePolicy(stop=1000)
    """

    policies: tuple[SaveDecisionPolicy, ...] = attrs.field(converter=_flatten_all)

    def should_save(
        self,
        step: CheckpointInfo,
        previous_steps: Sequence[CheckpointInfo],
        *,
        context: DecisionContext,
    ) -> bool:
        for policy in self.policies:
            if not policy.should_save(step, previous_steps, context=context):
                return False
        return True


@attrs.frozen(repr=False)
class NotSavePolicy(NotOf, SavePolicyBase):
    """Saves when `policy` would not; `~a` builds one.

    Examples:
        >>> ~SpecificStepsPolicy([0])
        ~SpecificStepsPolicy(steps=[0])
    """

    policy: SaveDecisionPolicy

    def should_save(
        self,
        step: CheckpointInfo,
        previous_steps: Sequence[CheckpointInfo],
        *,
        context: DecisionContext,
    ) -> bool:
        return not self.policy.should_save(step, previous_steps, context=context)


SAVE.any_of, SAVE.all_of, SAVE.not_of = AnySavePolicy, AllSavePolicy, NotSavePolicy
