"""One writer per root: a lock file naming the host, process and process start that hold it."""

from __future__ import annotations

import json
import os
import secrets
import socket
from pathlib import Path

from tenure.io.root import LOCK_FILE
from tenure.manager.errors import RootLockedError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> str | None:
    """When process `pid` started, as `<boot id>:<clock ticks since boot>` (Linux), or None
    where that is unknown. With the pid it names one process for good: a pid reused after a
    restart (a container's pid 1) has another start."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # Field 22 is the start time; fields count from the one after the parenthesised name,
    # which may itself hold spaces.
    return f"{boot}:{stat[stat.rindex(')') + 2 :].split()[19]}"


class RootLock:
    """Held by the writing Checkpointer; a second writer gets `RootLockedError`.

    The lock file appears whole or not at all (written aside, then hard-linked into place),
    and a lock whose process is gone, or whose pid now belongs to a later process, is taken
    over. Orbax ignores the file (its name is no step), so roots stay readable by Orbax.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> lock = RootLock(root)
        >>> lock.acquire()
        >>> RootLock(root).acquire()
        Traceback (most recent call last):
        ...
        tenure.manager.errors.RootLockedError: ...
        >>> lock.release()
    """

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self._held = False

    def acquire(self) -> None:
        pid = os.getpid()
        owner = {"host": socket.gethostname(), "pid": pid, "started": process_start(pid)}
        for _ in range(2):
            try:
                self._create(json.dumps(owner))
            except FileExistsError:
                holder = self.holder()
                if holder is None or self._is_stale(holder):
                    self.path.unlink(missing_ok=True)
                    continue
                raise RootLockedError(
                    f"{self.path.parent} is being written by another Checkpointer "
                    f"(host {holder['host']}, pid {holder['pid']}); two writers would corrupt "
                    f"each other. Stop that job, open this one with read_only=True, or, if you "
                    f"are sure no writer runs, delete {self.path}"
                ) from None
            self._held = True
            return
        raise RootLockedError(f"could not take over the stale lock {self.path}; retry")

    def _create(self, text: str) -> None:
        """Publish the lock with its content in one step: `FileExistsError` if it exists."""
        aside = self.path.with_name(f"{LOCK_FILE}.{os.getpid()}-{secrets.token_hex(4)}")
        try:
            aside.write_text(text)
            os.link(aside, self.path)
        finally:
            aside.unlink(missing_ok=True)

    def holder(self) -> dict[str, object] | None:
        """Who holds the lock; None when nobody does. An unreadable lock file (not one tenure
        wrote whole) raises `RootLockedError` saying how to clear it."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            doc = None
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("host"), str)
            or not isinstance(doc.get("pid"), int)
        ):
            raise RootLockedError(
                f"the writer lock {self.path} is unreadable ({len(data)} bytes, not a lock "
                f"tenure wrote): if no job writes to {self.path.parent}, delete {self.path} "
                "and open the root again"
            )
        return doc

    @staticmethod
    def _is_stale(holder: dict[str, object]) -> bool:
        pid = holder["pid"]
        if holder["host"] != socket.gethostname() or not isinstance(pid, int):
            return False  # another machine's process: its liveness is unknown here
        started = holder.get("started")
        if started is not None and started != process_start(pid):
            return True  # the pid now names a later process
        return pid != os.getpid() and not _alive(pid)

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False
