"""`tenure simulate`, end to end in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tenure.cli import parse_size

ARGS = [
    "simulate",
    "--save",
    "FixedIntervalPolicy(100) | PreemptionCheckpointingPolicy()",
    "--keep",
    "LatestN(2) | EveryNSteps(1000)",
    "--steps",
    "3001",
    "--step-seconds",
    "2",
    "--checkpoint-size",
    "1GiB",
    "--preempt-at",
    "1234",
]


def tenure(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenure", *args], capture_output=True, text=True, timeout=120
    )


def test_simulate_prints_what_is_kept_and_why() -> None:
    run = tenure(*ARGS)
    assert run.returncode == 0, run.stderr
    assert "Simulated 3,001 steps" in run.stdout
    assert "EveryNSteps(interval_steps=1000)" in run.stdout
    assert "1,234" in run.stdout  # the preemption save, protected as the resume step
    assert "Peak: 7 checkpoints, 7.0 GiB on disk" in run.stdout


def test_simulate_json_is_machine_readable() -> None:
    run = tenure(*ARGS, "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert [k["step"] for k in data["kept"]] == [0, 1000, 1234, 2000, 2900, 3000]
    assert data["peak_bytes"] == 7 * 2**30
    assert set(data) >= {"saves", "deletions", "deleted_by_rule", "checkpoints"}


def test_bad_policy_text_exits_2_and_points_at_the_mistake() -> None:
    run = tenure(
        "simulate",
        "--save",
        "FixedIntervalPolicy(0)",
        "--keep",
        "LatestN(1)",
        "--steps",
        "10",
        "--step-seconds",
        "1",
    )
    assert run.returncode == 2
    assert "interval=0 must be a positive integer" in run.stderr
    assert "^" in run.stderr


@pytest.mark.parametrize(
    ("text", "size"), [("2GiB", 2 * 2**30), ("500MB", 500_000_000), ("1.5KiB", 1536), ("7", 7)]
)
def test_sizes_accept_binary_and_decimal_units(text: str, size: int) -> None:
    assert parse_size(text) == size
