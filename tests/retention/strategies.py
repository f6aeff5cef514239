"""Hypothesis strategies for checkpoints and policies."""

from __future__ import annotations

import functools
import operator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from hypothesis import strategies as st

from tenure.retention import (
    BestN,
    CheckpointInfo,
    CustomSteps,
    Daily,
    EveryNSeconds,
    EveryNSteps,
    EveryNStepsClosest,
    Hourly,
    ItemSet,
    LatestDuration,
    LatestN,
    Monthly,
    PerStepBucket,
    PreservationPolicy,
    PreserveAll,
    RetentionPlan,
    Weekly,
    Yearly,
)

START = datetime(2026, 1, 1, tzinfo=UTC)

metric_values = st.one_of(
    st.floats(min_value=-10, max_value=10, allow_nan=False),
    st.just(float("nan")),
    st.sampled_from([0.0, 1.0, 2.0]),  # ties
)
metrics = st.one_of(
    st.none(),
    st.just({}),
    st.builds(lambda v: {"loss": v}, metric_values),
    st.builds(lambda v: {"eval": {"loss": v}, "loss": v}, metric_values),
)


@st.composite
def checkpoint_lists(draw: st.DrawFn, max_size: int = 30) -> list[CheckpointInfo]:
    """Checkpoints sorted by step, with increasing times and random metrics."""
    steps = sorted(draw(st.sets(st.integers(0, 50_000), max_size=max_size)))
    gaps = draw(st.lists(st.integers(1, 3 * 86_400), min_size=len(steps), max_size=len(steps)))
    infos = []
    time = START
    for step, gap in zip(steps, gaps, strict=True):
        time += timedelta(seconds=gap)
        infos.append(CheckpointInfo(step, time, draw(metrics)))
    return infos


counts = st.one_of(st.none(), st.integers(0, 8))
caps = st.one_of(st.none(), st.integers(1, 8))
leaf_policies: st.SearchStrategy[Any] = st.one_of(
    st.just(PreserveAll()),
    st.builds(LatestN, counts),
    st.builds(EveryNSeconds, st.integers(1, 5 * 86_400)),
    st.builds(EveryNSteps, st.integers(1, 5_000), st.booleans(), caps),
    st.builds(EveryNStepsClosest, st.integers(1, 5_000), caps),
    st.builds(CustomSteps, st.sets(st.integers(0, 50_000), max_size=5)),
    st.builds(
        BestN,
        metric=st.sampled_from(["loss", "eval.loss"]),
        mode=st.sampled_from(["min", "max"]),
        n=counts,
        keep_checkpoints_without_metrics=st.booleans(),
    ),
    st.builds(
        LatestDuration,
        st.integers(1, 20).map(lambda d: timedelta(days=d)),
        relative_to=st.just("newest"),
    ),
    st.builds(Hourly, counts, keep_oldest=st.booleans()),
    st.builds(
        Daily,
        counts,
        within=st.one_of(st.none(), st.integers(1, 30).map(lambda d: timedelta(days=d))),
        keep_oldest=st.booleans(),
    ),
    st.builds(Weekly, counts, keep_oldest=st.booleans()),
    st.builds(Monthly, counts, keep_oldest=st.booleans()),
    st.builds(Yearly, counts, keep_oldest=st.booleans()),
    st.builds(PerStepBucket, st.integers(1, 10_000), counts),
)


def _combine(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.tuples(children, children).map(lambda ab: ab[0] | ab[1]),
        st.tuples(children, children).map(lambda ab: ab[0] & ab[1]),
        children.map(lambda a: ~a),
    )


policies: st.SearchStrategy[PreservationPolicy] = st.recursive(
    leaf_policies, _combine, max_leaves=5
)
unions: st.SearchStrategy[PreservationPolicy] = st.lists(leaf_policies, min_size=1, max_size=4).map(
    lambda ps: functools.reduce(operator.or_, ps)
)


def _join(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    operators = st.sampled_from([operator.or_, operator.and_])
    return st.tuples(children, children, operators).map(lambda abo: abo[2](abo[0], abo[1]))


# Built from leaves with | and & only: no negation.
positive_policies: st.SearchStrategy[PreservationPolicy] = st.recursive(
    leaf_policies, _join, max_leaves=5
)


def apply_plan(checkpoints: list[CheckpointInfo], plan: RetentionPlan) -> list[CheckpointInfo]:
    """What is left after the plan is carried out: deleted steps gone, thinned items gone."""
    deleted = set(plan.delete)
    left = []
    for info in checkpoints:
        if info.step in deleted:
            continue
        gone = plan.thin.get(info.step, frozenset())
        if gone:
            sizes = {k: v for k, v in (info.item_bytes or {}).items() if k not in gone}
            info = attrs.evolve(info, item_bytes=sizes)
        left.append(info)
    return left


ITEMS = ("params", "opt_state", "ema")
item_subsets = st.sets(st.sampled_from(ITEMS), min_size=1).map(sorted)
item_sets: st.SearchStrategy[ItemSet] = st.builds(
    ItemSet, st.sets(st.sampled_from(ITEMS)), st.booleans()
)
sizes = st.integers(0, 100)
item_bytes = st.one_of(
    st.fixed_dictionaries(dict.fromkeys(ITEMS, sizes)),
    st.dictionaries(st.sampled_from(ITEMS), st.integers(0, 100)),
    st.none(),
)


@st.composite
def sized_checkpoint_lists(draw: st.DrawFn, max_size: int = 30) -> list[CheckpointInfo]:
    """`checkpoint_lists` whose steps hold items of random sizes (or unknown items)."""
    return [
        attrs.evolve(info, item_bytes=draw(item_bytes))
        for info in draw(checkpoint_lists(max_size=max_size))
    ]


def _only(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.tuples(children, item_subsets).map(lambda pi: pi[0].only(*pi[1]))


leaves_in_part = st.one_of(leaf_policies, _only(leaf_policies))
# Compositions with `.only` anywhere, with and without negation.
item_policies: st.SearchStrategy[PreservationPolicy] = st.recursive(
    leaves_in_part, lambda c: st.one_of(_combine(c), _only(c)), max_leaves=5
)
positive_item_policies: st.SearchStrategy[PreservationPolicy] = st.recursive(
    leaves_in_part, lambda c: st.one_of(_join(c), _only(c)), max_leaves=5
)
item_unions: st.SearchStrategy[PreservationPolicy] = st.lists(
    leaves_in_part, min_size=1, max_size=4
).map(lambda ps: functools.reduce(operator.or_, ps))
