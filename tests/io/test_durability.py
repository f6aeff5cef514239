"""fsyncs run in the background while later arrays are written; their failures are not lost."""

import errno
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tenure import io
from tenure.io import arrays, commit


def test_every_file_and_directory_is_fsynced_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    original = commit._fsync

    def spy(path: Path) -> None:
        synced.append(path)
        original(path)

    monkeypatch.setattr(commit, "_fsync", spy)
    io.save_pytree(tmp_path / "1", {"a": np.ones(3), "b": {"c": np.zeros(2)}}, metrics={"l": 1})
    tmp = commit.temporary_path(tmp_path / "1")
    expected = {tmp_path}
    for dirpath, dirs, files in os.walk(tmp_path / "1"):
        for name in [*dirs, *files, ""]:
            expected.add(tmp / Path(dirpath, name).relative_to(tmp_path / "1"))
    assert expected <= set(synced)


def test_a_failed_background_fsync_fails_the_save_and_commits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path) -> None:
        if path.name == "0":
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(commit, "_fsync", full)
    with pytest.raises(io.InsufficientSpaceError):
        io.save_pytree(tmp_path / "1", {"w": np.ones(3)}, layout=io.ArrayLayout(ocdbt=False))
    assert list(tmp_path.iterdir()) == []


def test_a_large_save_commits_in_batches_and_syncs_each_batch_while_the_next_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(arrays, "_BATCH_BYTES", 1)  # every array its own batch
    submitted: list[Path] = []
    original = commit.Syncer.submit

    def spy(self: commit.Syncer, root: Path) -> None:
        submitted.append(root)
        original(self, root)

    monkeypatch.setattr(commit.Syncer, "submit", spy)
    large = arrays.PACKED_PIECE_BYTES // 4 + 1
    tree = {name: np.full(large, i, np.float32) for i, name in enumerate("abcdef")}
    io.save_pytree(tmp_path / "1", tree)
    data = tmp_path / "1" / "state" / arrays.OCDBT_DATA_DIR
    # Data files of batches committed while others were still in flight, complete ones only.
    assert submitted
    assert {p.name for p in submitted} <= {p.name for p in data.iterdir()}
    assert all(p.parent.name == arrays.OCDBT_DATA_DIR for p in submitted)
    out = io.load_pytree(tmp_path / "1")
    for name, value in tree.items():
        np.testing.assert_array_equal(out[name], value)


def test_a_batch_data_file_is_synced_once_complete_without_waiting_for_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(arrays, "_BATCH_BYTES", 1)  # every array its own batch
    events: list[str] = []
    wait, submit = arrays._wait, commit.Syncer.submit

    def waited(future: Any, item_dir: Any, name: str) -> Any:
        if name == "c":
            # The third batch starts only once the first batch's data file is complete, an
            # event tensorstore's own threads bring about; the deadline only keeps a failed
            # commit from hanging the test.
            item = commit.temporary_path(tmp_path / "1") / "state"
            assert isinstance(item, Path)
            give_up = time.monotonic() + 60  # a failed commit writes no file: fail, not hang
            while not arrays._data_files(item):
                assert time.monotonic() < give_up, "the first batch's data file never appeared"
                os.sched_yield()
        events.append(f"wait {name}")
        return wait(future, item_dir, name)

    def submitted(self: commit.Syncer, root: Path) -> None:
        events.append("sync")
        submit(self, root)

    monkeypatch.setattr(arrays, "_wait", waited)
    monkeypatch.setattr(commit.Syncer, "submit", submitted)
    large = arrays.PACKED_PIECE_BYTES // 4 + 1
    io.save_pytree(tmp_path / "1", {n: np.full(large, i, np.float32) for i, n in enumerate("abcd")})
    # Before: the first sync came after the wait for the first commit, once three were in flight.
    assert "sync" in events
    assert events.index("sync") < events.index("wait <ocdbt manifest>")


@pytest.mark.parametrize("count", [0, 1, 5, 1000])
def test_batches_keep_order_and_stay_few_however_many_arrays(
    monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    monkeypatch.setattr(arrays, "_BATCH_BYTES", 1)
    piece = np.zeros(256, np.float32)
    full = (slice(0, 256),)
    writes = [
        arrays.ArrayWrite(f"a{i}", (256,), piece.dtype, (256,), ((full, piece),))
        for i in range(count)
    ]
    batches = arrays._batches(writes, split=True)
    assert [i for batch in batches for i in batch] == list(range(count))
    assert batches
    assert len(batches) <= arrays._MAX_BATCHES + 1
    assert arrays._batches(writes, split=False) == [list(range(count))]
