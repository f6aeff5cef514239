"""The Checkpointer on S3 where it must differ from a local disk: markers, leftovers, renames.

The rest of the manager's behaviour on S3 is covered by the `root`-parametrised tests.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

import tenure
from tenure.io import ObjectPath
from tenure.manager import RootNotUsableError
from tenure.retention import FixedIntervalPolicy, LatestN


def test_an_uncommitted_step_is_invisible_then_cleaned_up(s3_root: ObjectPath) -> None:
    """A prefix without its marker (a crashed save) is no checkpoint, and cleanup removes it."""
    with tenure.Checkpointer(s3_root) as ckptr:
        ckptr.save(10, {"w": np.ones(2)})
    tenure.io.save_pytree(s3_root / "20", {"w": np.zeros(2)})
    (s3_root / "20" / "commit_success.txt").unlink()
    with tenure.Checkpointer(s3_root, read_only=True) as reader:
        assert [c.step for c in reader.checkpoints] == [10]
        assert reader.load()["w"].tolist() == [1.0, 1.0]
    assert (s3_root / "20").is_dir()
    with tenure.Checkpointer(s3_root, cleanup_tmp_directories=True) as writer:
        assert [c.step for c in writer.checkpoints] == [10]
    assert not (s3_root / "20").is_dir()


def test_retention_deletes_every_object_of_a_step(s3_root: ObjectPath) -> None:
    policy = FixedIntervalPolicy(1)
    with tenure.Checkpointer(
        s3_root, save_decision_policy=policy, preservation_policy=LatestN(1)
    ) as ckptr:
        ckptr.save(1, {"w": np.ones(2)}, metrics={"loss": 1.0})
        ckptr.save(2, {"w": np.ones(2)}, metrics={"loss": 0.5})
    assert {key.partition("/")[0] for key in s3_root.list_keys()} == {"2"}


def test_todelete_subdir_needs_a_rename_and_is_refused(s3_root: ObjectPath) -> None:
    with pytest.raises(RootNotUsableError, match="todelete_subdir"):
        tenure.Checkpointer(s3_root, todelete_subdir="trash")


def test_a_step_without_timestamps_is_listed_and_counts_as_saved_now(s3_root: ObjectPath) -> None:
    """Old Orbax steps carry no timestamps, and object stores give no mtime to fall back on."""
    tenure.io.save_pytree(s3_root / "5", {"w": np.ones(2)})
    (s3_root / "5" / "_CHECKPOINT_METADATA").write_text("{}")
    now = datetime(2026, 5, 1, tzinfo=UTC)
    with tenure.Checkpointer(s3_root, read_only=True, clock=lambda: now) as reader:
        assert [(c.step, c.time) for c in reader.checkpoints] == [(5, now)]
