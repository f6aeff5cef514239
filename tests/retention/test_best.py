"""`tenure.retention.best`: the checkpoint BestN(n=1) keeps. Each test names its law."""

from __future__ import annotations

import math
from typing import Literal

from hypothesis import given
from hypothesis import strategies as st

from tenure.retention import BestN, CheckpointInfo, PreservationContext, best, lookup_metric

from .strategies import START, checkpoint_lists

modes = st.sampled_from(["min", "max"])


@given(checkpoint_lists(), modes)
def test_best_is_what_best_n_of_one_ranks_first(
    checkpoints: list[CheckpointInfo], mode: Literal["min", "max"]
) -> None:
    """Law: best(cs) is the checkpoint BestN(n=1) keeps by rank, None when it ranks none."""
    checkpoints = [*checkpoints, CheckpointInfo(10**6, START, None)]  # so n=1 ranks
    chosen = best(checkpoints, "loss", mode)
    policy = BestN(metric="loss", mode=mode, n=1, keep_checkpoints_without_metrics=False)
    reasons = policy.reasons(checkpoints, context=PreservationContext())
    ranked_first = [c for c, r in zip(checkpoints, reasons, strict=True) if r and "rank 1" in r[0]]
    assert chosen == (ranked_first[0] if ranked_first else None)


@given(checkpoint_lists(), modes)
def test_best_is_a_number_whenever_any_checkpoint_has_one(
    checkpoints: list[CheckpointInfo], mode: Literal["min", "max"]
) -> None:
    """Law: NaN ranks worst, so best is NaN only when every present value is NaN."""
    values = [lookup_metric(c.metrics, "loss") for c in checkpoints]
    numbers = [v for v in values if v is not None and not math.isnan(v)]
    chosen = best(checkpoints, "loss", mode)
    if numbers:
        assert chosen is not None
        assert lookup_metric(chosen.metrics, "loss") == (min if mode == "min" else max)(numbers)


def test_a_nan_first_does_not_win() -> None:
    saved = [CheckpointInfo(s, START, {"acc": v}) for s, v in [(0, math.nan), (1, 0.5)]]
    chosen = best(saved, lambda m: m["acc"], "max")
    assert chosen is not None
    assert chosen.step == 1
