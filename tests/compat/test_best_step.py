"""`CheckpointManager.best_step` ranks as `BestN` does: NaN worst, missing unranked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import tenure.args as args
from tenure.compat import CheckpointManager, CheckpointManagerOptions


def test_best_step_never_prefers_a_nan_metric(tmp_path: Path) -> None:
    options = CheckpointManagerOptions(best_fn=lambda m: m["loss"], best_mode="min")
    with CheckpointManager(tmp_path, options=options) as mngr:
        for step, loss in [(0, float("nan")), (1, 0.5), (2, 0.3), (3, 0.3), (4, float("nan"))]:
            mngr.save(step, args=args.StandardSave({"w": np.zeros(2)}), metrics={"loss": loss})
        mngr.wait_until_finished()
        assert mngr.best_step() == 3  # the lowest loss; the newer of the tie


def test_best_step_is_none_when_no_step_has_metrics(tmp_path: Path) -> None:
    options = CheckpointManagerOptions(best_fn=lambda m: m["acc"])
    with CheckpointManager(tmp_path, options=options) as mngr:
        mngr.save(0, args=args.StandardSave({"w": np.zeros(2)}))
        mngr.wait_until_finished()
        assert mngr.best_step() is None
