"""`tenure simulate`: a whole run's checkpoints, replayed before a byte is written."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from tenure.plot import PLOT_SUFFIXES, PlotDependencyError, plot_simulation, require_matplotlib
from tenure.retention import PolicyArgumentError, parse_policy, simulate

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGTP]?i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1}
for _power, _letter in enumerate("KMGTP", start=1):
    _UNITS[f"{_letter}IB"] = 1024**_power
    _UNITS[f"{_letter}B"] = 1000**_power


def parse_size(text: str) -> int:
    """`"2GiB"` -> 2147483648; `"500MB"` -> 500000000; a bare number is bytes."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write e.g. 2GiB or 500MB")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "").upper()])


def parse_steps(text: str) -> list[int]:
    try:
        return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of steps"
        ) from None


def parse_plot_path(text: str) -> Path:
    """`"run.svg"` -> `Path("run.svg")`; the suffix picks the format."""
    path = Path(text)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the plot is written as {' or '.join(PLOT_SUFFIXES)}; name it e.g. run.png"
        )
    return path


def _noisy_decay(step: int) -> dict[str, float]:
    # A loss that falls like 1/sqrt(t) with deterministic +-10% wiggle, so BestN has work.
    wiggle = ((step * 2654435761) % 1000) / 1000 - 0.5
    return {"loss": (1 + step / 1000) ** -0.5 * (1 + 0.2 * wiggle)}


def _smooth_decay(step: int) -> dict[str, float]:
    return {"loss": (1 + step / 1000) ** -0.5}


LOSS_CURVES: dict[str, Callable[[int], dict[str, float]] | None] = {
    "noisy": _noisy_decay,
    "smooth": _smooth_decay,
    "none": None,
}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "simulate",
        help="simulate a save policy and a retention policy over a whole run",
        description=(
            "Replays a training run through the same decision code the Checkpointer runs, "
            "and prints which checkpoints survive, why, and the peak disk use."
        ),
    )
    parser.add_argument("--save", required=True, help="save-decision policy text")
    parser.add_argument("--keep", required=True, help="preservation policy text")
    parser.add_argument("--steps", required=True, type=int, help="number of training steps")
    parser.add_argument(
        "--step-seconds", required=True, type=float, help="wall-clock seconds per step"
    )
    parser.add_argument("--checkpoint-size", type=parse_size, help="bytes per checkpoint")
    parser.add_argument(
        "--save-seconds", type=float, default=0.0, help="time an async save takes to commit"
    )
    parser.add_argument(
        "--loss-curve",
        choices=sorted(LOSS_CURVES),
        default="noisy",
        help="metrics['loss'] of each step (default: noisy, a noisy 1/sqrt decay)",
    )
    parser.add_argument(
        "--preempt-at", type=parse_steps, default=[], help="steps at which a preemption arrives"
    )
    parser.add_argument(
        "--start",
        type=datetime.fromisoformat,
        default=datetime.fromisoformat("2026-01-01T00:00:00+00:00"),
        help="start time, ISO 8601 with a UTC offset (default 2026-01-01T00:00:00+00:00)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--plot",
        type=parse_plot_path,
        metavar="FILE.png|FILE.svg",
        help="also draw the checkpoints' lifetimes and the disk use (needs matplotlib)",
    )
    parser.set_defaults(run=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    if args.steps < 0 or args.step_seconds < 0 or not math.isfinite(args.step_seconds):
        raise PolicyArgumentError("--steps and --step-seconds must be non-negative")
    if args.plot is not None:
        try:
            require_matplotlib()  # before the simulation, which can take seconds
        except PlotDependencyError as error:
            print(f"tenure simulate: {error}", file=sys.stderr)
            return 2
    result = simulate(
        parse_policy(args.save),
        parse_policy(args.keep),
        steps=args.steps,
        start_time=args.start,
        step_duration=timedelta(seconds=args.step_seconds),
        metrics=LOSS_CURVES[args.loss_curve],
        preemption_steps=args.preempt_at,
        save_duration=timedelta(seconds=args.save_seconds),
        checkpoint_bytes=args.checkpoint_size,
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        print(result.table())
    if args.plot is not None:
        try:
            plot_simulation(
                result, args.plot, end_step=args.steps - 1, title=f"{args.save}\n{args.keep}"
            )
        except OSError as error:
            print(f"tenure simulate: cannot write the plot: {error}", file=sys.stderr)
            return 2
    return 0
