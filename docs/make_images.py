"""Regenerates the pictures in docs/images/ with the tenure command line.

Run from anywhere, on purpose only (the images are committed; the cadence scan takes about
a minute); name images to redraw only those:

    .venv/bin/python docs/make_images.py [simulation.png] [cadence.png]
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

RUNS = {"simulation.png": SIMULATION, "cadence.png": CADENCE}


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    for name in sys.argv[1:] or RUNS:
        target = IMAGES / name
        command = [sys.executable, "-m", "tenure", *RUNS[name], "--plot", str(target)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        print(f"wrote {target} ({target.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
