"""`tenure ls` shows each item's bytes and what a policy would thin; `tenure prune` thins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tenure
from tenure.retention import FixedIntervalPolicy
from tests.cli.conftest import run_json, run_tenure

KEEP = "LatestN(2) | EveryNSteps(2).only('params')"


@pytest.fixture
def parts_root(tmp_path: Path) -> Path:
    """Steps 0 to 4, each with params and an optimizer state twice their size."""
    with tenure.Checkpointer(tmp_path, save_decision_policy=FixedIntervalPolicy(1)) as ckptr:
        for step in range(5):
            ckptr.save_checkpointables(
                step,
                {"params": {"w": np.ones(256) * step}, "opt_state": {"mu": np.zeros(512)}},
            )
    return tmp_path


def test_ls_shows_bytes_per_item_and_the_items_a_policy_would_thin(parts_root: Path) -> None:
    doc = run_json("ls", parts_root, "--keep", KEEP)
    rows = {row["step"]: row for row in doc["checkpoints"]}
    sizes = rows[0]["item_bytes"]
    assert set(sizes) == {"params", "opt_state"}
    assert sizes["opt_state"] > sizes["params"] > 0
    assert {step: row["thin"] for step, row in rows.items()} == {
        0: ["opt_state"],
        1: [],
        2: ["opt_state"],
        3: [],
        4: [],
    }
    text = run_tenure("ls", parts_root, "--keep", KEEP).stdout
    assert "-opt_state" in text
    assert "thin 2 (items marked -)" in text


def test_prune_dry_run_shows_the_thinning_and_yes_applies_it(parts_root: Path) -> None:
    planned = run_json("prune", parts_root, "--keep", KEEP, "--dry-run")
    assert planned["delete"] == [1]
    assert planned["thin"] == {"0": ["opt_state"], "2": ["opt_state"]}
    assert planned["thinned"] == {}
    shown = run_tenure("prune", parts_root, "--keep", KEEP, "--dry-run").stdout
    assert "thin opt_state" in shown
    assert "thins 2" in shown

    done = run_json("prune", parts_root, "--keep", KEEP, "--yes")
    assert done["deleted"] == [1]
    assert done["thinned"] == {"0": ["opt_state"], "2": ["opt_state"]}
    assert done["bytes_freed"] == done["bytes_to_free"] > 0
    with tenure.Checkpointer(parts_root, read_only=True) as reader:
        held = {c.step: sorted(c.item_bytes or ()) for c in reader.checkpoints}
        assert reader.load_checkpointables(0).keys() == {"params"}
    assert held == {
        0: ["params"],
        2: ["params"],
        3: ["opt_state", "params"],
        4: ["opt_state", "params"],
    }
    again = run_json("prune", parts_root, "--keep", KEEP, "--dry-run")
    assert again["delete"] == []
    assert again["thin"] == {}
