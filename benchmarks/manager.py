"""The manager's own costs, tenure against Orbax in one run (issue 4).

    .venv/bin/python benchmarks/manager.py [--steps 10000] [--alive 1000] [--skips-only]

1. A `save()` that the policy skips: it runs every training step (target: median < 5 us),
   alone and while a background deletion of `--alive` steps runs (target: 99th percentile
   < 50 us: the deletion never holds what the skipped save needs).
2. Opening a root that holds `--steps` committed steps (target < 1 s, faster than Orbax),
   with and without lightweight initialization.
3. A save plus its retention pass with `--alive` checkpoints alive (each save deletes one).

Every root is built once from one real checkpoint copied under many step names, and the
same root is opened by both libraries (tenure writes Orbax's format).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import orbax.checkpoint.experimental.v1 as ocp1
from common import median_seconds
from orbax.checkpoint._src.checkpoint_managers import preservation_policy as orbax_keep
from orbax.checkpoint._src.checkpoint_managers import save_decision_policy as orbax_save

import tenure
from tenure.io.root import RETIRED_SUFFIX
from tenure.retention import FixedIntervalPolicy, LatestN

STATE = {"w": np.ones((64, 64), np.float32), "b": np.zeros(64, np.float32)}


def build_root(root: Path, steps: int) -> None:
    """One real checkpoint (with metrics), copied under `steps` step names."""
    with tenure.Checkpointer(root / "seed", save_decision_policy=FixedIntervalPolicy(1)) as c:
        c.save(0, STATE, metrics={"loss": 1.0})
    template = root / "seed" / "0"
    for step in range(steps):
        shutil.copytree(template, root / str(step))
    shutil.rmtree(root / "seed")


def percentiles(times: list[float]) -> tuple[float, float]:
    """The median and the 99th percentile of `times`."""
    ordered = sorted(times)
    return statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]


def timed_skips(c: tenure.Checkpointer, first: int, calls: int) -> list[float]:
    """The seconds each of `calls` skipped saves took, one by one."""
    clock = time.perf_counter
    times = []
    for step in range(first, first + calls):
        began = clock()
        saved = c.save(step, STATE)
        times.append(clock() - began)
        assert not saved
    return times


def skipped_save(work: Path, calls: int = 20_000) -> tuple[float, float, float]:
    """Tenure's median and 99th percentile per call, and Orbax's mean."""
    tenure_root, orbax_root = work / "skip-tenure", work / "skip-orbax"
    with tenure.Checkpointer(tenure_root, save_decision_policy=FixedIntervalPolicy(10**9)) as c:
        c.save(0, STATE)
        timed_skips(c, 1, 1000)  # warm up
        median, p99 = percentiles(timed_skips(c, 1001, calls))
    policy = orbax_save.FixedIntervalPolicy(10**9)
    with ocp1.training.Checkpointer(orbax_root, save_decision_policy=policy) as o:
        o.save(0, STATE)
        began = time.perf_counter()
        for step in range(1, calls // 10 + 1):
            o.save(step, STATE)
        theirs = (time.perf_counter() - began) / (calls // 10)
    return median, p99, theirs


def skipped_save_while_deleting(work: Path, doomed: int) -> tuple[float, float, int]:
    """Skipped saves timed while a background deletion of `doomed` steps runs: the median
    and 99th percentile per call, and how many calls ran during the deletion."""
    root = work / "skip-deleting"
    build_root(root, doomed)
    with tenure.Checkpointer(
        root,
        save_decision_policy=FixedIntervalPolicy(10**9),
        preservation_policy=LatestN(1),
        background_delete=True,
    ) as c:
        response = c.save_async(doomed, STATE, force=True)
        assert response is not None
        response.staged()
        # Timed from here: the commit, the plan, the renames of the 1,000 doomed steps and
        # their removal all run while the loop keeps saving (and skipping).

        def deleting() -> bool:
            with os.scandir(root) as entries:
                return any(e.name.endswith(RETIRED_SUFFIX) for e in entries)

        times: list[float] = []
        step = doomed + 1
        while not response.done() or deleting():
            times += timed_skips(c, step, 200)
            step += 200
        assert len(c.checkpoints) == 1
    median, p99 = percentiles(times)
    return median, p99, len(times)


def open_root(root: Path, repeats: int) -> dict[str, float]:
    def tenure_open(lightweight: bool) -> None:
        with tenure.Checkpointer(root, lightweight_initialize=lightweight, read_only=True) as c:
            assert c.latest is not None

    def orbax_open(lightweight: bool) -> None:
        options = ocp.CheckpointManagerOptions(read_only=True, lightweight_initialize=lightweight)
        with ocp.CheckpointManager(root, options=options) as m:
            assert m.latest_step() is not None

    def orbax_v1_open() -> None:
        with ocp1.training.Checkpointer(root) as o:
            assert o.latest is not None

    return {
        "tenure": median_seconds(lambda: tenure_open(False), repeats),
        "tenure lightweight": median_seconds(lambda: tenure_open(True), repeats),
        "orbax v0": median_seconds(lambda: orbax_open(False), repeats),
        "orbax v0 lightweight": median_seconds(lambda: orbax_open(True), repeats),
        "orbax v1": median_seconds(orbax_v1_open, repeats),
    }


def save_with_retention(work: Path, alive: int, saves: int = 5) -> tuple[float, float]:
    tenure_root, orbax_root = work / "alive-tenure", work / "alive-orbax"
    build_root(tenure_root, alive)
    shutil.copytree(tenure_root, orbax_root)
    with tenure.Checkpointer(
        tenure_root, save_decision_policy=FixedIntervalPolicy(1), preservation_policy=LatestN(alive)
    ) as c:
        ours = median_seconds(lambda: c.save(c.latest.step + 1, STATE), saves)  # type: ignore[union-attr]
        assert len(c.checkpoints) == alive
    with ocp1.training.Checkpointer(
        orbax_root,
        save_decision_policy=orbax_save.FixedIntervalPolicy(1),
        preservation_policy=orbax_keep.LatestN(n=alive),
    ) as o:
        theirs = median_seconds(lambda: o.save(o.latest.step + 1, STATE), saves)  # type: ignore[union-attr]
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--alive", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--skips-only", action="store_true", help="only the skipped-save rows (quick to rerun)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tenure-bench-manager-"))
    try:
        print(f"{'measure':<46} {'tenure':>10} {'orbax':>10} {'ratio':>7}")
        median, p99, theirs = skipped_save(work)
        print(
            f"{'skipped save() call, median (us)':<46} {median * 1e6:10.1f} {theirs * 1e6:10.1f} "
            f"{theirs / median:6.1f}x"
        )
        print(f"{'  ... 99th percentile (us)':<46} {p99 * 1e6:10.1f}")
        median, p99, calls = skipped_save_while_deleting(work, args.alive)
        label = f"  ... while deleting {args.alive:,} steps, median (us)"
        print(f"{label:<46} {median * 1e6:10.1f}")
        label = "  ... while deleting, 99th percentile (us)"
        print(f"{label:<46} {p99 * 1e6:10.1f}   ({calls:,} calls during the deletion)")
        if args.skips_only:
            return
        build_root(work / "big", args.steps)
        opened = open_root(work / "big", args.repeats)
        for label, ours_key, theirs_key in [
            (f"open a root of {args.steps:,} steps (s)", "tenure", "orbax v0"),
            ("  ... lightweight_initialize (s)", "tenure lightweight", "orbax v0 lightweight"),
            ("  ... vs Orbax v1 training.Checkpointer (s)", "tenure", "orbax v1"),
        ]:
            a, b = opened[ours_key], opened[theirs_key]
            print(f"{label:<46} {a:10.3f} {b:10.3f} {b / a:6.1f}x")
        ours, theirs = save_with_retention(work, args.alive)
        print(
            f"{f'save + retention, {args.alive:,} alive (ms)':<46} {ours * 1e3:10.1f} "
            f"{theirs * 1e3:10.1f} {theirs / ours:6.1f}x"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
