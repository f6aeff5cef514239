"""Save and restore throughput of tenure.io: local disk vs S3 (moto on loopback), both layouts.

    .venv/bin/python benchmarks/storage.py --mib 256 --reps 3

Run from the repository root: the S3 server is the tests' moto (tests/s3server.py), started by
this script on a free loopback port. moto is a Python server, so the S3 figures bound tenure's
client side and moto's request handling, not a real object store's.
Not part of pytest.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import MIB, random_state

from tenure import io
from tenure.io.storage import Location, remove_tree
from tests import s3server

BUCKET = "tenure-bench"
LAYOUTS = {"per-array": io.ArrayLayout(ocdbt=False), "OCDBT": io.ArrayLayout(ocdbt=True)}
# What tenure picks when no layout is passed (single process).
DEFAULT_LAYOUT = {"local": "OCDBT", "s3": "OCDBT"}


def build_state(mib: float) -> dict[str, np.ndarray]:
    """~75% of the bytes in 16 MiB arrays, the rest in 48 arrays of 4 KiB to 2 MiB."""
    return random_state(int(mib * MIB), big_bytes=16 * MIB, small_count=48, small_max_bytes=2 * MIB)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure(
    root: Location, state: dict[str, np.ndarray], layout: io.ArrayLayout, reps: int
) -> tuple[float, float]:
    """Median seconds of a blocking save to a fresh step, and of a numpy restore of it."""
    saves, restores = [], []
    for rep in range(reps):
        step = root / str(rep)
        saves.append(timed(lambda s=step: io.save_pytree(s, state, layout=layout))[0])
        seconds, restored = timed(lambda s=step: io.load_pytree(s))
        restores.append(seconds)
        if rep == 0:
            for name, saved in state.items():
                if not np.array_equal(restored[name], saved):
                    raise AssertionError(f"{step}: {name} came back different")
        del restored
        # Keeps the disk and moto's memory to one state at a time.
        remove_tree(step)
    return statistics.median(saves), statistics.median(restores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=float, default=256.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="local root's parent (a tmp dir)")
    args = parser.parse_args()

    state = build_state(args.mib)
    size = sum(a.nbytes for a in state.values()) / MIB
    local_parent = Path(tempfile.mkdtemp(prefix="tenure-bench-storage-", dir=args.dir))
    results: dict[tuple[str, str], tuple[float, float]] = {}
    try:
        with s3server.running() as server:
            os.environ.update(server.environment())
            server.create_bucket(BUCKET)
            roots: dict[str, Location] = {
                "local": local_parent,
                "s3": io.ObjectPath.parse(f"s3://{BUCKET}/bench"),
            }
            for layout_name, layout in LAYOUTS.items():
                for where, root in roots.items():
                    results[where, layout_name] = measure(
                        root / layout_name, state, layout, args.reps
                    )
    finally:
        shutil.rmtree(local_parent, ignore_errors=True)

    print(f"\n{size:.2f} MiB state, {len(state)} float32 arrays, median of {args.reps}\n")
    print("| layout | operation | local MiB/s | S3 (moto) MiB/s | S3/local |")
    print("|---|---|---|---|---|")
    for layout_name in LAYOUTS:
        defaults = [w for w, d in DEFAULT_LAYOUT.items() if d == layout_name]
        label = layout_name + (f" (default {', '.join(defaults)})" if defaults else "")
        for index, operation in enumerate(("save", "restore")):
            local = results["local", layout_name][index]
            s3 = results["s3", layout_name][index]
            print(
                f"| {label} | {operation} | {size / local:.0f} ({local:.2f} s) | "
                f"{size / s3:.0f} ({s3:.2f} s) | {local / s3:.2f}x |"
            )


if __name__ == "__main__":
    main()
