"""`tenure simulate --plot`, end to end in a subprocess, and the disk-use curve it draws."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tenure.plot import alive_over_time, item_bytes_over_time
from tenure.retention import (
    BestN,
    EveryNSteps,
    FixedIntervalPolicy,
    LatestN,
    PreemptionCheckpointingPolicy,
    simulate,
)
from tests.conftest import SIMULATE_ITEM_ARGS

ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "simulate",
    "--save",
    "FixedIntervalPolicy(100) | PreemptionCheckpointingPolicy()",
    "--keep",
    "LatestN(3) | BestN(metric='loss', mode='min', n=2) | EveryNSteps(1000)",
    "--steps",
    "20001",
    "--step-seconds",
    "2",
    "--checkpoint-size",
    "1GiB",
    "--save-seconds",
    "300",
    "--preempt-at",
    "1234,9876",
]


def tenure(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenure", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def png_size(data: bytes) -> tuple[int, int]:
    # The PNG signature, then the IHDR chunk: length, b"IHDR", width, height (big-endian).
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_png_plot_is_an_image_of_sensible_size(tmp_path: Path) -> None:
    out = tmp_path / "run.png"
    run = tenure(*ARGS, "--plot", str(out))
    assert run.returncode == 0, run.stderr
    assert "Simulated 20,001 steps" in run.stdout  # the report still prints
    data = out.read_bytes()
    width, height = png_size(data)
    assert 600 <= width <= 3000
    assert 400 <= height <= 2000
    assert len(data) > 10_000


def test_svg_plot_is_xml_with_the_legend_and_the_peak(tmp_path: Path) -> None:
    out = tmp_path / "run.svg"
    run = tenure(*ARGS, "--json", "--plot", str(out))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("{")  # --json output stays clean JSON
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = out.read_text()
    # matplotlib writes text as glyph paths, with the string itself in a comment.
    assert "kept at the end" in text
    assert "let go by LatestN(n=3)" in text
    assert "peak: " in text


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path: Path) -> None:
    shadow = tmp_path / "matplotlib"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    out = tmp_path / "run.png"
    run = tenure(*ARGS, "--plot", str(out), env=env)
    assert run.returncode == 2
    assert "pip install 'tenure[plot]'" in run.stderr
    assert not out.exists()


def test_plot_needs_png_or_svg(tmp_path: Path) -> None:
    run = tenure(*ARGS, "--plot", str(tmp_path / "run.pdf"))
    assert run.returncode == 2
    assert "run.png" in run.stderr


def test_cli_imports_without_matplotlib() -> None:
    code = "import sys, tenure.cli; assert 'matplotlib' not in sys.modules"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(
    ("save_seconds", "preemptions"), [(0, []), (300, []), (300, [1234, 9876]), (0, [555])]
)
def test_disk_use_curve_peaks_where_the_simulator_says(
    save_seconds: int, preemptions: list[int]
) -> None:
    result = simulate(
        FixedIntervalPolicy(100) | PreemptionCheckpointingPolicy(),
        LatestN(3) | BestN(metric="loss", mode="min", n=2) | EveryNSteps(1000),
        steps=5001,
        start_time=datetime(2026, 1, 1, tzinfo=UTC),
        step_duration=timedelta(seconds=2),
        metrics=lambda step: {"loss": 1 / (1 + step % 700)},
        preemption_steps=preemptions,
        save_duration=timedelta(seconds=save_seconds),
        checkpoint_bytes=lambda step: 1000 + step,
    )
    points = alive_over_time(result)
    assert max(count for _, count, _ in points) == result.peak_count
    assert max(nbytes or 0 for _, _, nbytes in points) == result.peak_bytes
    assert points[-1][1] == len(result.kept)


@pytest.mark.parametrize(
    ("quota", "legend"),
    [
        ("20GiB", "quota 20.0 GiB: exceeded at step 2,400"),
        ("20TiB", "quota 20.0 TiB: never exceeded (off the scale)"),
    ],
)
def test_svg_plot_stacks_the_items_and_draws_the_quota(
    tmp_path: Path, quota: str, legend: str
) -> None:
    out = tmp_path / "items.svg"
    run = tenure(*SIMULATE_ITEM_ARGS, "--quota", quota, "--plot", str(out))
    assert run.returncode == 0, run.stderr
    text = out.read_text()
    assert legend in text
    assert "params" in text
    assert "opt_state" in text


@pytest.mark.parametrize("save_seconds", [0, 300])
def test_bytes_by_item_add_up_to_the_disk_use_and_peak_where_the_simulator_says(
    save_seconds: int,
) -> None:
    result = simulate(
        FixedIntervalPolicy(100) | PreemptionCheckpointingPolicy(),
        LatestN(3) | EveryNSteps(1000),
        steps=5001,
        start_time=datetime(2026, 1, 1, tzinfo=UTC),
        step_duration=timedelta(seconds=2),
        preemption_steps=[1234],
        save_duration=timedelta(seconds=save_seconds),
        item_bytes=lambda step: {"params": 1000 + step, "opt_state": 2000 + step // 3},
    )
    by_item = item_bytes_over_time(result)
    totals = alive_over_time(result)
    assert [sum(items.values()) for _, items in by_item] == [n for _, _, n in totals]
    assert result.peak_item_bytes == {
        name: max(items.get(name, 0) for _, items in by_item) for name in ("params", "opt_state")
    }
    assert by_item[-1][1] == result.final_item_bytes


def test_svg_plot_marks_the_checkpoints_that_were_thinned(tmp_path: Path) -> None:
    out = tmp_path / "thinned.svg"
    args = [
        *SIMULATE_ITEM_ARGS[:4],
        "LatestN(3) | EveryNSteps(1000).only('params')",
        *SIMULATE_ITEM_ARGS[5:],
    ]
    run = tenure(*args, "--plot", str(out))
    assert run.returncode == 0, run.stderr
    # The 1000th steps of 0 to 4000 lose their opt_state; 5000 is among the newest three.
    assert "after thinning: fewer items (5)" in out.read_text()
    plain = tmp_path / "whole.svg"
    assert tenure(*SIMULATE_ITEM_ARGS, "--plot", str(plain)).returncode == 0
    assert "after thinning" not in plain.read_text()
