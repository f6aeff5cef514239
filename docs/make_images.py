"""Regenerates the pictures in docs/images/ with the tenure command line.

Run from anywhere, on purpose only (the images are committed; the cadence scan takes about
a minute); name images to redraw only those:

    .venv/bin/python docs/make_images.py [simulation.png] [cadence.png] [parts.png] [quota.png]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"

# The week-long run of docs/simulation.md, so the picture matches the report.
SIMULATION = [
    "simulate",
    "--save",
    "FixedIntervalPolicy(500) | PreemptionCheckpointingPolicy()",
    "--keep",
    "LatestN(3) | BestN(metric='loss', mode='min', n=2) | EveryNSteps(20_000)",
    "--steps",
    "302401",
    "--step-seconds",
    "2",
    "--checkpoint-size",
    "2GiB",
    "--save-seconds",
    "40",
    "--preempt-at",
    "123457,250001",
]


# The run of docs/cadence.md: 1 s steps, a failure every 6 h, saves that block 20 s.
CADENCE = [
    "simulate",
    "--save",
    "FixedIntervalPolicy(500) | PreemptionCheckpointingPolicy()",
    "--steps",
    "1000000",
    "--step-seconds",
    "1",
    "--mtbf",
    "6h",
    "--blocked-seconds",
    "20",
    "--restart-seconds",
    "120",
    "--runs",
    "200",
    "--best-interval",
]

# The cookbook's "keep optimizer state only for the newest three": a week of 2 s steps, a
# save every 1000 of params (2 GiB) and Adam state (4 GiB), the params of every 10,000th
# kept, against a 48 GiB quota.
PARTS_KEEP = "LatestN(3) | EveryNSteps(10_000).only('params')"
PARTS = [
    "simulate",
    "--save",
    "FixedIntervalPolicy(1000)",
    "--keep",
    PARTS_KEEP,
    "--steps",
    "300001",
    "--step-seconds",
    "2",
    "--item-size",
    "params=2GiB",
    "--item-size",
    "opt_state=4GiB",
    "--quota",
    "48GiB",
]

# The cookbook's "stay under a quota": the same run within a 42 GiB budget, which leaves
# room in the 48 GiB for the 6 GiB save that lands before retention runs.
QUOTA = [*PARTS[:4], f"WithinBytes({PARTS_KEEP}, max_bytes='42GiB')", *PARTS[5:]]

RUNS = {
    "simulation.png": SIMULATION,
    "cadence.png": CADENCE,
    "parts.png": PARTS,
    "quota.png": QUOTA,
}


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    for name in sys.argv[1:] or RUNS:
        target = IMAGES / name
        command = [sys.executable, "-m", "tenure", *RUNS[name], "--plot", str(target)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        print(f"wrote {target} ({target.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
