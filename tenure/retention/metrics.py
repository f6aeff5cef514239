"""Reading one metric out of a checkpoint's metrics, and ranking checkpoints by it.

`BestN`, `NewBestPolicy` and the compat managers' `best_step` all rank through here, so
they agree on NaN (ranks worst), missing values (not ranked) and ties (the newer wins).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar

import attrs

from tenure.retention.errors import PolicyArgumentError

__all__ = ["HasMetrics", "Metric", "Mode", "best", "lookup_metric", "metric_value", "rank_order"]

Mode = Literal["min", "max"]
#: A metric: a path into the metrics ("loss", "eval.loss") or a function of them.
Metric = str | Callable[[Mapping[str, Any]], Any]


def lookup_metric(metrics: Mapping[str, Any] | None, path: str) -> float | None:
    """The metric at `path` ("loss" or "eval.loss") as a float, or None when absent.

    A key that itself contains dots is found before the dotted path is followed.
    Values that are not numbers count as absent.
    """
    if metrics is None:
        return None
    value: Any = metrics.get(path) if path in metrics else _follow(metrics, path.split("."))
    if value is None or isinstance(value, str | bytes):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def metric_value(metrics: Mapping[str, Any] | None, metric: Metric) -> float | None:
    """`metric` of `metrics` as a float; None when there are no metrics or no such value."""
    if metrics is None:
        return None
    if isinstance(metric, str):
        return lookup_metric(metrics, metric)
    return float(metric(metrics))


def rank_order(values: Sequence[float | None], mode: Mode) -> list[int]:
    """The indices of the values that are present, best first.

    Numbers come first, best by `mode`, the higher index (the newer checkpoint) first among
    equal values; then the NaNs, newest first. None (missing) is not ranked.

    Examples:
        >>> rank_order([0.5, float("nan"), None, 0.2, 0.5], "min")
        [3, 4, 0, 1]
    """
    # Sorting (sign * value, -index) puts the best first and, among equal values, the
    # newer one first.
    sign = 1.0 if mode == "min" else -1.0
    numbers: list[tuple[float, int]] = []
    nans: list[int] = []
    for index, value in enumerate(values):
        if value is None:
            continue
        if value != value:  # NaN
            nans.append(index)
        else:
            numbers.append((sign * value, -index))
    numbers.sort()
    return [-negated for _, negated in numbers] + nans[::-1]


class HasMetrics(Protocol):
    """Anything with a `metrics` mapping, e.g. a `CheckpointInfo`."""

    @property
    def metrics(self) -> Mapping[str, Any] | None: ...


C = TypeVar("C", bound=HasMetrics)


def best(checkpoints: Sequence[C], metric: Metric, mode: Mode) -> C | None:
    """The checkpoint with the best `metric`: the one `BestN(n=1)` keeps.

    NaN ranks below every number, a tie goes to the newer (later) checkpoint, and
    checkpoints without the metric are not ranked; None when none has it.

    Examples:
        >>> from datetime import datetime, timezone
        >>> from tenure.retention import CheckpointInfo
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> saved = [CheckpointInfo(s, t, {"loss": v}) for s, v in
        ...          [(1, float("nan")), (2, 0.3), (3, 0.2), (4, 0.2), (5, None)]]
        >>> best(saved, "loss", "min").step
        4
        >>> best(saved[:1], "accuracy", "max") is None
        True
    """
    order = rank_order([metric_value(c.metrics, metric) for c in checkpoints], mode)
    return checkpoints[order[0]] if order else None


def _follow(metrics: Mapping[str, Any], keys: list[str]) -> Any:
    node: Any = metrics
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def is_better(candidate: float, incumbent: float, mode: Mode) -> bool:
    """Whether `candidate` strictly beats `incumbent`; NaN never beats anything."""
    if math.isnan(candidate):
        return False
    if math.isnan(incumbent):
        return True
    return candidate < incumbent if mode == "min" else candidate > incumbent


def validate_mode(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value not in ("min", "max"):
        raise PolicyArgumentError(
            f"{attribute.name}={value!r} is not a mode; use mode='min' (lower is better, "
            "e.g. a loss) or mode='max' (higher is better, e.g. an accuracy)"
        )


def validate_metric_path(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise PolicyArgumentError(
            f"{attribute.name}={value!r} must be a non-empty string naming a key of the "
            "metrics, e.g. 'loss' or 'eval.loss'"
        )
