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

from tenure.plot import (
    PLOT_SUFFIXES,
    PlotDependencyError,
    plot_interval_scan,
    plot_simulation,
    require_matplotlib,
)
from tenure.retention import (
    FailureReport,
    Failures,
    IntervalScan,
    PolicyArgumentError,
    parse_bytes,
    parse_policy,
    scan_intervals,
    simulate,
    simulate_failures,
)


def parse_size(text: str) -> int:
    """`"2GiB"` -> 2147483648; `"500MB"` -> 500000000; a bare number is bytes."""
    try:
        return parse_bytes(text)
    except PolicyArgumentError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([smhd]?)\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`"6h"` -> 6 hours; `"90m"`, `"45s"`, `"2d"`; a bare number is seconds."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; write e.g. 6h, 90m or 45s")
    number, unit = match.groups()
    return timedelta(seconds=float(number) * _SECONDS[unit.lower()])


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


def parse_item_size(text: str) -> tuple[str, int]:
    """`"params=2GiB"` -> `("params", 2147483648)`: an item's name and its bytes per step."""
    name, equals, size = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an item size; write NAME=SIZE, e.g. params=2GiB"
        )
    return name.strip(), parse_size(size)


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
    parser.add_argument(
        "--keep",
        help="preservation policy text (needed without failures; with them, default LatestN(1))",
    )
    parser.add_argument("--steps", required=True, type=int, help="number of training steps")
    parser.add_argument(
        "--step-seconds", required=True, type=float, help="wall-clock seconds per step"
    )
    parser.add_argument("--checkpoint-size", type=parse_size, help="bytes per checkpoint")
    parser.add_argument(
        "--item-size",
        type=parse_item_size,
        action="append",
        default=[],
        metavar="NAME=SIZE",
        help="bytes of one item of every checkpoint, e.g. params=2GiB (repeat for each item; "
        "instead of --checkpoint-size)",
    )
    parser.add_argument(
        "--quota",
        type=parse_size,
        metavar="SIZE",
        help="disk space the run may fill, e.g. 20TiB; reports the step that first exceeds it",
    )
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
    failures = parser.add_argument_group(
        "failures",
        "model failures and the cost of saving; the report gives the expected wall time "
        "(see docs/cadence.md)",
    )
    failures.add_argument(
        "--mtbf", type=parse_duration, help="mean time between failures, e.g. 6h (random)"
    )
    failures.add_argument(
        "--weibull-shape",
        type=float,
        default=1.0,
        help="shape of the time between failures (default 1: exponential)",
    )
    failures.add_argument(
        "--fail-at", type=parse_steps, default=[], help="steps at which the run also fails"
    )
    failures.add_argument(
        "--blocked-seconds",
        type=float,
        default=0.0,
        help="seconds the training loop waits per save",
    )
    failures.add_argument(
        "--restart-seconds", type=float, default=0.0, help="seconds from a failure to resuming"
    )
    failures.add_argument("--runs", type=int, default=100, help="seeded runs (default 100)")
    failures.add_argument("--seed", type=int, default=0, help="seed of the failures (default 0)")
    failures.add_argument(
        "--best-interval",
        action="store_true",
        help="also scan FixedIntervalPolicy intervals for the least expected wall time",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--plot",
        type=parse_plot_path,
        metavar="FILE.png|FILE.svg",
        help=(
            "also draw the checkpoints' lifetimes and the disk use; with --best-interval, "
            "the expected wall time against the interval (needs matplotlib)"
        ),
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
    if args.mtbf is not None or args.fail_at or args.best_interval:
        if args.item_size or args.quota is not None:
            raise PolicyArgumentError(
                "--item-size and --quota apply to a run without failures; "
                "give --checkpoint-size with --mtbf, --fail-at or --best-interval"
            )
        return _run_with_failures(args)
    if args.keep is None:
        raise PolicyArgumentError(
            "--keep is needed: give the preservation policy whose checkpoints to report"
        )
    item_bytes = _item_bytes(args)
    if args.quota is not None and args.checkpoint_size is None and item_bytes is None:
        raise PolicyArgumentError(
            "--quota needs the checkpoints' sizes: give --item-size or --checkpoint-size"
        )
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
        item_bytes=item_bytes,
        quota=args.quota,
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


def _item_bytes(args: argparse.Namespace) -> dict[str, int] | None:
    if not args.item_size:
        return None
    if args.checkpoint_size is not None:
        raise PolicyArgumentError(
            "give --item-size or --checkpoint-size, not both: a checkpoint's bytes are "
            "its items' bytes"
        )
    item_bytes = dict(args.item_size)
    if len(item_bytes) < len(args.item_size):
        names = [name for name, _ in args.item_size]
        twice = sorted({name for name in names if names.count(name) > 1})
        raise PolicyArgumentError(f"--item-size gives {', '.join(twice)} more than once")
    return item_bytes


def _run_with_failures(args: argparse.Namespace) -> int:
    if args.runs < 1 or args.blocked_seconds < 0 or args.restart_seconds < 0:
        raise PolicyArgumentError(
            "--runs must be positive, --blocked-seconds and --restart-seconds not negative"
        )
    if args.best_interval and args.mtbf is None:
        raise PolicyArgumentError("--best-interval needs --mtbf, the mean time between failures")
    keep = parse_policy(args.keep or "LatestN(1)")
    failures = Failures(mtbf=args.mtbf, shape=args.weibull_shape, steps=args.fail_at)
    save_duration = timedelta(seconds=args.save_seconds)
    restart_duration = timedelta(seconds=args.restart_seconds)
    report = simulate_failures(
        parse_policy(args.save),
        keep,
        steps=args.steps,
        step_duration=timedelta(seconds=args.step_seconds),
        failures=failures,
        runs=args.runs,
        seed=args.seed,
        blocked_seconds=args.blocked_seconds,
        save_duration=save_duration,
        restart_duration=restart_duration,
        checkpoint_bytes=args.checkpoint_size,
        metrics=LOSS_CURVES[args.loss_curve],
    )
    scan = None
    if args.best_interval:
        scan = scan_intervals(
            keep,
            steps=args.steps,
            step_duration=timedelta(seconds=args.step_seconds),
            failures=failures,
            runs=args.runs,
            seed=args.seed,
            blocked_seconds=args.blocked_seconds,
            save_duration=save_duration,
            restart_duration=restart_duration,
        )
    if args.json:
        data: dict[str, object] = {"failures": report.to_json()}
        if scan is not None:
            data["best_interval_steps"] = scan.best_steps
            data["interval_scan"] = scan.to_json()
        print(json.dumps(data, indent=1))
    else:
        print(_failure_table(args, report, scan))
    if args.plot is not None:
        if scan is None:
            print(
                "tenure simulate: --plot with failures draws the --best-interval scan; "
                "add --best-interval",
                file=sys.stderr,
            )
            return 2
        try:
            plot_interval_scan(scan, args.plot, step_seconds=args.step_seconds)
        except OSError as error:
            print(f"tenure simulate: cannot write the plot: {error}", file=sys.stderr)
            return 2
    return 0


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.2f} h"


def _failure_table(
    args: argparse.Namespace, report: FailureReport, scan: IntervalScan | None
) -> str:
    where = f"MTBF {_hours(args.mtbf.total_seconds())}" if args.mtbf else "no random failures"
    if args.fail_at:
        where += f", failing at steps {', '.join(f'{s:,}' for s in args.fail_at)}"
    lines = [
        f"Simulated {len(report.runs):,} runs of {args.steps:,} steps ({args.step_seconds:g} s "
        f"each) under failures ({where}); a save blocks {args.blocked_seconds:g} s, "
        f"a restart takes {args.restart_seconds:g} s.",
        f"Save policy: {args.save}",
        "",
        f"  expected wall time      {_hours(report.expected_wall_seconds)} (mean), "
        f"{_hours(report.median_wall_seconds)} (median), "
        f"{_hours(report.p95_wall_seconds)} (95th percentile)",
        f"  failures                {report.failures_mean:,.1f} per run",
        f"  steps recomputed        {report.lost_steps_mean:,.0f} per run",
        f"  blocked on saves        {_hours(report.blocked_seconds_mean)} per run, "
        f"{report.saves_mean:,.0f} saves",
        f"  efficiency              {report.efficiency:.1%} (failure-free, checkpoint-free "
        f"time {_hours(report.ideal_seconds)} / expected wall time)",
    ]
    if scan is not None:
        lines += [
            "",
            f"Best fixed interval: {scan.best_steps:,} steps (fitted to the {len(scan.points)} "
            f"intervals below; the lowest simulated is {scan.lowest_steps:,}).",
            f"  Young: {scan.young_steps:,.1f} steps   Daly: {scan.daly_steps:,.1f} steps",
            "",
            "  interval   expected wall time   efficiency",
        ]
        for interval, point in scan.points:
            mark = "  <- lowest" if interval == scan.lowest_steps else ""
            lines.append(
                f"  {interval:>8,}   {_hours(point.expected_wall_seconds):>18}   "
                f"{point.efficiency:>10.1%}{mark}"
            )
    return "\n".join(lines)
