"""Real training states (Flax NNX and Linen, optax, Equinox) through tenure.io and Orbax."""

import itertools
import os
import subprocess
import sys
import textwrap
from collections import namedtuple
from pathlib import Path
from typing import Any

import equinox as eqx
import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import orbax.checkpoint.experimental.v1 as ocp1
import pytest
from flax import nnx
from flax.training import train_state

from tenure import io


class _Model(nnx.Module):
    def __init__(self, sizes: tuple[int, ...], rngs: nnx.Rngs) -> None:
        pairs = itertools.pairwise(sizes)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in pairs])
        self.dropout = nnx.Dropout(0.1, rngs=rngs)


def _trained(sizes: tuple[int, ...] = (2, 3, 1)) -> tuple[_Model, nnx.Optimizer[Any]]:
    model = _Model(sizes, nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    x = jnp.ones((4, sizes[0]))
    grads = nnx.grad(lambda m: jnp.mean(m.layers[-1](m.layers[0](x)) ** 2))(model)
    optimizer.update(model, grads)
    return model, optimizer


def _abstract(sizes: tuple[int, ...] = (2, 3, 1)) -> Any:
    def build() -> tuple[_Model, nnx.Optimizer[Any]]:
        model = _Model(sizes, nnx.Rngs(1))
        return model, nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    return nnx.state(nnx.eval_shape(build))


def _assert_same(a: Any, b: Any) -> None:
    """Same structure, leaf types, dtypes and values (PRNG keys compared by impl and data)."""
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        assert type(x) is type(y)
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert jax.random.key_impl(x) == jax.random.key_impl(y)
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_nnx_model_and_optimizer_round_trip_exactly(tmp_path: Path) -> None:
    state = nnx.state(_trained())
    io.save_pytree(tmp_path / "1", state)
    _assert_same(io.load_pytree(tmp_path / "1", _abstract()), state)
    # Without a target, the integer keys of nnx.List and optax chains stay integers.
    plain = io.load_pytree(tmp_path / "1")
    assert sorted(plain[0]["layers"]) == [0, 1]
    assert 0 in plain[1]["opt_state"]


def test_orbax_restores_tenure_nnx_state_and_tenure_loads_orbax_nnx_state(tmp_path: Path) -> None:
    state = nnx.state(_trained())
    io.save_pytree(tmp_path / "1", state)
    with ocp.StandardCheckpointer() as checkpointer:
        _assert_same(checkpointer.restore(tmp_path / "1" / "state", _abstract()), state)
        checkpointer.save(tmp_path / "orbax" / "state", state)
    _assert_same(io.load_pytree(tmp_path / "orbax", _abstract()), state)


def test_orbax_v1_training_checkpointer_reads_and_writes_nnx_state(tmp_path: Path) -> None:
    state = nnx.state(_trained())
    io.save_pytree(tmp_path / "1", state)
    with ocp1.training.Checkpointer(tmp_path) as checkpointer:
        _assert_same(checkpointer.load(1, _abstract()), state)
        checkpointer.save(2, state)
    _assert_same(io.load_pytree(tmp_path / "2", _abstract()), state)


def test_dicts_with_int_and_str_keys_round_trip_exactly(tmp_path: Path) -> None:
    tree = {0: np.ones(2), "a": {1: 2.0, "1x": [np.int8(3)]}, 5: {}}
    io.save_pytree(tmp_path / "1", tree)
    out = io.load_pytree(tmp_path / "1")
    assert list(out) == [0, "a", 5]
    assert out["a"] == {1: 2.0, "1x": [np.int8(3)]}
    assert out[5] == {}


def test_linen_train_state_round_trips_through_orbax_both_ways(tmp_path: Path) -> None:
    module = nn.Dense(3)
    params = module.init(jax.random.key(0), jnp.ones((1, 2)))
    state = train_state.TrainState.create(
        apply_fn=module.apply, params=params, tx=optax.chain(optax.clip(1.0), optax.sgd(0.1))
    )
    abstract = jax.tree_util.tree_map(
        lambda x: (
            jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
            if isinstance(x, jax.Array)
            else x
        ),
        state,
    )
    io.save_pytree(tmp_path / "1", state)
    _assert_same(io.load_pytree(tmp_path / "1", abstract), state)
    with ocp.StandardCheckpointer() as checkpointer:
        _assert_same(checkpointer.restore(tmp_path / "1" / "state", abstract), state)
        checkpointer.save(tmp_path / "orbax" / "state", state)
    _assert_same(io.load_pytree(tmp_path / "orbax", abstract), state)


def test_equinox_model_filtered_to_arrays_round_trips(tmp_path: Path) -> None:
    model = eqx.nn.MLP(2, 1, 4, 2, key=jax.random.key(0))
    arrays = eqx.filter(model, eqx.is_array)
    io.save_pytree(tmp_path / "1", arrays)
    skeleton = eqx.filter(eqx.nn.MLP(2, 1, 4, 2, key=jax.random.key(1)), eqx.is_array)
    out = io.load_pytree(tmp_path / "1", skeleton)
    _assert_same(out, arrays)
    restored = eqx.combine(out, model)
    np.testing.assert_array_equal(restored(jnp.ones(2)), model(jnp.ones(2)))


def test_none_empty_containers_namedtuples_and_sharded_typed_keys(
    tmp_path: Path, mesh: jax.sharding.Mesh
) -> None:
    pair = namedtuple("Pair", ["x", "y"])
    sharding = jax.NamedSharding(mesh, jax.P("x"))
    keys = jax.device_put(jax.random.split(jax.random.key(0, impl="rbg"), 4), sharding)
    tree = {"n": None, "e": {}, "l": [], "t": (), "p": pair(np.zeros(1), None), "k": keys}
    io.save_pytree(tmp_path / "1", tree)
    out = io.load_pytree(tmp_path / "1")
    assert (out["n"], out["e"], out["l"], out["t"]) == (None, {}, [], ())
    assert out["k"].sharding == sharding
    assert jax.random.key_impl(out["k"]) == jax.random.key_impl(keys)
    np.testing.assert_array_equal(jax.random.key_data(out["k"]), jax.random.key_data(keys))
    _assert_same(io.load_pytree(tmp_path / "1", tree), tree)


def test_an_extra_saved_layer_is_refused_unless_partial(tmp_path: Path) -> None:
    model, _ = _trained()
    model.head = nnx.Linear(1, 1, rngs=nnx.Rngs(2))
    io.save_pytree(tmp_path / "1", nnx.state(model))
    smaller = nnx.state(nnx.eval_shape(lambda: _Model((2, 3, 1), nnx.Rngs(1))))
    with pytest.raises(io.StructureMismatchError, match=r"partial=True") as caught:
        io.load_pytree(tmp_path / "1", smaller)
    assert caught.value.unexpected == ("head.bias.value", "head.kernel.value")
    assert caught.value.missing == ()
    out = io.load_pytree(tmp_path / "1", smaller, partial=True)
    del model.head
    _assert_same(out, nnx.state(model))
    # Shapes never change, partial or not.
    other = nnx.state(nnx.eval_shape(lambda: _Model((2, 4, 1), nnx.Rngs(1))))
    with pytest.raises(io.StructureMismatchError, match=r"\(3,\).*\(4,\)"):
        io.load_pytree(tmp_path / "1", other, partial=True)


def test_mismatch_lists_ten_keys_and_a_count(tmp_path: Path) -> None:
    io.save_pytree(tmp_path / "1", {f"k{i:02}": np.zeros(1) for i in range(25)})
    with pytest.raises(io.StructureMismatchError) as caught:
        io.load_pytree(tmp_path / "1", {"k00": None, "gone": None})
    text = str(caught.value)
    assert "1 target key(s) are not in the checkpoint: ['gone']" in text
    assert "24 saved key(s) are not in the target" in text
    assert "['k10'] and 14 more" in text
    assert "['k11']" not in text
    assert len(caught.value.unexpected) == 24


def test_load_plan_says_what_a_load_does_without_reading(
    tmp_path: Path, mesh: jax.sharding.Mesh
) -> None:
    saved = jax.NamedSharding(mesh, jax.P("x", "y"))
    tree = {"w": jax.device_put(jnp.zeros((8, 4)), saved), "b": np.zeros(3, np.float64)}
    io.save_pytree(tmp_path / "1", tree)
    target = jax.NamedSharding(mesh, jax.P(None, "y"))
    abstract = {"w": jax.ShapeDtypeStruct((8, 4), jnp.bfloat16, sharding=target)}
    plan = io.plan_load(tmp_path / "1", abstract, partial=True)
    assert plan.matched == ("w",)
    assert plan.unexpected == ("b",)
    assert plan.casts == {"w": ("float32", "bfloat16")}
    assert plan.resharded == ("w",)
    # Replicated over x, each half of the columns is read once: the whole array, in float32.
    assert plan.bytes_per_process == {0: 8 * 4 * 4}
    same = io.plan_load(tmp_path / "1", {"w": tree["w"], "b": None})
    assert (same.resharded, same.casts) == ((), {})
    assert same.bytes_per_process == {0: 8 * 4 * 4 + 3 * 8}
    for bad in ({"w": jax.ShapeDtypeStruct((4, 4), jnp.float32)}, {"w": None}):
        with pytest.raises(io.StructureMismatchError) as planned:
            io.plan_load(tmp_path / "1", bad)
        with pytest.raises(io.StructureMismatchError) as loaded:
            io.load_pytree(tmp_path / "1", bad)
        assert str(planned.value) == str(loaded.value)
    # Casts happen only when the target asks.
    assert io.load_pytree(tmp_path / "1", abstract, partial=True)["w"].dtype == jnp.bfloat16
    assert io.load_pytree(tmp_path / "1")["b"].dtype == np.float64


_FEWER_DEVICES = """
import os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import jax, numpy as np
from tenure import io
step = sys.argv[1]
for load in (io.load_pytree, io.plan_load):
    try:
        load(step)
    except io.TopologyMismatchError as e:
        assert "abstract_state" in str(e), e
        print("refused")
sharding = jax.sharding.SingleDeviceSharding(jax.devices()[1])
out = io.load_pytree(step, {"w": jax.ShapeDtypeStruct((8,), np.float32, sharding=sharding)})
print(out["w"].sharding == sharding, float(out["w"].sum()))
"""


def test_fewer_devices_without_a_target_is_a_clear_error(
    tmp_path: Path, mesh: jax.sharding.Mesh
) -> None:
    sharding = jax.NamedSharding(jax.make_mesh((4,), ("x",), devices=jax.devices()[4:]), jax.P("x"))
    io.save_pytree(tmp_path / "1", {"w": jax.device_put(jnp.ones(8), sharding)})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    env.pop("XLA_FLAGS", None)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_FEWER_DEVICES), str(tmp_path / "1")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["refused", "refused", "True", "8.0"]


def _dataset_iterator() -> Any:
    dataset = grain.MapDataset.source(np.arange(100)).shuffle(seed=0).batch(4)
    return iter(dataset.to_iter_dataset())


def _loader_iterator() -> Any:
    sampler = grain.samplers.IndexSampler(100, shuffle=True, seed=0, num_epochs=1)
    loader = grain.DataLoader(
        data_source=np.arange(100),
        sampler=sampler,
        operations=[grain.transforms.Batch(4)],
        worker_count=0,
    )
    return iter(loader)


@pytest.mark.parametrize("make", [_dataset_iterator, _loader_iterator], ids=["dataset", "loader"])
def test_grain_iterators_resume_at_the_same_batch(tmp_path: Path, make: Any) -> None:
    iterator = make()
    for _ in range(3):
        next(iterator)
    io.save_checkpointables(tmp_path / "1", {"data": iterator, "state": {"w": np.ones(2)}})
    expected = next(iterator)
    fresh = make()
    out = io.load_checkpointables(tmp_path / "1", {"data": fresh})
    assert out["data"] is fresh
    np.testing.assert_array_equal(next(fresh), expected)
    assert io.verify(tmp_path / "1") == 1
    state = io.load_checkpointables(tmp_path / "1", {"data": None})["data"]
    assert state == iterator_state_before(make)


def iterator_state_before(make: Any) -> Any:
    """The state of a new iterator of `make` after three batches, as it was saved."""
    iterator = make()
    for _ in range(3):
        next(iterator)
    return iterator.get_state()


@pytest.mark.parametrize("make", [_dataset_iterator, _loader_iterator], ids=["dataset", "loader"])
def test_grain_items_are_read_both_ways_with_orbax(tmp_path: Path, make: Any) -> None:
    handlers = {"data": grain.checkpoint.CheckpointHandler()}
    iterator = make()
    for _ in range(3):
        next(iterator)
    io.save_checkpointables(tmp_path / "1", {"data": iterator})
    expected = next(iterator)
    with ocp.CheckpointManager(tmp_path, item_names=("data",), item_handlers=handlers) as manager:
        fresh = make()
        args = ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh))
        manager.restore(1, args=args)
        np.testing.assert_array_equal(next(fresh), expected)
        manager.save(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
    expected = next(iterator)
    fresh = make()
    io.load_checkpointables(tmp_path / "2", {"data": fresh})
    np.testing.assert_array_equal(next(fresh), expected)
    assert io.verify(tmp_path / "2") == 0


class _Counter:
    def __init__(self, state: Any) -> None:
        self.state = state

    def get_state(self) -> Any:
        return self.state

    def set_state(self, state: Any) -> None:
        self.state = state


def test_states_that_are_neither_json_nor_text_are_refused(tmp_path: Path) -> None:
    with pytest.raises(io.TenureIOError, match="neither JSON"):
        io.save_checkpointables(tmp_path / "1", {"data": _Counter({1: object()})})
    with pytest.raises(io.TenureIOError, match="UTF-8"):
        io.save_checkpointables(tmp_path / "1", {"data": _Counter(b"\xff")})
    io.save_checkpointables(tmp_path / "1", {"data": _Counter({"i": 3})})
    with pytest.raises(io.TenureIOError, match="set_state"):
        io.load_checkpointables(tmp_path / "1", {"data": np.zeros(1)})


def test_metrics_accept_numpy_and_jax_scalars_and_refuse_arrays(tmp_path: Path) -> None:
    metrics = {"loss": np.float32(0.5), "acc": jnp.float32(0.25), "n": np.int64(3)}
    io.save_pytree(tmp_path / "1", {"w": np.ones(1)}, metrics=metrics)
    saved = io.read_step_metadata(tmp_path / "1").metrics
    assert saved == {"loss": 0.5, "acc": 0.25, "n": 3}
    assert [type(v) for v in saved.values()] == [float, float, int]
    with pytest.raises(io.UnsupportedLeafError, match=r"metrics\['loss'\] is an array of shape"):
        io.save_pytree(tmp_path / "2", {"w": np.ones(1)}, metrics={"loss": jnp.ones(3)})


def test_sharded_typed_keys_keep_impl_and_sharding_both_ways_with_orbax(
    tmp_path: Path, mesh: jax.sharding.Mesh
) -> None:
    sharding = jax.NamedSharding(mesh, jax.P("x"))
    keys = jax.device_put(jax.random.split(jax.random.key(0, impl="rbg"), 4), sharding)
    io.save_pytree(tmp_path / "1", {"k": keys})
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(tmp_path / "1" / "state")
        checkpointer.save(tmp_path / "orbax" / "state", {"k": keys})
    loaded = io.load_pytree(tmp_path / "orbax")
    for out in (restored["k"], loaded["k"]):
        # Orbax records the sharding of the key data, one dimension longer than the keys.
        assert out.sharding.is_equivalent_to(sharding, 1)
        assert jax.random.key_impl(out) == jax.random.key_impl(keys)
        np.testing.assert_array_equal(jax.random.key_data(out), jax.random.key_data(keys))


@pytest.mark.parametrize("edit", ["changed", "removed"])
def test_a_damaged_state_file_is_caught_by_load_and_verify(tmp_path: Path, edit: str) -> None:
    io.save_checkpointables(tmp_path / "1", {"data": _Counter({"i": 3})})
    state_file = tmp_path / "1" / "data" / "process_0-of-1.json"
    if edit == "changed":
        state_file.write_text('{"i": 4}')
    else:
        state_file.unlink()
    with pytest.raises(io.CorruptCheckpointError, match=r"process_0-of-1\.json"):
        io.load_checkpointables(tmp_path / "1", {"data": _Counter(None)})
    with pytest.raises(io.CorruptCheckpointError, match=r"process_0-of-1\.json"):
        io.verify(tmp_path / "1")


def test_an_async_save_records_the_state_as_of_the_call(tmp_path: Path) -> None:
    """The background staging must not call get_state(): the iterator has moved on by then."""
    import threading

    class Recording(_Counter):
        def get_state(self) -> Any:
            callers.append(threading.current_thread())
            return super().get_state()

    callers: list[threading.Thread] = []
    counter = Recording({"i": 1})
    handle = io.save_checkpointables_async(tmp_path / "1", {"data": counter})
    counter.state = {"i": 2}
    handle.result()
    assert callers == [threading.current_thread()]
    assert io.load_checkpointables(tmp_path / "1", {"data": None})["data"] == {"i": 1}
