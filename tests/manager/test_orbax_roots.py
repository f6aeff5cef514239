"""Roots written by Orbax's v1 training.Checkpointer open in tenure, and the reverse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orbax.checkpoint.experimental.v1 as ocp1

import tenure
from tenure.retention import FixedIntervalPolicy, LatestN


def tree(step: int) -> dict[str, np.ndarray]:
    return {"w": np.arange(6, dtype=np.float32).reshape(2, 3) + step, "b": np.ones(3) * step}


def test_tenure_opens_lists_and_loads_an_orbax_root_and_keeps_managing_it(tmp_path: Path) -> None:
    with ocp1.training.Checkpointer(tmp_path) as orbax:
        for step in (0, 10, 20):
            orbax.save(step, tree(step), metrics={"loss": 1.0 / (1 + step)})
    with tenure.Checkpointer(
        tmp_path, save_decision_policy=FixedIntervalPolicy(10), preservation_policy=LatestN(2)
    ) as ckptr:
        assert [c.step for c in ckptr.checkpoints] == [0, 10, 20]
        assert ckptr.checkpoints[1].metrics == {"loss": 1.0 / 11}
        np.testing.assert_array_equal(ckptr.load(10)["w"], tree(10)["w"])
        ckptr.save(30, tree(30))
        # LatestN(2) keeps 20 and 30; 10 stays as the step this run loaded from.
        assert [c.step for c in ckptr.checkpoints] == [10, 20, 30]


def test_orbax_opens_lists_and_loads_a_tenure_root(tmp_path: Path) -> None:
    with tenure.Checkpointer(tmp_path, save_decision_policy=FixedIntervalPolicy(5)) as ckptr:
        for step in range(11):
            ckptr.save(step, tree(step), metrics={"loss": float(step)})
    with ocp1.training.Checkpointer(tmp_path) as orbax:
        assert [c.step for c in orbax.checkpoints] == [0, 5, 10]
        assert orbax.latest is not None
        assert orbax.latest.step == 10
        loaded = orbax.load()
        np.testing.assert_array_equal(np.asarray(loaded["w"]), tree(10)["w"])
        np.testing.assert_array_equal(np.asarray(orbax.load(5)["b"]), tree(5)["b"])
