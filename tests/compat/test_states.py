"""Grain's args and handler, Orbax's partial_restore, and NNX states through tenure.compat,
both ways with Orbax."""

from __future__ import annotations

import dataclasses
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

import tenure.args as args
from tenure import io
from tenure.compat import CheckpointManager, CheckpointManagerOptions


def iterator() -> Any:
    return iter(grain.MapDataset.source(np.arange(40)).shuffle(seed=2).batch(5).to_iter_dataset())


def nnx_state() -> Any:
    model = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
    return nnx.state((model, nnx.Optimizer(model, optax.sgd(0.1, momentum=0.9), wrt=nnx.Param)))


def abstract_state() -> Any:
    def build() -> Any:
        model = nnx.Linear(2, 2, rngs=nnx.Rngs(1))
        return model, nnx.Optimizer(model, optax.sgd(0.1, momentum=0.9), wrt=nnx.Param)

    return nnx.state(nnx.eval_shape(build))


def assert_same(a: Any, b: Any) -> None:
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_grain_args_save_and_restore_through_tenure_compat_and_orbax(tmp_path: Path) -> None:
    data = iterator()
    next(data)
    with CheckpointManager(tmp_path / "t") as manager:
        manager.save(
            1,
            args=args.Composite(
                state=args.StandardSave(nnx_state()), data=grain.checkpoint.CheckpointSave(data)
            ),
        )
        manager.wait_until_finished()
    expected = next(data)
    handlers = {
        "state": ocp.StandardCheckpointHandler(),
        "data": grain.checkpoint.CheckpointHandler(),
    }
    with ocp.CheckpointManager(tmp_path / "t", item_handlers=handlers) as orbax:
        fresh = iterator()
        out = orbax.restore(
            1,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state()),
                data=grain.checkpoint.CheckpointRestore(fresh),
            ),
        )
        assert_same(out.state, nnx_state())
        np.testing.assert_array_equal(next(fresh), expected)
        orbax.save(
            2,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(nnx_state()),
                data=grain.checkpoint.CheckpointSave(data),
            ),
        )
    expected = next(data)
    fresh = iterator()
    with CheckpointManager(tmp_path / "t") as manager:
        out = manager.restore(
            2,
            args=args.Composite(
                state=args.StandardRestore(abstract_state()),
                data=grain.checkpoint.CheckpointRestore(fresh),
            ),
        )
    assert out.data is fresh
    assert_same(out.state, nnx_state())
    np.testing.assert_array_equal(next(fresh), expected)


def test_a_third_party_handler_registers_with_tenure_without_subclassing(tmp_path: Path) -> None:
    class NotesHandler:  # another library's handler: nothing of tenure's
        pass

    @args.register_with_handler(NotesHandler, for_save=True, for_restore=True)
    @dataclasses.dataclass
    class Notes:
        item: Any = None

    with CheckpointManager(tmp_path, item_names=("notes",)) as manager:
        manager.save(0, args=args.Composite(notes=Notes({"text": "hi"})))
        manager.wait_until_finished()
        assert manager.restore(0, args=args.Composite(notes=Notes())).notes == {"text": "hi"}
    # Registering Grain's own pair, as the error message of a missing one suggests, works too.
    args.register_with_handler(grain.checkpoint.CheckpointHandler, for_save=True)(
        grain.checkpoint.CheckpointSave
    )


def test_partial_restore_is_orbax_s_opt_in(tmp_path: Path) -> None:
    tree = {"w": np.arange(3.0), "extra": {"layer": np.ones(2)}}
    options = CheckpointManagerOptions(enable_async_checkpointing=False)
    with CheckpointManager(tmp_path, options=options) as manager:
        manager.save(0, args=args.PyTreeSave(tree))
        with pytest.raises(io.StructureMismatchError, match=r"\['extra'\]\['layer'\]"):
            manager.restore(0, args=args.PyTreeRestore({"w": np.zeros(3)}))
        out = manager.restore(0, args=args.PyTreeRestore({"w": np.zeros(3)}, partial_restore=True))
    assert set(out) == {"w"}
    with ocp.CheckpointManager(tmp_path) as orbax:
        out = orbax.restore(
            0, args=ocp.args.PyTreeRestore({"w": np.zeros(3)}, partial_restore=True)
        )
    np.testing.assert_array_equal(out["w"], tree["w"])


def test_numpy_and_jax_scalar_metrics_through_compat(tmp_path: Path) -> None:
    options = CheckpointManagerOptions(enable_async_checkpointing=False)
    with CheckpointManager(tmp_path, options=options) as manager:
        manager.save(
            np.int64(0), args=args.StandardSave({"w": np.ones(1)}), metrics={"l": jnp.float32(2)}
        )
    assert io.read_step_metadata(tmp_path / "0").metrics == {"l": 2.0}


def test_one_unnamed_grain_item_with_grain_s_handler(tmp_path: Path) -> None:
    data = iterator()
    next(data)
    handler = grain.checkpoint.CheckpointHandler()
    with CheckpointManager(tmp_path, item_handlers=handler) as manager:
        manager.save(0, args=grain.checkpoint.CheckpointSave(data))
        manager.wait_until_finished()
        fresh = iterator()
        assert manager.restore(0, args=grain.checkpoint.CheckpointRestore(fresh)) is fresh
    np.testing.assert_array_equal(next(fresh), next(data))
