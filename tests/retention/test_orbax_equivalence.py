"""tenure's Orbax-named preservation policies decide exactly as Orbax's own do.

Orbax's policies are fed tenure's `CheckpointInfo` (it has the attributes of Orbax's
`PolicyCheckpointInfo`), so this also checks that protocol.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from orbax.checkpoint._src.checkpoint_managers import preservation_policy as orbax

from tenure.retention import (
    BestN,
    CheckpointInfo,
    CustomSteps,
    EveryNSeconds,
    EveryNSteps,
    EveryNStepsClosest,
    LatestN,
    PreservationContext,
)

from .strategies import checkpoint_lists

counts = st.one_of(st.none(), st.integers(0, 8))
caps = st.one_of(st.none(), st.integers(1, 8))


def pairs() -> st.SearchStrategy[tuple[Any, Any]]:
    return st.one_of(
        counts.map(lambda n: (LatestN(n), orbax.LatestN(n=n))),
        st.integers(1, 5 * 86_400).map(
            lambda s: (EveryNSeconds(s), orbax.EveryNSeconds(interval_secs=s))
        ),
        st.tuples(st.integers(1, 5000), st.booleans(), caps).map(
            lambda a: (
                EveryNSteps(a[0], a[1], a[2]),
                orbax.EveryNSteps(interval_steps=a[0], exact_interval=a[1], max_to_keep=a[2]),
            )
        ),
        st.tuples(st.integers(1, 5000), caps).map(
            lambda a: (
                EveryNStepsClosest(a[0], a[1]),
                orbax.EveryNStepsClosest(interval_steps=a[0], max_to_keep=a[1]),
            )
        ),
        st.sets(st.integers(0, 50_000), max_size=6).map(
            lambda s: (CustomSteps(s), orbax.CustomSteps(steps=list(s)))
        ),
    )


@given(pairs(), checkpoint_lists())
def test_orbax_named_policies_keep_what_orbax_keeps(
    pair: tuple[Any, Any], checkpoints: list[CheckpointInfo]
) -> None:
    """Law: for the policies Orbax defines, tenure's flags equal Orbax's."""
    ours, theirs = pair
    expected = list(theirs.should_preserve(checkpoints, context=orbax.PreservationContext()))
    assert list(ours.should_preserve(checkpoints, context=PreservationContext())) == expected


def _score(metrics: Any) -> float:
    return float(metrics["loss"])


@given(counts, st.booleans(), st.booleans(), checkpoint_lists())
def test_best_n_with_a_metric_function_keeps_what_orbax_keeps(
    n: int | None, reverse: bool, without: bool, checkpoints: list[CheckpointInfo]
) -> None:
    """Law: where Orbax's BestN is well defined (every metrics dict has a number, no NaN),
    tenure's BestN(get_metric_fn=..., reverse=...) keeps the same checkpoints."""
    usable = [
        c
        for c in checkpoints
        if c.metrics is None
        or (isinstance(c.metrics.get("loss"), float) and not math.isnan(c.metrics["loss"]))
    ]
    ours = BestN(
        get_metric_fn=_score, reverse=reverse, n=n, keep_checkpoints_without_metrics=without
    )
    theirs = orbax.BestN(
        get_metric_fn=_score, reverse=reverse, n=n, keep_checkpoints_without_metrics=without
    )
    expected = list(theirs.should_preserve(usable, context=orbax.PreservationContext()))
    assert list(ours.should_preserve(usable, context=PreservationContext())) == expected
