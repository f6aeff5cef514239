"""tenure.Checkpointer on real roots: the API, its errors, and its safety rules.

Tests taking `root` run on a local directory and on an S3 prefix (a moto server).
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tenure
from tenure.io import Location
from tenure.io.storage import list_dir
from tenure.manager import (
    BackgroundSaveError,
    ReadOnlyError,
    RootNotFoundError,
    RootNotUsableError,
    StepAlreadyExistsError,
    StepNameFormat,
    StepNotFoundError,
)
from tenure.retention import (
    BestN,
    ContinuousCheckpointingPolicy,
    FixedIntervalPolicy,
    LatestN,
    PreserveAll,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def state(step: int) -> dict[str, Any]:
    return {"params": {"w": np.full((3, 2), step, np.float32)}, "step": np.int64(step)}


def names(root: Location) -> list[str]:
    return sorted(p.name for p in list_dir(root))


def put(path: Location, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def open_root(root: Location, **options: Any) -> tenure.Checkpointer:
    options.setdefault("save_decision_policy", FixedIntervalPolicy(10))
    return tenure.Checkpointer(root, **options)


def test_saves_what_the_policy_says_and_keeps_what_retention_says(root: Location) -> None:
    with open_root(root, preservation_policy=LatestN(2)) as ckptr:
        saved = [s for s in range(35) if ckptr.save(s, state(s))]
        assert saved == [0, 10, 20, 30]
        assert [c.step for c in ckptr.checkpoints] == [20, 30]
        assert [n for n in names(root) if n.isdigit()] == ["20", "30"]
        assert ckptr.load()["step"] == 30
        assert ckptr.load(20)["params"]["w"][0, 0] == 20


def test_force_overwrite_and_existing_steps(root: Location) -> None:
    with open_root(root) as ckptr:
        assert ckptr.save(3, state(3), force=True)
        with pytest.raises(StepAlreadyExistsError, match="overwrite=True"):
            ckptr.save(3, state(4), force=True)
        if isinstance(root, Path):
            assert ckptr.save(3, state(4), force=True, overwrite=True)
            assert ckptr.load(3)["step"] == 4
        else:
            # No rename on object stores: replacing would mean deleting first, so it is refused.
            with pytest.raises(StepAlreadyExistsError, match="cannot swap a step in place"):
                ckptr.save(3, state(4), force=True, overwrite=True)
            assert ckptr.load(3)["step"] == 3
        assert [c.step for c in ckptr.checkpoints] == [3]


@pytest.mark.parametrize("failure", ["unsupported leaf", "disk full"])
def test_overwrite_with_a_failing_save_keeps_the_old_step(tmp_path: Path, failure: str) -> None:
    """overwrite=True replaces, never deletes first: a save that fails leaves step 5 as it was."""
    import resource
    import signal

    with open_root(tmp_path) as ckptr:
        ckptr.save(5, state(5), force=True)
        if failure == "unsupported leaf":
            with pytest.raises(tenure.io.UnsupportedLeafError):
                ckptr.save(5, {"w": object()}, force=True, overwrite=True)
        else:
            soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
            try:
                with pytest.raises(tenure.io.InsufficientSpaceError):
                    ckptr.save(5, {"w": np.ones(1_000_000, np.float32)}, force=True, overwrite=True)
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
                signal.signal(signal.SIGXFSZ, previous)
        assert [c.step for c in ckptr.checkpoints] == [5]
        assert ckptr.load(5)["step"] == 5
    with open_root(tmp_path, read_only=True) as reader:
        assert reader.load(5)["step"] == 5


def test_a_replacement_interrupted_between_its_renames_puts_the_old_step_back(
    tmp_path: Path,
) -> None:
    """A crash after the old step was moved aside and before the new one arrived."""
    from tenure.io.root import replaced_path

    with open_root(tmp_path) as ckptr:
        ckptr.save(5, state(5), force=True)
    (tmp_path / "5").rename(replaced_path(tmp_path / "5"))
    with open_root(tmp_path) as ckptr:
        assert [c.step for c in ckptr.checkpoints] == [5]
        assert ckptr.load(5)["step"] == 5
    assert names(tmp_path) == [".tenure-writer.lock", "5"] or names(tmp_path) == ["5"]


def test_missing_steps_name_what_exists(root: Location) -> None:
    with open_root(root) as ckptr:
        with pytest.raises(StepNotFoundError, match="no committed checkpoint"):
            ckptr.load()
        ckptr.save(10, state(10))
        with pytest.raises(StepNotFoundError, match=r"committed steps: \[10\]"):
            ckptr.load(20)


def test_metrics_and_custom_metadata_survive_a_restart_and_feed_best_n(root: Location) -> None:
    keep = BestN(metric="loss", mode="min", n=1)
    with open_root(root, preservation_policy=keep, custom_metadata={"run": "a"}) as ckptr:
        for step, loss in [(0, 3.0), (10, 1.0), (20, math.nan), (30, 2.0)]:
            ckptr.save(step, state(step), metrics={"loss": loss}, custom_metadata={"s": step})
        assert [c.step for c in ckptr.checkpoints] == [10, 30]  # best, and the newest
    with open_root(root, preservation_policy=keep) as ckptr:
        assert ckptr.checkpoints[0].metrics == {"loss": 1.0}
        assert ckptr.metadata(10).custom_metadata == {"s": 10}
        assert ckptr.root_metadata() == {"run": "a"}
        ckptr.save(40, state(40), metrics={"loss": 0.5})
        assert [c.step for c in ckptr.checkpoints] == [40]


def test_async_saves_stage_then_commit(root: Location) -> None:
    with open_root(root, preservation_policy=PreserveAll()) as ckptr:
        response = ckptr.save_async(10, state(10))
        assert response is not None
        response.staged()
        assert response.result()
        assert ckptr.save_async(11, state(11)) is None  # the policy skips it
        assert [c.step for c in ckptr.checkpoints] == [10]


def test_a_failed_background_save_is_raised_on_the_next_call_and_loses_nothing(
    root: Location,
) -> None:
    with open_root(root) as ckptr:
        ckptr.save(10, state(10))
        response = ckptr.save_async(20, {"bad": object()})
        assert response is not None
        with pytest.raises(TypeError):
            response.result()
        with pytest.raises(BackgroundSaveError, match="intact"):
            ckptr.save(30, state(30))
        assert [c.step for c in ckptr.checkpoints] == [10]
        assert ckptr.load()["step"] == 10


def test_unsupported_objects_get_a_clear_error_and_earlier_checkpoints_stay(
    root: Location,
) -> None:
    with open_root(root) as ckptr:
        ckptr.save(10, state(10))
        with pytest.raises(TypeError, match="bad"):
            ckptr.save(20, {"bad": threading.Lock()})
        assert [c.step for c in ckptr.checkpoints] == [10]
        assert not [n for n in names(root) if tenure.io.is_temporary(n) or n == "20"]


def test_an_abstract_state_that_does_not_fit_is_refused(root: Location) -> None:
    with open_root(root) as ckptr:
        ckptr.save(10, state(10))
        wrong = {"params": {"w": np.zeros((5, 5), np.float32)}, "step": np.int64(0)}
        with pytest.raises(ValueError, match="params"):
            ckptr.load(abstract_state=wrong)


def test_a_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "file"
    root.write_text("not a directory")
    with pytest.raises(RootNotUsableError, match="is a file"):
        tenure.Checkpointer(root)


def test_foreign_files_are_never_touched(root: Location) -> None:
    put(root / "notes.txt", "mine")
    put(root / "tensorboard" / "events", "mine")
    put(root / "0007" / "x", "mine")
    with open_root(root, preservation_policy=LatestN(1)) as ckptr:
        for step in range(0, 50, 10):
            ckptr.save(step, state(step))
    assert [n for n in names(root) if not n.startswith(".")] == [
        "0007",
        "40",
        "notes.txt",
        "tensorboard",
    ]
    assert (root / "tensorboard" / "events").read_text() == "mine"


def test_deleted_steps_can_go_to_a_todelete_subdirectory(tmp_path: Path) -> None:
    with open_root(tmp_path, preservation_policy=LatestN(1), todelete_subdir="trash") as ckptr:
        ckptr.save(0, state(0))
        ckptr.save(10, state(10))
    assert (tmp_path / "trash" / "0").is_dir()
    assert [c.step for c in open_root(tmp_path, read_only=True).checkpoints] == [10]


def test_background_deletion_finishes_by_close(root: Location) -> None:
    with open_root(root, preservation_policy=LatestN(1), background_delete=True) as ckptr:
        for step in range(0, 40, 10):
            ckptr.save(step, state(step))
    assert [n for n in names(root) if n[0].isdigit()] == ["30"]


def test_prefixed_and_padded_step_names(root: Location) -> None:
    fmt = StepNameFormat(prefix="ckpt", fixed_length=6)
    with open_root(root, step_name_format=fmt) as ckptr:
        ckptr.save(10, state(10))
    assert tenure.io.is_committed(root / "ckpt_000010")
    assert open_root(root, step_name_format=fmt, read_only=True).latest is not None


def test_read_only_never_writes_and_takes_no_lock(root: Location) -> None:
    with open_root(root) as writer:
        writer.save(10, state(10))
        reader = open_root(root, read_only=True)
        assert reader.load()["step"] == 10
        with pytest.raises(ReadOnlyError):
            reader.save(20, state(20))
        with pytest.raises(ReadOnlyError):
            reader.delete(10)


def test_two_writers_on_one_root_are_refused(tmp_path: Path) -> None:
    with open_root(tmp_path), pytest.raises(tenure.RootLockedError, match="another Checkpointer"):
        open_root(tmp_path)


def test_continuous_policy_uses_the_injected_clock(root: Location) -> None:
    clock = Clock()
    policy = ContinuousCheckpointingPolicy(minimum_interval_secs=60)
    with tenure.Checkpointer(root, save_decision_policy=policy, clock=clock) as ckptr:
        saved = []
        for step in range(10):
            if ckptr.save(step, state(step)):
                saved.append(step)
            clock.tick(25)
        assert saved == [0, 3, 6, 9]


def test_the_step_a_run_resumed_from_is_protected(root: Location) -> None:
    with open_root(root, preservation_policy=LatestN(1)) as ckptr:
        ckptr.save(10, state(10))
    with open_root(root, preservation_policy=LatestN(1)) as ckptr:
        ckptr.load()
        ckptr.save(20, state(20))
        ckptr.save(30, state(30))
        assert [c.step for c in ckptr.checkpoints] == [10, 30]


def test_iter_new_checkpoints_yields_steps_as_they_commit(root: Location) -> None:
    writer = open_root(root, preservation_policy=PreserveAll())
    writer.save(0, state(0))
    reader = open_root(root, read_only=True)
    now = [0.0]
    commits = iter([10, 20])

    def fake_sleep(seconds: float) -> None:
        now[0] += seconds
        step = next(commits, None)
        if step is not None:
            writer.save(step, state(step))

    seen = [
        c.step
        for c in reader.iter_new_checkpoints(
            timeout=5, poll_secs=1, sleep=fake_sleep, monotonic=lambda: now[0]
        )
    ]
    writer.close()
    assert seen == [10, 20]


def test_a_reader_may_start_before_the_root_exists(tmp_path: Path) -> None:
    """An evaluator started before its trainer sees an empty root, then the trainer's steps."""
    root = tmp_path / "not-yet"
    reader = open_root(root, read_only=True)
    assert reader.latest is None
    assert reader.checkpoints == []
    assert not root.exists()
    with pytest.raises(RootNotFoundError, match="does not exist"):
        reader.load()
    with open_root(root) as writer:
        writer.save(10, state(10))
    reader.reload()
    assert [c.step for c in reader.checkpoints] == [10]
