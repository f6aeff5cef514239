"""SIGKILL a training loop at random moments; the restart must find a loadable latest.

The loop saves every step. The parent reads the loop's "saving N" lines and kills it at a
randomly chosen one, so the kill lands while that save is being written, committed, or
cleaned up. 10 trials per storage (local disk, S3) in CI; TENURE_HYPOTHESIS_PROFILE=soak
runs 100.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

import tenure
from tenure.io import Location
from tenure.io.storage import list_dir
from tests.manager.loops import kill_at_save

LOOP = """
import sys
import numpy as np
import tenure
from tenure.io import Location
from tenure.io.storage import list_dir
from tenure.retention import FixedIntervalPolicy, LatestN

root, steps = sys.argv[1], int(sys.argv[2])
with tenure.Checkpointer(root, save_decision_policy=FixedIntervalPolicy(1),
                         preservation_policy=LatestN(3), cleanup_tmp_directories=True) as ckptr:
    start = ckptr.latest.step + 1 if ckptr.latest else 0
    for step in range(start, start + steps):
        print(f"saving {step}", flush=True)
        ckptr.save(step, {"w": np.full(50_000, step, dtype=np.float32), "step": np.int64(step)},
                   metrics={"loss": 1.0 / (1 + step)})
"""

TRIALS = 100 if os.environ.get("TENURE_HYPOTHESIS_PROFILE") == "soak" else 10


@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_killed_loop_restarts_from_a_loadable_latest(root: Location, trial: int) -> None:
    kill_at = random.Random(trial).randrange(1, 6)
    kill_at_save(LOOP, [str(root), "1000"], kill_at)

    with tenure.Checkpointer(root, cleanup_tmp_directories=True) as ckptr:
        latest = ckptr.latest
        assert latest is not None
        assert kill_at - 1 <= latest.step <= kill_at
        state = ckptr.load()
        np.testing.assert_array_equal(state["w"], np.full(50_000, latest.step, np.float32))
        assert state["step"] == latest.step
        # No leftover: a temporary directory on disk, a prefix without its marker on S3.
        leftovers = [
            p.name
            for p in list_dir(root)
            if tenure.io.is_temporary(p) or (p.name.isdigit() and not tenure.io.is_committed(p))
        ]
        assert not leftovers
