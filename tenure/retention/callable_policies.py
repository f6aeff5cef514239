"""Policies that defer to a user's function, as Orbax's `should_save_fn` and `should_keep_fn`.

They stay pure as long as the function does. They have no policy text: a function cannot
be written down in `parse_policy`'s language, so configuration files cannot name them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from tenure.retention.info import CheckpointInfo, DecisionContext, PreservationContext
from tenure.retention.preservation_policies import PreservationPolicyBase
from tenure.retention.save_policies import SavePolicyBase


def _callable(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not callable(value):
        raise TypeError(f"{attribute.name}={value!r} must be callable")


@attrs.frozen(repr=False)
class ShouldSaveFnPolicy(SavePolicyBase):
    """Saves when `fn(step, last_saved_step)` is true; `last_saved_step` is None before
    the first checkpoint (Orbax's `should_save_fn`).

    Examples:
        >>> from datetime import datetime, timezone
        >>> policy = ShouldSaveFnPolicy(lambda step, last: last is None or step - last >= 5)
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> policy.should_save(CheckpointInfo(7, t), [CheckpointInfo(3, t)],
        ...                    context=DecisionContext())
        False
    """

    fn: Callable[[int, int | None], bool] = attrs.field(validator=_callable)

    def should_save(
        self,
        step: CheckpointInfo,
        previous_steps: Sequence[CheckpointInfo],
        *,
        context: DecisionContext,
    ) -> bool:
        last = previous_steps[-1].step if previous_steps else None
        return bool(self.fn(step.step, last))

    def __repr__(self) -> str:
        return f"ShouldSaveFnPolicy({getattr(self.fn, '__qualname__', repr(self.fn))})"


@attrs.frozen(repr=False)
class ShouldKeepFnPolicy(PreservationPolicyBase):
    """Keeps every checkpoint whose step `fn(step)` accepts (Orbax's `should_keep_fn`).

    Examples:
        >>> from datetime import datetime, timezone
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> policy = ShouldKeepFnPolicy(lambda step: step % 100 == 0)
        >>> policy.should_preserve([CheckpointInfo(s, t) for s in (50, 100)],
        ...                        context=PreservationContext())
        [False, True]
    """

    fn: Callable[[int], bool] = attrs.field(validator=_callable)

    def should_preserve(
        self,
        checkpoints: Sequence[CheckpointInfo],
        *,
        context: PreservationContext,
    ) -> Sequence[bool]:
        return [bool(self.fn(info.step)) for info in checkpoints]

    def __repr__(self) -> str:
        return f"ShouldKeepFnPolicy({getattr(self.fn, '__qualname__', repr(self.fn))})"
