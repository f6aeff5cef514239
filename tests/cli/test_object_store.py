"""The commands on an S3 root (a moto server on loopback): steps, leftovers without their
commit marker, unknown sizes, damage, pruning and the store's own errors."""

from __future__ import annotations

import json

import pytest

import tenure
from tenure.io import ObjectPath
from tests.cli.conftest import NOW, STEPS, run_json, run_tenure, write_tenure_root

KEEP = "BestN(metric='loss', mode='min', n=1) | LatestN(1)"


@pytest.fixture
def s3_tenure_root(s3_root: ObjectPath) -> ObjectPath:
    """Five committed steps; step 500 crashed before its marker; a foreign file and prefix."""
    write_tenure_root(s3_root)
    (s3_root / "500" / "state" / "_METADATA").write_text("{}")
    (s3_root / "notes.txt").write_text("not a step")
    (s3_root / "logs" / "run.log").write_text("not a step either")
    return s3_root


def committed_steps(root: ObjectPath) -> list[int]:
    with tenure.Checkpointer(root, read_only=True) as reader:
        return [c.step for c in reader.checkpoints]


def test_ls_lists_steps_with_unknown_sizes_and_unmarked_prefixes_apart(
    s3_tenure_root: ObjectPath,
) -> None:
    # A deletion interrupted after it removed the marker leaves the same as a crashed save.
    (s3_tenure_root / "100" / "commit_success.txt").unlink()
    doc = run_json("ls", s3_tenure_root, "--keep", KEEP, "--now", NOW)
    assert doc["root"] == str(s3_tenure_root)
    rows = doc["checkpoints"]
    assert [row["step"] for row in rows] == [0, 200, 300, 400]
    assert [row["path"] for row in rows] == [str(s3_tenure_root / str(r["step"])) for r in rows]
    assert [row["keep"] for row in rows] == [False, False, True, True]
    assert all(row["bytes"] is None for row in rows)
    assert doc["total_bytes"] is None
    assert doc["incomplete"] == [
        {
            "name": name,
            "path": str(s3_tenure_root / name),
            "step": int(name),
            "kind": "unfinished-save",
            "bytes": None,
            "modified": None,
        }
        for name in ("100", "500")
    ]

    text = run_tenure("ls", s3_tenure_root, "--keep", KEEP, "--now", NOW)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    size_column = lines[0].index("size") + len("size") - 1
    assert all(line[size_column] == "-" for line in lines[1:5])
    assert "4 checkpoints; " in text.stdout  # no total size
    assert "would delete 2." in text.stdout
    assert "unfinished-save  500  -  modified -" in text.stdout


def test_inspect_and_verify_read_an_s3_root(s3_tenure_root: ObjectPath) -> None:
    doc = run_json("inspect", s3_tenure_root)
    assert (doc["step"], doc["path"], doc["bytes"]) == (400, str(s3_tenure_root / "400"), None)
    (item,) = doc["checkpointables"]
    arrays = {array["name"]: array for array in item["arrays"]}
    assert sorted(arrays) == ["layers.0", "layers.1", "params.b", "params.w"]
    assert arrays["params.w"]["sharding"]["partition_spec"] == ["x"]
    assert len(arrays["params.w"]["checksums"]) == 8
    text = run_tenure("inspect", s3_tenure_root, "100")
    assert text.returncode == 0, text.stderr
    assert "on disk     -" in text.stdout

    intact = run_tenure("verify", s3_tenure_root)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert f"{len(STEPS)} steps verified, all intact." in intact.stdout

    data = [key for key in (s3_tenure_root / "300").list_keys() if key.startswith("state/d/")]
    assert data
    for key in data:
        chunk = s3_tenure_root / "300" / key
        damaged = bytearray(chunk.read_bytes())
        damaged[len(damaged) // 2] ^= 0xFF
        chunk.write_bytes(bytes(damaged))
    result = run_tenure("verify", s3_tenure_root, "--json")
    assert result.returncode == 1, result.stderr
    verdicts = {step["step"]: step["ok"] for step in json.loads(result.stdout)["steps"]}
    assert verdicts == {0: True, 100: True, 200: True, 300: False, 400: True}


def test_prune_deletes_steps_and_leaves_unmarked_prefixes_and_foreign_keys(
    s3_tenure_root: ObjectPath,
) -> None:
    dry = run_tenure("prune", s3_tenure_root, "--keep", "~PreserveAll()", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "keeps 1, deletes 4." in dry.stdout  # no size: it is unknown
    assert committed_steps(s3_tenure_root) == list(STEPS)

    doc = run_json("prune", s3_tenure_root, "--keep", "~PreserveAll()", "--yes")
    assert doc["deleted"] == [0, 100, 200, 300]
    assert doc["bytes_to_free"] is None
    assert doc["bytes_freed"] is None
    assert all(c["bytes"] is None for c in doc["checkpoints"])
    assert committed_steps(s3_tenure_root) == [400]
    assert not (s3_tenure_root / "0").exists()
    assert (s3_tenure_root / "500" / "state" / "_METADATA").is_file()
    assert (s3_tenure_root / "notes.txt").is_file()
    assert (s3_tenure_root / "logs" / "run.log").is_file()
    with tenure.Checkpointer(s3_tenure_root, read_only=True) as reader:
        assert reader.load()["name"] == "mlp"


def test_store_errors_and_bad_urls_exit_2(s3_root: ObjectPath) -> None:
    empty = run_tenure("ls", s3_root)
    assert empty.returncode == 2
    assert f"{s3_root} holds no objects" in empty.stderr
    missing = run_tenure("prune", "s3://no-such-bucket/run", "--keep", "LatestN(1)", "--yes")
    assert missing.returncode == 2
    assert "the bucket does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    scheme = run_tenure("verify", "ftp://host/run")
    assert scheme.returncode == 2
    assert "is not an object-store root" in scheme.stderr


def test_a_store_failure_is_no_verdict_on_the_step(s3_root: ObjectPath) -> None:
    """verify reports damage only when the store answered: a store error propagates."""
    from tenure.cli.verification import verify_step

    with pytest.raises(tenure.io.StorageError, match="bucket does not exist"):
        verify_step(1, ObjectPath("s3", "no-such-bucket", "run/1"))
