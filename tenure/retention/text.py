"""Policies as text: `parse_policy("LatestN(3) | EveryNSteps(10_000)")`.

The text is parsed with `ast` and evaluated by walking a whitelist: policy names,
literals, lists, `timedelta(...)`, and the operators `|`, `&`, `~`. Nothing is ever
passed to `eval`, so policy text from a command line or a config file runs no code.
"""

from __future__ import annotations

import ast
import difflib
from datetime import timedelta
from typing import Any

from tenure.retention import bucket_policies, preservation_policies, save_policies
from tenure.retention.errors import PolicyTextError, RetentionError

_POLICY_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        save_policies.FixedIntervalPolicy,
        save_policies.SpecificStepsPolicy,
        save_policies.ContinuousCheckpointingPolicy,
        save_policies.PreemptionCheckpointingPolicy,
        save_policies.InitialSavePolicy,
        save_policies.StepRangePolicy,
        save_policies.MinimumStepGapPolicy,
        save_policies.NewBestPolicy,
        save_policies.YoungDalyPolicy,
        save_policies.AnySavePolicy,
        save_policies.AllSavePolicy,
        save_policies.NotSavePolicy,
        preservation_policies.PreserveAll,
        preservation_policies.LatestN,
        preservation_policies.EveryNSeconds,
        preservation_policies.EveryNSteps,
        preservation_policies.EveryNStepsClosest,
        preservation_policies.CustomSteps,
        preservation_policies.BestN,
        preservation_policies.LatestDuration,
        preservation_policies.AnyPreservationPolicy,
        preservation_policies.AllPreservationPolicy,
        preservation_policies.NotPreservationPolicy,
        bucket_policies.Hourly,
        bucket_policies.Daily,
        bucket_policies.Weekly,
        bucket_policies.Monthly,
        bucket_policies.Yearly,
        bucket_policies.PerStepBucket,
    )
}
_TIMEDELTA_UNITS = frozenset(
    {"weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds"}
)


def policy_names() -> list[str]:
    """The names that policy text may use."""
    return sorted(_POLICY_CLASSES)


def parse_policy(text: str) -> Any:
    """Builds the policy that `text` describes; `repr` of a policy is such text.

    Examples:
        >>> parse_policy("LatestN(3) | BestN(metric='loss', mode='min', n=2)")
        LatestN(n=3) | BestN(metric='loss', mode='min', n=2)
    """
    source = text.strip()
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        offset = (error.offset or 1) - 1
        raise PolicyTextError(f"not valid policy text: {error.msg}", source, offset) from None
    return _Evaluator(source).policy(tree.body)


class _Evaluator:
    def __init__(self, text: str) -> None:
        self.text = text

    def fail(self, message: str, node: ast.AST) -> PolicyTextError:
        return PolicyTextError(message, self.text, getattr(node, "col_offset", None))

    def policy(self, node: ast.expr) -> Any:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr | ast.BitAnd):
            left, right = self.policy(node.left), self.policy(node.right)
            try:
                return left | right if isinstance(node.op, ast.BitOr) else left & right
            except TypeError as error:
                raise self.fail(str(error), node) from None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
            return ~self.policy(node.operand)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name not in _POLICY_CLASSES:
                raise self.fail(self._unknown(name), node)
            args = [self.value(a) for a in node.args]
            kwargs = {kw.arg: self.value(kw.value) for kw in node.keywords if kw.arg}
            if any(kw.arg is None for kw in node.keywords):
                raise self.fail("**arguments are not allowed in policy text", node)
            try:
                return _POLICY_CLASSES[name](*args, **kwargs)
            except (RetentionError, TypeError) as error:
                raise self.fail(f"{name}: {error}", node) from None
        raise self.fail(
            "expected a policy such as LatestN(3), or policies joined by |, & and ~", node
        )

    def value(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant) and (
            node.value is None or isinstance(node.value, bool | int | float | str)
        ):
            return node.value
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub | ast.UAdd)
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, int | float)
            and not isinstance(node.operand.value, bool)
        ):
            number = node.operand.value
            return -number if isinstance(node.op, ast.USub) else number
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return [self.value(element) for element in node.elts]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "timedelta":
                return self.timedelta(node)
            return self.policy(node)
        if isinstance(node, ast.BinOp | ast.UnaryOp):
            return self.policy(node)
        raise self.fail(
            "expected a number, a string, True/False/None, a list, timedelta(...) or a policy",
            node,
        )

    def timedelta(self, node: ast.Call) -> timedelta:
        if node.args:
            raise self.fail("write timedelta with keywords, e.g. timedelta(days=7)", node)
        kwargs: dict[str, float] = {}
        for keyword in node.keywords:
            if keyword.arg not in _TIMEDELTA_UNITS:
                raise self.fail(
                    f"timedelta takes {', '.join(sorted(_TIMEDELTA_UNITS))}", keyword.value
                )
            amount = self.value(keyword.value)
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise self.fail("timedelta amounts must be numbers", keyword.value)
            kwargs[keyword.arg] = amount
        return timedelta(**kwargs)

    @staticmethod
    def _unknown(name: str) -> str:
        close = difflib.get_close_matches(name, _POLICY_CLASSES, n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(policy_names())}"
        return f"unknown policy {name!r}{hint}"
