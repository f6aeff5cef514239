"""tenure.io vs orbax-checkpoint 0.12 on the same disk: save, restore, async blocking, peak RSS.

    .venv/bin/python benchmarks/io_vs_orbax.py --gib 1 4 --reps 3 --dir /tmp/tenure-bench

Not part of pytest. Each peak-RSS figure comes from a fresh subprocess that saves then restores.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

MIB = 1 << 20


def build_state(gib: float) -> dict[str, np.ndarray]:
    """~75% of the bytes in 64 MiB arrays, the rest in 200 arrays of 4 KiB to 4 MiB."""
    total = int(gib * (1 << 30))
    big = int(total * 0.75) // (64 * MIB)
    state = {f"big_{i}": np.full(16 * MIB, i, np.float32) for i in range(big)}
    sizes = np.geomspace(4096, 4 * MIB, 200)
    sizes *= (total - big * 64 * MIB) / sizes.sum()
    for i, size in enumerate(sizes):
        state[f"small_{i}"] = np.full(max(1, int(size) // 4), i, np.float32)
    return state


def nbytes(state: dict[str, np.ndarray]) -> int:
    return sum(a.nbytes for a in state.values())


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def drop(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def raw_write(path: Path, state: dict[str, np.ndarray]) -> None:
    path.mkdir(parents=True)
    for name, array in state.items():
        with open(path / name, "wb") as f:
            f.write(array.data)
            f.flush()
            os.fsync(f.fileno())


def raw_read(path: Path) -> None:
    for file in path.iterdir():
        file.read_bytes()


def tenure_save(path: Path, state: Any) -> None:
    from tenure import io

    io.save_pytree(path / "1", state)


def tenure_restore(path: Path, abstract: Any) -> Any:
    from tenure import io

    return io.load_pytree(path / "1", abstract)


def orbax_save(path: Path, state: Any) -> None:
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(path) as manager:
        manager.save(1, args=ocp.args.StandardSave(state))
        manager.wait_until_finished()


def orbax_restore(path: Path, abstract: Any) -> Any:
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(path) as manager:
        return manager.restore(1, args=ocp.args.StandardRestore(abstract))


def blocking(kind: str, path: Path, state: Any) -> float:
    """Seconds the caller is blocked by an async save (the commit is awaited afterwards)."""
    if kind == "tenure":
        from tenure import io

        start = time.perf_counter()
        handle = io.save_pytree_async(path / "1", state)
        blocked = time.perf_counter() - start
        handle.result()
        return blocked
    import orbax.checkpoint as ocp

    manager = ocp.CheckpointManager(path)
    start = time.perf_counter()
    manager.save(1, args=ocp.args.StandardSave(state))
    blocked = time.perf_counter() - start
    manager.wait_until_finished()
    manager.close()
    return blocked


def rss_child(kind: str, gib: float, root: Path) -> None:
    import jax

    state = {k: jax.device_put(v) for k, v in build_state(gib).items()}
    path = root / f"rss_{kind}"
    drop(path)
    abstract = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), state
    )
    (tenure_save if kind == "tenure" else orbax_save)(path, state)
    (tenure_restore if kind == "tenure" else orbax_restore)(path, abstract)
    drop(path)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def peak_rss(kind: str, gib: float, root: Path) -> int:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", kind, "--gib", str(gib), "--dir", str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def run(gib: float, reps: int, root: Path) -> None:
    import jax

    state = {k: jax.device_put(v) for k, v in build_state(gib).items()}
    host = {k: np.asarray(v) for k, v in state.items()}
    size = nbytes(host)
    abstract = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), state
    )
    times: dict[str, list[float]] = {}
    for _ in range(reps):
        for kind in ("raw", "tenure", "orbax"):
            path = root / kind
            drop(path)
            if kind == "raw":
                times.setdefault("raw_write", []).append(timed(lambda p=path: raw_write(p, host)))
                times.setdefault("raw_read", []).append(timed(lambda p=path: raw_read(p)))
            else:
                save = tenure_save if kind == "tenure" else orbax_save
                restore = tenure_restore if kind == "tenure" else orbax_restore
                times.setdefault(f"{kind}_save", []).append(
                    timed(lambda f=save, p=path: f(p, state))
                )
                times.setdefault(f"{kind}_restore", []).append(
                    timed(lambda f=restore, p=path: jax.block_until_ready(f(p, abstract)))
                )
                drop(path)
                times.setdefault(f"{kind}_block", []).append(blocking(kind, path, state))
            drop(path)
    med = {k: statistics.median(v) for k, v in times.items()}
    gbps = {k: size / v / 1e9 for k, v in med.items()}
    print(f"## state {size / (1 << 30):.2f} GiB, {len(host)} arrays, median of {reps}")
    for k in (
        "raw_write",
        "raw_read",
        "tenure_save",
        "orbax_save",
        "tenure_restore",
        "orbax_restore",
    ):
        print(f"{k:15s} {gbps[k]:6.2f} GB/s  ({med[k]:.2f} s)")
    print(f"save ratio tenure/orbax {gbps['tenure_save'] / gbps['orbax_save']:.2f}x (target 2.0)")
    print(
        "restore ratio tenure/orbax",
        f"{gbps['tenure_restore'] / gbps['orbax_restore']:.2f}x (target 2.5)",
    )
    print(f"save vs raw write+fsync      {gbps['tenure_save'] / gbps['raw_write']:.2f}x")
    print(f"restore vs raw read          {gbps['tenure_restore'] / gbps['raw_read']:.2f}x")
    print(
        f"async blocking tenure {med['tenure_block'] * 1e3:.1f} ms,",
        f"orbax {med['orbax_block'] * 1e3:.1f} ms",
    )
    for kind in ("tenure", "orbax"):
        rss = peak_rss(kind, gib, root)
        print(f"peak RSS {kind:6s} {rss / (1 << 30):.2f} GiB = {rss / size:.2f}x state")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gib", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tenure-bench"))
    parser.add_argument("--rss-child", choices=["tenure", "orbax"])
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.gib[0], args.dir)
        return
    for gib in args.gib:
        run(gib, args.reps, args.dir)


if __name__ == "__main__":
    main()
