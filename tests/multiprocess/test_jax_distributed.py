"""Real multi-process JAX: 2 and 4 processes on localhost, each with 2 CPU devices,
saving and restoring through tenure.Checkpointer under `jax.distributed`, on a local
directory and on an S3 prefix (the tests' moto server)."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tenure.io import Location, ObjectPath, is_committed
from tenure.io.storage import list_dir
from tests.conftest import S3_BUCKET

WORKER = Path(__file__).with_name("worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_job(
    role: str, count: int, root: Location, timeout: float = 120
) -> list[subprocess.CompletedProcess[str]]:
    """Starts `count` processes of one job and waits for all of them."""
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), role, str(i), str(count), str(port), str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def assert_ok(results: list[subprocess.CompletedProcess[str]]) -> None:
    for i, result in enumerate(results):
        assert result.returncode == 0, f"process {i} failed:\n{result.stderr[-3000:]}"
        assert f"process {i} ok" in result.stdout


def committed_steps(root: Location) -> list[int]:
    return sorted(int(p.name) for p in list_dir(root) if p.name.isdigit() and is_committed(p))


@pytest.fixture(scope="module", params=["local", "s3"])
def saved_by_two(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Location:
    if request.param == "local":
        root: Location = tmp_path_factory.mktemp("two") / "root"
    else:
        request.getfixturevalue("s3_server")
        root = ObjectPath("s3", S3_BUCKET, f"two-{uuid.uuid4().hex[:12]}")
    assert_ok(run_job("save", 2, root))
    return root


def test_two_processes_save_and_restore_in_the_same_topology(saved_by_two: Location) -> None:
    """Sharded, replicated and partly replicated arrays; retention ran once, on process 0."""
    assert committed_steps(saved_by_two) == [2, 3]


def test_one_process_restores_a_two_process_save_with_another_mesh(
    saved_by_two: Location,
) -> None:
    results = run_job("restore", 1, saved_by_two)
    assert_ok(results)
    assert "restored step 3" in results[0].stdout


def test_four_processes_restore_a_two_process_save(saved_by_two: Location) -> None:
    results = run_job("restore", 4, saved_by_two, timeout=180)
    assert_ok(results)


def test_a_process_dying_mid_save_commits_nothing_and_the_job_restarts(root: Location) -> None:
    results = run_job("die-mid-save", 2, root)
    assert results[1].returncode == 17
    assert results[0].returncode == 0, results[0].stderr[-3000:]
    # Process 1 may die before or while waiting at the barrier: the message says which.
    assert "clear error:" in results[0].stdout
    assert "The step was not committed" in results[0].stdout
    assert committed_steps(root) == [0]
    restarted = run_job("restore", 2, root)
    assert_ok(restarted)
    assert all("restored step 0" in r.stdout for r in restarted)


def test_each_process_saves_and_restores_its_own_grain_iterator(tmp_path: Path) -> None:
    """One `process_<i>-of-<n>.json` per process, as Grain's Orbax handler writes them."""
    root = tmp_path / "root"
    assert_ok(run_job("grain", 2, root))
    names = sorted(p.name for p in (root / "0" / "data").iterdir() if p.suffix == ".json")
    assert names == ["process_0-of-2.json", "process_1-of-2.json"]
