"""Pictures of a simulated run: one line per checkpoint, from its save to its deletion.

matplotlib is an optional extra (`pip install 'tenure[plot]'`), imported only when a
picture is drawn, so `import tenure` and the command line work without it.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from tenure.retention.report import format_bytes, rule_of

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from tenure.retention.failures import IntervalScan
    from tenure.retention.simulator import SimulationResult

PLOT_SUFFIXES = (".png", ".svg")
_KEPT_COLOUR = "black"
_NO_RULE = "(no rule)"


class PlotDependencyError(ImportError):
    """matplotlib is missing; the message says how to install it."""


def require_matplotlib() -> None:
    """Raises `PlotDependencyError` unless matplotlib can be imported.

    Examples:
        >>> require_matplotlib()  # matplotlib is a dev dependency
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise PlotDependencyError(
            f"drawing a plot needs matplotlib ({error}); install it with pip install 'tenure[plot]'"
        ) from error


def alive_over_time(result: SimulationResult) -> list[tuple[int, int, int | None]]:
    """`(at_step, checkpoints, bytes)` after each save, deletion and thinning, in order.

    Replays the events rather than the lifetimes: a save counts from the step it
    commits, and a new save counts before the deletions it triggers, just as the
    simulator measures its peaks. Bytes are None when the run had no sizes.

    Examples:
        >>> from datetime import datetime, timedelta, timezone
        >>> from tenure.retention import FixedIntervalPolicy, LatestN, simulate
        >>> result = simulate(FixedIntervalPolicy(10), LatestN(2), steps=31,
        ...                   start_time=datetime(2026, 1, 1, tzinfo=timezone.utc),
        ...                   step_duration=timedelta(seconds=1), checkpoint_bytes=100)
        >>> alive_over_time(result)[-2:]
        [(30, 3, 300), (30, 2, 200)]
        >>> max(n for _, _, n in alive_over_time(result)) == result.peak_bytes
        True
    """
    sized = all(life.nbytes is not None for life in result.lifetimes)
    count = 0
    points: list[tuple[int, int, int | None]] = []
    for event, (at_step, by_item) in zip(result.events, item_bytes_over_time(result), strict=True):
        count += {"save": 1, "delete": -1}.get(event.kind, 0)
        points.append((at_step, count, sum(by_item.values()) if sized else None))
    return points


def item_bytes_over_time(result: SimulationResult) -> list[tuple[int, dict[str, int]]]:
    """`(at_step, {item: bytes on disk})` after each save, deletion and thinning, in order.

    A checkpoint saved without item sizes counts as one item named `""` of its `nbytes`
    (0 when unknown); a thinning takes its items' bytes out.

    Examples:
        >>> from datetime import datetime, timedelta, timezone
        >>> from tenure.retention import FixedIntervalPolicy, LatestN, simulate
        >>> result = simulate(FixedIntervalPolicy(10), LatestN(1), steps=11,
        ...                   start_time=datetime(2026, 1, 1, tzinfo=timezone.utc),
        ...                   step_duration=timedelta(seconds=1),
        ...                   item_bytes={"params": 5, "opt_state": 10})
        >>> item_bytes_over_time(result)[-2:]
        [(10, {'params': 10, 'opt_state': 20}), (10, {'params': 5, 'opt_state': 10})]
    """
    saved = {
        life.step: life.item_bytes if life.item_bytes is not None else {"": life.nbytes or 0}
        for life in result.lifetimes
    }
    on_disk: dict[int, dict[str, int]] = {}  # the items each step still holds
    totals: dict[str, int] = {}
    points: list[tuple[int, dict[str, int]]] = []
    for event in result.events:
        if event.kind == "save":
            change, sign = dict(saved[event.step]), 1
            on_disk[event.step] = dict(change)
        elif event.kind == "delete":
            change, sign = on_disk.pop(event.step), -1
        else:
            held = on_disk[event.step]
            change, sign = {name: held.pop(name) for name in event.items if name in held}, -1
        for name, nbytes in change.items():
            totals[name] = totals.get(name, 0) + sign * nbytes
        points.append((event.at_step, dict(totals)))
    return points


def plot_simulation(
    result: SimulationResult,
    path: str | os.PathLike[str],
    *,
    end_step: int | None = None,
    title: str | None = None,
) -> None:
    """Draws `result` to a .png or .svg file.

    Top: one horizontal line per checkpoint at the height of its step, from its save to
    its deletion (or to `end_step`, by default the last event); the checkpoints kept at
    the end are black, the deleted ones coloured by the rule that let them go, and a line
    goes faint once its checkpoint was thinned. Bottom: the bytes (or, without sizes, the
    checkpoints) on disk, with the peak annotated; stacked by item when the run had
    `item_bytes`, with the quota and the step that first exceeded it when it had one.

    Examples:
        >>> import tempfile
        >>> from datetime import datetime, timedelta, timezone
        >>> from tenure.retention import EveryNSteps, FixedIntervalPolicy, LatestN, simulate
        >>> result = simulate(FixedIntervalPolicy(100), LatestN(3) | EveryNSteps(1000),
        ...                   steps=5001, start_time=datetime(2026, 1, 1, tzinfo=timezone.utc),
        ...                   step_duration=timedelta(seconds=2), checkpoint_bytes=2**30)
        >>> path = Path(tempfile.mkdtemp()) / "run.svg"
        >>> plot_simulation(result, path, title="LatestN(3) | EveryNSteps(1000)")
        >>> path.read_text().startswith("<?xml")
        True
    """
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise ValueError(f"{str(path)!r}: a plot is written as one of {', '.join(PLOT_SUFFIXES)}")
    require_matplotlib()
    # Figure and the Agg canvas directly, not pyplot: no global state, no GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 6.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    lines, disk = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    last_event = max((event.at_step for event in result.events), default=0)
    end = last_event if end_step is None else max(end_step, last_event)
    _draw_lifetimes(lines, result, end)
    _draw_disk_use(disk, result, end)
    figure.suptitle(
        title or f"{result.saves:,} saves, {result.deletions:,} deletions, {len(result.kept)} kept"
    )
    figure.savefig(path)


def plot_interval_scan(
    scan: IntervalScan,
    path: str | os.PathLike[str],
    *,
    step_seconds: float = 1.0,
    title: str | None = None,
) -> None:
    """Draws the expected wall time (and its 95th percentile) against the save interval
    of an `IntervalScan` to a .png or .svg file, with the best interval and Young's and
    Daly's marked.

    Examples:
        >>> import tempfile
        >>> from datetime import timedelta
        >>> from tenure.retention import Failures, LatestN, scan_intervals
        >>> scan = scan_intervals(LatestN(1), steps=5000, step_duration=timedelta(seconds=1),
        ...                       failures=Failures(mtbf=timedelta(minutes=20)),
        ...                       blocked_seconds=5, runs=5)
        >>> path = Path(tempfile.mkdtemp()) / "scan.svg"
        >>> plot_interval_scan(scan, path)
        >>> path.read_text().startswith("<?xml")
        True
    """
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise ValueError(f"{str(path)!r}: a plot is written as one of {', '.join(PLOT_SUFFIXES)}")
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    intervals = scan.intervals
    mean = [report.expected_wall_seconds / 3600 for _, report in scan.points]
    p95 = [report.p95_wall_seconds / 3600 for _, report in scan.points]
    axes.plot(intervals, mean, marker="o", color="C0", label="expected (mean) wall time")
    axes.plot(intervals, p95, linestyle="--", color="C0", alpha=0.5, label="95th percentile")
    lowest = dict(scan.points)[scan.lowest_steps].expected_wall_seconds / 3600
    axes.plot([scan.lowest_steps], [lowest], marker="o", markersize=10, color="C3", zorder=3)
    axes.axvline(
        scan.best_steps, color="C3", label=f"best interval: {scan.best_steps:,} steps (fitted)"
    )
    axes.axvline(
        scan.young_steps, color="0.4", linestyle=":", label=f"Young: {scan.young_steps:,.1f}"
    )
    axes.axvline(scan.daly_steps, color="C2", linestyle="-.", label=f"Daly: {scan.daly_steps:,.1f}")
    axes.set_xlabel(f"save interval (steps of {step_seconds:g} s)")
    axes.set_ylabel("wall time to the last step (h)")
    axes.xaxis.set_major_formatter("{x:,.0f}")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)
    figure.suptitle(title or "Expected wall time against the save interval")
    figure.savefig(path)


def _draw_lifetimes(axes: Axes, result: SimulationResult, end: int) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    kept = {decision.step for decision in result.kept}
    rules = {
        life.step: rule_of(life.let_go_by[0]) if life.let_go_by else _NO_RULE
        for life in result.lifetimes
        if life.step not in kept
    }
    tally = Counter(rules.values())
    colours = {rule: f"C{i % 10}" for i, (rule, _) in enumerate(tally.most_common())}
    doomed = [life for life in result.lifetimes if life.step in rules]
    survivors = [life for life in result.lifetimes if life.step in kept]
    # One collection per kind: a Line2D per checkpoint would take minutes for thousands.
    # Thinner lines as they crowd the ~400 pixels of height, so each stays apart.
    width = max(0.4, min(2.0, 300 / max(len(result.lifetimes), 1)))
    kept_width = max(0.8, min(3.0, 150 / max(len(kept), 1)))
    thinned: list[tuple[tuple[int, int], tuple[int, int]]] = []
    thinned_colours: list[str] = []
    for lives, line_colours, line_width, zorder in (
        (doomed, [colours[rules[life.step]] for life in doomed], width, 2),
        (survivors, [_KEPT_COLOUR] * len(survivors), kept_width, 3),
    ):
        whole = []
        for life, colour in zip(lives, line_colours, strict=True):
            stop = end if life.deleted_at_step is None else life.deleted_at_step
            # A thinned checkpoint's line goes faint from its first thinning on.
            thin_at = life.thinned[0][0] if life.thinned else stop
            whole.append(((life.step, life.step), (thin_at, life.step)))
            if thin_at < stop:
                thinned.append(((thin_at, life.step), (stop, life.step)))
                thinned_colours.append(colour)
        axes.add_collection(
            LineCollection(whole, colors=line_colours, linewidths=line_width, zorder=zorder)
        )
    if thinned:
        axes.add_collection(
            LineCollection(thinned, colors=thinned_colours, linewidths=width, alpha=0.35)
        )
    axes.set_xlim(min(kept | rules.keys(), default=0), max(end, 1))
    axes.autoscale(axis="y")
    axes.set_ylabel("checkpoint (its step)")
    handles = [Line2D([], [], color=_KEPT_COLOUR, linewidth=3)]
    labels = [f"kept at the end ({len(kept):,})"]
    for rule, count in tally.most_common():
        handles.append(Line2D([], [], color=colours[rule], linewidth=2))
        labels.append(f"let go by {rule} ({count:,})")
    if thinned:
        handles.append(Line2D([], [], color=_KEPT_COLOUR, linewidth=1, alpha=0.35))
        labels.append(f"after thinning: fewer items ({len(thinned):,})")
    axes.legend(handles, labels, loc="upper left", fontsize="small", frameon=False)
    axes.yaxis.set_major_formatter("{x:,.0f}")


def _binary_unit(nbytes: int) -> tuple[int, str]:
    # Ticks in one binary unit read better than bytes: 0, 10, 20, 30, 40 GiB.
    for power, unit in reversed(list(enumerate(("B", "KiB", "MiB", "GiB", "TiB")))):
        if nbytes >= 1024**power:
            return 1024**power, unit
    return 1, "B"


def _draw_disk_use(axes: Axes, result: SimulationResult, end: int) -> None:
    points = alive_over_time(result)
    sized = result.peak_bytes is not None
    steps = [0, *(step for step, _, _ in points), end]
    quota = result.quota
    # A quota far above the peak would flatten the curve; it is named in the legend instead.
    quota_drawn = quota is not None and quota <= 3 * max(result.peak_bytes or 0, 1)
    top = max(result.peak_bytes or 0, quota if quota_drawn and quota is not None else 0)
    scale, unit = _binary_unit(top)
    values = [0.0, *((nbytes or 0) / scale if sized else count for _, count, nbytes in points)]
    values.append(values[-1])
    if result.peak_item_bytes is not None:
        _stack_items(axes, result, steps, scale)
    else:
        axes.plot(steps, values, drawstyle="steps-post", color="C0", linewidth=1)
        axes.fill_between(steps, values, step="post", alpha=0.2, color="C0")
    axes.set_xlabel("training step")
    axes.xaxis.set_major_formatter("{x:,.0f}")
    axes.set_ylabel(f"on disk ({unit})" if sized else "checkpoints on disk")
    if not points:
        return
    peak_index = max(range(len(values)), key=values.__getitem__)
    peak_text = f"peak: {result.peak_count:,} checkpoints"
    if result.peak_bytes is not None:
        peak_text += f", {format_bytes(result.peak_bytes)}"
    legend = result.peak_item_bytes is not None or quota is not None
    axes.annotate(
        f"{peak_text} at step {steps[peak_index]:,}",
        xy=(steps[peak_index], values[peak_index]),
        xytext=(0.98, 0.95) if legend else (0.5, 0.95),  # clear of the legend, top left
        textcoords="axes fraction",
        ha="right" if legend else "center",
        va="top",
        arrowprops={"arrowstyle": "->", "color": "0.3"},
    )
    axes.set_ylim(0, max(values[peak_index], top / scale) * 1.35)
    if quota is not None:
        _draw_quota(axes, result, quota, scale, drawn=quota_drawn)
    if legend:
        # A frame, so the quota line does not run through the item names.
        axes.legend(loc="upper left", fontsize="small", framealpha=0.85, edgecolor="none")


def _stack_items(axes: Axes, result: SimulationResult, steps: list[int], scale: int) -> None:
    """Disk use stacked by item, the first item saved at the bottom."""
    names = list(result.peak_item_bytes or ())
    by_item = [by for _, by in item_bytes_over_time(result)]
    rows = [{}, *by_item, by_item[-1] if by_item else {}]
    below = [0.0] * len(steps)
    for i, name in enumerate(names):
        above = [b + row.get(name, 0) / scale for b, row in zip(below, rows, strict=True)]
        axes.fill_between(
            steps,
            below,
            above,
            step="post",
            alpha=0.45,
            color=f"C{i % 10}",
            linewidth=0,
            label=name,
        )
        axes.plot(steps, above, drawstyle="steps-post", color=f"C{i % 10}", linewidth=0.8)
        below = above


def _draw_quota(
    axes: Axes, result: SimulationResult, quota: int, scale: int, *, drawn: bool
) -> None:
    where = (
        "never exceeded"
        if result.quota_exceeded_at is None
        else f"exceeded at step {result.quota_exceeded_at:,}"
    )
    label = f"quota {format_bytes(quota)}: {where}"
    if not drawn:
        # An empty line still puts the quota in the legend.
        axes.plot([], [], color="C3", linestyle="--", label=label + " (off the scale)")
        return
    axes.axhline(quota / scale, color="C3", linestyle="--", linewidth=1.2, label=label)
    if result.quota_exceeded_at is not None:
        axes.axvline(result.quota_exceeded_at, color="C3", linestyle=":", linewidth=1)
