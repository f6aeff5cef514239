"""A saving loop in a child process, SIGKILLed as it announces one step's save."""

from __future__ import annotations

import subprocess
import sys


def kill_at_save(script: str, args: list[str], step: int) -> None:
    """Run `python -c script *args`, kill it as soon as it prints `saving <step>`, reap it."""
    loop = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True
    )
    assert loop.stdout is not None
    for line in loop.stdout:
        if line.strip() == f"saving {step}":
            loop.kill()
            break
    loop.wait(timeout=120)
