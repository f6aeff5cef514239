"""Kauldron workdirs written by Orbax the way Kauldron writes them resume under tenure's
Kauldron surface, and Kauldron's Orbax manager resumes tenure's, against the real
orbax-checkpoint package (Kauldron itself needs Python >= 3.12 and is not installed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orbax.checkpoint as ocp
import pytest

import tenure
import tenure.args as args
from tenure.compat import CheckpointManager, CheckpointManagerOptions, InvalidOptionsError
from tenure.compat.kauldron import Checkpointer, layouts_in


def kauldron_manager(workdir: Path, *, create: bool = True) -> ocp.CheckpointManager:
    """The Orbax manager Kauldron's Checkpointer builds for a `StandardCheckpointItem` state,
    with the options it passes (kauldron/checkpoints/checkpointer.py `_ckpt_mgr` and
    lazy_checkpoint_manager.py, google-research/kauldron commit c9b3ec8)."""
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=10,
        max_to_keep=3,
        step_prefix="ckpt",
        create=create,
        async_options=ocp.AsyncOptions(timeout_secs=60 * 30),
        file_options=ocp.checkpoint_manager.FileOptions(path_permission_mode=0o770),
    )
    return ocp.CheckpointManager(
        workdir / "checkpoints", options=options, item_handlers=ocp.StandardCheckpointHandler()
    )


def state(step: int) -> dict[str, Any]:
    return {
        "params": {"w": np.arange(6.0).reshape(2, 3) + step},
        "step": np.asarray(step, np.int64),
    }


def check(out: Any, step: int) -> None:
    np.testing.assert_array_equal(np.asarray(out["params"]["w"]), state(step)["params"]["w"])
    assert int(out["step"]) == step


def test_a_kauldron_workdir_resumes_under_tenure_and_kauldron_resumes_it_back(
    tmp_path: Path,
) -> None:
    """Issue 17, defect 1: the run resumes at Kauldron's latest step, not from scratch, and
    the steps tenure adds are seen and restored by Kauldron's manager."""
    with kauldron_manager(tmp_path) as mngr:
        for step in range(31):
            mngr.save(step, args=ocp.args.StandardSave(state(step)))
        mngr.wait_until_finished()
    assert layouts_in(tmp_path / "checkpoints") == ["kauldron"]

    with Checkpointer(workdir=tmp_path, save_interval_steps=10, max_to_keep=3) as ckpt:
        assert ckpt.all_steps == [10, 20, 30]
        resumed = ckpt.restore(state(0), noop_if_missing=True)
        check(resumed, 30)
        for step in range(int(resumed["step"]) + 1, 51):
            ckpt.maybe_save(state(step), step=step)
        ckpt.wait_until_finished()
        assert ckpt.all_steps == [30, 40, 50]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir()) == [
        "ckpt_30",
        "ckpt_40",
        "ckpt_50",
    ]

    with kauldron_manager(tmp_path, create=False) as mngr:
        assert list(mngr.all_steps()) == [30, 40, 50]
        assert mngr.latest_step() == 50
        check(mngr.restore(50, args=ocp.args.StandardRestore(state(0))), 50)
        check(mngr.restore(30, args=ocp.args.StandardRestore(state(0))), 30)


def test_the_train_state_restores_from_a_kauldron_trainer_step(tmp_path: Path) -> None:
    """Kauldron's trainer saves its `CheckpointState`: the train state as the `default` item
    beside other items (kauldron/train/checkpoint_state.py); tenure restores the state."""
    options = ocp.CheckpointManagerOptions(step_prefix="ckpt")
    with ocp.CheckpointManager(tmp_path / "checkpoints", options=options) as mngr:
        mngr.save(
            100,
            args=ocp.args.Composite(
                default=ocp.args.StandardSave(state(100)),
                timer=ocp.args.JsonSave({"initial_training_time_hours": 1.5}),
            ),
        )
        mngr.wait_until_finished()
    with Checkpointer(workdir=tmp_path, save_interval_steps=100) as ckpt:
        assert ckpt.latest_step == 100
        check(ckpt.restore(state(0)), 100)


def test_an_evaluator_before_the_trainer_sees_what_orbax_sees(tmp_path: Path) -> None:
    """Issue 17, defect 2: Orbax's manager, as Kauldron configures an evaluator's
    (`create=False`), takes a missing root for an empty one; so does tenure."""
    with kauldron_manager(tmp_path / "orbax", create=False) as mngr:
        orbax_view = (mngr.latest_step(), list(mngr.all_steps()))
    evaluator = Checkpointer(workdir=tmp_path / "tenure", save_interval_steps=10, create=False)
    assert (evaluator.latest_step, list(evaluator.all_steps)) == orbax_view == (None, [])
    evaluator.close()


def test_a_workdir_of_earlier_tenure_versions_keeps_its_layout(tmp_path: Path) -> None:
    """Steps as `checkpoints/<step>/` (this surface's layout before it followed Kauldron)
    still resume, and new steps join them in that layout rather than restarting."""
    old = CheckpointManager(tmp_path / "checkpoints", CheckpointManagerOptions())
    old.save(5, args=args.StandardSave(state(5)))
    old.close()
    with Checkpointer(workdir=tmp_path, save_interval_steps=1) as ckpt:
        assert ckpt.layout == "orbax"
        check(ckpt.restore(state(0)), 5)
        ckpt.save(state(6), step=6)
        ckpt.wait_until_finished()
        assert ckpt.all_steps == [5, 6]
    assert (tmp_path / "checkpoints" / "6" / "default").is_dir()


def test_a_workdir_with_both_layouts_is_refused(tmp_path: Path) -> None:
    tenure.io.save_pytree(tmp_path / "checkpoints" / "5", state(5))
    tenure.io.save_pytree(tmp_path / "checkpoints" / "ckpt_10", state(10))
    (tmp_path / "checkpoints" / "ckpt_20").mkdir()  # a folder, not a step: no layout
    ckpt = Checkpointer(workdir=tmp_path, save_interval_steps=1)
    assert layouts_in(ckpt.directory) == ["kauldron", "orbax"]
    with pytest.raises(InvalidOptionsError, match="both"):
        _ = ckpt.all_steps
