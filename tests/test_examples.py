"""The examples run, on small sizes, each in its own process as a user would run it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def python(script: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def test_evaluator_scores_each_new_checkpoint_of_a_training_run(tmp_path: Path) -> None:
    root = tmp_path / "run"
    evaluator = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "evaluator.py"),
            *("--root", str(root), "--timeout", "120", "--stop-at", "200"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert evaluator.stdout is not None
        # Checkpoints count as new once the evaluator has looked at the root.
        assert evaluator.stdout.readline().startswith("watching")
        python("train.py", "--root", root, "--steps", "200")
        out, err = evaluator.communicate(timeout=120)
    finally:
        evaluator.kill()
    assert evaluator.returncode == 0, err
    losses = {
        int(step): float(loss) for step, loss in re.findall(r"step (\d+): eval loss ([0-9.]+)", out)
    }
    # Step 0 is kept for good (EveryNSteps(500)) and step 200 is the newest: both are seen.
    assert {0, 200} <= set(losses)
    assert losses[200] < losses[0] / 2  # the evaluator really loads the trained weights


def test_retention_design_compares_three_policies_by_peak_disk() -> None:
    out = python("retention_design.py", "--days", "1").stdout
    table = out.split("\n\n")[1].splitlines()
    assert table[0].split()[:4] == ["candidate", "kept", "at", "end"]
    peaks = {line[:12].strip(): line.split("GiB")[0].split()[-1] for line in table[1:]}
    assert set(peaks) == {"by step", "by calendar", "latest only"}
    assert float(peaks["latest only"]) < float(peaks["by step"]) < float(peaks["by calendar"])
    assert "'by step' in full" in out
    assert "Kept at the end" in out


def test_demo_resumes_bit_for_bit_and_explains_what_it_kept() -> None:
    out = python("demo.py").stdout
    assert "bit-identical final state" in out
    assert "newest checkpoint (never deleted)" in out


def test_optax_loop_resumes_with_its_optimizer_state(tmp_path: Path) -> None:
    root = tmp_path / "run"
    first = python("train_optax.py", "--root", root, "--steps", "300", "--stop-at", "200")
    assert "stopped at step 200" in first.stdout
    second = python("train_optax.py", "--root", root, "--steps", "300")
    # Adam's step counter came back from the checkpoint, not from a fresh optimizer.
    assert "resumed at step 201, Adam count 201" in second.stdout
    assert "finished" in second.stdout


def test_nnx_loop_with_grain_resumes_bit_for_bit(tmp_path: Path) -> None:
    root = tmp_path / "run"
    first = python("train_nnx.py", "--root", root, "--steps", "120", "--stop-at", "70")
    assert "stopped at step 70" in first.stdout
    second = python("train_nnx.py", "--root", root, "--steps", "120", "--compare")
    # The optimizer's step counter came back from the checkpoint (step 50 was the newest).
    assert "resumed at step 51, optimizer step 51" in second.stdout
    assert "bit-identical final state" in second.stdout
