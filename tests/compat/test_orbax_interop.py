"""Roots written by Orbax v0's CheckpointManager restore through tenure's, and the reverse,
against the real orbax-checkpoint package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

import tenure.args as args
from tenure.compat import CheckpointManager, CheckpointManagerOptions


def state(step: int) -> dict[str, Any]:
    return {
        "params": {"w": jnp.arange(6.0).reshape(2, 3) + step, "b": np.ones(3, np.int32) * step},
        "step": step,
    }


def check(out: Any, step: int) -> None:
    want = state(step)
    np.testing.assert_array_equal(np.asarray(out["params"]["w"]), np.asarray(want["params"]["w"]))
    np.testing.assert_array_equal(np.asarray(out["params"]["b"]), want["params"]["b"])
    assert int(out["step"]) == step


def test_tenure_restores_a_single_default_item_written_by_orbax_v0(tmp_path: Path) -> None:
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=2, max_to_keep=2, best_fn=lambda m: m["loss"], best_mode="min"
    )
    with ocp.CheckpointManager(tmp_path, options=options, metadata={"run": "a"}) as mngr:
        for step in range(5):
            mngr.save(
                step, args=ocp.args.StandardSave(state(step)), metrics={"loss": 1 / (1 + step)}
            )
    assert (tmp_path / "4" / "default").is_dir()
    with CheckpointManager(tmp_path) as mngr:
        assert mngr.all_steps() == [2, 4]
        check(mngr.restore(4), 4)
        check(mngr.restore(2, args=args.StandardRestore(state(0))), 2)
        assert mngr.metrics(4) == {"loss": 0.2}
        assert mngr.metadata().custom_metadata == {"run": "a"}
        assert mngr.item_metadata(4)["params"]["w"].shape == (2, 3)


def test_tenure_restores_named_items_written_by_orbax_v0(tmp_path: Path) -> None:
    with ocp.CheckpointManager(tmp_path) as mngr:
        mngr.save(
            3,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state(3)),
                config=ocp.args.JsonSave({"lr": 0.1, "layers": [2, 3]}),
            ),
            custom_metadata={"note": "x"},
        )
    with CheckpointManager(tmp_path) as mngr:
        restored = mngr.restore(3)
        check(restored.state, 3)
        assert restored.config == {"lr": 0.1, "layers": [2, 3]}
        only = mngr.restore(3, args=args.Composite(state=args.StandardRestore(state(0))))
        assert list(only) == ["state"]
        assert mngr.metadata(3).custom_metadata == {"note": "x"}


def test_orbax_v0_restores_a_single_item_written_by_tenure(tmp_path: Path) -> None:
    options = CheckpointManagerOptions(save_interval_steps=2, max_to_keep=2)
    with CheckpointManager(tmp_path, options=options, metadata={"run": "b"}) as mngr:
        for step in range(5):
            mngr.save(step, args=args.StandardSave(state(step)), metrics={"loss": float(step)})
    with ocp.CheckpointManager(tmp_path) as mngr:
        assert mngr.all_steps() == [2, 4]
        check(mngr.restore(4, args=ocp.args.StandardRestore(state(0))), 4)
        check(mngr.restore(2), 2)
        assert mngr.metrics(4) == {"loss": 4.0}


def test_orbax_v0_restores_named_pytree_items_written_by_tenure(tmp_path: Path) -> None:
    with CheckpointManager(tmp_path) as mngr:
        mngr.save(
            7,
            args=args.Composite(
                state=args.StandardSave(state(7)), ema=args.PyTreeSave({"w": np.zeros(4)})
            ),
        )
    with ocp.CheckpointManager(tmp_path, item_names=("state", "ema")) as mngr:
        restored = mngr.restore(
            7,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(state(0)),
                ema=ocp.args.PyTreeRestore({"w": np.ones(4)}),
            ),
        )
        check(restored.state, 7)
        np.testing.assert_array_equal(restored.ema["w"], np.zeros(4))


def test_orbax_v0_restores_json_items_written_by_tenure(tmp_path: Path) -> None:
    with CheckpointManager(tmp_path) as mngr:
        mngr.save(1, args=args.Composite(config=args.JsonSave({"lr": 0.1})))
    with ocp.CheckpointManager(tmp_path, item_names=("config",)) as mngr:
        out = mngr.restore(1, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    assert out.config == {"lr": 0.1}


def test_sharded_arrays_restore_into_the_requested_sharding(tmp_path: Path) -> None:
    mesh = jax.make_mesh((4, 2), ("x", "y"))
    sharded = jax.device_put(jnp.arange(64.0).reshape(8, 8), jax.NamedSharding(mesh, jax.P("x")))
    with ocp.CheckpointManager(tmp_path) as mngr:
        mngr.save(0, args=ocp.args.StandardSave({"w": sharded}))
    target = jax.NamedSharding(mesh, jax.P(None, "y"))
    with CheckpointManager(tmp_path) as mngr:
        out = mngr.restore(
            0,
            args=args.StandardRestore(
                {"w": jax.ShapeDtypeStruct((8, 8), jnp.float32, sharding=target)}
            ),
        )
    assert out["w"].sharding == target
    np.testing.assert_array_equal(np.asarray(out["w"]), np.asarray(sharded))
