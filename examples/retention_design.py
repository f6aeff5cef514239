"""A retention design session: which policy should a week-long run keep its checkpoints with?

    python examples/retention_design.py [--days 7] [--show "by calendar"]

A run at 2 s per step saves every 500 steps and on preemption (two preemptions arrive),
2 GiB per checkpoint. Three candidate preservation policies are simulated through the same
decision code the Checkpointer runs, and compared in one table: how many checkpoints each
leaves, and the peak disk use the job's volume must hold. Then one is shown in full (by
default "by step", which keeps a history for far less disk than the calendar): what
survives at the end of the week, and which rule keeps each checkpoint.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from tenure.cli import LOSS_CURVES
from tenure.retention import (
    BestN,
    Daily,
    EveryNSteps,
    FixedIntervalPolicy,
    Hourly,
    LatestN,
    PreemptionCheckpointingPolicy,
    PreservationPolicy,
    SimulationResult,
    simulate,
)
from tenure.retention.report import format_bytes

SAVE = FixedIntervalPolicy(500) | PreemptionCheckpointingPolicy()
CANDIDATES: dict[str, PreservationPolicy] = {
    # The first idea: recent ones, the best ones, and a sparse history by step.
    "by step": LatestN(3) | BestN(metric="loss", mode="min", n=2) | EveryNSteps(20_000),
    # Calendar history instead: one per hour for the last day, then one per day.
    "by calendar": LatestN(3) | Hourly(24) | Daily(7),
    # Cheapest: nothing but the three latest.
    "latest only": LatestN(3),
}
STEP_SECONDS = 2
CHECKPOINT_BYTES = 2 * 2**30


def run(keep: PreservationPolicy, days: float) -> SimulationResult:
    steps = int(days * 24 * 3600 // STEP_SECONDS)
    return simulate(
        SAVE,
        keep,
        steps=steps + 1,
        start_time=datetime(2026, 1, 1, tzinfo=UTC),
        step_duration=timedelta(seconds=STEP_SECONDS),
        metrics=LOSS_CURVES["noisy"],
        preemption_steps=[steps * 2 // 5 + 1, steps * 5 // 6 + 1],
        save_duration=timedelta(seconds=40),
        checkpoint_bytes=CHECKPOINT_BYTES,
    )


def comparison(results: dict[str, SimulationResult]) -> str:
    """One row per candidate: what it costs at its peak, and what it leaves at the end."""
    rows = [("candidate", "kept at end", "peak count", "peak disk", "policy")]
    for name, result in results.items():
        assert result.peak_bytes is not None  # checkpoint_bytes was given
        rows.append(
            (
                name,
                str(len(result.kept)),
                str(result.peak_count),
                format_bytes(result.peak_bytes),
                repr(CANDIDATES[name]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7, help="length of the run")
    parser.add_argument("--show", choices=sorted(CANDIDATES), default="by step")
    args = parser.parse_args()
    results = {name: run(keep, args.days) for name, keep in CANDIDATES.items()}
    print(f"save: {SAVE!r}; {format_bytes(CHECKPOINT_BYTES)} per checkpoint; {args.days:g} days")
    print(f"\n{comparison(results)}\n\n{args.show!r} in full:\n")
    print(results[args.show].table())


if __name__ == "__main__":
    main()
