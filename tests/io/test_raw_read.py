"""Plain zarr3 chunks tenure wrote are read without tensorstore's array layer, checked by crc32:
straight from their files into aligned buffers (one directory per array), or as single keys of
the item's OCDBT database (the default layout's small arrays)."""

import itertools
import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorstore as ts

from tenure import io
from tenure.io import arrays, pytree, root
from tenure.io.storage import new_context

PER_ARRAY = io.ArrayLayout(ocdbt=False)


@pytest.fixture
def tensorstore_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the arrays a load opened through tensorstore."""
    opened: list[str] = []

    def spy(item_dir: Path, name: str, *args: Any) -> Any:
        opened.append(name)
        return arrays.open_for_read(item_dir, name, *args)

    monkeypatch.setattr(pytree, "open_for_read", spy)
    return opened


def _sharded(mesh: jax.sharding.Mesh) -> jax.Array:
    value = jnp.arange(64.0, dtype=jnp.float32).reshape(8, 8)
    return jax.device_put(value, jax.NamedSharding(mesh, jax.P("x", "y")))


@pytest.mark.parametrize("layout", [PER_ARRAY, None], ids=["per-array", "default"])
def test_same_sharding_and_numpy_loads_skip_tensorstore(
    tmp_path: Path,
    mesh: jax.sharding.Mesh,
    tensorstore_opens: list[str],
    layout: io.ArrayLayout | None,
) -> None:
    array = _sharded(mesh)
    tree = {"w": array, "n": np.arange(5, dtype=np.int16), "s": 3.5, "k": jax.random.key(1)}
    io.save_pytree(tmp_path / "1", tree, layout=layout)
    out = io.load_pytree(tmp_path / "1")
    assert tensorstore_opens == []
    assert out["w"].sharding == array.sharding
    np.testing.assert_array_equal(np.asarray(out["w"]), np.asarray(array))
    np.testing.assert_array_equal(out["n"], tree["n"])
    assert out["s"] == 3.5
    assert jnp.array_equal(jax.random.key_data(out["k"]), jax.random.key_data(tree["k"]))


def test_resharding_casting_and_compression_fall_back_to_tensorstore(
    tmp_path: Path, mesh: jax.sharding.Mesh, tensorstore_opens: list[str]
) -> None:
    array = _sharded(mesh)
    io.save_pytree(tmp_path / "1", {"w": array}, layout=PER_ARRAY)
    other = jax.NamedSharding(mesh, jax.P("y", None))
    out = io.load_pytree(
        tmp_path / "1", {"w": jax.ShapeDtypeStruct((8, 8), jnp.float32, sharding=other)}
    )
    np.testing.assert_array_equal(np.asarray(out["w"]), np.asarray(array))
    out = io.load_pytree(tmp_path / "1", {"w": jax.ShapeDtypeStruct((8, 8), jnp.int32)})
    assert out["w"].dtype == jnp.int32
    assert tensorstore_opens == ["w", "w"]
    io.save_pytree(tmp_path / "2", {"w": array}, layout=io.ArrayLayout(compression=True))
    np.testing.assert_array_equal(
        np.asarray(io.load_pytree(tmp_path / "2")["w"]), np.asarray(array)
    )
    assert tensorstore_opens == ["w", "w", "w"]


@pytest.mark.parametrize("damage", ["flip", "append", "truncate", "delete"])
def test_damaged_shard_raises_corrupt_checkpoint_naming_the_array(
    tmp_path: Path, mesh: jax.sharding.Mesh, damage: str
) -> None:
    io.save_pytree(tmp_path / "1", {"w": _sharded(mesh)}, layout=PER_ARRAY)
    chunk = tmp_path / "1" / "state" / "w" / "c" / "1" / "0"
    data = bytearray(chunk.read_bytes())
    if damage == "flip":
        data[3] ^= 0x01
        chunk.write_bytes(bytes(data))
    elif damage == "append":
        chunk.write_bytes(bytes(data) + b"\0")
    elif damage == "truncate":
        chunk.write_bytes(bytes(data[:-5]))
    else:
        chunk.unlink()
    with pytest.raises(io.CorruptCheckpointError, match="'w'"):
        io.load_pytree(tmp_path / "1")


def test_buffers_are_aligned_for_jax_to_adopt() -> None:
    for shape in [(), (1,), (3, 5), (1000,)]:
        out = arrays.aligned_empty(shape, np.dtype(np.float64))
        assert out.shape == shape
        assert out.ctypes.data % 64 == 0


def test_packed_arrays_are_resharded_and_cast_from_their_checked_pieces(
    tmp_path: Path, mesh: jax.sharding.Mesh, tensorstore_opens: list[str]
) -> None:
    array = _sharded(mesh)
    io.save_pytree(tmp_path / "1", {"w": array})
    io.save_pytree(tmp_path / "2", {"w": array}, layout=PER_ARRAY)
    other = jax.NamedSharding(mesh, jax.P("y", None))
    out = io.load_pytree(
        tmp_path / "1", {"w": jax.ShapeDtypeStruct((8, 8), jnp.float32, sharding=other)}
    )
    assert out["w"].sharding == other
    np.testing.assert_array_equal(np.asarray(out["w"]), np.asarray(array))
    target = {"w": jax.ShapeDtypeStruct((8, 8), jnp.int32)}
    cast = io.load_pytree(tmp_path / "1", target)["w"]
    assert tensorstore_opens == []
    # The cast is tensorstore's, as when tensorstore reads the array.
    expected = io.load_pytree(tmp_path / "2", target)["w"]
    assert cast.dtype == expected.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(cast), np.asarray(expected))


def _database(step: Path) -> ts.KvStore:
    spec = {"driver": "ocdbt", "base": f"file://{step}/state/"}
    return ts.KvStore.open(spec).result()


@pytest.mark.parametrize("damage", ["flip", "append", "truncate", "delete", "metadata"])
def test_damaged_packed_chunk_or_metadata_is_caught_by_load_and_verify(
    tmp_path: Path, mesh: jax.sharding.Mesh, damage: str
) -> None:
    step = tmp_path / "1"
    io.save_pytree(step, {"w": _sharded(mesh)})
    db = _database(step)
    key = "w/c/1/0"
    data = bytearray(db.read(key).result().value)
    if damage == "flip":
        data[3] ^= 0x01
        db.write(key, bytes(data)).result()
    elif damage == "append":
        db.write(key, bytes(data) + b"\0").result()
    elif damage == "truncate":
        db.write(key, bytes(data[:-5])).result()
    elif damage == "delete":
        db.write(key, None).result()
    else:
        # Still valid metadata, but not what was written: a missing chunk would read as ones.
        doc = (
            db.read("w/zarr.json").result().value.replace(b'"fill_value":0.0', b'"fill_value":1.0')
        )
        db.write("w/zarr.json", doc).result()
    with pytest.raises(io.CorruptCheckpointError, match="'w'"):
        io.load_pytree(step)
    with pytest.raises(io.CorruptCheckpointError):
        io.verify(step)


@pytest.mark.parametrize("layout", [PER_ARRAY, None], ids=["per-array", "default"])
def test_a_load_keeps_at_most_its_window_of_data_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: io.ArrayLayout | None
) -> None:
    # Larger than a packed piece, so that the default layout does not read them together.
    size = arrays.PACKED_PIECE_BYTES // 4 + 1
    tree = {f"w{i}": np.full(size, i, np.float32) for i in range(6)}
    io.save_pytree(tmp_path / "1", tree, layout=layout)
    monkeypatch.setattr(pytree, "_READ_WINDOW_BYTES", 8 * size)  # two of the arrays
    most = 0
    start = pytree.Reader.start

    def counted_start(self: pytree.Reader, plan: Any) -> Any:
        nonlocal most
        most = max(most, len(self._in_flight) + 1)
        return start(self, plan)

    monkeypatch.setattr(pytree.Reader, "start", counted_start)
    out = io.load_pytree(tmp_path / "1")
    assert most == 2
    for name, value in tree.items():
        np.testing.assert_array_equal(out[name], value)


@pytest.mark.parametrize(
    "dtype", ["bool", "int8", "uint16", "float32", "bfloat16", "complex64", "float8_e4m3fn"]
)
@pytest.mark.parametrize(("shape", "chunk"), [((), ()), ((3,), (3,)), ((4, 6), (2, 3))])
def test_packed_metadata_is_byte_for_byte_what_tensorstore_writes(
    dtype: str, shape: tuple[int, ...], chunk: tuple[int, ...]
) -> None:
    store = ts.open(
        {
            "driver": "zarr3",
            "kvstore": {"driver": "memory"},
            "create": True,
            "metadata": {
                "shape": list(shape),
                "data_type": dtype,
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunk)}},
                "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            },
        }
    ).result()
    assert store.kvstore is not None
    written = store.kvstore.read("zarr.json").result().value
    assert arrays.plain_metadata(arrays.numpy_dtype(dtype), shape, chunk) == written


def _item_record(step: Path) -> Any:
    return json.loads((step / "state" / "_tenure" / "item.json").read_text())


def _saved_small(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A step of many small arrays, saved in the default layout, and its tree."""
    step, tree = tmp_path / "1", _many_small()
    io.save_pytree(step, tree)
    return step, tree


def _many_small(count: int = 50) -> dict[str, np.ndarray]:
    return {f"p{i:03d}": np.full(600, i, np.float32) for i in range(count)}


@pytest.mark.parametrize("damage", ["flip", "truncate", "metadata"])
def test_located_packed_chunks_are_read_in_one_span_and_damage_is_caught(
    tmp_path: Path, damage: str
) -> None:
    step, tree = _saved_small(tmp_path)
    record = _item_record(step)
    # A save may spread its values over data files: one record per file, most first.
    assert all(
        len(a["offsets"]) >= len(b["offsets"]) for a, b in itertools.pairwise(record["located"])
    )
    # Every chunk, and every zarr.json beside it.
    keys = {f"{name}/{part}" for name in tree for part in ("c/0", "zarr.json")}
    assert {key for r in record["located"] for key in r["offsets"]} == keys
    located = record["located"][0]
    chunks = sorted(key for key in located["offsets"] if key.endswith("/c/0"))
    key = chunks[len(chunks) // 2]
    name = key.split("/")[0]
    reader = pytree.Reader(pytree.SavedItem.open(step / "state"))
    assert isinstance(reader.raw(name), arrays.PackedArray)
    assert reader.spans is not None
    out = io.load_pytree(step)
    for name, value in tree.items():
        np.testing.assert_array_equal(out[name], value)
    data_file = step / "state" / located["file"]
    data = bytearray(data_file.read_bytes())
    offset = located["offsets"][key]
    why = "crc32 differs|ended early"
    if damage == "metadata":
        # The array's zarr.json, which a load checks without needing it: `"shape":[600]`.
        offset = located["offsets"][f"{name}/zarr.json"]
        at = data.index(b"600", offset)
        data[at : at + 3] = b"601"
        data_file.write_bytes(bytes(data))
        why = "zarr.json differs"
    elif damage == "flip":
        data[offset + 5] ^= 0x10
        data_file.write_bytes(bytes(data))
    else:
        data_file.write_bytes(bytes(data[: offset + 10]))
    with pytest.raises(io.CorruptCheckpointError, match=f"'p0.*({why})"):
        io.load_pytree(step)
    with pytest.raises(io.CorruptCheckpointError):
        io.verify(step)


@pytest.mark.parametrize("part", ["c/0", "zarr.json"])
def test_a_located_value_longer_than_its_place_in_the_span_is_corrupt(
    tmp_path: Path, part: str
) -> None:
    """A record placing the next value inside this one (as a damaged or hostile record could,
    with valid checksums) is refused, not read past."""
    step, tree = _saved_small(tmp_path)
    item = pytree.SavedItem.open(step / "state")
    located = item.located[0]
    name = min(key.split("/")[0] for key in located.offsets)
    offsets = dict(located.offsets)
    # Another value claimed to start 8 bytes into this one: its place is 8 bytes long.
    other = next(key for key in offsets if not key.startswith(f"{name}/"))
    offsets[other] = offsets[f"{name}/{part}"] + 8
    spans = arrays.PackedSpans(step / "state", [attrs.evolve(located, offsets=offsets)])
    batch = arrays.LocatedBatch(step / "state", spans)
    dtype, shape = np.dtype(tree[name].dtype), tree[name].shape
    with pytest.raises(io.CorruptCheckpointError, match=f"{name}/{part} lies outside"):
        batch.whole(name, dtype, shape, item.packed[name], item.crcs[name])


def test_a_damaged_located_record_is_refused_before_any_read(tmp_path: Path) -> None:
    step = tmp_path / "1"
    io.save_pytree(step, _many_small())
    path = step / "state" / "_tenure" / "item.json"
    record = json.loads(path.read_text())
    record["located"][0]["file"] = "../../elsewhere"
    path.write_text(json.dumps(record))
    with pytest.raises(io.CorruptCheckpointError):
        io.load_pytree(step)


def _root_buffer(value: np.ndarray) -> np.ndarray:
    while isinstance(value.base, np.ndarray):
        value = value.base
    return value


def test_located_chunks_are_views_of_one_read_unless_a_load_reads_few_of_them(
    tmp_path: Path,
) -> None:
    step, tree = _saved_small(tmp_path)
    out = io.load_pytree(step)
    record = _item_record(step)
    located = [key.split("/")[0] for key in record["located"][0]["offsets"] if "/c/" in key]
    # Views of the span they were read into, each its own bytes: no copy per leaf.
    assert _root_buffer(out[located[0]]) is _root_buffer(out[located[1]])
    assert not np.shares_memory(out[located[0]], out[located[1]])
    for name, value in tree.items():
        np.testing.assert_array_equal(out[name], value)
    # A load of a few leaves gets copies, which do not keep the whole span alive.
    few = io.load_pytree(step, {located[0]: np.zeros(600, np.float32)}, partial=True)
    assert few[located[0]].base is None
    np.testing.assert_array_equal(few[located[0]], tree[located[0]])


def test_located_chunks_are_aligned_so_that_jax_adopts_them(tmp_path: Path) -> None:
    # Tensorstore puts values at any offset (a chunk, then its zarr.json, and so on); a load
    # places each at an aligned address, which jax takes instead of copying.
    step, tree = _saved_small(tmp_path)
    offsets = _item_record(step)["located"][0]["offsets"]
    assert any(offset % 64 for offset in offsets.values())
    located = [key.split("/")[0] for key in offsets if "/c/" in key]
    host = io.load_pytree(step)
    assert all(host[name].ctypes.data % 64 == 0 for name in located)
    abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in tree.items()}
    on_device = io.load_pytree(step, abstract)
    assert all(on_device[name].unsafe_buffer_pointer() % 64 == 0 for name in located)
    for name, value in tree.items():
        np.testing.assert_array_equal(on_device[name], value)


def test_a_load_of_large_arrays_alone_does_not_read_the_small_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = tmp_path / "1"
    big = np.arange(arrays.PACKED_PIECE_BYTES // 2, dtype=np.float32)
    io.save_pytree(step, {"big": big, **_many_small()})
    assert _item_record(step)["located"]
    spans: list[str] = []
    read = arrays.PackedSpan.read

    def spy(span: arrays.PackedSpan) -> None:
        spans.append(span.located.file)
        read(span)

    monkeypatch.setattr(arrays.PackedSpan, "read", spy)
    out = io.load_pytree(step, {"big": np.zeros_like(big)}, partial=True)
    np.testing.assert_array_equal(out["big"], big)
    assert spans == []
    io.load_pytree(step)
    assert spans


def test_a_load_reads_small_arrays_whole_and_leaf_by_leaf_only_what_it_converts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step, tree = _saved_small(tmp_path)
    cast, host, *rest = sorted(tree)
    one_by_one: list[str] = []
    init = pytree._Pending.__init__

    def spy(self: pytree._Pending, *args: Any) -> None:
        one_by_one.append(args[-1])
        init(self, *args)

    monkeypatch.setattr(pytree._Pending, "__init__", spy)
    abstract: dict[str, Any] = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in tree.items()}
    abstract[cast] = jax.ShapeDtypeStruct((600,), jnp.int32)
    abstract[host] = np.zeros(600, np.float32)
    out = io.load_pytree(step, abstract)
    assert one_by_one == [cast]
    assert out[cast].dtype == jnp.int32
    np.testing.assert_array_equal(out[cast], tree[cast].astype(np.int32))
    assert type(out[host]) is np.ndarray
    np.testing.assert_array_equal(out[host], tree[host])
    for name in rest:
        assert isinstance(out[name], jax.Array)
        np.testing.assert_array_equal(out[name], tree[name])
    # A plan reads nothing, and plans every leaf.
    plan = io.plan_load(step, abstract)
    assert plan.casts == {cast: ("float32", "int32")}
    assert sorted(plan.matched) == sorted(tree)


@pytest.mark.parametrize("target", ["none", "equal"])
def test_leaves_of_one_device_go_to_it_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    # numpy leaves record no sharding: loaded as jax arrays, they share the default device's;
    # targets often give each leaf its own sharding object, all equal.
    step, tree = _saved_small(tmp_path)
    calls: list[int] = []
    put = pytree.put_on_device

    def spy(data: list[np.ndarray], sharding: Any) -> list[Any]:
        calls.append(len(data))
        return put(data, sharding)

    monkeypatch.setattr(pytree, "put_on_device", spy)
    device = jax.devices()[0]
    abstract = {
        k: jax.ShapeDtypeStruct(
            v.shape,
            v.dtype,
            sharding=jax.sharding.SingleDeviceSharding(device) if target == "equal" else None,
        )
        for k, v in tree.items()
    }
    out = io.load_pytree(step, abstract)
    assert calls == [len(tree)]
    for name, value in tree.items():
        assert out[name].sharding == jax.sharding.SingleDeviceSharding(jax.devices()[0])
        np.testing.assert_array_equal(out[name], value)


@pytest.mark.parametrize("partial", [False, True])
def test_a_load_of_everything_reads_its_runs_while_it_matches_its_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, partial: bool
) -> None:
    # A load of every saved array needs every run: the reads overlap the matching, which takes
    # long for thousands of leaves. A partial load reads the runs its leaves need, after it.
    step, tree = _saved_small(tmp_path)
    events: list[str] = []
    match, read = pytree._match, arrays.PackedSpan.read

    def matching(*args: Any) -> Any:
        events.append("match")
        return match(*args)

    def reading(span: arrays.PackedSpan) -> None:
        events.append("read")
        read(span)

    monkeypatch.setattr(pytree, "_match", matching)
    monkeypatch.setattr(arrays.PackedSpan, "read", reading)
    out = io.load_pytree(step, {k: np.zeros_like(v) for k, v in tree.items()}, partial=partial)
    assert events[0] == ("match" if partial else "read")
    for name, value in tree.items():
        np.testing.assert_array_equal(out[name], value)


def test_a_span_is_read_whole_through_short_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read may return fewer bytes than asked (a signal, a network filesystem).
    step, tree = _saved_small(tmp_path)
    preadv = arrays.os.preadv
    calls = 0

    def short(fd: int, buffers: list[memoryview], offset: int) -> int:
        nonlocal calls
        calls += 1
        first = buffers[0]
        return preadv(fd, [first[: max(1, len(first) // 3)]], offset)

    monkeypatch.setattr(arrays.os, "preadv", short)
    out = io.load_pytree(step)
    assert calls > 3 * len(tree)
    for name, value in tree.items():
        np.testing.assert_array_equal(out[name], value)


def test_a_located_record_of_one_data_file_as_earlier_saves_wrote_it_is_read(
    tmp_path: Path,
) -> None:
    step, tree = _saved_small(tmp_path)
    record = _item_record(step)
    record["located"] = record["located"][0]  # a single object, not a list
    item = pytree.SavedItem.open(step / "state", record)
    assert item.located == (arrays.LocatedValues.from_json(record["located"]),)
    out = pytree.load_item(step / "state", item_doc=record)
    for name, value in tree.items():
        np.testing.assert_array_equal(out[name], value)


def test_values_are_located_where_the_index_says_in_runs_split_at_large_gaps(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    small = {f"a{i:02d}/c/0": rng.bytes(2048) for i in range(40)}
    small["z0/c/0"] = small["z1/c/0"] = bytes(2048)  # alike values are told apart by key
    # A value larger than a gap lies between the small ones in key order.
    values = {**small, "m/c/0": rng.bytes(2 * arrays._SPAN_GAP_BYTES)}
    ctx = new_context()
    store = ts.KvStore.open(arrays.ocdbt_spec(tmp_path, write=True), context=ctx).result()
    txn = ts.Transaction()
    for key, value in values.items():
        store.with_transaction(txn).write(key, value)
    txn.commit_async().result()
    records = arrays.locate_values(tmp_path, sorted(small), ctx)
    manifest = zlib.crc32((tmp_path / arrays.OCDBT_MANIFEST_FILE).read_bytes())
    assert {r.manifest for r in records} == {manifest}
    assert sorted(k for r in records for k in r.offsets) == sorted(small)
    for record in records:
        content = (tmp_path / record.file).read_bytes()
        for key, offset in record.offsets.items():
            assert content[offset : offset + 2048] == small[key]
        assert record.end - min(record.offsets.values()) <= 2048 * len(record.offsets)
    # A record without the index to read is none: the load reads key by key.
    (tmp_path / arrays.OCDBT_MANIFEST_FILE).unlink()
    assert arrays.locate_values(tmp_path, sorted(small), ctx) == []


def _large(mesh: jax.sharding.Mesh) -> dict[str, Any]:
    """Arrays whose pieces are larger than packed ones: tensorstore writes them."""
    pieces = 2 * arrays.PACKED_PIECE_BYTES // 4
    sharded = jnp.arange(8 * pieces, dtype=jnp.float32).reshape(8, pieces)
    return {
        "w": jax.device_put(sharded, jax.NamedSharding(mesh, jax.P("x", None))),
        "n": np.arange(pieces, dtype=np.int32),
    }


@pytest.fixture
def direct_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the arrays whose chunks a load read straight from a data file."""
    reads: list[str] = []
    original = arrays.PackedArray._start_direct

    def spy(self: arrays.PackedArray, *args: Any) -> Any:
        reads.append(self.name)
        return original(self, *args)

    monkeypatch.setattr(arrays.PackedArray, "_start_direct", spy)
    return reads


def test_large_arrays_in_the_default_layout_are_plain_and_read_straight_from_the_data_files(
    tmp_path: Path,
    mesh: jax.sharding.Mesh,
    tensorstore_opens: list[str],
    direct_reads: list[str],
) -> None:
    tree = _large(mesh)
    io.save_pytree(tmp_path / "1", tree)
    # No crc32c, which would cost tensorstore a copy: tenure's crc32 of each piece checks them.
    db = _database(tmp_path / "1")
    for name in tree:
        codecs = json.loads(db.read(f"{name}/zarr.json").result().value)["codecs"]
        assert [c["name"] for c in codecs] == ["bytes"]
    assert set(_item_record(tmp_path / "1")["packed"]) == set(tree)
    out = io.load_pytree(tmp_path / "1")
    assert sorted(direct_reads) == ["n", *["w"] * 4]
    assert out["w"].sharding == tree["w"].sharding
    other = jax.NamedSharding(mesh, jax.P("y", None))
    moved = io.load_pytree(
        tmp_path / "1",
        {"w": jax.ShapeDtypeStruct(tree["w"].shape, jnp.int32, sharding=other), "n": None},
    )
    assert tensorstore_opens == []
    assert moved["w"].sharding == other
    assert moved["w"].dtype == jnp.int32
    for value in (out, moved):
        np.testing.assert_array_equal(np.asarray(value["w"]), np.asarray(tree["w"]))
        np.testing.assert_array_equal(value["n"], tree["n"])
    assert io.verify(tmp_path / "1") == 2
    tensorstore_opens.clear()
    # Compressed chunks are not plain bytes: tensorstore writes and reads them.
    compressed = io.ArrayLayout(ocdbt=True, compression=True)
    io.save_pytree(tmp_path / "2", tree, layout=compressed)
    assert not _item_record(tmp_path / "2").get("packed")
    np.testing.assert_array_equal(io.load_pytree(tmp_path / "2")["n"], tree["n"])
    assert sorted(tensorstore_opens) == ["n", "w"]


def _where(step: Path, key: str) -> tuple[Path, int]:
    locations = arrays.value_locations(step / "state", new_context())
    file, offset, _ = locations[key]
    return step / "state" / file, offset


@pytest.mark.parametrize("damage", ["in place", "rewritten"])
def test_a_damaged_large_chunk_read_from_a_data_file_is_caught_by_load_and_verify(
    tmp_path: Path, mesh: jax.sharding.Mesh, damage: str
) -> None:
    step = tmp_path / "1"
    io.save_pytree(step, _large(mesh))
    key = "w/c/2/0"
    where = _where(step, key)
    if damage == "in place":
        path, offset = where
        with open(path, "r+b") as f:
            f.seek(offset + 100)
            byte = f.read(1)
            f.seek(offset + 100)
            f.write(bytes([byte[0] ^ 0x01]))
    else:
        # Written again through the database: the index then places the chunk elsewhere.
        db = _database(step)
        data = bytearray(db.read(key).result().value)
        data[100] ^= 0x01
        db.write(key, bytes(data)).result()
        assert _where(step, key) != where
    with pytest.raises(io.CorruptCheckpointError, match="'w'"):
        io.load_pytree(step)
    with pytest.raises(io.CorruptCheckpointError):
        io.verify(step)


def test_an_index_not_as_expected_leaves_values_to_be_read_key_by_key(
    tmp_path: Path,
    mesh: jax.sharding.Mesh,
    monkeypatch: pytest.MonkeyPatch,
    direct_reads: list[str],
) -> None:
    class Unexpected:
        def result(self) -> Any:
            return {"versions": [{}]}  # no root: another tensorstore's dump, say

    monkeypatch.setattr(ts.ocdbt, "dump", lambda *args, **kwargs: Unexpected())
    tree = {**_many_small(3), **_large(mesh)}
    io.save_pytree(tmp_path / "1", tree)
    assert "located" not in _item_record(tmp_path / "1")
    out = io.load_pytree(tmp_path / "1")
    assert direct_reads == []
    for name, value in tree.items():
        np.testing.assert_array_equal(np.asarray(out[name]), np.asarray(value))


def _cached(path: Path) -> bool:
    """Whether all of `path` is in the page cache: a read that may not wait for the disk
    gets all of it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        return os.preadv(fd, [bytearray(size)], 0, os.RWF_NOWAIT) == size
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.skipif(
    not hasattr(os, "posix_fadvise") or not hasattr(os, "RWF_NOWAIT"), reason="Linux only"
)
def test_read_ahead_brings_a_file_into_the_page_cache_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    path.write_bytes(os.urandom(1 << 20))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # only written pages can be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if _cached(path):
        pytest.skip("this filesystem keeps the file cached (tmpfs)")
    root.read_ahead([path, tmp_path / "missing.json"])
    # The kernel reads it in the background: wait for that, not for a time (the deadline
    # only stops a test that would otherwise hang).
    deadline = time.monotonic() + 60
    while not _cached(path):
        assert time.monotonic() < deadline, "read_ahead left the file on disk"
