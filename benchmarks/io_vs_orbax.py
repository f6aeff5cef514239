"""tenure.io against orbax-checkpoint 0.12, safetensors and this disk's own limits.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/io_vs_orbax.py --leaves 64 512 4096 16384 \
        --gib 1 --reps 3 --dir /tmp/leafbench --figure docs/images/io_leaves.png

Two kinds of state, float32 and random so that no writer can compress them: `--leaves N ...`
spreads 64 MiB over N equal arrays (a model with many small parameters), `--gib G ...` puts G GiB
in 212 arrays, three quarters of it in 64 MiB ones. Every library saves and restores each state
`--reps` times, repetitions interleaved, and the medians are printed with issue 14's targets.

- tenure: `io.save_pytree` and `io.load_pytree` in its default layout (named in the table).
- Orbax: a `CheckpointManager` with `StandardSave` and `StandardRestore`.
- safetensors: `save_file`, then an fsync of the file and its directories; `load_file` (numpy
  arrays), and `safetensors.flax.load_file` (jax arrays, as tenure's restore returns).
- tensorstore alone: zarr3 chunks of plain bytes on OCDBT (as tenure writes large arrays), all
  opens issued before any is awaited, all writes in one transaction, then an fsync of every
  file; read back into numpy. No checksum of its own, no metadata, no atomic commit.
- jax alone (leaf counts only): the restored arrays made jax arrays by the runtime call
  `jax.device_put` ends in (through `tenure.io.devices`, as tenure's restore makes them), no
  I/O: the floor of any restore into jax arrays.
- crc32 alone (leaf counts only): the crc32 of every array on two threads, as tenure's restore
  checks each chunk against its record, no I/O. safetensors plus crc32 alone plus jax alone is
  the floor of a restore that checks what it reads and returns jax arrays (a derived row).
- disk: the same bytes written by `--threads` threads, one file each, each fsynced; read back
  likewise. This is the limit the others are held to.
- disk, checked (GiB states only): the disk row with the crc32 of every array computed by the
  same threads before they write it, and of every file after it is read: the limit of a save
  or restore that checksums every byte, as tenure's does, on this machine's cores.

The page cache is dropped before every restore, so all reads come from the disk; where it
cannot be (not root), the script says so and every read is warm. Memory is measured in a fresh
subprocess per library: the high-water mark is reset once the state is built, so the figure is
what save plus restore add. Not part of pytest.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from common import MIB, leaves_state, random_state

GIB = 1 << 30
LEAVES_BYTES = 64 * MIB
# Every library writes one step, or its one file, under <its directory>/1.
STEP = "1"
SAFETENSORS_FILE = "state.safetensors"
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
# The most buffers one writev may take on Linux.
IOV_MAX = 1024
# One read of a whole 128 MiB file ran slower here than reads of 8 MiB.
READ_CHUNK = 8 * MIB


# The states.


@dataclass(frozen=True)
class Case:
    """One state to save: jax arrays, zero-copy numpy views of them, and their abstract tree."""

    label: str
    state: dict[str, Any]
    host: dict[str, np.ndarray]
    abstract: dict[str, Any]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.host.values())


def make_case(label: str, arrays: dict[str, np.ndarray]) -> Case:
    import jax

    state = jax.block_until_ready({k: jax.device_put(v) for k, v in arrays.items()})
    abstract = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), state
    )
    # On the CPU backend np.asarray shares the jax buffer: the state is resident once.
    return Case(label, state, {k: np.asarray(v) for k, v in state.items()}, abstract)


def gib_case(gib: float) -> Case:
    """~75% of the bytes in 64 MiB arrays, the rest in 200 arrays of 4 KiB to 4 MiB."""
    arrays = random_state(
        int(gib * GIB), big_bytes=64 * MIB, small_count=200, small_max_bytes=4 * MIB
    )
    return make_case(f"{gib:g} GiB", arrays)


def leaves_case(count: int) -> Case:
    return make_case(f"{count} leaves", leaves_state(count, LEAVES_BYTES))


# Files on disk.


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_all(paths: Iterable[Path]) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(_fsync, paths))


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under `root`, and `root`'s parent."""
    paths = [root.parent]
    for dirpath, _, files in os.walk(root):
        paths.append(Path(dirpath))
        paths.extend(Path(dirpath) / f for f in files)
    fsync_all(paths)


def drop_page_cache() -> None:
    os.sync()
    DROP_CACHES.write_text("3")


def cache_drop_refusal() -> str | None:
    """Why this process cannot empty the page cache, or None when it can (it just did)."""
    if os.geteuid() != 0:
        return "not running as root"
    try:
        drop_page_cache()
    except OSError as error:
        return f"writing {DROP_CACHES} failed ({error})"
    return None


# The libraries: each saves a Case under a directory and restores it from there.


@dataclass(frozen=True)
class Library:
    name: str
    save: Callable[[Path, Case], None]
    restore: Callable[[Path, Case], Any]
    # The item directory inside the step, where the library writes one.
    item: str | None = None
    # Names the layout the library chose, from the item it wrote.
    layout: Callable[[Path], str] | None = None


def tenure_save(path: Path, case: Case) -> None:
    from tenure import io

    io.save_pytree(path / STEP, case.state)


def tenure_restore(path: Path, case: Case) -> Any:
    from tenure import io

    return io.load_pytree(path / STEP, case.abstract)


def tenure_layout(item_dir: Path) -> str:
    """Which layout tenure chose, read from what it wrote: OCDBT, zarr3 per array, or both."""
    from tenure.io.root import OCDBT_MANIFEST_FILE

    parts = []
    if any(item_dir.rglob(OCDBT_MANIFEST_FILE)):
        parts.append("OCDBT")
    if per_array := sum(1 for _ in item_dir.rglob("zarr.json")):
        parts.append(f"{per_array} zarr3 dirs")
    return " + ".join(parts) or "unknown"


def orbax_save(path: Path, case: Case) -> None:
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(path) as manager:
        manager.save(int(STEP), args=ocp.args.StandardSave(case.state))
        manager.wait_until_finished()


def orbax_durable_save(path: Path, case: Case) -> None:
    """Orbax's save, then an fsync of every file and directory it wrote, as tenure does."""
    orbax_save(path, case)
    fsync_tree(path)


def orbax_restore(path: Path, case: Case) -> Any:
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(path) as manager:
        return manager.restore(int(STEP), args=ocp.args.StandardRestore(case.abstract))


def safetensors_save(path: Path, case: Case) -> None:
    from safetensors.numpy import save_file

    step = path / STEP
    step.mkdir(parents=True)
    save_file(case.host, step / SAFETENSORS_FILE)
    fsync_all([step / SAFETENSORS_FILE, step, path])


def safetensors_restore(path: Path, case: Case) -> Any:
    from safetensors.numpy import load_file

    return load_file(path / STEP / SAFETENSORS_FILE)


def safetensors_jax_restore(path: Path, case: Case) -> Any:
    """safetensors' own loader into jax arrays: what tenure's restore returns."""
    from safetensors.flax import load_file

    return load_file(path / STEP / SAFETENSORS_FILE)


def jax_put(path: Path, case: Case) -> Any:
    """No I/O: the host arrays made jax arrays by the runtime call `jax.device_put` ends in,
    as tenure's restore makes them (through `tenure.io.devices`); the floor of any restore
    into jax arrays."""
    import jax

    from tenure.io.devices import put_on_device

    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return put_on_device(list(case.host.values()), one)


def crc_alone(path: Path, case: Case) -> Any:
    """No I/O: the crc32 of every array, half of them on a second thread, as tenure's restore
    checks the chunks it reads."""
    arrays = [a.data for a in case.host.values()]
    half = len(arrays) // 2
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(lambda: [zlib.crc32(a) for a in arrays[half:]])
        return [zlib.crc32(a) for a in arrays[:half]] + other.result()


def _ts_spec(path: Path, name: str, array: np.ndarray | None = None) -> dict[str, Any]:
    # tenure's own database options and context (one data file, values outside the index,
    # no fsync per file: the fsync comes after), so that the row is its layout's floor.
    from tenure.io.arrays import ocdbt_spec

    kvstore = {**ocdbt_spec(path / STEP, write=array is not None), "path": name}
    spec: dict[str, Any] = {"driver": "zarr3", "kvstore": kvstore}
    if array is None:
        return {**spec, "open": True}
    codecs = [{"name": "bytes", "configuration": {"endian": "little"}}]
    chunks = {"name": "regular", "configuration": {"chunk_shape": list(array.shape)}}
    metadata = {
        "shape": list(array.shape),
        "data_type": array.dtype.name,
        "chunk_grid": chunks,
        "codecs": codecs,
    }
    return {**spec, "create": True, "metadata": metadata}


def tensorstore_save(path: Path, case: Case) -> None:
    """tensorstore alone, as tenure's large arrays are written: zarr3 chunks of plain bytes on
    OCDBT, every open issued before any is awaited, all writes in one transaction, then an
    fsync of every file."""
    import tensorstore as ts

    from tenure.io.storage import new_context

    ctx = new_context()
    opens = [ts.open(_ts_spec(path, k, a), context=ctx) for k, a in case.host.items()]
    txn = ts.Transaction()
    writes = [
        o.result().with_transaction(txn).write(a, can_reference_source_data_indefinitely=True)
        for o, a in zip(opens, case.host.values(), strict=True)
    ]
    txn.commit_async().result()
    for write in writes:
        write.result()
    fsync_tree(path / STEP)


def tensorstore_restore(path: Path, case: Case) -> Any:
    import tensorstore as ts

    from tenure.io.storage import new_context

    ctx = new_context()
    opens = [ts.open(_ts_spec(path, k), context=ctx) for k in case.host]
    reads = [o.result().read() for o in opens]
    return [r.result() for r in reads]


def no_save(path: Path, case: Case) -> None:
    """The `jax_put` row writes nothing."""


def shares(arrays: Sequence[np.ndarray], parts: int) -> list[Sequence[np.ndarray]]:
    """`arrays` cut, in order, into `parts` runs of about equal bytes."""
    ends = np.cumsum([a.nbytes for a in arrays])
    cuts = np.searchsorted(ends, ends[-1] * np.arange(1, parts) / parts, side="right")
    bounds = [0, *cuts.tolist(), len(arrays)]
    return [arrays[a:b] for a, b in itertools.pairwise(bounds)]


def write_durably(file: Path, arrays: Sequence[np.ndarray]) -> None:
    """Write `arrays` back to back into a new `file` with gathered writes, then fsync it."""
    views = [memoryview(a).cast("B") for a in arrays]
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        first = 0
        while first < len(views):
            written = os.writev(fd, views[first : first + IOV_MAX])
            while first < len(views) and written >= len(views[first]):
                written -= len(views[first])
                first += 1
            if written:  # a short write stopped inside a buffer
                views[first] = views[first][written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_into(file: Path, buffer: np.ndarray | None = None) -> np.ndarray:
    """Read `file` into `buffer`, or into new memory when None, in reads of READ_CHUNK."""
    with open(file, "rb", buffering=0) as f:
        if buffer is None:
            buffer = np.empty(os.fstat(f.fileno()).st_size, np.uint8)
        view, got = memoryview(buffer), 0
        while got < len(view):
            count = f.readinto(view[got : got + READ_CHUNK])
            if not count:
                raise EOFError(f"{file} shrank while being read")
            got += count
    return buffer


def write_checked(file: Path, arrays: Sequence[np.ndarray]) -> list[int]:
    """The crc32 of each array, then `write_durably`: a save that checksums what it writes."""
    crcs = [zlib.crc32(a.data) for a in arrays]
    write_durably(file, arrays)
    return crcs


def read_checked(file: Path, buffer: np.ndarray | None = None) -> int:
    """`read_into`, then the crc32 of what was read: a restore that checks what it reads."""
    return zlib.crc32(read_into(file, buffer).data)


def disk_save(
    path: Path,
    case: Case,
    threads: int,
    write: Callable[[Path, Sequence[np.ndarray]], Any] = write_durably,
) -> None:
    step = path / STEP
    step.mkdir(parents=True)
    files = [step / f"part_{i}" for i in range(threads)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(write, files, shares(list(case.host.values()), threads)))
    fsync_all([step, path])


def disk_restore(
    path: Path,
    case: Case,
    threads: int,
    buffers: Sequence[np.ndarray] | None = None,
    read: Callable[[Path, np.ndarray | None], Any] = read_into,
) -> Any:
    files = sorted((path / STEP).iterdir())
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(read, files, buffers or [None] * len(files)))


def disk_read_touched(path: Path, case: Case, threads: int, cold: bool) -> float:
    """Seconds to read the disk row's files into memory already touched: the disk alone,
    without the page faults that reading into new memory adds (large in a virtual machine)."""
    remove(path)
    disk_save(path, case, threads)
    buffers = [np.ones(f.stat().st_size, np.uint8) for f in sorted((path / STEP).iterdir())]
    if cold:
        drop_page_cache()
    seconds = timed(partial(disk_restore, path, case, threads, buffers))
    remove(path)
    return seconds


def libraries(threads: int) -> dict[str, Library]:
    from tenure import io

    return {
        lib.name: lib
        for lib in (
            Library("tenure", tenure_save, tenure_restore, io.DEFAULT_ITEM, tenure_layout),
            Library("orbax", orbax_save, orbax_restore, "default"),
            Library("safetensors", safetensors_save, safetensors_restore),
            Library("safetensors_jax", safetensors_save, safetensors_jax_restore),
            Library("jax", no_save, jax_put),
            Library("crc32", no_save, crc_alone),
            Library("tensorstore", tensorstore_save, tensorstore_restore),
            Library(
                "disk", partial(disk_save, threads=threads), partial(disk_restore, threads=threads)
            ),
            Library(
                "disk_checked",
                partial(disk_save, threads=threads, write=write_checked),
                partial(disk_restore, threads=threads, read=read_checked),
            ),
        )
    }


TITLES = {
    "tenure": "tenure",
    "orbax": "Orbax 0.12.8",
    "safetensors": "safetensors",
    "safetensors_jax": "safetensors.flax (into jax arrays)",
    "jax": "jax alone: the arrays made jax arrays by jax's runtime call (no I/O)",
    "crc32": "crc32 alone: every array's crc32 on two threads (no I/O)",
    "floor": "checked floor: safetensors + crc32 alone + jax alone",
    "tensorstore": "tensorstore alone (zarr3 on OCDBT, one transaction, fsync)",
    "disk": "disk limit: threads write+fsync / read",
}


# Measures.


def timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


@dataclass
class Result:
    """One library's runs on one state: seconds per measure, and what it left on disk."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    step_files: int = 0
    item_files: int = 0
    layout: str = ""

    def add(self, measure: str, seconds: float) -> None:
        self.seconds.setdefault(measure, []).append(seconds)

    def median(self, measure: str) -> float:
        return statistics.median(self.seconds[measure])


def save_and_restore(lib: Library, case: Case, path: Path, result: Result, cold: bool) -> None:
    import jax

    remove(path)
    result.add("save", timed(lambda: lib.save(path, case)))
    step = path / STEP
    result.step_files = count_files(step)
    result.item_files = count_files(step / lib.item) if lib.item else result.step_files
    if lib.layout:
        result.layout = lib.layout(step / (lib.item or ""))
    if cold:
        drop_page_cache()
    result.add("restore", timed(lambda: jax.block_until_ready(lib.restore(path, case))))
    remove(path)


def async_blocking(name: str, path: Path, case: Case) -> tuple[float, float]:
    """Seconds until an async save returns, and until the caller may mutate its arrays.

    Orbax's save returns once it may; tenure's returns at once and `staged()` says when.
    """
    remove(path)
    start = time.perf_counter()
    if name == "tenure":
        from tenure import io

        handle = io.save_pytree_async(path / STEP, case.state)
        returned = time.perf_counter() - start
        handle.staged()
        staged = time.perf_counter() - start
        handle.result()
    else:
        import orbax.checkpoint as ocp

        manager = ocp.CheckpointManager(path)
        manager.save(int(STEP), args=ocp.args.StandardSave(case.state))
        returned = staged = time.perf_counter() - start
        manager.wait_until_finished()
        manager.close()
    remove(path)
    return returned, staged


def measure(
    libs: Sequence[Library], case: Case, reps: int, root: Path, cold: bool
) -> dict[str, Result]:
    """Every library's save and restore of `case`, `reps` times, interleaved."""
    results = {lib.name: Result() for lib in libs}
    for _ in range(reps):
        for lib in libs:
            save_and_restore(lib, case, root / lib.name, results[lib.name], cold)
    return results


def measure_more(
    results: dict[str, Result], case: Case, reps: int, root: Path, cold: bool, threads: int
) -> None:
    """Orbax's save made durable, both async saves, and the disk read into touched memory."""
    for _ in range(reps):
        durable = root / "orbax_durable"
        remove(durable)
        results["orbax"].add("durable save", timed(partial(orbax_durable_save, durable, case)))
        remove(durable)
        for name in ("tenure", "orbax"):
            returned, staged = async_blocking(name, root / f"async_{name}", case)
            results[name].add("async returns", returned)
            results[name].add("arrays free", staged)
        read = disk_read_touched(root / "disk_touched", case, threads, cold)
        results["disk"].add("read into touched memory", read)


def status_bytes(field_name: str) -> int:
    """A size from /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field_name} in /proc/self/status")


def memory_child(name: str, gib: float, root: Path) -> None:
    """Save then restore in this fresh process; print the peak since it began, the resident
    size once the state was built, and the peak after that (the high-water mark reset)."""
    import jax

    lib = libraries(threads=1)[name]
    case = gib_case(gib)
    path = root / f"memory_{name}"
    remove(path)
    before = status_bytes("VmHWM")
    # "5" resets VmHWM to the current RSS (Linux's clear_refs).
    Path("/proc/self/clear_refs").write_text("5")
    resident = status_bytes("VmRSS")
    lib.save(path, case)
    jax.block_until_ready(lib.restore(path, case))
    peak = status_bytes("VmHWM")
    remove(path)
    print(max(before, peak), resident, peak)


@dataclass(frozen=True)
class Memory:
    peak: int
    resident: int
    peak_after_build: int

    @property
    def added(self) -> int:
        return self.peak_after_build - self.resident


def memory(name: str, gib: float, root: Path) -> Memory:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", name, "--gib", str(gib), "--dir", str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    return Memory(*map(int, out.stdout.split()[-3:]))


# Reports.


@dataclass(frozen=True)
class Target:
    what: str
    measured: str
    met: bool


def print_targets(targets: Sequence[Target]) -> None:
    print("\n| issue 14 target | measured | |\n|---|---|---|")
    for t in targets:
        print(f"| {t.what} | {t.measured} | {'pass' if t.met else 'FAIL'} |")


def speedup_targets(label: str, r: dict[str, Result]) -> list[Target]:
    return [
        Target(
            f"{label}: {op} >= 6x faster than Orbax",
            f"{r['orbax'].median(op) / r['tenure'].median(op):.1f}x",
            r["orbax"].median(op) >= 6 * r["tenure"].median(op),
        )
        for op in ("save", "restore")
    ]


def leaves_targets(by_count: dict[int, dict[str, Result]]) -> list[Target]:
    targets = []
    if 4096 in by_count:
        r = by_count[4096]
        for op, bound in (("save", 6.0), ("restore", 1.5)):
            ratio = r["tenure"].median(op) / r["safetensors"].median(op)
            # What the checks and the jax arrays alone add to safetensors' read.
            floor = checked_floor(r) / r["safetensors"].median(op) if op == "restore" else None
            targets.append(
                Target(
                    f"4096 leaves: {op} within {bound:g}x of safetensors",
                    f"{ratio:.1f}x" + ("" if floor is None else f" (checked floor: {floor:.1f}x)"),
                    ratio <= bound,
                )
            )
        # Like for like: tenure's restore returns jax arrays, which cost `jax` alone.
        ratio = r["tenure"].median("restore") / r["safetensors_jax"].median("restore")
        targets.append(
            Target(
                "4096 leaves: restore within 1.5x of safetensors.flax (jax arrays, as tenure's)",
                f"{ratio:.1f}x (jax alone: {r['jax'].median('restore'):.2f} s)",
                ratio <= 1.5,
            )
        )
        targets += speedup_targets("4096 leaves", r)
    counts = sorted(by_count)
    if 16384 in by_count and len(counts) > 1:
        below = counts[counts.index(16384) - 1]
        for op in ("save", "restore"):
            per_leaf = {n: by_count[n]["tenure"].median(op) / n for n in (below, 16384)}
            targets.append(
                Target(
                    f"16384 leaves: {op} seconds per leaf no more than at {below}",
                    f"{per_leaf[16384] * 1e6:.0f} us vs {per_leaf[below] * 1e6:.0f} us",
                    per_leaf[16384] <= per_leaf[below],
                )
            )
    if 16384 in by_count:
        targets += speedup_targets("16384 leaves", by_count[16384])
    for n in counts:
        files = by_count[n]["tenure"].item_files
        targets.append(Target(f"{n} leaves: tenure files per item <= 64", str(files), files <= 64))
    return targets


def gib_targets(case: Case, r: dict[str, Result], mem: dict[str, Memory]) -> list[Target]:
    tenure, orbax, disk = r["tenure"], r["orbax"], r["disk"]
    save = disk.median("save") / tenure.median("save")
    restore = disk.median("restore") / tenure.median("restore")
    # What checksumming every byte costs the disk row itself on these cores.
    checked = {op: disk.median(op) / r["disk_checked"].median(op) for op in ("save", "restore")}
    added = mem["tenure"].added / case.nbytes
    return [
        Target(
            f"{case.label}: save >= 0.85x raw write+fsync",
            f"{save:.2f}x (checked disk: {checked['save']:.2f}x)",
            save >= 0.85,
        ),
        Target(
            f"{case.label}: restore >= 0.9x raw read",
            f"{restore:.2f}x (checked disk: {checked['restore']:.2f}x)",
            restore >= 0.9,
        ),
        Target(
            f"{case.label}: async save frees the arrays no later than Orbax",
            f"{tenure.median('arrays free') * 1e3:.1f} ms vs "
            f"{orbax.median('arrays free') * 1e3:.1f} ms",
            tenure.median("arrays free") <= orbax.median("arrays free"),
        ),
        Target(f"{case.label}: memory save+restore add <= 1.1x", f"{added:.2f}x", added <= 1.1),
    ]


# Measured without a save of their own.
NO_SAVE = ("jax", "crc32")
# Which libraries run on which states: the leaf counts' checked floor is derived from the
# `NO_SAVE` rows, and GiB states measure the checked disk instead.
PER_LEAF_ONLY = ("safetensors_jax", *NO_SAVE)
GIB_ONLY = ("disk_checked",)


def checked_floor(results: dict[str, Result]) -> float:
    """The least a restore that checks every array's crc32 and returns jax arrays could take:
    safetensors' read, then the checks, then the jax arrays."""
    return sum(results[name].median("restore") for name in ("safetensors", "crc32", "jax"))


def print_leaves_table(by_count: dict[int, dict[str, Result]], reads: str) -> None:
    print(f"\n{LEAVES_BYTES // MIB} MiB of float32 in N leaves; restores {reads}\n")
    print(
        "| leaves | library | save s | restore s | files per step (item) "
        "| save / restore per leaf |"
    )
    print("|---|---|---|---|---|---|")
    for n, results in sorted(by_count.items()):
        for name, r in results.items():
            title = f"{TITLES[name]} ({r.layout})" if r.layout else TITLES[name]
            files = (
                f"{r.step_files:,} ({r.item_files:,})"
                if name in ("tenure", "orbax")
                else (f"{r.step_files}")
            )
            save, restore = r.median("save"), r.median("restore")
            if name in NO_SAVE:
                print(
                    f"| {n:,} x {LEAVES_BYTES // n // 1024} KiB | {title} | - | "
                    f"{restore:.2f} | - | - / {restore / n * 1e6:.0f} us |"
                )
                continue
            print(
                f"| {n:,} x {LEAVES_BYTES // n // 1024} KiB | {title} | {save:.2f} | "
                f"{restore:.2f} | {files} | {save / n * 1e6:.0f} / {restore / n * 1e6:.0f} us |"
            )
        floor = checked_floor(results)
        print(
            f"| {n:,} x {LEAVES_BYTES // n // 1024} KiB | {TITLES['floor']} | - | {floor:.2f} | "
            f"- | - / {floor / n * 1e6:.0f} us |"
        )


def print_gib_table(case: Case, r: dict[str, Result], mem: dict[str, Memory], reads: str) -> None:
    size = case.nbytes
    t, o = r["tenure"], r["orbax"]

    def rate(result: Result, measure: str) -> str:
        seconds = result.median(measure)
        return f"{size / seconds / 1e9:.2f} GB/s ({seconds:.2f} s)"

    def speedup(a: Result, a_measure: str, b: Result, b_measure: str) -> str:
        return f"{b.median(b_measure) / a.median(a_measure):.2f}x"

    def peak(m: Memory) -> str:
        return f"{m.peak / GIB:.2f} GiB ({m.peak / size:.2f}x)"

    def added(m: Memory) -> str:
        return f"{m.added / GIB:.2f} GiB ({m.added / size:.2f}x)"

    print(f"\n{size / GIB:.2f} GiB state, {len(case.host)} arrays; restores {reads}\n")
    print(
        f"tenure's layout: {t.layout}; files per step (item): tenure {t.step_files:,} "
        f"({t.item_files:,}), Orbax {o.step_files:,} ({o.item_files:,})\n"
    )
    print("| measure | tenure | Orbax 0.12.8 | ratio | safetensors | target |")
    print("|---|---|---|---|---|---|")
    rows = [
        ("save, as each library does it", t, "save", o, "save", ">= 2.0x"),
        ("durable save (Orbax + fsync of all it wrote)", t, "save", o, "durable save", ">= 2.0x"),
        ("restore", t, "restore", o, "restore", ">= 2.5x"),
    ]
    for what, a, am, b, bm, target in rows:
        st = rate(r["safetensors"], am)
        print(
            f"| {what} | {rate(a, am)} | {rate(b, bm)} | {speedup(a, am, b, bm)} | {st} "
            f"| {target} |"
        )
    for measure in ("async returns", "arrays free"):
        print(
            f"| async save, {measure} | {t.median(measure) * 1e3:.1f} ms | "
            f"{o.median(measure) * 1e3:.1f} ms | | | <= Orbax |"
        )
    print(
        f"| peak RSS of the process, save then restore | {peak(mem['tenure'])} | "
        f"{peak(mem['orbax'])} | | {peak(mem['safetensors'])} | <= 2.3x and < Orbax |"
    )
    print(
        f"| memory save+restore add above the built state | {added(mem['tenure'])} | "
        f"{added(mem['orbax'])} | | {added(mem['safetensors'])} | <= 1.1x |"
    )
    ts_alone = r["tensorstore"]
    print(
        f"| tensorstore alone (zarr3 on OCDBT, one transaction, fsync) | {rate(ts_alone, 'save')} "
        f"save, {rate(ts_alone, 'restore')} restore (into numpy) | | | | |"
    )
    d = r["disk"]
    print(
        f"\ndisk: write+fsync {rate(d, 'save')}, read into new memory {rate(d, 'restore')}, "
        f"into touched memory {rate(d, 'read into touched memory')}; tenure save "
        f"{speedup(t, 'save', d, 'save')} of raw write+fsync, restore "
        f"{speedup(t, 'restore', d, 'restore')} of raw read into new memory"
    )
    c = r["disk_checked"]
    print(
        f"\ndisk, checked (the same threads crc32 every array, then write+fsync; read, then "
        f"crc32): write+fsync {rate(c, 'save')}, read {rate(c, 'restore')}; tenure save "
        f"{speedup(t, 'save', c, 'save')} of it, restore {speedup(t, 'restore', c, 'restore')}"
    )


def plot_leaves(by_count: dict[int, dict[str, Result]], path: Path, reads: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    counts = sorted(by_count)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharey=True)
    styles = {
        "tenure": "o-",
        "orbax": "s-",
        "safetensors": "^-",
        "safetensors_jax": "v--",
        "disk": "k:",
    }
    for ax, op in zip(axes, ("save", "restore"), strict=True):
        for name, style in styles.items():
            seconds = [by_count[n][name].median(op) for n in counts]
            ax.loglog(counts, seconds, style, label=TITLES[name])
        if op == "restore":
            floor = [checked_floor(by_count[n]) for n in counts]
            ax.loglog(counts, floor, "x-.", color="grey", label=TITLES["floor"])
        ax.set_title(f"restore, {reads.split()[0]} page cache" if op == "restore" else "save")
        ax.set_xlabel(f"leaves (float32, {LEAVES_BYTES // MIB} MiB in all)")
        ax.set_xticks(counts, [f"{n:,}" for n in counts])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds")
    # Below the panels, where no line runs.
    fig.legend(*axes[1].get_legend_handles_labels(), loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"\nfigure: {path}")


def header(args: argparse.Namespace, reads: str) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average {load}; "
        f"orbax-checkpoint {version('orbax-checkpoint')}, tensorstore {version('tensorstore')}, "
        f"safetensors {version('safetensors')}, jax {version('jax')}; median of {args.reps}; "
        f"restores {reads}; disk: {args.threads} threads"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leaves", type=int, nargs="*", default=[64, 512, 4096, 16384])
    parser.add_argument("--gib", type=float, nargs="*", default=[1.0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=8, help="writers and readers of the disk row"
    )
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tenure-bench"))
    parser.add_argument("--figure", type=Path, help="where to draw seconds against leaves (PNG)")
    parser.add_argument("--memory-child", choices=["tenure", "orbax", "safetensors"])
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.gib[0], args.dir)
        return
    refusal = cache_drop_refusal()
    if refusal:
        print(f"NOTE: the page cache cannot be dropped ({refusal}): every restore is WARM")
    reads = "warm (page cache kept)" if refusal else "cold (page cache dropped before each)"
    header(args, reads)
    all_libs = list(libraries(args.threads).values())
    libs = [lib for lib in all_libs if lib.name not in GIB_ONLY]
    started = time.perf_counter()
    by_count = {
        n: measure(libs, leaves_case(n), args.reps, args.dir, not refusal) for n in args.leaves
    }
    if by_count:
        print_leaves_table(by_count, reads)
        if args.figure:
            plot_leaves(by_count, args.figure, reads)
    targets = leaves_targets(by_count)
    for gib in args.gib:
        case = gib_case(gib)
        gib_libs = [lib for lib in all_libs if lib.name not in PER_LEAF_ONLY]
        results = measure(gib_libs, case, args.reps, args.dir, not refusal)
        measure_more(results, case, args.reps, args.dir, not refusal, args.threads)
        mem = {name: memory(name, gib, args.dir) for name in ("tenure", "orbax", "safetensors")}
        print_gib_table(case, results, mem, reads)
        targets += gib_targets(case, results, mem)
    print_targets(targets)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nwhole run {time.perf_counter() - started:.0f} s; load average at the end {load}")


if __name__ == "__main__":
    main()
