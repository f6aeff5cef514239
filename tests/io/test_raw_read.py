"""Plain zarr3 chunks tenure wrote are read straight into aligned buffers, checked by crc32."""

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tenure import io
from tenure.io import arrays, pytree


@pytest.fixture
def tensorstore_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the arrays a load opened through tensorstore."""
    opened: list[str] = []

    def spy(item_dir: Path, name: str, meta: Any) -> Any:
        opened.append(name)
        return arrays.open_for_read(item_dir, name, meta)

    monkeypatch.setattr(pytree, "open_for_read", spy)
    return opened


def _sharded(mesh: jax.sharding.Mesh) -> jax.Array:
    value = jnp.arange(64.0, dtype=jnp.float32).reshape(8, 8)
    return jax.device_put(value, jax.NamedSharding(mesh, jax.P("x", "y")))


def test_same_sharding_and_numpy_loads_skip_tensorstore(
    tmp_path: Path, mesh: jax.sharding.Mesh, tensorstore_opens: list[str]
) -> None:
    array = _sharded(mesh)
    tree = {"w": array, "n": np.arange(5, dtype=np.int16), "s": 3.5, "k": jax.random.key(1)}
    io.save_pytree(tmp_path / "1", tree)
    out = io.load_pytree(tmp_path / "1")
    assert tensorstore_opens == []
    assert out["w"].sharding == array.sharding
    np.testing.assert_array_equal(np.asarray(out["w"]), np.asarray(array))
    np.testing.assert_array_equal(out["n"], tree["n"])
    assert out["s"] == 3.5
    assert jnp.array_equal(jax.random.key_data(out["k"]), jax.random.key_data(tree["k"]))


def test_resharding_casting_and_compression_fall_back_to_tensorstore(
    tmp_path: Path, mesh: jax.sharding.Mesh, tensorstore_opens: list[str]
) -> None:
    array = _sharded(mesh)
    io.save_pytree(tmp_path / "1", {"w": array})
    other = jax.NamedSharding(mesh, jax.P("y", None))
    out = io.load_pytree(
        tmp_path / "1", {"w": jax.ShapeDtypeStruct((8, 8), jnp.float32, sharding=other)}
    )
    np.testing.assert_array_equal(np.asarray(out["w"]), np.asarray(array))
    out = io.load_pytree(tmp_path / "1", {"w": jax.ShapeDtypeStruct((8, 8), jnp.int32)})
    assert out["w"].dtype == jnp.int32
    assert tensorstore_opens == ["w", "w"]
    io.save_pytree(tmp_path / "2", {"w": array}, layout=io.ArrayLayout(compression=True))
    np.testing.assert_array_equal(
        np.asarray(io.load_pytree(tmp_path / "2")["w"]), np.asarray(array)
    )
    assert tensorstore_opens == ["w", "w", "w"]


@pytest.mark.parametrize("damage", ["flip", "append", "truncate", "delete"])
def test_damaged_shard_raises_corrupt_checkpoint_naming_the_array(
    tmp_path: Path, mesh: jax.sharding.Mesh, damage: str
) -> None:
    io.save_pytree(tmp_path / "1", {"w": _sharded(mesh)})
    chunk = tmp_path / "1" / "state" / "w" / "c" / "1" / "0"
    data = bytearray(chunk.read_bytes())
    if damage == "flip":
        data[3] ^= 0x01
        chunk.write_bytes(bytes(data))
    elif damage == "append":
        chunk.write_bytes(bytes(data) + b"\0")
    elif damage == "truncate":
        chunk.write_bytes(bytes(data[:-5]))
    else:
        chunk.unlink()
    with pytest.raises(io.CorruptCheckpointError, match="'w'"):
        io.load_pytree(tmp_path / "1")


def test_buffers_are_aligned_for_jax_to_adopt() -> None:
    for shape in [(), (1,), (3, 5), (1000,)]:
        out = arrays.aligned_empty(shape, np.dtype(np.float64))
        assert out.shape == shape
        assert out.ctypes.data % 64 == 0
