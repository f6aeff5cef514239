"""Reading one metric out of a checkpoint's metrics mapping."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from tenure.retention.errors import PolicyArgumentError

Mode = Literal["min", "max"]


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
