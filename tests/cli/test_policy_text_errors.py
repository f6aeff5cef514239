"""`tenure simulate` explains bad policy text with exit status 2, never a traceback."""

from __future__ import annotations

import pytest

from .conftest import run_tenure

RUN = ("simulate", "--steps", "50", "--step-seconds", "60")


@pytest.mark.parametrize(
    ("save", "keep", "message"),
    [
        ("FixedIntervalPolicy(10)", "~" * 2000 + "LatestN(1)", "nests more than 200 levels"),
        ("FixedIntervalPolicy(10)", " | ".join(["LatestN(1)"] * 3000), "nests more than"),
        ("FixedIntervalPolicy(10)", "LatestDuration(timedelta(days=1e999))", "out of range"),
        ("FixedIntervalPolicy(10)", "EveryNSeconds(1e999)", "longer than a timedelta"),
        (
            "ContinuousCheckpointingPolicy(minimum_interval_secs=1e999)",
            "LatestN(1)",
            "longer than a timedelta",
        ),
        ("FixedIntervalPolicy(10)", "FixedIntervalPolicy(10)", "is not a preservation policy"),
        ("LatestN(1)", "LatestN(1)", "is not a save-decision policy"),
        ("FixedIntervalPolicy(10)", "LatestN(" + "9" * 5000 + ")", "digits"),
        ("FixedIntervalPolicy(10)", "LatestN(0x" + "f" * 5000 + ")", "out of range"),
        ("FixedIntervalPolicy(10)", "LatestN(n=1, n=2)", "n= is given twice"),
    ],
)
def test_bad_policy_text_exits_2_with_the_reason(save: str, keep: str, message: str) -> None:
    result = run_tenure(*RUN, "--save", save, "--keep", keep)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr


def test_a_save_policy_as_keep_is_refused_under_failures_too() -> None:
    result = run_tenure(
        *RUN,
        "--fail-at",
        "20",
        "--save",
        "FixedIntervalPolicy(10)",
        "--keep",
        "InitialSavePolicy()",
    )
    assert result.returncode == 2, result.stderr
    assert "is not a preservation policy" in result.stderr
