"""The main job, for now: design a retention policy for a week-long run by simulating it.

A 7-day run at 2 s per step saves every 500 steps and on preemption (two preemptions
arrive). We keep the latest 3, the best 2 by loss, and one every 20,000 steps, and look at
what survives, why, and how much disk it costs, before a single byte is written.
"""

from datetime import UTC, datetime, timedelta

from tenure.cli import LOSS_CURVES
from tenure.retention import (
    BestN,
    EveryNSteps,
    FixedIntervalPolicy,
    LatestN,
    PreemptionCheckpointingPolicy,
    simulate,
)

save = FixedIntervalPolicy(500) | PreemptionCheckpointingPolicy()
keep = LatestN(3) | BestN(metric="loss", mode="min", n=2) | EveryNSteps(20_000)
steps_per_week = 7 * 24 * 3600 // 2

result = simulate(
    save,
    keep,
    steps=steps_per_week + 1,
    start_time=datetime(2026, 1, 1, tzinfo=UTC),
    step_duration=timedelta(seconds=2),
    metrics=LOSS_CURVES["noisy"],
    preemption_steps=[123_457, 250_001],
    save_duration=timedelta(seconds=40),
    checkpoint_bytes=2 * 2**30,
)
print(f"save: {save!r}\nkeep: {keep!r}\n")
print(result.table())
