"""`tenure simulate` with failures: expected wall time, and the best save interval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tenure.cli.simulate import parse_duration

FAILURES = [
    "--steps",
    "300000",
    "--step-seconds",
    "1",
    "--mtbf",
    "6h",
    "--blocked-seconds",
    "20",
    "--restart-seconds",
    "120",
    "--runs",
    "40",
]


def tenure(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenure", *args], capture_output=True, text=True, timeout=300
    )


def test_best_interval_is_within_15_percent_of_youngs_929_steps(tmp_path: Path) -> None:
    plot = tmp_path / "scan.svg"
    run = tenure(
        "simulate", "--save", "FixedIntervalPolicy(500)", *FAILURES, "--best-interval", "--json",
        "--plot", str(plot),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert abs(data["best_interval_steps"] / 929.5 - 1) <= 0.15
    assert data["interval_scan"]["young_interval_steps"] == pytest.approx(929.5, abs=0.05)
    figures = data["failures"]
    assert figures["expected_wall_seconds"] > 300_000
    assert figures["p95_wall_seconds"] >= figures["median_wall_seconds"]
    assert figures["lost_steps_mean"] > 0
    assert 0.9 < figures["efficiency"] < 1
    assert plot.read_text().startswith("<?xml")


def test_the_failure_table_reports_wall_time_lost_work_and_efficiency() -> None:
    run = tenure(
        "simulate", "--save", "FixedIntervalPolicy(1000)", "--keep", "LatestN(2)", *FAILURES,
        "--fail-at", "150000",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Simulated 40 runs of 300,000 steps" in run.stdout
    assert "failing at steps 150,000" in run.stdout
    for label in ("expected wall time", "steps recomputed", "blocked on saves", "efficiency"):
        assert label in run.stdout
    assert "(95th percentile)" in run.stdout


def test_best_interval_without_an_mtbf_exits_2_and_says_what_to_add() -> None:
    run = tenure(
        "simulate", "--save", "FixedIntervalPolicy(10)", "--steps", "100", "--step-seconds", "1",
        "--best-interval",
    )  # fmt: skip
    assert run.returncode == 2
    assert "--best-interval needs --mtbf" in run.stderr


def test_without_failures_keep_is_still_needed() -> None:
    run = tenure("simulate", "--save", "FixedIntervalPolicy(10)", "--steps", "100",
                 "--step-seconds", "1")  # fmt: skip
    assert run.returncode == 2
    assert "--keep is needed" in run.stderr


@pytest.mark.parametrize(("text", "seconds"), [("6h", 21600), ("90m", 5400), ("45", 45)])
def test_durations_take_a_unit(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds
