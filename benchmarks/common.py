"""What the benchmarks share: a timing helper, and the random states the I/O ones save."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

MIB = 1 << 20


def median_seconds(run: Callable[[], Any], repeats: int = 3) -> float:
    """The median wall time of `repeats` calls of `run`."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def random_state(
    total_bytes: int, *, big_bytes: int, small_count: int, small_max_bytes: int
) -> dict[str, np.ndarray]:
    """~75% of `total_bytes` in arrays of `big_bytes`, the rest in `small_count` arrays of
    4 KiB to `small_max_bytes`.

    Values are random, like trained weights: constant arrays would let a compressing writer
    (Orbax's default zstd) write almost nothing and measure compression instead of I/O.
    """
    rng = np.random.default_rng(0)
    big = int(total_bytes * 0.75) // big_bytes
    state = {f"big_{i}": rng.standard_normal(big_bytes // 4, np.float32) for i in range(big)}
    sizes = np.geomspace(4096, small_max_bytes, small_count)
    sizes *= (total_bytes - big * big_bytes) / sizes.sum()
    for i, size in enumerate(sizes):
        state[f"small_{i}"] = rng.standard_normal(max(1, int(size) // 4), np.float32)
    return state


def leaves_state(count: int, total_bytes: int) -> dict[str, np.ndarray]:
    """`count` random float32 arrays of equal size sharing `total_bytes`, each its own buffer
    (as a model's parameters are), named so that they sort in order."""
    rng = np.random.default_rng(0)
    width = len(str(count - 1))
    return {
        f"leaf_{i:0{width}d}": rng.standard_normal(max(1, total_bytes // count // 4), np.float32)
        for i in range(count)
    }
