"""Regenerates docs/images/cadence.png, the figure of docs/cadence.md, with the command line.

Run from anywhere, on purpose only (the image is committed; it takes about a minute):

    .venv/bin/python docs/make_cadence_image.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"

# The run of docs/cadence.md: 1 s steps, a failure every 6 h, saves that block 20 s.
SCAN = [
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


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    target = IMAGES / "cadence.png"
    command = [sys.executable, "-m", "tenure", *SCAN, "--plot", str(target)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(f"wrote {target} ({target.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
