"""Policies as text: `parse_policy("LatestN(3) | EveryNSteps(10_000)")`.

The text is parsed with `ast` and evaluated by walking a whitelist: policy names,
literals, lists, `timedelta(...)`, the operators `|`, `&`, `~`, and one method,
`policy.only('params', ...)`. Nothing is ever passed to `eval`, so policy text from a
command line or a config file runs no code.

Text nests at most `MAX_NESTING` levels deep, counting each bracket and each `|`, `&`
and `~` inside the same brackets as one level; deeper text is refused with a
`PolicyTextError` before `ast` sees it (Python's parser would otherwise stop with a
`RecursionError`). Larger policies are built in Python, where `|` and `&` stay flat.
"""

from __future__ import annotations

import ast
import difflib
import io
import tokenize
from datetime import timedelta
from typing import Any

from tenure.retention import bucket_policies, budget, preservation_policies, save_policies
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
        budget.WithinBytes,
        bucket_policies.Hourly,
        bucket_policies.Daily,
        bucket_policies.Weekly,
        bucket_policies.Monthly,
        bucket_policies.Yearly,
        bucket_policies.PerStepBucket,
    )
}
#: The methods policy text may call on a policy.
_METHODS = frozenset({"only"})

#: The deepest policy text `parse_policy` reads (see the module docstring).
MAX_NESTING = 200

_MAX_INT = 2**63 - 1

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
    _check_nesting(source)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        offset = (error.offset or 1) - 1
        raise PolicyTextError(f"not valid policy text: {error.msg}", source, offset) from None
    return _Evaluator(source).policy(tree.body)


def _check_nesting(source: str) -> None:
    """Refuses text nested deeper than `MAX_NESTING`, reading tokens without recursion."""
    operators: list[int] = [0]  # per open bracket: the operators met inside it so far
    depth = 0  # brackets open plus operators inside them: bounds the depth of the tree
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type != tokenize.OP:
                continue
            if token.string in "([{":
                operators.append(0)
                depth += 1
            elif token.string in ")]}" and len(operators) > 1:
                depth -= 1 + operators.pop()
            elif token.string in "|&~":
                operators[-1] += 1
                depth += 1
            if depth > MAX_NESTING:
                raise PolicyTextError(
                    f"policy text nests more than {MAX_NESTING} levels deep (each bracket, "
                    "|, & and ~ counts one); build a policy this large in Python instead",
                    source,
                    _offset(source, token.start),
                )
    except tokenize.TokenError:
        pass  # unbalanced brackets: ast.parse reports them with their position


def _offset(source: str, position: tuple[int, int]) -> int:
    row, column = position
    return sum(len(line) for line in source.splitlines(keepends=True)[: row - 1]) + column


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
            if any(kw.arg is None for kw in node.keywords):
                raise self.fail("**arguments are not allowed in policy text", node)
            self._check_unique(name, node)
            args = [self.value(a) for a in node.args]
            kwargs = {kw.arg: self.value(kw.value) for kw in node.keywords if kw.arg}
            try:
                return _POLICY_CLASSES[name](*args, **kwargs)
            except (RetentionError, TypeError) as error:
                raise self.fail(f"{name}: {error}", node) from None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            return self.method(node, node.func)
        raise self.fail(
            "expected a policy such as LatestN(3), or policies joined by |, & and ~", node
        )

    def method(self, node: ast.Call, func: ast.Attribute) -> Any:
        """`policy.only('params', ...)`, the one method call policy text may make."""
        # Errors point at the method's name, not at the start of the policy before it.
        column = (func.end_col_offset or len(func.attr)) - len(func.attr)

        def fail(message: str) -> PolicyTextError:
            return PolicyTextError(message, self.text, column)

        if func.attr not in _METHODS:
            close = difflib.get_close_matches(func.attr, _METHODS, n=1)
            hint = f"did you mean .{close[0]}(...)?" if close else "the only method is .only(...)"
            raise fail(f"unknown method {func.attr!r}; {hint}")
        receiver = self.policy(func.value)
        if node.keywords:
            raise fail(f".{func.attr}() takes item names only, e.g. .only('params')")
        items = [self.value(a) for a in node.args]
        if not callable(getattr(receiver, func.attr, None)):
            raise fail(f"{receiver!r} is not a preservation policy: it has no .{func.attr}()")
        try:
            return getattr(receiver, func.attr)(*items)
        except RetentionError as error:
            raise fail(f".{func.attr}: {error}") from None

    def value(self, node: ast.expr) -> Any:
        literal = node.operand if isinstance(node, ast.UnaryOp) else node
        if isinstance(literal, ast.Constant) and type(literal.value) is int:
            self._check_int(literal.value, node)
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
        if isinstance(node, ast.BinOp | ast.UnaryOp | ast.Call):
            return self.policy(node)
        raise self.fail(
            "expected a number, a string, True/False/None, a list, timedelta(...) or a policy",
            node,
        )

    def _check_int(self, value: int, node: ast.expr) -> None:
        # A huge literal (0xfff... is not limited by the parser) would make the policy's
        # repr, and every message naming it, fail with Python's digit limit.
        if abs(value) > _MAX_INT:
            raise self.fail(
                f"an integer of {value.bit_length()} bits is out of range; steps, counts and "
                "intervals must fit in 64 bits",
                node,
            )

    def _check_unique(self, name: str, node: ast.Call) -> None:
        # Python refuses a repeated keyword when compiling, but ast.parse lets it through.
        seen: set[str] = set()
        for keyword in node.keywords:
            if keyword.arg in seen:
                raise self.fail(
                    f"{name}: {keyword.arg}= is given twice; give each argument once",
                    keyword.value,
                )
            if keyword.arg is not None:
                seen.add(keyword.arg)

    def timedelta(self, node: ast.Call) -> timedelta:
        if node.args:
            raise self.fail("write timedelta with keywords, e.g. timedelta(days=7)", node)
        self._check_unique("timedelta", node)
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
        try:
            return timedelta(**kwargs)
        except (OverflowError, ValueError) as error:  # inf, nan, or beyond timedelta.max
            raise self.fail(
                f"timedelta({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) is out of "
                f"range ({error}); a duration is at most {timedelta.max.days:,} days",
                node,
            ) from None

    @staticmethod
    def _unknown(name: str) -> str:
        close = difflib.get_close_matches(name, _POLICY_CLASSES, n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(policy_names())}"
        return f"unknown policy {name!r}{hint}"
