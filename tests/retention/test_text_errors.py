"""Policy text that once crashed (RecursionError, OverflowError, ValueError) or was
misread now gets a PolicyTextError or PolicyArgumentError that says what to do."""

from __future__ import annotations

import functools
import operator
from datetime import timedelta

import pytest

from tenure.retention import (
    CheckpointInfo,
    ContinuousCheckpointingPolicy,
    EveryNSeconds,
    FixedIntervalPolicy,
    LatestN,
    PolicyArgumentError,
    PolicyTextError,
    PreservationContext,
    parse_policy,
    simulate,
)
from tenure.retention._validators import MAX_SECONDS
from tenure.retention.text import MAX_NESTING

from .strategies import START


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("~" * 2000 + "LatestN(1)", "nests more than 200 levels"),
        (" | ".join(["LatestN(1)"] * 3000), "nests more than 200 levels"),
        (" & ".join(["LatestN(1)"] * 3000), "nests more than 200 levels"),
        ("(" * 300 + "LatestN(1)" + ")" * 300, "nests more than 200 levels"),
        ("LatestDuration(timedelta(days=1e999))", "out of range"),
        ("LatestDuration(timedelta(days=1_000_000_000_000))", "out of range"),
        ("LatestN(" + "9" * 5000 + ")", "digits"),
        ("LatestN(0x" + "f" * 5000 + ")", "out of range"),
        ("EveryNSteps(-0x" + "f" * 5000 + ")", "out of range"),
        ("LatestN(n=1, n=2)", "n= is given twice"),
        ("LatestDuration(timedelta(days=1, days=2))", "days= is given twice"),
        ("EveryNSeconds(1e999)", "longer than a timedelta"),
        ("ContinuousCheckpointingPolicy(minimum_interval_secs=1e999)", "longer than a timedelta"),
    ],
)
def test_text_that_crashed_gets_a_policy_text_error(text: str, message: str) -> None:
    with pytest.raises(PolicyTextError, match=message):
        parse_policy(text)


def test_nesting_is_refused_exactly_past_the_documented_depth() -> None:
    assert parse_policy("~" * (MAX_NESTING - 1) + "LatestN(1)") == ~LatestN(1)
    with pytest.raises(PolicyTextError) as caught:
        parse_policy("~" * MAX_NESTING + "LatestN(1)")
    assert caught.value.offset == MAX_NESTING + len("LatestN")  # the bracket one level too deep


def test_a_wide_but_shallow_policy_parses() -> None:
    steps = ", ".join(str(s) for s in range(5000))
    assert len(parse_policy(f"CustomSteps([{steps}])").steps) == 5000


@pytest.mark.parametrize("seconds", [float("inf"), float("nan"), 1e300, -1.0, 0])
def test_interval_seconds_must_fit_a_timedelta(seconds: float) -> None:
    with pytest.raises(PolicyArgumentError):
        EveryNSeconds(seconds)
    with pytest.raises(PolicyArgumentError):
        ContinuousCheckpointingPolicy(minimum_interval_secs=seconds)


def test_the_longest_interval_still_decides() -> None:
    policy = EveryNSeconds(MAX_SECONDS)
    checkpoints = [CheckpointInfo(s, START + timedelta(days=365 * s), None) for s in range(3)]
    assert policy.should_preserve(checkpoints, context=PreservationContext()) == [
        True,
        False,
        False,
    ]


def test_simulate_refuses_policies_of_the_wrong_kind() -> None:
    kwargs = {"steps": 10, "start_time": START, "step_duration": timedelta(seconds=1)}
    with pytest.raises(PolicyArgumentError, match="not a preservation policy"):
        simulate(FixedIntervalPolicy(1), FixedIntervalPolicy(1), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(PolicyArgumentError, match="not a save-decision policy"):
        simulate(LatestN(1), LatestN(1), **kwargs)  # type: ignore[arg-type]


def test_long_chains_built_in_python_stay_flat() -> None:
    """`|` of 3,000 policies is one flat union: repr and evaluation do not recurse."""
    union = functools.reduce(operator.or_, [LatestN(n) for n in range(3000)])
    assert len(union.policies) == 3000
    assert repr(union).count(" | ") == 2999
    assert union.should_preserve([], context=PreservationContext()) == []
