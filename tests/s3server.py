"""A real S3-protocol server on loopback for the tests and benchmarks: moto in server mode.

Started as a child process on a free port and stopped at the end; nothing leaves the machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import attrs

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@attrs.frozen
class S3Server:
    """A running moto server: its endpoint and the process behind it."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def create_bucket(self, name: str) -> None:
        """Create `name` (a plain PUT, as any S3 client would send)."""
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()

    def environment(self) -> dict[str, str]:
        """The variables that point tenure (and any AWS client) at this server."""
        return {**CREDENTIALS, "AWS_REGION": REGION, "AWS_ENDPOINT_URL": self.endpoint}

    def stop(self) -> None:
        """Stop the server (a running save then sees connection errors)."""
        self.process.terminate()
        self.process.wait(timeout=10)


def start(*, extra_env: dict[str, str] | None = None, timeout: float = 30.0) -> S3Server:
    """Start moto on a free loopback port and wait until it answers."""
    port = _free_port()
    env = {**os.environ, **(extra_env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return S3Server(endpoint, process)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"moto did not start on {endpoint}") from None
            time.sleep(0.05)


@contextmanager
def running(extra_env: dict[str, str] | None = None) -> Iterator[S3Server]:
    """A server for the duration of a `with` block."""
    server = start(extra_env=extra_env)
    try:
        yield server
    finally:
        server.stop()
