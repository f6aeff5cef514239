"""`tenure simulate`, end to end in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tenure.cli import parse_size
from tests.conftest import SIMULATE_ITEM_ARGS

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


ITEMS = [*SIMULATE_ITEM_ARGS, "--quota", "20GiB"]


def test_simulate_with_item_sizes_reports_the_step_the_quota_is_hit() -> None:
    # At step 2,400: 0, 1000, 2000 (every 1000), 2100-2300 (latest 3) and the new one,
    # 7 steps of 3 GiB = 21 GiB, the first time over 20 GiB.
    run = tenure(*ITEMS)
    assert run.returncode == 0, run.stderr
    assert "Quota 20.0 GiB: exceeded at step 2,400." in run.stdout
    assert "opt_state  18.0 GiB    16.0 GiB" in run.stdout  # peak, then at the end
    json_run = tenure(*ITEMS, "--json")
    assert json_run.returncode == 0, json_run.stderr
    data = json.loads(json_run.stdout)
    assert data["quota"] == 20 * 2**30
    assert data["quota_exceeded_at"] == 2400
    assert data["peak_item_bytes"] == {"params": 9 * 2**30, "opt_state": 18 * 2**30}
    assert data["final_item_bytes"] == {"params": 8 * 2**30, "opt_state": 16 * 2**30}
    assert data["kept"][0]["items"] == ["opt_state", "params"]
    assert data["checkpoints"][0]["item_bytes"] == {"params": 2**30, "opt_state": 2 * 2**30}


def test_a_quota_never_reached_says_so() -> None:
    run = tenure(*ITEMS[:-1], "20TiB")
    assert run.returncode == 0, run.stderr
    assert "Quota 20.0 TiB: never exceeded." in run.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--item-size", "params"], "write NAME=SIZE"),
        (["--item-size", "params=2GiB", "--item-size", "params=1GiB"], "params more than once"),
        (["--item-size", "params=2GiB", "--checkpoint-size", "1GiB"], "not both"),
        (["--quota", "1TiB"], "--quota needs the checkpoints' sizes"),
        (["--item-size", "params=2GiB", "--mtbf", "6h"], "without failures"),
    ],
)
def test_bad_item_sizes_exit_2_and_say_why(extra: list[str], message: str) -> None:
    run = tenure(*ARGS[:5], "--steps", "101", "--step-seconds", "1", *extra)
    assert run.returncode == 2
    assert message in run.stderr


def test_simulate_thins_the_items_a_policy_does_not_keep() -> None:
    run = tenure(
        "simulate",
        "--save",
        "FixedIntervalPolicy(1)",
        "--keep",
        "LatestN(3) | EveryNSteps(10).only('params')",
        "--steps",
        "100",
        "--step-seconds",
        "1",
        "--item-size",
        "params=2GiB",
        "--item-size",
        "opt_state=4GiB",
        "--json",
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    items = {k["step"]: k["items"] for k in data["kept"]}
    assert items == {
        **{step: ["params"] for step in range(0, 100, 10)},
        97: ["opt_state", "params"],
        98: ["opt_state", "params"],
        99: ["opt_state", "params"],
    }
    first = data["checkpoints"][0]
    assert first["thinned"] == [{"at_step": 3, "items": ["opt_state"]}]
    assert data["final_item_bytes"] == {"params": 13 * 2 * 2**30, "opt_state": 3 * 4 * 2**30}
