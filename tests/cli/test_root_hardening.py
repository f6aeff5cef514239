"""The commands on roots holding foreign and damaged entries (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

from tenure.cli.verification import verify_step
from tenure.io import root as rootfs
from tests.cli.conftest import run_json, run_tenure


def test_prune_never_deletes_a_numbered_user_folder(tenure_root: Path) -> None:
    folder = tenure_root / "150"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    doc = run_json("prune", tenure_root, "--keep", "LatestN(1)", "--yes")
    assert doc["deleted"] == [0, 100, 200, 300]
    assert (folder / "notes.txt").read_text() == "mine"


def test_a_damaged_step_is_listed_apart_reported_by_verify_and_pruned_on_request(
    tenure_root: Path,
) -> None:
    meta = tenure_root / "100" / rootfs.STEP_METADATA_FILE
    meta.write_bytes(meta.read_bytes()[:20])

    listed = run_tenure("ls", tenure_root, "--json")
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert [c["step"] for c in doc["checkpoints"]] == [0, 200, 300, 400]
    assert [d["step"] for d in doc["damaged"]] == [100]
    assert doc["layout"] == "orbax"
    assert "warning: damaged checkpoint" in listed.stderr
    assert "step 100" in listed.stderr

    text = run_tenure("ls", tenure_root)
    assert "step 100: " in text.stdout
    assert "tenure prune --damaged" in text.stdout

    verified = run_tenure("verify", tenure_root, "--json")
    assert verified.returncode == 1
    doc = json.loads(verified.stdout)
    assert [s["step"] for s in doc["steps"] if not s["ok"]] == [100]
    assert run_tenure("verify", tenure_root, "100").returncode == 1

    kept = run_json("prune", tenure_root, "--keep", "LatestN(1)", "--yes")
    assert kept["deleted"] == [0, 200, 300]
    assert meta.parent.is_dir()  # a policy never deletes a damaged step
    pruned = run_json("prune", tenure_root, "--damaged", "--yes")
    assert pruned["deleted"] == [100]
    assert pruned["damaged"][0]["step"] == 100
    assert not meta.parent.exists()
    assert run_tenure("verify", tenure_root).returncode == 0


def test_prune_needs_a_policy_or_damaged(tenure_root: Path) -> None:
    result = run_tenure("prune", tenure_root, "--yes")
    assert result.returncode == 2
    assert "--damaged" in result.stderr


def test_a_step_deleted_while_verify_reads_it_is_no_damage(tmp_path: Path) -> None:
    assert verify_step(7, tmp_path / "7") is None
