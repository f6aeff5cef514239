"""The main job: a JAX training run that is preempted, resumes bit for bit, and shows what
tenure kept and why.

    make demo

1. `examples/train.py` trains an MLP for 2000 steps, saving through `tenure.Checkpointer`
   with composed policies. At step 1234 it sends itself SIGTERM, as a scheduler would; the
   Checkpointer turns the signal into a preemption notice, saves, and the run exits.
2. The same command restarts the run, which resumes from the latest checkpoint.
3. An uninterrupted run in another directory must end in a bit-identical state.
4. The checkpoints left on disk are listed with the rules that keep them.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from tenure import Checkpointer
from tenure.retention import PreservationContext, plan_retention

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train import KEEP, SAVE  # noqa: E402

STEPS, PREEMPT_AT = 2000, 1234


def train(root: Path, *extra: str) -> str:
    """Runs one training process; returns its last line, which carries the fingerprint."""
    command = [sys.executable, str(HERE / "train.py"), "--root", str(root), "--steps", str(STEPS)]
    run = subprocess.run([*command, *extra], capture_output=True, text=True, check=True)
    lines = run.stdout.strip().splitlines()
    for line in lines:
        print(f"    {line}")
    return lines[-1].rsplit(" ", 1)[-1]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="tenure-demo-"))
    run, reference = work / "run", work / "reference"
    print(f"save policy: {SAVE!r}\nkeep policy: {KEEP!r}\nroot: {run}\n")

    print(f"1. training, preempted at step {PREEMPT_AT}:")
    train(run, "--preempt-at", str(PREEMPT_AT))
    print("2. restarted by the scheduler:")
    resumed = train(run)
    print("3. the same run without preemption, for comparison:")
    uninterrupted = train(reference)
    if resumed != uninterrupted:
        raise SystemExit(f"resumed run ended in {resumed}, uninterrupted in {uninterrupted}")
    print("   bit-identical final state: preemption and resume changed nothing.\n")

    with Checkpointer(run, read_only=True) as ckptr:
        checkpoints = ckptr.checkpoints
    plan = plan_retention(
        [c.info() for c in checkpoints],
        KEEP,
        PreservationContext(now=datetime.now(UTC)),
        protected=[PREEMPT_AT],  # the step the second run resumed from
    )
    print(f"4. {len(checkpoints)} checkpoints on disk, and why each is kept:")
    print(f"   {'step':>5}  {'loss':>8}  kept by")
    for info, decision in zip(checkpoints, plan.decisions, strict=True):
        loss = (info.metrics or {}).get("loss", float("nan"))
        print(f"   {info.step:>5}  {loss:8.5f}  {', '.join(decision.reasons)}")
    print(f"\n(directories left in {work})")


if __name__ == "__main__":
    main()
