"""The manager's small parts: step names, the writer lock, preemption signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tenure.manager.errors import RootLockedError
from tenure.manager.lock import LOCK_NAME, RootLock
from tenure.manager.naming import StepNameFormat
from tenure.manager.preemption import PreemptionFlag


@pytest.mark.parametrize(
    ("fmt", "step", "name"),
    [
        (StepNameFormat(), 0, "0"),
        (StepNameFormat(), 1200, "1200"),
        (StepNameFormat(prefix="ckpt"), 7, "ckpt_7"),
        (StepNameFormat(fixed_length=6), 42, "000042"),
        (StepNameFormat(prefix="p", fixed_length=3), 12345, "p_12345"),
    ],
)
def test_step_names_round_trip(fmt: StepNameFormat, step: int, name: str) -> None:
    assert fmt.build(step) == name
    assert fmt.parse(name) == step


@pytest.mark.parametrize(
    "name",
    ["01", "ckpt_7", "7.orbax-checkpoint-tmp", "metadata", "-1", "7x", ".tenure-writer.lock"],
)
def test_names_that_are_no_step_are_ignored(name: str) -> None:
    assert StepNameFormat().parse(name) is None


HOLD_LOCK = """
import sys
from pathlib import Path
from tenure.manager.lock import RootLock
RootLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_second_writer_is_refused_and_a_dead_writers_lock_is_taken_over(
    tmp_path: Path,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RootLockedError, match=f"pid {holder.pid}"):
            RootLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / LOCK_NAME).exists()  # SIGKILL left the lock behind
    lock = RootLock(tmp_path)
    lock.acquire()  # the holder is dead: its lock is stale and taken over
    assert lock.holder() == {"host": socket.gethostname(), "pid": os.getpid()}
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_held_on_another_host_is_never_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    with pytest.raises(RootLockedError, match="host elsewhere, pid 1"):
        RootLock(tmp_path).acquire()


def test_preemption_signals_set_the_flag_and_previous_handlers_still_run() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda number, frame: seen.append(number))
    flag = PreemptionFlag()
    try:
        flag.install([signal.SIGUSR1])
        assert not flag.is_set()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert flag.is_set()
        assert seen == [signal.SIGUSR1]
    finally:
        flag.uninstall()
        signal.signal(signal.SIGUSR1, previous)
