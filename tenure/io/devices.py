"""Host arrays onto one device, many at a time: the one place tenure reaches inside jax.

`jax.device_put` of a list spends about 25 us per array deciding, array by array, what the
caller meant (avals, shardings, copy semantics, layouts); for a restore of thousands of small
arrays that costs more than reading them. A restore already knows: every array is a freshly
read, C-ordered numpy array of a dtype jax keeps, bound for one device. For that case the
arrays are handed straight to the runtime call `jax.device_put` ends in, about 5x cheaper;
anything else, or a jax without that call, goes through `jax.device_put`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

# Not a public API of jax: looked up once, and its absence costs only speed.
try:
    from jaxlib import xla_client as _xla_client

    _batched: Callable[..., Any] | None = _xla_client.batched_device_put
except (ImportError, AttributeError):  # pragma: no cover - other jax versions
    _batched = None


def put_on_device(data: Sequence[np.ndarray], sharding: jax.sharding.Sharding) -> list[Any]:
    """`jax.device_put(data, sharding)`, the same arrays (committed, strongly typed, adopting
    aligned buffers on CPU), at less cost per array when `sharding` is one device.

    Examples:
        >>> import jax, numpy as np
        >>> one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        >>> a, b = put_on_device([np.arange(3, dtype=np.float32), np.ones((2, 2), np.int32)], one)
        >>> a.sharding == one, a.dtype, b.shape, a.committed
        (True, dtype('float32'), (2, 2), True)
    """
    if _batched is None or type(sharding) is not jax.sharding.SingleDeviceSharding:
        return list(jax.device_put(list(data), sharding))
    devices = list(sharding.device_set)
    avals: dict[tuple[tuple[int, ...], np.dtype[Any]], Any] = {}
    out: list[Any] = []
    for i, x in enumerate(data):
        aval = _aval(x, avals)
        if aval is None:
            return out + list(jax.device_put(list(data[i:]), sharding))
        out.append(_batched(aval, sharding, [x], devices, True))
    return out


def _aval(x: Any, avals: dict[tuple[tuple[int, ...], np.dtype[Any]], Any]) -> Any:
    """The abstract value of `x` (shared by the arrays of one shape and dtype), or None when
    jax would convert it (a 64-bit dtype with x64 off) or copy it (not one C-ordered block)."""
    if type(x) is not np.ndarray or not x.flags.c_contiguous:
        return None
    key = (x.shape, x.dtype)
    aval = avals.get(key)
    if aval is None and jax.dtypes.canonicalize_dtype(x.dtype) == x.dtype:
        aval = avals[key] = jax.core.ShapedArray(x.shape, x.dtype)
    return aval
