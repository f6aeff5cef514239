"""Save/load round trips: every leaf kind, container, dtype and sharding, on disk and S3."""

import collections
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tenure import io
from tenure.io import Location

# `new_root` makes a new root on every call, so sharing it across examples is safe.
FRESH_ROOT_PER_EXAMPLE = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

Point = collections.namedtuple("Point", ["x", "y"])
DTYPES = [
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
    np.uint64, np.float16, np.float32, np.float64, np.complex64, np.complex128,
    ml_dtypes.bfloat16,
]  # fmt: skip


def assert_same(a: Any, b: Any) -> None:
    """Equal structure, leaf types, dtypes and values."""
    # Key paths, not treedefs: a loaded namedtuple is a fresh class with the same fields.
    flat_a, tree_a = jax.tree_util.tree_flatten_with_path(a, is_leaf=lambda x: x is None)
    flat_b, tree_b = jax.tree_util.tree_flatten_with_path(b, is_leaf=lambda x: x is None)
    assert str(tree_a).replace("Point", "") == str(tree_b).replace("Point", "")
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
    for (_, x), (_, y) in zip(flat_a, flat_b, strict=True):
        assert type(x) is type(y) or (isinstance(x, jax.Array) and isinstance(y, jax.Array))
        if isinstance(x, np.ndarray | np.generic | jax.Array):
            assert np.asarray(x).dtype == np.asarray(y).dtype
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        else:
            assert x == y


def test_every_leaf_kind_and_container_roundtrips(root: Location, mesh: jax.sharding.Mesh) -> None:
    sharded = jax.device_put(
        jnp.arange(64.0).reshape(8, 8), jax.NamedSharding(mesh, jax.P("x", "y"))
    )
    tree = {
        "np": np.arange(6, dtype=np.int16).reshape(2, 3),
        "zero_d": np.array(2.5, dtype=np.float32),
        "bf16": jnp.ones((3,), jnp.bfloat16),
        "sharded": sharded,
        "scalars": [1, 2.5, True, 1 + 2j, np.float32(3), np.int64(4)],
        "text": "hello",
        "none": None,
        "empty": {"d": {}, "l": [], "t": ()},
        "point": Point(x=np.zeros(2), y=(1, "b")),
        "empty_array": np.zeros((0, 3)),
    }
    io.save_pytree(root / "1", tree)
    out = io.load_pytree(root / "1")
    assert_same(tree, out)
    assert out["sharded"].sharding == sharded.sharding
    assert type(out["point"]).__name__ == "Point"
    assert out["point"].y == (1, "b")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_numeric_dtype_roundtrips(root: Location, dtype: Any) -> None:
    value = np.arange(5).astype(dtype)
    io.save_pytree(root / "1", {"v": value, "s": value[0]})
    out = io.load_pytree(root / "1")
    assert_same({"v": value, "s": value[0]}, out)


@st.composite
def pytrees(draw: st.DrawFn, depth: int = 0) -> Any:
    leaf = st.one_of(
        hnp.arrays(
            st.sampled_from(DTYPES[:12]),
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
        ),
        st.integers(-(2**62), 2**62),
        st.floats(allow_nan=False),
        st.booleans(),
        st.text(max_size=5),
        st.none(),
    )
    if depth >= 2:
        return draw(leaf)
    key = st.text(alphabet="abcxyz_", min_size=1, max_size=3)
    return draw(
        st.one_of(
            leaf,
            st.dictionaries(key, pytrees(depth + 1), max_size=3),
            st.lists(pytrees(depth + 1), max_size=3),
            st.lists(pytrees(depth + 1), max_size=3).map(tuple),
        )
    )


@FRESH_ROOT_PER_EXAMPLE
@given(tree=st.dictionaries(st.sampled_from(["a", "b", "c"]), pytrees(), max_size=3))
def test_save_then_load_roundtrips_any_pytree(new_root: Callable[[], Location], tree: Any) -> None:
    """Law: load_pytree(save_pytree(t)) == t, for random nested containers, dtypes and shapes."""
    step = new_root() / "1"
    io.save_pytree(step, tree)
    assert_same(tree, io.load_pytree(step))


@FRESH_ROOT_PER_EXAMPLE
@given(
    shape=st.tuples(st.sampled_from([8, 16]), st.sampled_from([4, 8, 12])),
    saved=st.sampled_from([("x", "y"), ("x", None), (None, "y"), (None, None), ("y", None)]),
    wanted=st.sampled_from([("x", "y"), ("y", None), (None, None), (None, "x")]),
    dtype=st.sampled_from([jnp.float32, jnp.bfloat16, jnp.int32]),
)
def test_load_reshards_to_any_target_sharding(
    new_root: Callable[[], Location], shape: tuple[int, int], saved: Any, wanted: Any, dtype: Any
) -> None:
    """Law: loading with a target sharding gives the saved values laid out on that sharding."""
    mesh = jax.make_mesh((4, 2), ("x", "y"))
    value = jnp.arange(shape[0] * shape[1]).reshape(shape).astype(dtype)
    array = jax.device_put(value, jax.NamedSharding(mesh, jax.P(*saved)))
    step = new_root() / "1"
    io.save_pytree(step, {"w": array})
    target = jax.NamedSharding(mesh, jax.P(*wanted))
    out = io.load_pytree(step, {"w": jax.ShapeDtypeStruct(shape, jnp.float32, sharding=target)})
    assert out["w"].sharding == target
    assert out["w"].dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(out["w"]), np.asarray(value).astype(np.float32))


def test_abstract_numpy_or_none_gives_numpy_and_partial_restore(
    root: Location, mesh: jax.sharding.Mesh
) -> None:
    tree = {"a": jnp.ones((4, 2)), "b": {"c": jnp.zeros(3), "d": np.arange(2)}, "e": 5}
    io.save_pytree(root / "1", tree)
    abstract = {"a": None, "b": {"c": np.zeros(3, np.float16)}}
    with pytest.raises(io.StructureMismatchError, match=r"\['b'\]\['d'\], \['e'\].*partial=True"):
        io.load_pytree(root / "1", abstract)
    out = io.load_pytree(root / "1", abstract, partial=True)
    assert set(out) == {"a", "b"}
    assert set(out["b"]) == {"c"}
    assert isinstance(out["a"], np.ndarray)
    assert out["b"]["c"].dtype == np.float16


def test_pytree_metadata_reads_shapes_dtypes_and_shardings(
    root: Location, mesh: jax.sharding.Mesh
) -> None:
    sharding = jax.NamedSharding(mesh, jax.P("x"))
    tree = {"w": jax.device_put(jnp.zeros((8, 2), jnp.bfloat16), sharding), "n": np.zeros(3)}
    io.save_pytree(root / "1", tree)
    meta = io.pytree_metadata(root / "1")
    assert meta["w"] == jax.ShapeDtypeStruct((8, 2), jnp.bfloat16, sharding=sharding)
    assert meta["n"].shape == (3,)
    assert meta["n"].dtype == np.float64
    out = io.load_pytree(root / "1", meta)
    assert out["w"].sharding == sharding


def test_registered_pytree_node_restores_through_abstract_tree(root: Location) -> None:
    @jax.tree_util.register_dataclass
    @__import__("dataclasses").dataclass
    class State:
        w: Any
        step: Any

    io.save_pytree(root / "1", State(w=np.ones(2), step=np.int32(3)))
    assert io.load_pytree(root / "1")["w"].tolist() == [1.0, 1.0]
    out = io.load_pytree(root / "1", State(w=np.zeros(2), step=np.int32(0)))
    assert isinstance(out, State)
    assert out.step == 3


def test_typed_and_raw_prng_keys_roundtrip_inside_a_pytree(root: Location) -> None:
    tree = {
        "typed": jax.random.key(7),
        "raw": jax.random.PRNGKey(7),
        "many": jax.random.split(jax.random.key(1), 3),
    }
    io.save_pytree(root / "1", tree)
    out = io.load_pytree(root / "1")
    assert jnp.array_equal(jax.random.key_data(out["typed"]), jax.random.key_data(tree["typed"]))
    assert jnp.array_equal(jax.random.key_data(out["many"]), jax.random.key_data(tree["many"]))
    assert out["raw"].dtype == jnp.uint32
    assert jax.random.uniform(out["typed"]) == jax.random.uniform(tree["typed"])


def test_saves_and_loads_leave_the_garbage_collector_as_they_found_it(tmp_path: Path) -> None:
    tree = {f"w{i}": np.full(3, i) for i in range(5)}
    io.save_pytree(tmp_path / "1", tree)
    io.load_pytree(tmp_path / "1")
    assert gc.isenabled()
    (tmp_path / "1" / "state" / "_METADATA").write_text("{}")
    with pytest.raises(io.TenureIOError):
        io.load_pytree(tmp_path / "1")
    assert gc.isenabled()
    gc.disable()
    try:
        io.save_pytree(tmp_path / "2", tree)
        assert io.load_pytree(tmp_path / "2")["w4"].tolist() == [4, 4, 4]
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("target", ["abstract", "none"])
def test_saves_and_loads_leave_no_cycles_for_the_collector(tmp_path: Path, target: str) -> None:
    # What a save or load holds is freed as soon as it returns, not by a later pass of the
    # collector (which then walks every object the load made: a large part of its time).
    tree = {f"w{i}": jnp.full(3, i) for i in range(50)}
    abstract = (
        None
        if target == "none"
        else jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), tree
        )
    )
    io.save_pytree(tmp_path / "0", tree)
    io.load_pytree(tmp_path / "0", abstract)  # warms jax's and tensorstore's caches
    gc.collect()
    gc.disable()
    try:
        io.save_pytree(tmp_path / "1", tree)
        out = io.load_pytree(tmp_path / "1", abstract)
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert out["w7"].tolist() == [7, 7, 7]


def test_a_load_pauses_the_collector_from_its_record_to_its_result(tmp_path: Path) -> None:
    # A collector pass between parsing the item's record and loading from it walks every
    # object of the record (one or more per leaf), only to find them all alive.
    tree = {f"w{i}": np.full(3, i) for i in range(2_000)}
    io.save_pytree(tmp_path / "1", tree)
    passes: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.collect()
    gc.callbacks.append(count)
    try:
        out = io.load_pytree(tmp_path / "1")
    finally:
        gc.callbacks.remove(count)
    # One pass at most: once the load returns and the collector resumes.
    assert len(passes) <= 1, passes
    assert out["w1999"].tolist() == [1999] * 3
