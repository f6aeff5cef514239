"""Flax NNX, optax and Grain states through tenure.Checkpointer, and roots written by Flax's
documented Orbax pattern."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx

import tenure
from tenure import io


class Model(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, *, head: bool = False) -> None:
        self.layers = nnx.List([nnx.Linear(2, 3, rngs=rngs), nnx.Linear(3, 1, rngs=rngs)])
        if head:
            self.head = nnx.Linear(1, 1, rngs=rngs)


def make(seed: int, *, head: bool = False) -> tuple[Model, nnx.Optimizer[Any]]:
    model = Model(nnx.Rngs(seed), head=head)
    return model, nnx.Optimizer(model, optax.adamw(1e-2), wrt=nnx.Param)


def train_step(model: Model, optimizer: nnx.Optimizer[Any]) -> None:
    x = jnp.arange(8.0).reshape(4, 2)
    grads = nnx.grad(lambda m: jnp.mean(m.layers[1](m.layers[0](x)) ** 2))(model)
    optimizer.update(model, grads)


def iterator() -> Any:
    return iter(grain.MapDataset.source(np.arange(64)).shuffle(seed=1).batch(8).to_iter_dataset())


def assert_same(a: Any, b: Any) -> None:
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_nnx_model_optimizer_and_grain_iterator_resume_exactly(tmp_path: Path) -> None:
    model, optimizer = make(0)
    data = iterator()
    train_step(model, optimizer)
    next(data)
    with tenure.Checkpointer(tmp_path) as ckptr:
        ckptr.save_checkpointables(
            np.int64(1),
            {"state": nnx.state((model, optimizer)), "data": data},
            metrics={"loss": np.float32(0.5), "acc": jnp.float32(0.75)},
        )
    expected_batch = next(data)
    train_step(model, optimizer)
    expected = nnx.state((model, optimizer))

    model, optimizer = make(1)  # another init: everything must come from the checkpoint
    fresh = iterator()
    with tenure.Checkpointer(tmp_path) as ckptr:
        assert ckptr.checkpoints[0].metrics == {"loss": 0.5, "acc": 0.75}
        loaded = ckptr.load_checkpointables(
            None, {"state": nnx.state((model, optimizer)), "data": fresh}
        )
    assert loaded["data"] is fresh
    nnx.update((model, optimizer), loaded["state"])
    np.testing.assert_array_equal(next(fresh), expected_batch)
    train_step(model, optimizer)
    assert_same(nnx.state((model, optimizer)), expected)


def test_an_extra_layer_is_refused_unless_partial(tmp_path: Path) -> None:
    big, _ = make(0, head=True)
    small = nnx.state(nnx.eval_shape(lambda: Model(nnx.Rngs(0))))
    with tenure.Checkpointer(tmp_path) as ckptr:
        ckptr.save(1, nnx.state(big))
        with pytest.raises(io.StructureMismatchError, match=r"\['head'\].*partial=True"):
            ckptr.load(1, small)
        with pytest.raises(io.StructureMismatchError, match="partial=True"):
            ckptr.load_checkpointables(1, {"state": small})
        plan = ckptr.plan_load(1, small, partial=True)
        out = ckptr.load(1, small, partial=True)
        both = ckptr.load_checkpointables(1, {"state": small}, partial=True)
    assert plan.unexpected == ("head.bias.value", "head.kernel.value")
    assert plan.bytes_per_process == {0: (2 * 3 + 3 + 3 * 1 + 1) * 4}
    del big.head
    assert_same(out, nnx.state(big))
    assert_same(both["state"], nnx.state(big))


def test_steps_and_metrics_accept_numpy_and_jax_scalars(tmp_path: Path) -> None:
    with tenure.Checkpointer(tmp_path) as ckptr:
        assert ckptr.save(jnp.int32(3), {"w": np.ones(1)}, metrics={"l": jnp.float32(1.5)})
        assert ckptr.should_save(np.int64(4), metrics={"l": np.float64(1.0)}) in (True, False)
        with pytest.raises(io.UnsupportedLeafError, match=r"metrics\['l'\] is an array"):
            ckptr.save(5, {"w": np.ones(1)}, metrics={"l": np.ones(2)})
        with pytest.raises(ValueError, match="integer"):
            ckptr.save(np.float32(6), {"w": np.ones(1)})
        assert [c.step for c in ckptr.checkpoints] == [3]
        assert ckptr.checkpoints[0].metrics == {"l": 1.5}


def test_roots_written_by_flax_documented_orbax_patterns_load_in_tenure(tmp_path: Path) -> None:
    model, optimizer = make(0)
    train_step(model, optimizer)
    state = nnx.state((model, optimizer))
    data = iterator()
    next(data)
    # Flax's guide: StandardCheckpointer for one state ...
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "single" / "1" / "state", state)
    # ... and CheckpointManager with Composite for a training loop (Grain's handler for data).
    options = ocp.CheckpointManagerOptions(max_to_keep=2)
    handlers = {
        "state": ocp.StandardCheckpointHandler(),
        "data": grain.checkpoint.CheckpointHandler(),
    }
    with ocp.CheckpointManager(
        tmp_path / "managed", options=options, item_handlers=handlers
    ) as manager:
        manager.save(
            7,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(data)
            ),
            metrics={"loss": 0.1},
        )
    expected_batch = next(data)
    abstract = nnx.state(nnx.eval_shape(lambda: make(3)))
    assert_same(io.load_pytree(tmp_path / "single" / "1", abstract), state)
    fresh = iterator()
    with tenure.Checkpointer(tmp_path / "managed") as ckptr:
        assert [c.step for c in ckptr.checkpoints] == [7]
        loaded = ckptr.load_checkpointables(7, {"state": abstract, "data": fresh})
    assert_same(loaded["state"], state)
    np.testing.assert_array_equal(next(fresh), expected_batch)
