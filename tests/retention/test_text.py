"""Policy text: parsing, round trips, and errors that point at the offending part."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tenure.retention import (
    BestN,
    Daily,
    EveryNSteps,
    FixedIntervalPolicy,
    LatestDuration,
    LatestN,
    PolicyTextError,
    PreemptionCheckpointingPolicy,
    StepRangePolicy,
    parse_policy,
)


def test_parses_the_documented_example() -> None:
    policy = parse_policy(
        "LatestN(3) | EveryNSteps(10_000) | BestN(metric='loss', mode='min', n=2)"
    )
    assert policy == LatestN(3) | EveryNSteps(10_000) | BestN(metric="loss", mode="min", n=2)


def test_parses_operators_with_python_precedence() -> None:
    text = "~StepRangePolicy(stop=100) & FixedIntervalPolicy(10) | PreemptionCheckpointingPolicy()"
    expected = (
        ~StepRangePolicy(stop=100) & FixedIntervalPolicy(10)
    ) | PreemptionCheckpointingPolicy()
    assert parse_policy(text) == expected


def test_parses_timedelta_and_keywords() -> None:
    assert parse_policy(
        "LatestDuration(timedelta(hours=36), relative_to='newest')"
    ) == LatestDuration(timedelta(hours=36), relative_to="newest")
    assert parse_policy("Daily(7, within=timedelta(weeks=2), tz='UTC')") == Daily(
        7, within=timedelta(days=14)
    )


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("LatestN(3) | LatestM(2)", "did you mean LatestN", 13),
        ("LatestN(3) |", "not valid policy text", None),
        ("LatestN(n=-3)", "LatestN: n=-3", 0),
        ("__import__('os').system('true')", "unknown method 'system'", 17),
        ("__import__('os').only('params')", "unknown policy '__import__'", 0),
        ("(lambda: LatestN(1)).only('params')", "expected a policy", 1),
        ("LatestN(n=open('x'))", "unknown policy 'open'", 10),
        ("LatestN(n=x)", "expected a number", 10),
        ("LatestDuration(timedelta(fortnights=1))", "timedelta takes", 36),
        ("LatestN(3) | FixedIntervalPolicy(10)", "not a preservation policy", 0),
        ("BestN(metric='loss', mode='min', n=2, **{})", "not allowed", 0),
        ("LatestN(3) | EveryNSteps(10).onyl('params')", "did you mean .only", 29),
        ("EveryNSteps(10).only(1)", "non-empty strings", 16),
        ("EveryNSteps(10).only('')", "non-empty strings", 16),
        ("EveryNSteps(10).only()", "at least one item", 16),
        ("EveryNSteps(10).only(items='params')", "item names only", 16),
        ("FixedIntervalPolicy(10).only('params')", "not a preservation policy", 24),
        ("WithinBytes(LatestN(3), max_bytes='2XB')", "not a size", 0),
        ("WithinBytes(LatestN(3), max_bytes=-1)", "negative", 0),
    ],
)
def test_bad_text_gets_an_error_pointing_at_the_offending_part(
    text: str, message: str, column: int | None
) -> None:
    with pytest.raises(PolicyTextError, match=message) as caught:
        parse_policy(text)
    if column is not None:
        assert caught.value.offset == column
        assert "^" in str(caught.value)


def test_never_evaluates_code() -> None:
    """Names outside the whitelist are rejected before anything is called."""
    with pytest.raises(PolicyTextError):
        parse_policy("LatestN(__builtins__)")
    with pytest.raises(PolicyTextError):
        parse_policy("(lambda: LatestN(1))()")


def test_best_n_with_a_callable_is_not_text() -> None:
    """Policies holding functions have a readable repr, but it cannot be parsed back."""
    with pytest.raises(PolicyTextError):
        parse_policy(repr(BestN(get_metric_fn=len, n=1)))
