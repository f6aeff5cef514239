"""`tenure verify`: intact roots pass, every damaged array is named, exit status 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenure import io
from tests.cli.conftest import STEPS, flip_byte, run_tenure, state

VERIFY_KEYS = {"root", "ok", "steps", "deleted_while_verifying"}
STEP_KEYS = {"step", "path", "ok", "arrays_checked", "damaged"}


def test_intact_roots_written_by_tenure_and_orbax_verify(
    tenure_root: Path, orbax_roots: dict[str, Path]
) -> None:
    for root, steps, arrays in ((tenure_root, 5, 4), (orbax_roots["v1"], 2, 1)):
        result = run_tenure("verify", root)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(f": ok ({arrays} arrays)") == steps
        assert f"{steps} steps verified, all intact." in result.stdout
    assert run_tenure("verify", orbax_roots["v0"], "6").returncode == 0


@pytest.fixture
def per_array_root(tmp_path: Path) -> Path:
    """The CLI tests' steps in the layout of one directory per array, where a byte flipped in
    one array's chunk damages that array alone."""
    root = tmp_path / "per-array"
    for step in STEPS:
        io.save_pytree(root / str(step), state(step), layout=io.ArrayLayout(ocdbt=False))
    return root


def test_every_damaged_array_is_reported_and_exit_status_is_1(per_array_root: Path) -> None:
    import json

    tenure_root = per_array_root
    flip_byte(tenure_root / "100" / "state" / "params.b" / "c" / "0")
    flip_byte(tenure_root / "100" / "state" / "layers.0" / "c" / "0" / "0")
    flip_byte(tenure_root / "300" / "state" / "params.w" / "c" / "5")  # one shard of eight
    result = run_tenure("verify", tenure_root, "--json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == VERIFY_KEYS
    assert doc["ok"] is False
    assert all(set(step) == STEP_KEYS for step in doc["steps"])
    damaged = {step["step"]: sorted(d["array"] for d in step["damaged"]) for step in doc["steps"]}
    assert damaged == {
        0: [],
        100: ["layers.0", "params.b"],
        200: [],
        300: ["params.w"],
        400: [],
    }
    hit = doc["steps"][1]["damaged"][0]
    assert hit["checkpointable"] == "state"
    assert "corrupted" in hit["error"]

    one = run_tenure("verify", tenure_root, "300")
    assert one.returncode == 1
    assert "step 300: DAMAGED" in one.stdout
    assert "state/params.w: array 'params.w'" in one.stdout
    assert "1 steps verified, 1 damaged." in one.stdout


def test_damaged_data_in_the_default_layout_is_reported(tenure_root: Path) -> None:
    """The default layout packs every array of an item into a few OCDBT data files; a byte
    flipped in one of them is found, and the step is reported damaged."""
    data_files = sorted(
        (tenure_root / "100" / "state" / "d").iterdir(), key=lambda p: p.stat().st_size
    )
    flip_byte(data_files[-1])
    result = run_tenure("verify", tenure_root, "100")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "step 100: DAMAGED" in result.stdout
    assert run_tenure("verify", tenure_root, "200").returncode == 0


def test_a_damaged_metadata_file_is_reported(tenure_root: Path) -> None:
    (tenure_root / "200" / "state" / "_METADATA").write_text("{not json")
    result = run_tenure("verify", tenure_root, "200")
    assert result.returncode == 1
    assert "state: " in result.stdout
    assert "_METADATA is not valid JSON" in result.stdout
