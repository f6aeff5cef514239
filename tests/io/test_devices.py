"""`put_on_device` makes the arrays `jax.device_put` makes, only cheaper per array."""

from typing import Any

import jax
import numpy as np
import pytest

from tenure.io import arrays, devices

ONE = jax.sharding.SingleDeviceSharding(jax.devices()[0])


def test_this_jax_offers_the_runtime_call() -> None:
    # The speed of a many-leaf restore rests on it: a jax without it should be noticed here.
    assert devices._batched is not None


def _same(ours: Any, theirs: Any) -> None:
    assert type(ours) is type(theirs)
    assert (ours.shape, ours.dtype, ours.weak_type) == (
        theirs.shape,
        theirs.dtype,
        theirs.weak_type,
    )
    assert ours.sharding == theirs.sharding
    assert ours.committed == theirs.committed
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


PLAIN = [np.bool_, np.int8, np.uint16, np.int32, np.float16, np.float32, np.complex64]
# Two of ml_dtypes' (through jax), and two that jax converts with x64 off.
DTYPES = [*PLAIN, jax.numpy.bfloat16, jax.numpy.float8_e4m3fn, np.float64, np.int64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (5,), (3, 4)])
def test_put_on_device_matches_jax_device_put(dtype: Any, shape: tuple[int, ...]) -> None:
    data = [(np.arange(int(np.prod(shape))) % 3).astype(dtype).reshape(shape) for _ in range(3)]
    for ours, theirs in zip(
        devices.put_on_device(data, ONE), jax.device_put(data, ONE), strict=True
    ):
        _same(ours, theirs)


def test_arrays_jax_cannot_adopt_as_they_are_go_through_jax_device_put() -> None:
    strided = np.arange(12, dtype=np.float32)[::2]
    data = [np.ones(3, np.float32), strided, np.zeros(2, np.float32)]
    for ours, theirs in zip(
        devices.put_on_device(data, ONE), jax.device_put(data, ONE), strict=True
    ):
        _same(ours, theirs)


def test_aligned_buffers_are_adopted_not_copied() -> None:
    data = [arrays.aligned_empty((256,), np.dtype(np.float32)) for _ in range(3)]
    for i, x in enumerate(data):
        x[:] = i
    for x, y in zip(data, devices.put_on_device(data, ONE), strict=True):
        assert y.unsafe_buffer_pointer() == x.ctypes.data
        np.testing.assert_array_equal(np.asarray(y), x)


def test_other_shardings_go_through_jax_device_put() -> None:
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("x",))
    named = jax.NamedSharding(mesh, jax.P())
    data = [np.arange(4, dtype=np.float32)]
    (ours,), (theirs,) = devices.put_on_device(data, named), jax.device_put(data, named)
    _same(ours, theirs)
