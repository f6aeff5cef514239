"""Regenerates the pictures in docs/images/ with the tenure command line.

Run from anywhere, on purpose only (the images are committed):

    .venv/bin/python docs/make_images.py
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


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    target = IMAGES / "simulation.png"
    command = [sys.executable, "-m", "tenure", *SIMULATION, "--plot", str(target)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(f"wrote {target} ({target.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
