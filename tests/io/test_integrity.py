"""Atomic commit, corruption detection, disk full, bad input, async saves and checkpointables.

Tests taking `root` run on a local directory and on an S3 prefix (a moto server).
"""

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from tenure import io
from tenure.io import Location

# One object per chunk, at the same key on disk and in a bucket, so tests can damage it.
PER_ARRAY = io.ArrayLayout(ocdbt=False)


def test_flipped_byte_raises_corrupt_checkpoint_naming_the_array(root: Location) -> None:
    io.save_pytree(root / "1", {"w": np.arange(1000.0), "ok": np.ones(3)}, layout=PER_ARRAY)
    assert io.verify(root / "1") == 2
    chunk = root / "1" / "state" / "w" / "c" / "0"
    data = bytearray(chunk.read_bytes())
    data[100] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(io.CorruptCheckpointError, match="'w'"):
        io.verify(root / "1")
    with pytest.raises(io.CorruptCheckpointError, match="'w'"):
        io.load_pytree(root / "1")


def test_truncated_or_missing_chunk_raises_corrupt_checkpoint(root: Location) -> None:
    io.save_pytree(root / "1", {"w": np.arange(1000.0)}, layout=PER_ARRAY)
    chunk = root / "1" / "state" / "w" / "c" / "0"
    chunk.write_bytes(chunk.read_bytes()[:500])
    with pytest.raises(io.CorruptCheckpointError, match="'w'"):
        io.verify(root / "1")
    chunk.unlink()
    with pytest.raises(io.CorruptCheckpointError, match="'w'"):
        io.load_pytree(root / "1")


def test_damaged_metadata_raises_corrupt_checkpoint(root: Location) -> None:
    io.save_pytree(root / "1", {"w": np.ones(2)})
    (root / "1" / "state" / "_METADATA").write_text("{not json")
    with pytest.raises(io.CorruptCheckpointError, match="_METADATA"):
        io.load_pytree(root / "1")


def test_existing_step_is_never_overwritten(root: Location) -> None:
    io.save_pytree(root / "1", {"w": np.ones(2)})
    with pytest.raises(io.CheckpointExistsError, match="another step"):
        io.save_pytree(root / "1", {"w": np.zeros(2)})
    assert io.load_pytree(root / "1")["w"].tolist() == [1.0, 1.0]


def test_leftover_temporary_dirs_are_ignored_and_removable(tmp_path: Path) -> None:
    stale = tmp_path / "2.orbax-checkpoint-tmp"
    (stale / "state").mkdir(parents=True)
    assert io.is_temporary(stale)
    assert not io.is_committed(stale)
    with pytest.raises(io.NotACheckpointError):
        io.load_pytree(stale)
    io.save_pytree(tmp_path / "2", {"w": np.ones(1)})
    assert io.is_committed(tmp_path / "2", require_commit_file=True)
    (tmp_path / "3.orbax-checkpoint-tmp").mkdir()
    assert io.remove_temporary(tmp_path) == [tmp_path / "3.orbax-checkpoint-tmp"]


@pytest.mark.parametrize(
    ("tree", "error", "text"),
    [
        ({"a": object()}, io.UnsupportedLeafError, r"\['a'\]"),
        ({1.5: np.ones(1)}, io.InvalidKeyError, "str and int"),
        ({True: np.ones(1)}, io.InvalidKeyError, "bool"),
        ({0: np.ones(1), "0": np.ones(1)}, io.KeyCollisionError, "'0'"),
        ({"a/b": np.ones(1)}, io.InvalidKeyError, "'/'"),
        ({"a.b": np.ones(1), "a": {"b": np.ones(1)}}, io.KeyCollisionError, "'a.b'"),
    ],
)
def test_bad_input_raises_a_clear_error(
    root: Location, tree: object, error: type, text: str
) -> None:
    with pytest.raises(error, match=text):
        io.save_pytree(root / "1", tree)
    assert not (root / "1").exists()


@pytest.mark.parametrize("name", ["", "..", "a/b", "_x"])
def test_invalid_checkpointable_names_are_refused(root: Location, name: str) -> None:
    with pytest.raises(io.InvalidNameError):
        io.save_checkpointables(root / "1", {name: np.ones(1)})


def test_shape_mismatch_and_missing_key_name_the_path(root: Location) -> None:
    io.save_pytree(root / "1", {"w": np.ones((2, 3))})
    abstract = {"w": jax.ShapeDtypeStruct((3, 2), np.float32)}
    with pytest.raises(io.StructureMismatchError, match=r"\['w'\].*\(2, 3\).*\(3, 2\)"):
        io.load_pytree(root / "1", abstract)
    with pytest.raises(io.StructureMismatchError, match=r"\['nope'\]"):
        io.load_pytree(root / "1", {"nope": None})


_DISK_FULL = """
import resource, signal, sys
import numpy as np
from tenure import io
from tenure.io import Location

# One object per chunk, at the same key on disk and in a bucket, so tests can damage it.
PER_ARRAY = io.ArrayLayout(ocdbt=False)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
try:
    io.save_pytree(sys.argv[1], {"w": np.ones(1 << 19)})
except io.InsufficientSpaceError as e:
    print("INSUFFICIENT", e)
"""


def test_disk_full_raises_and_leaves_no_partial_checkpoint(tmp_path: Path) -> None:
    io.save_pytree(tmp_path / "1", {"w": np.ones(4)})
    run = subprocess.run(
        [sys.executable, "-c", _DISK_FULL, str(tmp_path / "2")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "INSUFFICIENT" in run.stdout, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]
    assert io.verify(tmp_path / "1") == 1


def test_async_save_stages_then_commits(root: Location) -> None:
    state = {"w": np.arange(10.0)}
    handle = io.save_pytree_async(root / "1", state)
    handle.staged()
    state["w"][:] = -1  # the caller may mutate once staged
    handle.result()
    assert io.load_pytree(root / "1")["w"].tolist() == list(np.arange(10.0))


def test_async_background_error_is_raised_from_result(root: Location) -> None:
    io.save_pytree(root / "1", {"w": np.ones(1)})
    handle = io.save_pytree_async(root / "1", {"w": np.ones(1)})
    with pytest.raises(io.CheckpointExistsError):
        handle.result()


def test_checkpointables_json_keys_and_numpy_generator_roundtrip(root: Location) -> None:
    rng = np.random.default_rng(42)
    mt = np.random.Generator(np.random.MT19937(1))
    items = {
        "state": {"w": np.ones(3)},
        "config": {"lr": 0.1, "names": ["a", "b"]},
        "key": jax.random.key(5),
        "raw_key": jax.random.PRNGKey(5),
        "rng": rng,
        "mt": mt,
    }
    io.save_checkpointables(root / "1", items, metrics={"loss": 1.5})
    out = io.load_checkpointables(root / "1")
    assert set(out) == set(items)
    assert out["config"] == items["config"]
    assert jax.random.uniform(out["key"]) == jax.random.uniform(items["key"])
    np.testing.assert_array_equal(np.asarray(out["raw_key"]), np.asarray(items["raw_key"]))
    assert out["rng"].random() == rng.random()
    assert out["mt"].random() == mt.random()
    assert io.read_step_metadata(root / "1").metrics == {"loss": 1.5}
    subset = io.load_checkpointables(root / "1", {"config": None})
    assert subset == {"config": items["config"]}


def test_barrier_is_called_for_each_save_phase_in_order(root: Location) -> None:
    calls: list[str] = []
    tree = {"w": np.ones(2)}
    io.save_pytree(root / "1", tree, processes=io.Processes(0, 1, calls.append))
    assert [c.rsplit(":", 1)[-1] for c in calls] == ["begin", "written", "committed"]
