"""One writer per root: a lock file naming the host and process that holds it."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from tenure.manager.errors import RootLockedError

LOCK_NAME = ".tenure-writer.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RootLock:
    """Held by the writing Checkpointer; a second writer gets `RootLockedError`.

    A lock left by a dead process on this host is taken over. Orbax ignores the file
    (its name is no step), so roots stay readable by Orbax.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> lock = RootLock(root)
        >>> lock.acquire(); lock.release()
    """

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_NAME
        self._held = False

    def acquire(self) -> None:
        owner = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is not None and self._is_stale(holder):
                    self.path.unlink(missing_ok=True)
                    continue
                raise RootLockedError(
                    f"{self.path.parent} is being written by another Checkpointer "
                    f"({_describe(holder)}); two writers would corrupt each other. Stop "
                    f"that job, open this one with read_only=True, or, if you are sure "
                    f"no writer runs, delete {self.path}"
                ) from None
            with os.fdopen(fd, "w") as file:
                json.dump(owner, file)
            self._held = True
            return
        raise RootLockedError(f"could not take over the stale lock {self.path}; retry")

    def holder(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    @staticmethod
    def _is_stale(holder: dict[str, object]) -> bool:
        pid = holder.get("pid")
        return (
            holder.get("host") == socket.gethostname()
            and isinstance(pid, int)
            and pid != os.getpid()
            and not _alive(pid)
        )

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False


def _describe(holder: dict[str, object] | None) -> str:
    if holder is None:
        return "holder unknown"
    return f"host {holder.get('host')}, pid {holder.get('pid')}"
