"""`tenure prune`: dry run, refusal off a terminal, the prompt, real runs, a locked root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import tenure
from tests.cli.conftest import NOW, STEPS, run_json, run_tenure, write_orbax_v1_root

KEEP = "BestN(metric='loss', mode='min', n=1) | LatestN(1)"
PRUNE_KEYS = {
    "root",
    "policy",
    "now",
    "dry_run",
    "checkpoints",
    "damaged",
    "delete",
    "deleted",
    "thin",
    "thinned",
    "bytes_to_free",
    "bytes_freed",
}


def steps_on_disk(root: Path) -> list[int]:
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit())


def test_dry_run_shows_the_plan_and_deletes_nothing(tenure_root: Path) -> None:
    doc = run_json("prune", tenure_root, "--keep", KEEP, "--now", NOW, "--dry-run")
    assert set(doc) == PRUNE_KEYS
    assert doc["dry_run"] is True
    assert doc["delete"] == [0, 100, 200]
    assert doc["deleted"] == []
    assert doc["bytes_to_free"] == sum(c["bytes"] for c in doc["checkpoints"][:3]) > 0
    assert doc["bytes_freed"] == 0
    assert [c["keep"] for c in doc["checkpoints"]] == [False, False, False, True, True]
    assert steps_on_disk(tenure_root) == list(STEPS)


def test_without_yes_off_a_terminal_it_refuses_with_exit_2(tenure_root: Path) -> None:
    result = run_tenure("prune", tenure_root, "--keep", KEEP)
    assert result.returncode == 2
    assert "pass --yes" in result.stderr
    assert "--dry-run" in result.stderr
    assert "deletes 3" in result.stdout  # the plan is still shown
    assert steps_on_disk(tenure_root) == list(STEPS)


def test_yes_deletes_what_the_planner_lets_go_and_nothing_else(tenure_root: Path) -> None:
    (tenure_root / "500.orbax-checkpoint-tmp").mkdir()  # a save in flight
    (tenure_root / "notes.txt").write_text("a foreign file")
    # A policy that keeps nothing: the planner still keeps the newest step.
    doc = run_json("prune", tenure_root, "--keep", "~PreserveAll()", "--yes")
    assert doc["deleted"] == [0, 100, 200, 300]
    assert doc["bytes_freed"] == doc["bytes_to_free"] > 0
    assert steps_on_disk(tenure_root) == [400]
    assert (tenure_root / "500.orbax-checkpoint-tmp").is_dir()
    assert (tenure_root / "notes.txt").is_file()
    assert not (tenure_root / ".tenure-writer.lock").exists()  # released
    with tenure.Checkpointer(tenure_root, read_only=True) as ckptr:
        assert ckptr.load()["name"] == "mlp"


def test_a_root_locked_by_another_writer_is_refused_with_exit_3(tenure_root: Path) -> None:
    with tenure.Checkpointer(tenure_root):
        result = run_tenure("prune", tenure_root, "--keep", "LatestN(1)", "--yes")
    assert result.returncode == 3
    assert "being written by another Checkpointer" in result.stderr
    assert steps_on_disk(tenure_root) == list(STEPS)


def test_on_a_terminal_it_asks_and_deletes_on_yes(tenure_root: Path) -> None:
    primary, replica = os.openpty()
    try:
        os.write(primary, b"y\n")
        result = subprocess.run(
            [sys.executable, "-m", "tenure", "prune", str(tenure_root), "--keep", KEEP],
            stdin=replica,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.close(primary)
        os.close(replica)
    assert result.returncode == 0, result.stderr
    assert "Delete 3 checkpoints" in result.stderr
    assert "Deleted 3 checkpoints, freed" in result.stdout
    assert steps_on_disk(tenure_root) == [300, 400]


def test_an_orbax_root_is_pruned_and_stays_readable_by_orbax(tmp_path: Path) -> None:
    import orbax.checkpoint.experimental.v1 as ocp1

    root = write_orbax_v1_root(tmp_path / "orbax")
    result = run_tenure("prune", root, "--keep", "LatestN(1)", "--yes")
    assert result.returncode == 0, result.stderr
    with ocp1.training.Checkpointer(root) as ckptr:
        assert [c.step for c in ckptr.checkpoints] == [20]
        assert json.dumps(ckptr.load()["w"].tolist()) == json.dumps([20.0 + i for i in range(6)])
