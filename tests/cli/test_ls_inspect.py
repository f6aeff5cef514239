"""`tenure ls` and `tenure inspect`, end to end in subprocesses on real roots."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import LOSSES, NOW, STEPS, run_json, run_tenure

KEEP = "BestN(metric='loss', mode='min', n=1) | LatestN(1)"
LS_KEYS = {
    "root",
    "now",
    "policy",
    "layout",
    "checkpoints",
    "damaged",
    "incomplete",
    "total_bytes",
}
LS_ROW_KEYS = {
    "step",
    "path",
    "time",
    "commit_time",
    "age_seconds",
    "bytes",
    "item_bytes",
    "metrics",
    "keep",
    "reasons",
    "thin",
}
INSPECT_KEYS = {
    "root",
    "step",
    "path",
    "time",
    "commit_time",
    "bytes",
    "metrics",
    "custom_metadata",
    "checkpointables",
}
ARRAY_KEYS = {"name", "keys", "shape", "dtype", "bytes", "sharding", "checksums"}


def add_leftovers(root: Path) -> None:
    unfinished = root / "500.orbax-checkpoint-tmp"
    unfinished.mkdir()
    (unfinished / "partial").write_bytes(b"x" * 10)
    (root / "0.orbax-checkpoint-tmp.tenure-deleting").mkdir()
    (root / "notes.txt").write_text("not a step")


def test_ls_lists_steps_with_verdicts_and_leftovers_apart(tenure_root: Path) -> None:
    add_leftovers(tenure_root)
    doc = run_json("ls", tenure_root, "--keep", KEEP, "--now", NOW)
    assert set(doc) == LS_KEYS
    assert doc["now"] == NOW
    rows = doc["checkpoints"]
    assert all(set(row) == LS_ROW_KEYS for row in rows)
    assert [row["step"] for row in rows] == list(STEPS)
    assert [row["time"] for row in rows] == [
        f"2026-01-01T0{hour}:00:00+00:00" for hour in range(len(STEPS))
    ]
    assert [row["metrics"] for row in rows] == [{"loss": LOSSES[s]} for s in STEPS]
    assert [row["keep"] for row in rows] == [False, False, False, True, True]
    assert rows[3]["reasons"] == ["BestN(metric='loss', mode='min', n=1): rank 1"]
    assert "newest checkpoint (never deleted)" in rows[4]["reasons"]
    assert all(row["bytes"] > 1000 for row in rows)
    assert doc["total_bytes"] == sum(row["bytes"] for row in rows)
    # One item, `state`, whose files are all the step's but its own metadata and metrics.
    assert all(list(row["item_bytes"]) == ["state"] for row in rows)
    assert all(0 < row["item_bytes"]["state"] < row["bytes"] for row in rows)
    assert all(row["thin"] == [] for row in rows)
    leftovers = {item["name"]: item for item in doc["incomplete"]}
    assert leftovers["500.orbax-checkpoint-tmp"]["kind"] == "unfinished-save"
    assert leftovers["500.orbax-checkpoint-tmp"]["step"] == 500
    assert leftovers["500.orbax-checkpoint-tmp"]["bytes"] == 10
    assert leftovers["0.orbax-checkpoint-tmp.tenure-deleting"]["kind"] == "interrupted-delete"
    assert "notes.txt" not in leftovers

    text = run_tenure("ls", tenure_root, "--keep", KEEP, "--now", NOW)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split()[:3] == ["step", "committed", "(local)"]
    assert "delete" in lines[1]
    assert "loss=1" in lines[1]
    assert "keep" in lines[4]
    assert "BestN" in lines[4]
    assert "5 checkpoints" in text.stdout
    assert "would delete 3" in text.stdout
    assert "unfinished-save  500.orbax-checkpoint-tmp" in text.stdout
    assert "\x1b[" not in text.stdout  # no colours off a terminal


def test_ls_and_inspect_read_orbax_roots(orbax_roots: dict[str, Path]) -> None:
    v1 = run_json("ls", orbax_roots["v1"])
    assert [(r["step"], r["metrics"]) for r in v1["checkpoints"]] == [
        (10, {"loss": 0.1}),
        (20, {"loss": 0.05}),
    ]
    assert v1["policy"] is None
    assert v1["checkpoints"][0]["keep"] is None
    v0 = run_json("ls", orbax_roots["v0"], "--keep", "LatestN(1)")
    assert [(r["step"], r["keep"]) for r in v0["checkpoints"]] == [(5, False), (6, True)]
    shown = run_json("inspect", orbax_roots["v0"], "5")
    (item,) = shown["checkpointables"]
    assert item["name"] == "default"
    assert item["kind"] == "pytree"
    (array,) = item["arrays"]
    assert (array["name"], array["shape"], array["dtype"]) == ("w", [3], "float64")
    assert array["checksums"] is None  # Orbax records none of its own


def test_inspect_shows_arrays_shardings_checksums_and_metadata(tenure_root: Path) -> None:
    doc = run_json("inspect", tenure_root)
    assert set(doc) == INSPECT_KEYS
    assert doc["step"] == 400  # the latest by default
    assert doc["metrics"] == {"loss": LOSSES[400]}
    assert doc["custom_metadata"] == {"run": "cli-test"}
    (item,) = doc["checkpointables"]
    assert (item["name"], item["kind"], item["strings"]) == ("state", "pytree", ["name"])
    arrays = {array["name"]: array for array in item["arrays"]}
    assert all(set(array) == ARRAY_KEYS for array in arrays.values())
    assert sorted(arrays) == ["layers.0", "layers.1", "params.b", "params.w"]
    w = arrays["params.w"]
    assert (w["shape"], w["dtype"], w["bytes"]) == ([64], "float32", 256)
    assert w["sharding"]["sharding_type"] == "NamedSharding"
    assert w["sharding"]["partition_spec"] == ["x"]
    assert len(w["checksums"]) == 8  # one per shard
    assert arrays["params.b"]["sharding"] is None
    assert len(arrays["params.b"]["checksums"]) == 1
    assert item["bytes"] == sum(array["bytes"] for array in arrays.values())

    text = run_tenure("inspect", tenure_root, "100")
    assert text.returncode == 0, text.stderr
    assert "step 100" in text.stdout
    assert "loss=0.3" in text.stdout
    assert '"run": "cli-test"' in text.stdout
    row = next(line for line in text.stdout.splitlines() if "params.w" in line)
    assert row.split()[1:3] == ["float32[64]", "256"]
    assert "NamedSharding(mesh x=8, spec ('x',))" in row
    assert "8 pieces" in row


def test_unknown_step_missing_root_and_bad_policy_exit_2(tenure_root: Path) -> None:
    missing_step = run_tenure("inspect", tenure_root, "7")
    assert missing_step.returncode == 2
    assert "step 7 has no committed checkpoint" in missing_step.stderr
    missing_root = run_tenure("ls", tenure_root / "nowhere")
    assert missing_root.returncode == 2
    assert "is not a directory" in missing_root.stderr
    bad_policy = run_tenure("ls", tenure_root, "--keep", "LatestN(3) | Bestn(n=1)")
    assert bad_policy.returncode == 2
    assert "did you mean BestN?" in bad_policy.stderr
