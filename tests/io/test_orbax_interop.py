"""Interop both ways with the real orbax-checkpoint 0.12 package."""

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import orbax.checkpoint.experimental.v1 as ocp1
import pytest

from tenure import io
from tenure.io import arrays


def _tree(mesh: jax.sharding.Mesh) -> dict[str, Any]:
    sharding = jax.NamedSharding(mesh, jax.P("x", None))
    return {
        "a": np.arange(8, dtype=np.int32),
        "b": {"c": jnp.ones((4, 4), jnp.bfloat16)},
        "w": jax.device_put(jnp.arange(64.0).reshape(8, 8), sharding),
        "s": 3.0,
    }


def _check(out: Any, tree: dict[str, Any]) -> None:
    for key in ("a", "w"):
        np.testing.assert_array_equal(np.asarray(out[key]), np.asarray(tree[key]))
    np.testing.assert_array_equal(np.asarray(out["b"]["c"]), np.asarray(tree["b"]["c"]))
    assert float(out["s"]) == 3.0


@pytest.mark.parametrize("ocdbt", [False, True], ids=["per-array", "ocdbt"])
def test_orbax_v1_loads_tenure_checkpoints(
    tmp_path: Path, mesh: jax.sharding.Mesh, ocdbt: bool
) -> None:
    tree = _tree(mesh)
    io.save_pytree(tmp_path / "3", tree, layout=io.ArrayLayout(ocdbt=ocdbt), metrics={"l": 1})
    with ocp1.training.Checkpointer(tmp_path) as checkpointer:
        assert [c.step for c in checkpointer.checkpoints] == [3]
        _check(checkpointer.load(3), tree)
    arrays = {k: v for k, v in tree.items() if k != "s"}
    io.save_pytree(tmp_path / "4", arrays, layout=io.ArrayLayout(ocdbt=ocdbt))
    target = jax.NamedSharding(mesh, jax.P(None, "y"))
    abstract = {
        "a": np.zeros(8, np.int32),
        "b": {"c": jax.ShapeDtypeStruct((4, 4), jnp.bfloat16, sharding=target)},
        "w": jax.ShapeDtypeStruct((8, 8), jnp.float32, sharding=target),
    }
    with ocp1.training.Checkpointer(tmp_path) as checkpointer:
        out = checkpointer.load(4, abstract)
    assert out["w"].sharding == target
    np.testing.assert_array_equal(np.asarray(out["w"]), np.asarray(tree["w"]))


@pytest.mark.parametrize("ocdbt", [False, True], ids=["per-array", "ocdbt"])
def test_orbax_v0_manager_restores_tenure_checkpoints(
    tmp_path: Path, mesh: jax.sharding.Mesh, ocdbt: bool
) -> None:
    tree = _tree(mesh)
    io.save_checkpointables(tmp_path / "4", {"default": tree}, layout=io.ArrayLayout(ocdbt=ocdbt))
    manager = ocp.CheckpointManager(tmp_path)
    assert manager.all_steps() == [4]
    abstract = {
        "a": np.zeros(8, np.int32),
        "b": {"c": jax.ShapeDtypeStruct((4, 4), jnp.bfloat16)},
        "w": jax.ShapeDtypeStruct((8, 8), jnp.float32, sharding=tree["w"].sharding),
        "s": 0.0,
    }
    _check(manager.restore(4, args=ocp.args.StandardRestore(abstract)), tree)
    _check(manager.restore(4, args=ocp.args.StandardRestore()), tree)
    manager.close()


@pytest.mark.parametrize(
    ("ocdbt", "zarr3"), [(True, False), (False, False), (True, True), (False, True)]
)
def test_tenure_loads_orbax_v0_checkpoints(
    tmp_path: Path, mesh: jax.sharding.Mesh, ocdbt: bool, zarr3: bool
) -> None:
    tree = _tree(mesh)
    handler = ocp.PyTreeCheckpointHandler(use_ocdbt=ocdbt, use_zarr3=zarr3)
    manager = ocp.CheckpointManager(tmp_path, item_handlers=handler)
    manager.save(2, args=ocp.args.PyTreeSave(tree), custom_metadata={"run": "x"})
    manager.wait_until_finished()
    manager.close()
    step = tmp_path / "2"
    assert io.is_committed(step)
    _check(io.load_pytree(step, name="default"), tree)
    target = jax.NamedSharding(mesh, jax.P(None, "y"))
    out = io.load_pytree(
        step,
        {"w": jax.ShapeDtypeStruct((8, 8), jnp.float32, sharding=target)},
        name="default",
        partial=True,
    )
    assert out["w"].sharding == target
    assert io.read_step_metadata(step).custom_metadata == {"run": "x"}
    assert io.verify(step) == 4


def test_tenure_loads_orbax_v1_checkpoints(tmp_path: Path, mesh: jax.sharding.Mesh) -> None:
    tree = {**_tree(mesh), "text": "hi", "key": jax.random.key(3)}
    with ocp1.training.Checkpointer(tmp_path) as checkpointer:
        checkpointer.save(5, tree, metrics={"loss": 0.5}, custom_metadata={"k": 1})
        checkpointer.save_checkpointables(6, {"state": tree, "extra": {"j": [1, 2]}})
    out = io.load_pytree(tmp_path / "5")
    _check(out, tree)
    assert out["text"] == "hi"
    assert jnp.array_equal(jax.random.key_data(out["key"]), jax.random.key_data(tree["key"]))
    meta = io.read_step_metadata(tmp_path / "5")
    assert meta.metrics == {"loss": 0.5}
    assert meta.custom_metadata == {"k": 1}
    assert meta.commit_timestamp_nsecs is not None
    both = io.load_checkpointables(tmp_path / "6")
    assert both["extra"] == {"j": [1, 2]}


def _many_leaves() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    tree: dict[str, Any] = {
        f"layer{i:03d}": {"kernel": rng.standard_normal((8, 4)).astype(np.float32)}
        for i in range(300)
    }
    tree["odd"] = {
        "flags": np.array([True, False, True]),
        "small": np.arange(5, dtype=np.int8),
        "half": jnp.linspace(0, 1, 6, dtype=jnp.bfloat16),
        "scalar": np.float64(2.5),
        "empty": np.zeros((0, 3), np.float32),
        "big_endian": np.arange(4, dtype=">i4"),
        # Above the size written as plain keys: stored through tensorstore's array layer.
        "large": rng.standard_normal(100_000).astype(np.float32),
    }
    return tree


@pytest.mark.parametrize("batch_bytes", [None, 1], ids=["one commit", "a commit per array"])
def test_the_default_layout_keeps_files_few_and_orbax_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_bytes: int | None
) -> None:
    if batch_bytes is not None:
        monkeypatch.setattr(arrays, "_BATCH_BYTES", batch_bytes)
    tree = _many_leaves()
    io.save_pytree(tmp_path / "1", tree)
    item = tmp_path / "1" / "state"
    assert (item / "manifest.ocdbt").is_file()
    assert sum(1 for p in item.rglob("*") if p.is_file()) <= 64
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    with ocp1.training.Checkpointer(tmp_path) as checkpointer:
        out = checkpointer.load(1)
    for path, value in leaves:
        got = out
        for key in path:
            got = got[key.key]
        np.testing.assert_array_equal(np.asarray(got), np.asarray(value))
    assert io.verify(tmp_path / "1") == len(leaves)
    loaded = io.load_pytree(tmp_path / "1")
    for path, value in leaves:
        got = loaded
        for key in path:
            got = got[key.key]
        np.testing.assert_array_equal(np.asarray(got), np.asarray(value))
