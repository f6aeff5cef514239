"""Bytes per item and thinning: the Checkpointer records what each item of a step occupies,
removes the items a plan thins (crash-safely), and a thinned step stays a checkpoint that
tenure and Orbax load with fewer items."""

from __future__ import annotations

import random
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orbax.checkpoint as ocp
import orbax.checkpoint.experimental.v1 as ocp1
import pytest

import tenure
from tenure.io import ItemNotFoundError, Location, ObjectPath
from tenure.io import root as rootfs
from tenure.manager import OverBudgetWarning
from tenure.retention import EveryNSteps, FixedIntervalPolicy, LatestN, WithinBytes, simulate
from tests.manager.loops import kill_at_save


def state(step: int) -> dict[str, Any]:
    """Parameters and an optimizer state twice their size, as with Adam."""
    params = {"w": np.full(64, step, np.float32)}
    return {"params": params, "opt_state": {"mu": np.zeros(128, np.float32) + step}}


def items_on_disk(step_dir: Location) -> list[str]:
    """The items a step holds: as its metadata lists them, checked against its directories."""
    listed = list(tenure.io.read_step_metadata(step_dir).item_names)
    held = sorted(p.name for p in step_dir.iterdir() if p.name in ("params", "opt_state"))
    assert held == listed
    return listed


def test_the_manager_leaves_what_the_simulator_predicts_and_orbax_loads_thinned_params(
    tmp_path: Path,
) -> None:
    """The issue's acceptance: 100 saves of params and opt_state under
    `LatestN(3) | EveryNSteps(10).only("params")`."""
    keep = LatestN(3) | EveryNSteps(10).only("params")
    with tenure.Checkpointer(
        tmp_path, save_decision_policy=FixedIntervalPolicy(1), preservation_policy=keep
    ) as ckptr:
        for step in range(100):
            ckptr.save_checkpointables(step, state(step))
        sizes = dict(ckptr.checkpoints[-1].item_bytes or {})
    predicted = simulate(
        FixedIntervalPolicy(1),
        keep,
        steps=100,
        start_time=datetime(2026, 1, 1, tzinfo=UTC),
        step_duration=timedelta(seconds=1),
        item_bytes=sizes,
    )
    expected = {step: sorted(items) for step, items in predicted.kept_items.items()}
    assert expected == {
        **{step: ["params"] for step in range(0, 100, 10)},
        **{step: ["opt_state", "params"] for step in (97, 98, 99)},
    }
    with tenure.Checkpointer(tmp_path, read_only=True) as reader:
        on_disk = {c.step: items_on_disk(c.path) for c in reader.checkpoints}
        described = {c.step: sorted(c.item_bytes or ()) for c in reader.checkpoints}
    assert on_disk == described == expected

    with ocp1.training.Checkpointer(tmp_path) as orbax_v1:
        loaded = orbax_v1.load_checkpointables(50, {"params": None})
    np.testing.assert_array_equal(loaded["params"]["w"], state(50)["params"]["w"])
    manager = ocp.CheckpointManager(tmp_path)
    restored = manager.restore(50, args=ocp.args.Composite(params=ocp.args.PyTreeRestore()))
    np.testing.assert_array_equal(restored["params"]["w"], state(50)["params"]["w"])
    manager.close()


def test_item_bytes_are_recorded_at_save_and_read_back_at_open(root: Location) -> None:
    with tenure.Checkpointer(root) as ckptr:
        ckptr.save_checkpointables(1, state(1))
        saved = ckptr.checkpoints[0].item_bytes
        path = ckptr.checkpoints[0].path
    assert saved is not None
    assert set(saved) == {"params", "opt_state"}
    assert saved["opt_state"] > saved["params"] > 0
    assert saved == rootfs.measure_item_bytes(path, ["params", "opt_state"])
    with tenure.Checkpointer(root, read_only=True) as reader:
        assert reader.checkpoints[0].item_bytes == saved
        assert reader.plan().decisions[0].step == 1


def test_an_orbax_written_step_has_its_item_bytes_measured(tmp_path: Path) -> None:
    with ocp1.training.Checkpointer(tmp_path) as orbax_v1:
        orbax_v1.save_checkpointables(3, state(3))
    with tenure.Checkpointer(tmp_path, read_only=True) as reader:
        (entry,) = reader.checkpoints
    assert entry.item_bytes is not None
    assert set(entry.item_bytes) == {"params", "opt_state"}
    assert all(size > 0 for size in entry.item_bytes.values())


def thinned_root(root: Location) -> tenure.Checkpointer:
    """A root whose step 0 keeps only its params, saved with steps 1 to 3 whole."""
    ckptr = tenure.Checkpointer(
        root,
        save_decision_policy=FixedIntervalPolicy(1),
        preservation_policy=LatestN(3) | EveryNSteps(10).only("params"),
    )
    for step in range(4):
        ckptr.save_checkpointables(step, state(step), metrics={"loss": 1.0 / (1 + step)})
    return ckptr


def test_a_thinned_step_loads_with_fewer_items_and_names_what_it_still_has(
    root: Location,
) -> None:
    with thinned_root(root) as ckptr:
        step0 = ckptr.checkpoints[0]
        assert items_on_disk(step0.path) == ["params"]
        loaded = ckptr.load_checkpointables(0)
        assert list(loaded) == ["params"]
        np.testing.assert_array_equal(loaded["params"]["w"], state(0)["params"]["w"])
        with pytest.raises(ItemNotFoundError, match=r"retention removed it.*\['params'\]") as e:
            ckptr.load(0, checkpointable_name="opt_state")
        assert e.value.available == ("params",)
        assert e.value.thinned == ("opt_state",)
        with pytest.raises(ItemNotFoundError, match="has no checkpointable 'nothing'"):
            ckptr.load(1, checkpointable_name="nothing")
        assert tenure.io.verify(step0.path) == 1  # healthy: one array left
        assert ckptr.metadata(0).metrics == {"loss": 1.0}


def test_a_second_pass_changes_nothing(root: Location) -> None:
    with thinned_root(root) as ckptr:
        step0 = ckptr.checkpoints[0].path
        assert rootfs.thin_step(step0, ["opt_state"]) == []
        assert items_on_disk(step0) == ["params"]


def test_thinning_every_item_is_refused(tmp_path: Path) -> None:
    tenure.io.save_checkpointables(tmp_path / "1", state(1))
    with pytest.raises(ValueError, match="delete the step instead"):
        rootfs.thin_step(tmp_path / "1", ["params", "opt_state"])
    assert items_on_disk(tmp_path / "1") == ["opt_state", "params"]


def test_on_an_object_store_the_items_go_after_the_metadata(s3_root: ObjectPath) -> None:
    with thinned_root(s3_root) as ckptr:
        step0 = ckptr.checkpoints[0].path
    assert not any(key.startswith("opt_state/") for key in step0.list_keys())
    assert items_on_disk(step0) == ["params"]
    assert rootfs.thinned_items(step0) == ("opt_state",)


def test_a_thinning_killed_before_its_intent_leaves_the_step_whole(root: Location) -> None:
    with tenure.Checkpointer(root) as ckptr:
        ckptr.save_checkpointables(5, state(5))
    aside = rootfs.thinning_path(root / "5")
    aside.mkdir()
    (aside / rootfs.STEP_METADATA_FILE).write_text("{}")  # prepared, no intent written yet
    with tenure.Checkpointer(root) as ckptr:
        assert not aside.exists()
        assert items_on_disk(ckptr.checkpoints[0].path) == ["opt_state", "params"]
        assert set(ckptr.checkpoints[0].item_bytes or ()) == {"opt_state", "params"}


@pytest.mark.parametrize("done", [0, 1, 2])
def test_a_thinning_killed_after_its_intent_is_finished_at_the_next_open(
    root: Location, monkeypatch: pytest.MonkeyPatch, done: int
) -> None:
    """Killed at the worst moments: the new files and the intent are durable beside the
    step, and none, one or two of the new files were put in place."""
    with tenure.Checkpointer(root) as ckptr:
        ckptr.save_checkpointables(5, state(5))
    aside = rootfs.thinning_path(root / "5")
    with monkeypatch.context() as patch:
        patch.setattr(rootfs, "_finish_thinning", lambda aside: None)  # the kill
        rootfs.thin_step(root / "5", ["opt_state"])
    for name in [rootfs.ITEMS_FILE, rootfs.STEP_METADATA_FILE][:done]:
        (root / "5" / name).write_bytes((aside / name).read_bytes())
    assert [leftover.kind for leftover in rootfs.leftovers(root)] == ["interrupted-thin"]
    with tenure.Checkpointer(root) as ckptr:
        assert rootfs.leftovers(root) == []
        (entry,) = ckptr.checkpoints
        assert items_on_disk(entry.path) == ["params"]
        assert set(entry.item_bytes or ()) == {"params"}
        assert tenure.io.verify(entry.path) == 1


LOOP = """
import sys
import numpy as np
import tenure
from tenure.retention import EveryNSteps, FixedIntervalPolicy, LatestN

root = sys.argv[1]
keep = LatestN(2) | EveryNSteps(2).only("params")
with tenure.Checkpointer(root, save_decision_policy=FixedIntervalPolicy(1),
                         preservation_policy=keep) as ckptr:
    start = ckptr.latest.step + 1 if ckptr.latest else 0
    for step in range(start, start + 1000):
        print(f"saving {step}", flush=True)
        ckptr.save_checkpointables(step, {"params": {"w": np.full(20_000, step, np.float32)},
                                          "opt_state": {"mu": np.zeros(40_000, np.float32)}})
"""


@pytest.mark.parametrize("trial", range(4))
def test_a_loop_killed_while_thinning_restarts_with_consistent_steps(
    tmp_path: Path, trial: int
) -> None:
    kill_at = random.Random(trial).randrange(3, 8)
    kill_at_save(LOOP, [str(tmp_path)], kill_at)
    with tenure.Checkpointer(tmp_path) as ckptr:
        # An unfinished save may stay (it is replaced when that step is saved again).
        kinds = {leftover.kind for leftover in rootfs.leftovers(tmp_path)}
        assert kinds <= {"unfinished-save"}
        assert ckptr.latest is not None
        for entry in ckptr.checkpoints:
            assert items_on_disk(entry.path) == sorted(entry.item_bytes or ())
            tenure.io.verify(entry.path)
            params = ckptr.load(entry, checkpointable_name="params")
            assert params["w"][0] == entry.step


def test_a_budget_the_newest_steps_alone_exceed_is_warned_once(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tenure.Checkpointer(
            tmp_path,
            save_decision_policy=FixedIntervalPolicy(1),
            preservation_policy=WithinBytes(LatestN(3), 16),
        ) as ckptr:
            for step in range(3):
                ckptr.save_checkpointables(step, state(step))
    over = [w for w in caught if issubclass(w.category, OverBudgetWarning)]
    assert len(over) == 1
    assert "byte budget" in str(over[0].message)


@pytest.mark.parametrize("record", [b"{not json", b'{"item_bytes": {"state": 1}}'])
def test_a_damaged_or_stale_items_record_is_measured_again(tmp_path: Path, record: bytes) -> None:
    with tenure.Checkpointer(tmp_path) as ckptr:
        ckptr.save_checkpointables(1, state(1))
        recorded = ckptr.checkpoints[0].item_bytes
    (tmp_path / "1" / rootfs.ITEMS_FILE).write_bytes(record)
    with tenure.Checkpointer(tmp_path, read_only=True) as reader:
        assert reader.checkpoints[0].item_bytes == recorded


def test_thin_removes_items_on_request_and_the_plan_sees_it(tmp_path: Path) -> None:
    with tenure.Checkpointer(tmp_path, preservation_policy=LatestN(5)) as ckptr:
        for step in (1, 2):
            ckptr.save_checkpointables(step, state(step), force=True)
        ckptr.thin(1, ["opt_state", "not-saved"])
        assert ckptr.checkpoints[0].item_bytes is not None
        assert set(ckptr.checkpoints[0].item_bytes) == {"params"}
        assert items_on_disk(ckptr.checkpoints[0].path) == ["params"]
        with pytest.raises(ValueError, match="delete the step instead"):
            ckptr.thin(2, ["params", "opt_state"])
        assert items_on_disk(ckptr.checkpoints[1].path) == ["opt_state", "params"]
        with pytest.raises(tenure.StepNotFoundError):
            ckptr.thin(3, ["opt_state"])
