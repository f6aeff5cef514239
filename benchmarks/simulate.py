"""How fast is `tenure.retention.simulate`? (issue 2: 1,000,000 steps in under 5 s)

    .venv/bin/python benchmarks/simulate.py
    .venv/bin/python benchmarks/simulate.py --failures   # only the failure runs (issue 16)

Prints, for the issue's policies, the median wall time of 3 runs, and a scaling check:
the cost of one retention pass must follow the number of checkpoints alive, not the
length of the history (LatestN(5) alone keeps the alive set constant). Then one run of
1,000,000 steps under failures (issue 16: under 10 s a run), with a policy asked at every
step (YoungDalyPolicy) and with one the replay jumps through (FixedIntervalPolicy).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from common import median_seconds

from tenure.retention import (
    BestN,
    CheckpointInfo,
    EveryNSteps,
    Failures,
    FixedIntervalPolicy,
    LatestN,
    PreemptionCheckpointingPolicy,
    PreservationContext,
    YoungDalyPolicy,
    plan_retention,
    simulate,
    simulate_failure_run,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
SAVE = FixedIntervalPolicy(100) | PreemptionCheckpointingPolicy()
KEEP = LatestN(5) | EveryNSteps(10_000) | BestN(metric="loss", mode="min", n=3)


def loss(step: int) -> dict[str, float]:
    return {"loss": (1 + step / 1000) ** -0.5 * (1 + ((step * 2654435761) % 1000) / 5000)}


def simulate_steps(steps: int, keep: Any) -> None:
    simulate(
        SAVE,
        keep,
        steps=steps,
        start_time=START,
        step_duration=timedelta(seconds=1),
        metrics=loss,
        preemption_steps=[5000, 70_000],
        checkpoint_bytes=2**30,
    )


def plan_seconds(alive: int) -> float:
    infos = [
        CheckpointInfo(s * 100, START + timedelta(seconds=s), loss(s * 100)) for s in range(alive)
    ]
    context = PreservationContext(now=START)
    return median_seconds(lambda: [plan_retention(infos, KEEP, context) for _ in range(100)]) / 100


def failure_run(save: Any) -> None:
    run = simulate_failure_run(
        save,
        KEEP,
        steps=1_000_000,
        step_duration=timedelta(seconds=1),
        failures=Failures(mtbf=timedelta(hours=6)),
        blocked_seconds=20,
        restart_duration=timedelta(minutes=2),
        metrics=loss,
        start_time=START,
    )
    assert run.failures > 10, run  # about 46 expected: the case exercises restarts


def failures_section() -> None:
    print("\n1,000,000 steps of 1 s under failures (MTBF 6 h, saves block 20 s, restarts 2 min)")
    print(f"keep: {KEEP!r}\n")
    print(f"{'save policy (one run)':<82} {'median s':>9} {'target s':>9} {'ratio':>6}")
    for save in (
        YoungDalyPolicy(mtbf=timedelta(hours=6)) | PreemptionCheckpointingPolicy(),
        FixedIntervalPolicy(929) | PreemptionCheckpointingPolicy(),
    ):
        seconds = median_seconds(lambda save=save: failure_run(save))
        print(f"{save!r:<82} {seconds:9.2f} {10.0:9.1f} {seconds / 10.0:6.2f}")


def main() -> None:
    if "--failures" in sys.argv[1:]:
        failures_section()
        return
    print(f"save: {SAVE!r}\nkeep: {KEEP!r}\n")
    print(f"{'case':<44} {'median s':>9} {'target s':>9} {'ratio':>6}")
    seconds = median_seconds(lambda: simulate_steps(1_000_000, KEEP))
    print(
        f"{'simulate 1,000,000 steps (issue policies)':<44} {seconds:9.2f} {5.0:9.1f} "
        f"{seconds / 5.0:6.2f}"
    )
    for steps in (100_000, 1_000_000):
        s = median_seconds(lambda steps=steps: simulate_steps(steps, LatestN(5)), repeats=1)
        print(
            f"{f'LatestN(5) only, {steps:,} steps':<44} {s:9.2f} {'':>9} {'':>6}"
            f"  ({s / steps * 1e6:.2f} us/step)"
        )
    print(f"\n{'checkpoints alive':<20} {'one retention pass (ms)':>24}")
    for alive in (10, 100, 1000):
        print(f"{alive:<20} {plan_seconds(alive) * 1e3:24.3f}")
    failures_section()


if __name__ == "__main__":
    main()
