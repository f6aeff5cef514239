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

import tenure
from tenure.io.root import LOCK_FILE, StepNameFormat
from tenure.manager.errors import RootLockedError, RootNotUsableError
from tenure.manager.lock import RootLock, process_start
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
    assert (tmp_path / LOCK_FILE).exists()  # SIGKILL left the lock behind
    lock = RootLock(tmp_path)
    lock.acquire()  # the holder is dead: its lock is stale and taken over
    assert lock.holder() == {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": process_start(os.getpid()),
    }
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_lock_held_on_another_host_is_never_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    with pytest.raises(RootLockedError, match="host elsewhere, pid 1"):
        RootLock(tmp_path).acquire()


def test_a_lock_of_an_earlier_process_with_the_same_pid_is_stale(tmp_path: Path) -> None:
    """A container restarted as pid 1 finds its own pid in the lock of its earlier life."""
    earlier = {"host": socket.gethostname(), "pid": os.getpid(), "started": "another-boot:1"}
    (tmp_path / LOCK_FILE).write_text(json.dumps(earlier))
    lock = RootLock(tmp_path)
    lock.acquire()
    assert lock.holder() is not None
    assert lock.holder()["started"] == process_start(os.getpid())  # type: ignore[index]
    lock.release()


def test_a_lock_held_by_this_very_process_is_refused(tmp_path: Path) -> None:
    first = RootLock(tmp_path)
    first.acquire()
    with pytest.raises(RootLockedError, match=f"pid {os.getpid()}"):
        RootLock(tmp_path).acquire()
    first.release()


@pytest.mark.parametrize("content", [b"", b"\xff\xfe garbage", b"[1, 2]", b'{"pid": "x"}'])
def test_an_unreadable_lock_file_gets_a_clear_error_naming_it(
    tmp_path: Path, content: bytes
) -> None:
    (tmp_path / LOCK_FILE).write_bytes(content)
    with pytest.raises(RootLockedError, match="unreadable") as caught:
        RootLock(tmp_path).acquire()
    assert str(tmp_path / LOCK_FILE) in str(caught.value)
    assert "delete" in str(caught.value)


def test_a_lock_that_cannot_be_written_leaves_no_lock_file(tmp_path: Path) -> None:
    """A full disk: the lock's content cannot be written, so no (empty) lock appears."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    try:
        with pytest.raises(RootNotUsableError):
            tenure.Checkpointer(tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert list(tmp_path.iterdir()) == []
    tenure.Checkpointer(tmp_path).close()  # the next opener is not refused


def test_an_open_that_fails_after_taking_the_lock_releases_it(tmp_path: Path) -> None:
    bad = {"not json": object()}  # root metadata that cannot be written, after the lock
    with pytest.raises(TypeError):
        tenure.Checkpointer(tmp_path, custom_metadata=bad)
    assert not (tmp_path / LOCK_FILE).exists()
    tenure.Checkpointer(tmp_path).close()


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
