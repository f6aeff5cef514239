"""tenure.compat.kauldron.Checkpointer: Kauldron's config, translated onto tenure's policies,
against Kauldron's own behaviour as recorded in tests/data/kauldron_checkpointer.json."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tenure
from tenure.compat import ArgsError, InvalidOptionsError, NoCheckpointError, kauldron
from tenure.compat.kauldron import Checkpointer, StandardCheckpointItem
from tenure.manager import RootLockedError, RootNotFoundError

KAULDRON = json.loads(
    (Path(__file__).parents[1] / "data" / "kauldron_checkpointer.json").read_text()
)


def state(step: int) -> dict[str, Any]:
    mesh = jax.make_mesh((4, 2), ("x", "y"))
    sharding = jax.NamedSharding(mesh, jax.P("x"))
    return {"w": jax.device_put(jnp.full((8, 2), float(step)), sharding), "b": np.arange(3) + step}


def test_saves_on_the_interval_keeps_max_to_keep_and_restores_into_the_state(
    tmp_path: Path,
) -> None:
    ckpt = Checkpointer(workdir=tmp_path, save_interval_steps=10, max_to_keep=2, save_on_steps=[15])
    for step in range(41):
        ckpt.save(state(step), step=step)
    ckpt.wait_until_finished()
    assert ckpt.all_steps == [30, 40]
    assert ckpt.layout == "kauldron"
    layout = KAULDRON["layout"]
    assert (tmp_path / layout["checkpoints_dir"] / layout["step_dir"] / layout["item_dir"]).is_dir()
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("ckpt_*")) == [
        "ckpt_30",
        "ckpt_40",
    ]
    init = state(0)
    sharding = init["w"].sharding
    restored = ckpt.restore(init, step=30)
    assert init["w"].is_deleted()  # donated: freed before the read
    assert restored["w"].sharding == sharding
    np.testing.assert_array_equal(np.asarray(restored["w"]), np.full((8, 2), 30.0))
    kept = state(0)
    ckpt.restore(kept, donate=False)
    assert not kept["w"].is_deleted()
    assert ckpt.item_metadata()["w"].shape == (8, 2)
    ckpt.close()


def test_best_metric_path_keeps_the_best_and_the_newest(tmp_path: Path) -> None:
    ckpt = Checkpointer(
        workdir=tmp_path,
        save_interval_steps=1,
        max_to_keep=1,
        best_metric_path="eval.loss",
        best_mode="min",
        keep_period=100,
        keep_time_interval=timedelta(days=1),
    )
    for step, loss in enumerate([3.0, 1.0, 2.0, 4.0]):
        ckpt.save({"x": np.zeros(1)}, step=step, metrics={"eval": {"loss": loss}})
    ckpt.wait_until_finished()
    assert ckpt.all_steps == [0, 1, 3]  # 0: keep_period/keep_time_interval, 1: best, 3: newest
    ckpt.close()


def test_restore_without_a_checkpoint(tmp_path: Path) -> None:
    ckpt = Checkpointer(workdir=tmp_path, save_interval_steps=1)
    init = {"x": np.ones(2)}
    assert ckpt.restore(init, noop_if_missing=True) is init
    with pytest.raises(NoCheckpointError):
        ckpt.restore(init)
    assert ckpt.maybe_save(init, step=0)
    ckpt.wait_until_finished()
    with pytest.raises(NoCheckpointError, match="step 5"):
        ckpt.restore(init, step=5)
    ckpt.delete(0)
    assert ckpt.latest_step is None
    ckpt.close()


def test_iter_new_checkpoints_yields_the_latest_then_new_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = Checkpointer(workdir=tmp_path, save_interval_steps=1)
    trainer.save({"x": np.zeros(1)}, step=0)
    trainer.save({"x": np.zeros(1)}, step=1)
    trainer.wait_until_finished()
    now = [0.0]
    pending = iter([2, 3])

    def sleep(seconds: float) -> None:  # a fake clock: each poll lets the trainer save once
        now[0] += seconds
        step = next(pending, None)
        if step is not None:
            trainer.save({"x": np.zeros(1)}, step=step)
            trainer.wait_until_finished()

    monkeypatch.setattr(kauldron, "_sleep", sleep)
    monkeypatch.setattr(kauldron, "_monotonic", lambda: now[0])
    evaluator = Checkpointer(workdir=tmp_path, save_interval_steps=1, create=False)
    timeouts = []

    def stop_on_second_timeout() -> bool:
        timeouts.append(now[0])
        return len(timeouts) == 2

    steps = list(evaluator.iter_new_checkpoints(timeout=5, timeout_fn=stop_on_second_timeout))
    assert steps == [1, 2, 3]
    assert len(timeouts) == 2
    trainer.close()
    evaluator.close()


def test_invalid_config_fails_where_it_is_written(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionsError, match="best_mode"):
        Checkpointer(workdir=tmp_path, save_interval_steps=1, best_mode="lowest")
    with pytest.raises(InvalidOptionsError, match="max_to_keep"):
        Checkpointer(workdir=tmp_path, save_interval_steps=1, max_to_keep=-1)


def test_an_evaluator_may_start_before_the_trainer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17, defect 2: with create=False and no workdir yet, Kauldron sees an empty root
    and its iterator waits; a typo'd path still says so when a step is asked for."""
    expected = KAULDRON["evaluator_before_trainer"]
    workdir = tmp_path / "train"
    evaluator = Checkpointer(workdir=workdir, save_interval_steps=1, create=False)
    assert evaluator.latest_step == expected["latest_step"]
    assert list(evaluator.all_steps) == expected["all_steps"]
    init = {"x": np.ones(2)}
    assert (evaluator.restore(init, noop_if_missing=True) is init) == expected[
        "restore_noop_if_missing_returns_state"
    ]
    with pytest.raises(NoCheckpointError, match="does not exist"):
        evaluator.restore(init)
    assert workdir.exists() == expected["creates_directory"]
    # A reader of tenure's own on the same missing root agrees.
    reader = tenure.Checkpointer(evaluator.directory, read_only=True)
    assert (reader.latest, reader.checkpoints) == (None, [])
    with pytest.raises(RootNotFoundError, match="does not exist"):
        reader.load()

    now = [0.0]
    polls = []

    def sleep(seconds: float) -> None:  # the trainer starts on the evaluator's third poll
        now[0] += seconds
        polls.append(seconds)
        if len(polls) == 3:
            with Checkpointer(workdir=workdir, save_interval_steps=1) as trainer:
                trainer.save({"x": np.full(2, 7.0)}, step=7)

    monkeypatch.setattr(kauldron, "_sleep", sleep)
    monkeypatch.setattr(kauldron, "_monotonic", lambda: now[0])
    steps = evaluator.iter_new_checkpoints(seconds_to_sleep=2, timeout=10)
    assert next(steps) == 7
    assert polls == [2, 2, 2]
    assert list(steps) == []  # no newer step: stops after the timeout
    np.testing.assert_array_equal(evaluator.restore(init)["x"], np.full(2, 7.0))
    evaluator.close()


def test_restores_a_state_of_unknown_structure_as_kauldron_documents(tmp_path: Path) -> None:
    """Issue 17, defect 3: `restore(StandardCheckpointItem())` gives the saved tree as dicts;
    a subclass (a state with fields) is restored into its own structure."""
    expected = KAULDRON["restore_unknown_structure"]
    ckpt = Checkpointer(workdir=tmp_path, save_interval_steps=1)
    ckpt.save({"x": jnp.ones((1, 2))}, step=1)
    ckpt.wait_until_finished()
    restored = ckpt.restore(StandardCheckpointItem(), step=1)
    assert type(restored).__name__ == expected["returns_type"]
    assert sorted(restored) == expected["keys"]
    np.testing.assert_array_equal(np.asarray(restored["x"]), np.ones((1, 2)))
    with pytest.raises(ArgsError, match="StandardCheckpointItem"):
        ckpt.restore(None)
    ckpt.close()
    empty = Checkpointer(workdir=tmp_path / "empty", save_interval_steps=1, create=False)
    item = StandardCheckpointItem()
    assert empty.restore(item, noop_if_missing=True) is item


def test_is_a_context_manager_that_closes(tmp_path: Path) -> None:
    """Issue 17, defect 4: `with ckpt:` gives the checkpointer and closes it at the end, so
    the workdir is free for the next writer."""
    assert KAULDRON["context_manager"]["exit_calls"] == "close"
    config = Checkpointer(workdir=tmp_path, save_interval_steps=1)
    with config as ckpt:
        assert ckpt is config
        ckpt.save({"x": np.zeros(1)}, step=0)
        with pytest.raises(RootLockedError):
            Checkpointer(workdir=tmp_path, save_interval_steps=1).save({"x": np.zeros(1)}, step=1)
    with Checkpointer(workdir=tmp_path, save_interval_steps=1) as resumed:
        assert resumed.save({"x": np.zeros(1)}, step=1)
        resumed.wait_until_finished()
        assert resumed.all_steps == [0, 1]


def test_maybe_save_saves_only_what_the_policy_saves_even_when_forced(tmp_path: Path) -> None:
    """Issue 17, defect 5: as in Kauldron, `maybe_save` asks `should_save` first, so `force`
    does not save a step off the interval; `save(force=True)` does."""
    expected = KAULDRON["maybe_save"]
    ckpt = Checkpointer(workdir=tmp_path, save_interval_steps=10)
    assert ckpt.maybe_save({"x": np.zeros(1)}, step=0) == expected["on_interval_saves"]
    ckpt.wait_until_finished()
    assert (
        ckpt.maybe_save({"x": np.zeros(1)}, step=5, force=True)
        == expected["off_interval_force_true_saves"]
    )
    assert ckpt.maybe_save({"x": np.zeros(1)}, step=6) == expected["off_interval_force_false_saves"]
    assert (
        ckpt.save({"x": np.zeros(1)}, step=7, force=True)
        == expected["save_off_interval_force_true_saves"]
    )
    ckpt.wait_until_finished()
    assert ckpt.all_steps == [0, 7]
    ckpt.close()


def test_create_false_reads_beside_the_trainer_and_writes_its_own_eval_workdir(
    tmp_path: Path,
) -> None:
    """`create=False` creates nothing and reads without the writer's lock, yet saves and
    deletes as in Kauldron, whose evaluators keep their own `_eval_*` workdirs so."""
    expected = KAULDRON["create_false_writes"]
    trainer = Checkpointer(workdir=tmp_path, save_interval_steps=1)
    trainer.save({"x": np.full(2, 3.0)}, step=3)
    trainer.wait_until_finished()
    evaluator = Checkpointer(workdir=tmp_path, save_interval_steps=1, create=False)
    assert evaluator.latest_step == 3  # the trainer still holds the root: no lock taken
    state = evaluator.restore({"x": np.zeros(2)})
    eval_workdir = tmp_path / "_eval_all"
    (eval_workdir / "checkpoints").mkdir(parents=True)
    eval_ckpt = Checkpointer(
        workdir=eval_workdir, save_interval_steps=1, max_to_keep=1, create=False
    )
    assert eval_ckpt.latest_step is None
    assert eval_ckpt.save(state, step=3) == expected["save_returns_saved"]
    eval_ckpt.wait_until_finished()
    assert eval_ckpt.all_steps == [3]
    eval_ckpt.delete(3)
    assert (eval_ckpt.all_steps == []) == expected["delete_removes_the_step"]
    for ckpt in (trainer, evaluator, eval_ckpt):
        ckpt.close()
