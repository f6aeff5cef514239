"""Hostile or unusual input never costs a checkpoint: byte order, reserved and escaping keys,
oversized shapes, deep nesting, and damage to any file a load depends on.

Each test here reproduces a defect of issue 11 (its number is in the test's docstring).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenure import io
from tenure.io import jsondoc
from tenure.io.errors import NestingTooDeepError
from tenure.io.jsondoc import MAX_JSON_DEPTH, MAX_TREE_DEPTH

PER_ARRAY = io.ArrayLayout(ocdbt=False)


def _roundtrips_exactly(step: Path, tree: dict[str, object]) -> None:
    out = io.load_pytree(step)
    for key, value in tree.items():
        assert np.array_equal(out[key], value)
        assert out[key].dtype == np.asarray(value).dtype.newbyteorder("=")


@pytest.mark.parametrize("dtype", [">i4", ">f8", ">c8", "<i2"])
def test_any_byte_order_roundtrips_as_equal_values_in_native_order(
    tmp_path: Path, dtype: str
) -> None:
    """Defect 3: big-endian arrays saved, then failed to load with a crc mismatch."""
    tree = {"w": np.arange(12, dtype=dtype).reshape(3, 4), "s": np.asarray(7, dtype=dtype)}
    io.save_pytree(tmp_path / "1", tree)
    assert io.verify(tmp_path / "1") == 2
    _roundtrips_exactly(tmp_path / "1", tree)


@pytest.mark.parametrize(
    "key", ["array_metadatas", "_METADATA", "_sharding", "_strings.json", "_tenure", "_metadata"]
)
def test_keys_that_name_internal_files_are_refused_before_anything_is_written(
    tmp_path: Path, key: str
) -> None:
    """Defect 4: such keys saved a step that could not be loaded."""
    for tree in ({key: np.ones(2)}, {key: "text"}, {"a": {key: np.ones(2)}, key: 1}):
        with pytest.raises(io.InvalidKeyError, match="reserved"):
            io.save_pytree(tmp_path / "1", tree)
        assert not list(tmp_path.iterdir())


def test_a_name_too_long_for_a_directory_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    """Defect 4: a name the file system refuses must not fail halfway through a save."""
    tree = {"k" * 200: {"k" * 100: np.ones(2)}}
    with pytest.raises(io.InvalidKeyError, match="longer than"):
        io.save_pytree(tmp_path / "1", tree, layout=PER_ARRAY)
    assert not list(tmp_path.iterdir())
    io.save_pytree(tmp_path / "1", tree, layout=io.ArrayLayout(ocdbt=True))
    assert io.verify(tmp_path / "1") == 1


@pytest.mark.parametrize("key", ["/etc/passwd", "..", "a\x00b"])
def test_keys_that_could_escape_the_item_are_refused_at_save(tmp_path: Path, key: str) -> None:
    """Defect 8, save side."""
    with pytest.raises(io.InvalidKeyError):
        io.save_pytree(tmp_path / "1", {key: np.ones(2)})
    assert not list(tmp_path.iterdir())


def _rename_key(item: Path, old: str, new: str) -> None:
    """Rewrite `_METADATA` so the leaf stored as `old` claims to be stored as `new`."""
    path = item / "_METADATA"
    doc = json.loads(path.read_text())
    tree = doc["tree_metadata"]
    record = tree.pop(str((old,)))
    record["key_metadata"][0]["key"] = new
    tree[str((new,))] = record
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("outside", ["absolute", "parent"])
def test_metadata_naming_a_file_outside_the_item_is_corrupt_at_load(
    tmp_path: Path, outside: str
) -> None:
    """Defect 8, load side: an absolute or '..' key made load read outside the root."""
    secret = tmp_path / "secret"
    io.save_pytree(secret / "1", {"w": np.arange(3)}, layout=PER_ARRAY)
    io.save_pytree(tmp_path / "root" / "1", {"w": np.zeros(3, np.int64)}, layout=PER_ARRAY)
    item = tmp_path / "root" / "1" / "state"
    shutil.rmtree(item / "_tenure")  # as if Orbax had written the step: no tenure records
    (tmp_path / "root" / "1" / "_tenure_checksums.json").unlink(missing_ok=True)
    target = secret / "1" / "state" / "w"
    key = str(target) if outside == "absolute" else "../../../secret/1/state/w"
    _rename_key(item, "w", key)
    with pytest.raises(io.CorruptCheckpointError, match="outside"):
        io.load_pytree(tmp_path / "root" / "1")
    with pytest.raises(io.CorruptCheckpointError, match="outside"):
        io.verify(tmp_path / "root" / "1")


_HUGE = """
import json, sys
from pathlib import Path
from tenure import io
step = Path(sys.argv[1])
for call in (io.load_pytree, io.verify):
    try:
        call(step)
    except io.CorruptCheckpointError as e:
        print("CORRUPT", e)
"""


@pytest.mark.parametrize("records", [True, False], ids=["tenure", "orbax-like"])
def test_a_shape_larger_than_the_stored_bytes_is_corrupt_before_any_allocation(
    tmp_path: Path, records: bool
) -> None:
    """Defect 7: a zarr.json claiming 4 TiB aborted the process (std::bad_alloc)."""
    step = tmp_path / "1"
    io.save_pytree(step, {"w": np.arange(256, dtype=np.float32)}, layout=PER_ARRAY)
    if not records:
        shutil.rmtree(step / "state" / "_tenure")
        (step / "_tenure_checksums.json").unlink(missing_ok=True)
    zarr = step / "state" / "w" / "zarr.json"
    doc = json.loads(zarr.read_text())
    doc["shape"] = [2**40]
    zarr.write_text(json.dumps(doc))
    run = subprocess.run(
        [sys.executable, "-c", _HUGE, str(step)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("CORRUPT") == 2, run.stdout + run.stderr[-2000:]


def _nested(depth: int) -> object:
    doc: object = 1
    for _ in range(depth):
        doc = {"a": doc}
    return doc


@pytest.mark.parametrize("where", ["_CHECKPOINT_METADATA", "metrics/metrics"])
def test_deeply_nested_step_metadata_is_corrupt_not_a_recursion_error(
    tmp_path: Path, where: str
) -> None:
    """Defect 9, read side: deep JSON raised an uncaught RecursionError."""
    io.save_pytree(tmp_path / "1", {"w": np.ones(2)}, metrics={"loss": 1.0})
    (tmp_path / "1" / where).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(io.CorruptCheckpointError, match="nested"):
        io.read_step_metadata(tmp_path / "1")
    with pytest.raises(io.CorruptCheckpointError):
        io.verify(tmp_path / "1")


def test_deep_metrics_custom_metadata_json_items_and_trees_are_refused_at_save(
    tmp_path: Path,
) -> None:
    """Defect 9, save side: a tree 2,000 deep raised RecursionError."""
    deep = _nested(2_000)
    attempts = [
        lambda: io.save_pytree(tmp_path / "1", {"w": np.ones(1)}, metrics=deep),
        lambda: io.save_pytree(tmp_path / "1", {"w": np.ones(1)}, custom_metadata={"d": deep}),
        lambda: io.save_checkpointables(tmp_path / "1", {"config": deep}),
        lambda: io.save_pytree(tmp_path / "1", {"w": _nested(2_000)}),
    ]
    for attempt in attempts:
        with pytest.raises(NestingTooDeepError, match="deep"):
            attempt()
        assert not list(tmp_path.iterdir())
    # The documented limits themselves are fine: a tree MAX_TREE_DEPTH deep round-trips
    # (in OCDBT, where a long name needs no directory of its own).
    deepest = _nested(MAX_TREE_DEPTH - 1)
    io.save_pytree(
        tmp_path / "2",
        {"w": deepest},
        metrics=_nested(MAX_JSON_DEPTH - 1),
        layout=io.ArrayLayout(ocdbt=True),
    )
    assert io.load_pytree(tmp_path / "2")["w"] == deepest
    assert io.read_step_metadata(tmp_path / "2", check=True).metrics == _nested(MAX_JSON_DEPTH - 1)
    assert io.verify(tmp_path / "2") == 1


def test_a_key_path_deeper_than_any_saved_tree_is_corrupt(tmp_path: Path) -> None:
    """Defect 9: rebuilding a tree from hostile metadata must not exhaust the stack."""
    step = tmp_path / "1"
    io.save_pytree(step, {"w": np.ones(2)})
    shutil.rmtree(step / "state" / "_tenure")  # as if Orbax had written the step
    (step / "_tenure_checksums.json").unlink()
    path = step / "state" / "_METADATA"
    doc = json.loads(path.read_text())
    (record,) = doc["tree_metadata"].values()
    record["key_metadata"] = [{"key": "a", "key_type": 2}] * 5_000
    path.write_text(json.dumps(doc))
    with pytest.raises(io.CorruptCheckpointError, match="deeper"):
        io.load_pytree(step)
    with pytest.raises(io.CorruptCheckpointError, match="deeper"):
        io.verify(step)


def _step_with_every_kind_of_file(step: Path) -> None:
    io.save_checkpointables(
        step,
        {"state": {"w": np.arange(256, dtype=np.float32), "name": "mlp"}, "config": {"lr": 1}},
        metrics={"loss": 0.5},
        layout=PER_ARRAY,
    )


@pytest.mark.parametrize(
    "edit",
    ["float32 to int32", "shape (256,) to (16, 16)", "string", "sharding", "array_metadatas"],
)
def test_an_edited_metadata_file_is_caught_by_load_and_verify(tmp_path: Path, edit: str) -> None:
    """Defect 10: edited metadata loaded wrong values silently, or verify missed the damage."""
    step = tmp_path / "1"
    _step_with_every_kind_of_file(step)
    item = step / "state"
    if edit in ("float32 to int32", "shape (256,) to (16, 16)"):
        zarr = item / "w" / "zarr.json"
        doc = json.loads(zarr.read_text())
        if edit == "float32 to int32":
            doc["data_type"] = "int32"
        else:
            doc["shape"] = doc["chunk_grid"]["configuration"]["chunk_shape"] = [16, 16]
            (item / "w" / "c" / "0").rename(item / "w" / "c" / "0.tmp")
            (item / "w" / "c" / "0").mkdir()
            (item / "w" / "c" / "0.tmp").rename(item / "w" / "c" / "0" / "0")
        zarr.write_text(json.dumps(doc))
    elif edit == "string":
        (item / "_strings.json").write_text(json.dumps({"name": "mlq"}))
    elif edit == "sharding":
        (item / "_sharding").write_text("{not json")
    else:
        (item / "array_metadatas" / "process_0").write_text("{}")
    with pytest.raises(io.CorruptCheckpointError, match=str(step)):
        io.load_checkpointables(step)
    with pytest.raises(io.CorruptCheckpointError, match=str(step)):
        io.verify(step)


def test_a_step_deleted_while_verifying_is_not_a_checkpoint_not_corruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 10: a step removed while verify read its arrays was reported as damaged."""
    step = tmp_path / "1"
    io.save_pytree(step, {"a": np.arange(4.0), "b": np.arange(5.0)}, layout=PER_ARRAY)
    real = io.verify.__globals__["checksum"]

    def delete_after_the_first_array(data: np.ndarray) -> int:
        shutil.rmtree(step, ignore_errors=True)
        return int(real(data))

    monkeypatch.setitem(io.verify.__globals__, "checksum", delete_after_the_first_array)
    with pytest.raises(io.NotACheckpointError, match="while it was being verified"):
        io.verify(step)


def test_a_damaged_chunk_trailer_is_caught_by_the_fast_read_path_too(tmp_path: Path) -> None:
    """Defect 10: the raw chunk read skipped the crc32c trailer tensorstore (and Orbax) check."""
    step = tmp_path / "1"
    io.save_pytree(step, {"w": np.arange(256, dtype=np.float32)}, layout=PER_ARRAY)
    chunk = step / "state" / "w" / "c" / "0"
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 1
    chunk.write_bytes(bytes(data))
    with pytest.raises(io.CorruptCheckpointError, match=r"trailer|digest"):
        io.load_pytree(step)
    with pytest.raises(io.CorruptCheckpointError, match=str(step)):
        io.verify(step)


_JSON = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab\n'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text('[]{}"\\a'), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(_JSON)
def test_bracket_depth_equals_the_parsed_documents_depth(doc: object) -> None:
    """The depth read from a document's bytes, brackets in strings and escapes included, is
    the depth of what it parses to (the check that refuses hostile nesting relies on it)."""
    assert jsondoc._bracket_depth(json.dumps(doc).encode()) == jsondoc.json_depth(doc)
    assert jsondoc._bracket_depth(json.dumps(doc, ensure_ascii=False).encode()) == (
        jsondoc.json_depth(doc)
    )
