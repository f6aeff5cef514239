"""The Checkpointer as a join (issue 13): the tail of a save never stalls the training loop,
retention is planned through the public `plan`, and each failure has its own error class."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tenure
from tenure.io import root as rootfs
from tenure.manager import (
    CheckpointerError,
    InvalidStepError,
    ReservedNameError,
    RootNotFoundError,
    SaveInProgressError,
    StepNotFoundError,
)
from tenure.retention import FixedIntervalPolicy, LatestN

# Generous bound on waits that return at once when the code is right; never slept through.
PATIENCE = 10.0


def w(step: int) -> dict[str, Any]:
    return {"w": np.full(2, step)}


class BlockedRemoval:
    """Stands in for `tenure.io.root.remove_path`: each removal waits until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self._remove = rootfs.remove_path

    def __call__(self, path: Any) -> None:
        self.entered.set()
        assert self.release.wait(PATIENCE), "the test never released the removal"
        self._remove(path)


def test_a_skipped_save_returns_while_old_steps_are_being_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, defect 4: removal held the lock a skipped save needs."""
    removal = BlockedRemoval()
    monkeypatch.setattr(rootfs, "remove_path", removal)
    ckptr = tenure.Checkpointer(
        tmp_path, save_decision_policy=FixedIntervalPolicy(10), preservation_policy=LatestN(1)
    )
    try:
        ckptr.save(0, w(0))
        response = ckptr.save_async(10, w(10))  # its retention removes step 0
        assert response is not None
        assert removal.entered.wait(PATIENCE)
        skipped: list[bool] = []
        loop = threading.Thread(target=lambda: skipped.append(ckptr.save(11, w(11))))
        loop.start()
        loop.join(PATIENCE)
        returned = not loop.is_alive()
    finally:
        removal.release.set()
    assert returned, "the skipped save waited for the removal of an old step"
    assert skipped == [False]
    assert response.result().step == 10
    assert [c.step for c in ckptr.checkpoints] == [10]
    ckptr.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".tenure-writer.lock") == ["10"]


def test_the_save_response_is_the_committed_step(tmp_path: Path) -> None:
    with tenure.Checkpointer(tmp_path, preservation_policy=LatestN(1)) as ckptr:
        response = ckptr.save_async(5, w(5), metrics={"loss": 0.5}, force=True)
        assert response is not None
        assert response.step == 5
        committed = response.result()
        assert (committed.step, committed.metrics) == (5, {"loss": 0.5})
        assert committed == ckptr.latest
        assert ckptr.in_flight is None
        ckptr.reload()  # what was kept in memory is what the disk says
        reread = ckptr.latest
        assert reread is not None
        assert (reread.step, reread.time, reread.metrics) == (5, committed.time, {"loss": 0.5})


def test_plan_is_what_the_next_retention_pass_applies(tmp_path: Path) -> None:
    with tenure.Checkpointer(
        tmp_path, save_decision_policy=FixedIntervalPolicy(1), preservation_policy=LatestN(2)
    ) as ckptr:
        for step in range(3):
            ckptr.save(step, w(step))
        assert ckptr.plan().delete == ()
        assert ckptr.plan().keep == (1, 2)
        ckptr.load(1)  # the step loaded last is protected
        ckptr.save(3, w(3))
        assert [c.step for c in ckptr.checkpoints] == [1, 2, 3]
        plan = ckptr.plan()
        assert (plan.keep, plan.delete) == ((1, 2, 3), ())


def test_each_failure_has_its_class(tmp_path: Path) -> None:
    """Issue 13: no bare ValueError from the manager, and a missing root is not a step."""
    with tenure.Checkpointer(tmp_path / "root") as ckptr:
        with pytest.raises(InvalidStepError):
            ckptr.save(-1, w(0))
        with pytest.raises(ReservedNameError):
            ckptr.save_checkpointables(0, {"metrics": w(0)})
        response = ckptr.save_async(0, w(0), force=True)
        assert response is not None
        if not response.done():
            with pytest.raises(SaveInProgressError):
                ckptr.delete(0)
        ckptr.wait()
    for error in (InvalidStepError, ReservedNameError, SaveInProgressError, RootNotFoundError):
        assert issubclass(error, CheckpointerError)
    reader = tenure.Checkpointer(tmp_path / "missing", read_only=True)
    with pytest.raises(RootNotFoundError, match="does not exist") as raised:
        reader.load()
    assert not isinstance(raised.value, StepNotFoundError)
    with pytest.raises(RootNotFoundError):
        reader.load(3)
