"""tenure.compat.kauldron.Checkpointer: Kauldron's config, translated onto tenure's policies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tenure.compat import InvalidOptionsError, NoCheckpointError, kauldron
from tenure.compat.kauldron import Checkpointer


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
    assert (tmp_path / "checkpoints" / "40" / "default").is_dir()
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
