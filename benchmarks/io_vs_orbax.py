"""tenure.io vs orbax-checkpoint 0.12 on the same disk: save, restore, async blocking, peak RSS.

    .venv/bin/python benchmarks/io_vs_orbax.py --gib 1 4 --reps 3 --dir /tmp/tenure-bench

Not part of pytest. Each peak-RSS figure comes from a fresh subprocess that saves then restores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from common import MIB, random_state


def build_state(gib: float) -> dict[str, np.ndarray]:
    """~75% of the bytes in 64 MiB arrays, the rest in 200 arrays of 4 KiB to 4 MiB."""
    return random_state(
        int(gib * (1 << 30)), big_bytes=64 * MIB, small_count=200, small_max_bytes=4 * MIB
    )


def nbytes(state: dict[str, np.ndarray]) -> int:
    return sum(a.nbytes for a in state.values())


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def drop(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under `root` (and its parent), 16 at a time."""
    paths = [root.parent]
    for dirpath, _, files in os.walk(root):
        paths.append(Path(dirpath))
        paths.extend(Path(dirpath) / f for f in files)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(_fsync, paths))


def raw_write(path: Path, state: dict[str, np.ndarray]) -> None:
    """The fastest durable write found here: write every file, then fsync them in parallel."""
    path.mkdir(parents=True)
    for name, array in state.items():
        with open(path / name, "wb") as f:
            f.write(array.data)
    fsync_tree(path)


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


def orbax_durable_save(path: Path, state: Any) -> None:
    """Orbax's save, then an fsync of every file and directory it wrote, as tenure does."""
    orbax_save(path, state)
    fsync_tree(path)


def orbax_restore(path: Path, abstract: Any) -> Any:
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(path) as manager:
        return manager.restore(1, args=ocp.args.StandardRestore(abstract))


def blocking(kind: str, path: Path, state: Any) -> tuple[float, float]:
    """Seconds until an async save returns, and until the caller may mutate its arrays.

    Orbax's save returns once it may; tenure's returns at once and `staged()` says when.
    """
    if kind == "tenure":
        from tenure import io

        start = time.perf_counter()
        handle = io.save_pytree_async(path / "1", state)
        returned = time.perf_counter() - start
        handle.staged()
        staged = time.perf_counter() - start
        handle.result()
        return returned, staged
    import orbax.checkpoint as ocp

    manager = ocp.CheckpointManager(path)
    start = time.perf_counter()
    manager.save(1, args=ocp.args.StandardSave(state))
    blocked = time.perf_counter() - start
    manager.wait_until_finished()
    manager.close()
    return blocked, blocked


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
    print(peak_rss_self())


def peak_rss_self() -> int:
    """This process's peak RSS in bytes (VmHWM).

    Not `ru_maxrss`: Linux carries it over from the parent across fork and exec, so a child
    of the large benchmark process would report the parent's peak.
    """
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


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

    def record(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)

    for _ in range(reps):
        for kind in ("raw", "tenure", "orbax", "orbax_durable"):
            path = root / kind
            drop(path)
            if kind == "raw":
                record("raw_write", timed(lambda p=path: raw_write(p, host)))
                record("raw_read", timed(lambda p=path: raw_read(p)))
            elif kind == "orbax_durable":
                record("orbax_durable_save", timed(lambda p=path: orbax_durable_save(p, state)))
            else:
                save = tenure_save if kind == "tenure" else orbax_save
                restore = tenure_restore if kind == "tenure" else orbax_restore
                record(f"{kind}_save", timed(lambda f=save, p=path: f(p, state)))
                record(
                    f"{kind}_restore",
                    timed(lambda f=restore, p=path: jax.block_until_ready(f(p, abstract))),
                )
                drop(path)
                returned, staged = blocking(kind, path, state)
                record(f"{kind}_return", returned)
                record(f"{kind}_staged", staged)
            drop(path)
    med = {k: statistics.median(v) for k, v in times.items()}
    gbps = {k: size / v / 1e9 for k, v in med.items()}

    def rate(key: str) -> str:
        return f"{gbps[key]:.2f} GB/s ({med[key]:.2f} s)"

    def ratio(ours: str, theirs: str) -> str:
        return f"{gbps[ours] / gbps[theirs]:.2f}x"

    rss = {kind: peak_rss(kind, gib, root) for kind in ("tenure", "orbax")}
    print(f"\n{size / (1 << 30):.2f} GiB state, {len(host)} arrays, median of {reps}\n")
    print("| measure | tenure | Orbax 0.12.8 | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| save, as each library does it | {rate('tenure_save')} | {rate('orbax_save')} | "
        f"{ratio('tenure_save', 'orbax_save')} | >= 2.0x |"
    )
    print(
        f"| durable save (Orbax + fsync of all it wrote) | {rate('tenure_save')} | "
        f"{rate('orbax_durable_save')} | {ratio('tenure_save', 'orbax_durable_save')} | >= 2.0x |"
    )
    print(
        f"| restore | {rate('tenure_restore')} | {rate('orbax_restore')} | "
        f"{ratio('tenure_restore', 'orbax_restore')} | >= 2.5x |"
    )
    for key, what in (("return", "async save returns"), ("staged", "async save, arrays free")):
        print(
            f"| {what} | {med[f'tenure_{key}'] * 1e3:.1f} ms | "
            f"{med[f'orbax_{key}'] * 1e3:.1f} ms | | <= Orbax |"
        )
    print(
        f"| peak RSS, save then restore | {rss['tenure'] / (1 << 30):.2f} GiB "
        f"({rss['tenure'] / size:.2f}x) | {rss['orbax'] / (1 << 30):.2f} GiB "
        f"({rss['orbax'] / size:.2f}x) | | <= 2.3x and < Orbax |"
    )
    print(
        f"\nmachine: raw write+fsync {rate('raw_write')}, raw read {rate('raw_read')}; "
        f"tenure save {ratio('tenure_save', 'raw_write')} of raw write+fsync, "
        f"restore {ratio('tenure_restore', 'raw_read')} of raw read"
    )


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
