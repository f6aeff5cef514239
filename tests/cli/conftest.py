"""Real roots for the command line to read: written by tenure, by Orbax's v1 training
Checkpointer and by Orbax's v0 CheckpointManager, on fixed clocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

import tenure
from tenure.io import Location

START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = "2026-01-02T00:00:00+00:00"  # `--now`: one day after the first save
STEPS = (0, 100, 200, 300, 400)
LOSSES = {0: 1.0, 100: 0.3, 200: 0.5, 300: 0.2, 400: 0.4}


def run_tenure(
    *args: str | Location, stdin: Any = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    """`python -m tenure ARGS` in a fresh process; stdin is no terminal unless given."""
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tenure", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=stdin,
        env=env,
    )


def run_json(*args: str | Location) -> Any:
    result = run_tenure(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def state(step: int) -> dict[str, Any]:
    mesh = jax.make_mesh((jax.device_count(),), ("x",))
    sharded = jax.device_put(
        np.arange(64, dtype=np.float32) + step, jax.NamedSharding(mesh, jax.P("x"))
    )
    return {
        "params": {"w": sharded, "b": np.zeros(3, np.float32)},
        "layers": [np.ones((2, 2)) * step, np.arange(4)],
        "name": "mlp",
    }


def write_tenure_root(root: Location) -> None:
    """Five steps, one an hour from START, with metrics and custom metadata."""
    now = [START]
    with tenure.Checkpointer(root, clock=lambda: now[0]) as ckptr:
        for hour, step in enumerate(STEPS):
            now[0] = START + timedelta(hours=hour)
            ckptr.save(
                step,
                state(step),
                force=True,
                metrics={"loss": LOSSES[step]},
                custom_metadata={"run": "cli-test"},
            )


def write_orbax_v1_root(root: Path) -> Path:
    import orbax.checkpoint.experimental.v1 as ocp1

    with ocp1.training.Checkpointer(root) as ckptr:
        for step in (10, 20):
            ckptr.save(step, {"w": np.arange(6.0) + step}, metrics={"loss": 1 / step})
    return root


def write_orbax_v0_root(root: Path) -> Path:
    import orbax.checkpoint as ocp

    manager = ocp.CheckpointManager(root)
    for step in (5, 6):
        manager.save(step, args=ocp.args.StandardSave({"w": np.arange(3.0) * step}))
    manager.wait_until_finished()
    manager.close()
    return root


@pytest.fixture
def tenure_root(tmp_path: Path) -> Path:
    root = tmp_path / "tenure"
    write_tenure_root(root)
    return root


@pytest.fixture(scope="module")
def orbax_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("orbax")
    return {
        "v1": write_orbax_v1_root(base / "v1"),
        "v0": write_orbax_v0_root(base / "v0"),
    }


def flip_byte(chunk: Path) -> None:
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
