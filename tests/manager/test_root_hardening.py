"""Foreign, damaged and hostile entries in a root never cost a checkpoint (issue 11).

Each test reproduces one way a careful attacker broke the promise before: a user folder
with a numeric name, a damaged step, a symlinked step, leftovers of killed deletions, a
reader racing the writer's retention.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tenure
from tenure.io import root as rootfs
from tenure.manager import DamagedCheckpointWarning, StepNotFoundError
from tenure.retention import FixedIntervalPolicy, LatestN


def state(step: int) -> dict[str, Any]:
    return {"w": np.full(3, step, np.float32), "step": np.int64(step)}


def writer(root: Path, **options: Any) -> tenure.Checkpointer:
    options.setdefault("save_decision_policy", FixedIntervalPolicy(10))
    return tenure.Checkpointer(root, **options)


def user_folder(path: Path) -> Path:
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    return path


def test_a_numbered_user_folder_is_not_a_step_and_survives_retention(tmp_path: Path) -> None:
    with writer(tmp_path, preservation_policy=LatestN(1)) as ckptr:
        ckptr.save(10, state(10))
        user_folder(tmp_path / "2024")
        ckptr.reload()
        assert [c.step for c in ckptr.checkpoints] == [10]
        ckptr.save(20, state(20))
        ckptr.save(30, state(30))
        assert [c.step for c in ckptr.checkpoints] == [30]
        assert ckptr.load()["step"] == 30
    assert (tmp_path / "2024" / "notes.txt").read_text() == "mine"
    with writer(tmp_path, read_only=True) as reader:
        assert reader.latest is not None
        assert reader.latest.step == 30


def test_saving_over_a_user_folder_is_refused_and_loses_nothing(tmp_path: Path) -> None:
    user_folder(tmp_path / "40")
    with writer(tmp_path) as ckptr:
        with pytest.raises(tenure.io.CheckpointExistsError, match="not a checkpoint"):
            ckptr.save(40, state(40))
        with pytest.raises(tenure.io.CheckpointExistsError, match="not a checkpoint"):
            ckptr.save(40, state(40), force=True, overwrite=True)
    assert (tmp_path / "40" / "notes.txt").read_text() == "mine"


def damage_metadata(step_dir: Path, how: str) -> None:
    meta = step_dir / rootfs.STEP_METADATA_FILE
    if how == "truncated":
        meta.write_bytes(meta.read_bytes()[:17])
    else:
        doc = json.loads(meta.read_text())
        doc["init_timestamp_nsecs"] = {"string": "soon", "huge": 10**30, "float": 1e30}[how]
        meta.write_text(json.dumps(doc))


@pytest.mark.parametrize("how", ["truncated", "string", "huge", "float"])
def test_a_damaged_step_is_quarantined_not_fatal(tmp_path: Path, how: str) -> None:
    with writer(tmp_path) as ckptr:
        ckptr.save(10, state(10))
        ckptr.save(20, state(20))
    damage_metadata(tmp_path / "10", how)
    with pytest.warns(DamagedCheckpointWarning, match="step 10"):
        reader = writer(tmp_path, read_only=True)
    assert [c.step for c in reader.checkpoints] == [20]
    assert [d.step for d in reader.damaged] == [10]
    assert reader.load()["step"] == 20
    with pytest.warns(DamagedCheckpointWarning):
        resumed = writer(tmp_path)
    with resumed:
        assert resumed.load()["step"] == 20  # the run resumes from its intact step


def test_retention_neither_loads_nor_deletes_a_damaged_step(tmp_path: Path) -> None:
    with writer(tmp_path) as ckptr:
        ckptr.save(10, state(10))
    damage_metadata(tmp_path / "10", "truncated")
    with pytest.warns(DamagedCheckpointWarning):
        ckptr = writer(tmp_path, preservation_policy=LatestN(1))
    with ckptr:
        ckptr.save(20, state(20))
        ckptr.save(30, state(30))
        assert [c.step for c in ckptr.checkpoints] == [30]
        assert (tmp_path / "10").is_dir()
        with pytest.raises(tenure.StepAlreadyExistsError, match="damaged"):
            ckptr.save(10, state(10), force=True)
        ckptr.delete(10)  # the explicit act that removes it
        assert ckptr.damaged == []
    assert not (tmp_path / "10").exists()
    assert rootfs.leftovers(tmp_path) == []


def test_overwrite_replaces_a_damaged_step(tmp_path: Path) -> None:
    with writer(tmp_path) as ckptr:
        ckptr.save(10, state(10))
    damage_metadata(tmp_path / "10", "truncated")
    with pytest.warns(DamagedCheckpointWarning):
        ckptr = writer(tmp_path)
    with ckptr:
        assert ckptr.save(10, state(11), force=True, overwrite=True)
        assert ckptr.damaged == []
        assert ckptr.load(10)["step"] == 11


def test_deeply_nested_step_metadata_is_damage_not_a_recursion_error(tmp_path: Path) -> None:
    with writer(tmp_path) as ckptr:
        ckptr.save(10, state(10))
        ckptr.save(20, state(20))
    (tmp_path / "10" / rootfs.STEP_METADATA_FILE).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.warns(DamagedCheckpointWarning):
        reader = writer(tmp_path, read_only=True)
    assert [d.step for d in reader.damaged] == [10]
    assert reader.load()["step"] == 20


def test_a_symlinked_step_is_never_listed_followed_or_deleted(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    with writer(elsewhere) as other:
        other.save(5, state(5), force=True)
    with writer(root, preservation_policy=LatestN(1)) as ckptr:
        ckptr.save(10, state(10))
        (root / "7").symlink_to(elsewhere / "5", target_is_directory=True)
        (root / "8.orbax-checkpoint-tmp.tenure-deleting").symlink_to(elsewhere)
        ckptr.reload()
        assert [c.step for c in ckptr.checkpoints] == [10]
        ckptr.save(20, state(20))
        assert [c.step for c in ckptr.checkpoints] == [20]
    with writer(root) as reopened:  # removes the leftover link, never what it points to
        assert [c.step for c in reopened.checkpoints] == [20]
    assert (root / "7").is_symlink()
    assert not (root / "8.orbax-checkpoint-tmp.tenure-deleting").exists()
    assert tenure.io.load_pytree(elsewhere / "5")["step"] == 5


def test_leftovers_of_killed_deletions_go_at_the_next_writable_open(tmp_path: Path) -> None:
    with writer(tmp_path) as ckptr:
        ckptr.save(10, state(10))
    for step in range(11):
        retired = tmp_path / f"{step}.orbax-checkpoint-tmp.tenure-deleting"
        (retired / "state").mkdir(parents=True)
    (tmp_path / "99.orbax-checkpoint-tmp").mkdir()  # an unfinished save: not ours to judge
    with writer(tmp_path, read_only=True):
        assert len(rootfs.leftovers(tmp_path)) == 12  # readers never delete
    with writer(tmp_path) as ckptr:
        assert [c.step for c in ckptr.checkpoints] == [10]
    assert [leftover.kind for leftover in rootfs.leftovers(tmp_path)] == ["unfinished-save"]


def test_a_step_deleted_under_a_reader_is_not_found_not_corrupt(tmp_path: Path) -> None:
    with writer(tmp_path, preservation_policy=LatestN(1)) as ckptr:
        ckptr.save(10, state(10))
        reader = writer(tmp_path, read_only=True)
        assert reader.latest is not None
        ckptr.save(20, state(20))  # retention deletes step 10
        with pytest.raises(StepNotFoundError, match=r"deleted .* while it was read"):
            reader.load(10)
        with pytest.raises(StepNotFoundError, match=r"deleted .* while it was read"):
            reader.metadata(10)


def test_opening_a_root_with_no_damage_warns_nothing(tmp_path: Path) -> None:
    with writer(tmp_path) as ckptr:
        ckptr.save(10, state(10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        writer(tmp_path, read_only=True).close()
