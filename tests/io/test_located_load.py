"""A load of every saved array of a state of small arrays, each as saved, takes one pass over
tenure's record (`pytree._load_located`) instead of the general load's steps per leaf. It must
give what the general load gives, leave anything else to it (without reading twice), and keep
every check."""

import dataclasses
import json
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import pytest

from tenure import io
from tenure.io import arrays, pytree


class Moments(NamedTuple):
    mu: np.ndarray
    nu: np.ndarray


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Layer:
    kernel: np.ndarray
    bias: np.ndarray


def _state() -> dict[str, Any]:
    """Every kind of container a target may use, dict keys out of sorted order."""

    def leaf(i: int, n: int = 40) -> np.ndarray:
        return np.arange(n, dtype=np.float32) + i

    return {
        "z": {"b": leaf(0), "a": leaf(1, 6).astype(np.int16)},
        "layers": [Layer(leaf(2), leaf(3)), Layer(leaf(4), leaf(5))],
        "pair": (leaf(6), leaf(7).reshape(5, 8)),
        "opt": Moments(leaf(8), leaf(9)),
        "a": leaf(10),
    }


def _saved(tmp_path: Path) -> dict[str, Any]:
    """`_state()`, saved as step 1 under `tmp_path`."""
    state = _state()
    io.save_pytree(tmp_path / "1", state)
    return state


def _targets(state: Any, kind: str) -> Any:
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])

    def target(x: np.ndarray) -> Any:
        if kind == "numpy":
            return np.zeros_like(x)
        if kind == "jax arrays":
            return jax.device_put(np.zeros_like(x), one)
        # Each leaf its own sharding object, all equal, as targets built from a state have.
        sharding = (
            jax.sharding.SingleDeviceSharding(jax.devices()[0]) if kind == "sharded" else None
        )
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree.map(target, state)


@pytest.fixture
def general_opens(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Items the general load opened (`SavedItem.open`): the one-pass load opens none."""
    opened: list[Path] = []
    open_item = pytree.SavedItem.open

    def spy(item_dir: Path, *args: Any) -> pytree.SavedItem:
        opened.append(item_dir)
        return open_item(item_dir, *args)

    monkeypatch.setattr(pytree.SavedItem, "open", spy)
    return opened


def _same(a: Any, b: Any) -> None:
    """Equal trees: containers of one type, keys in one order, equal values of one type and
    sharding."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert repr(jax.tree.map(lambda _: 0, a)) == repr(jax.tree.map(lambda _: 0, b))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert type(x) is type(y)
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        if isinstance(x, jax.Array):
            assert x.sharding == y.sharding


@pytest.mark.parametrize("kind", ["sharded", "unsharded", "jax arrays", "numpy"])
def test_a_full_load_in_one_pass_gives_what_the_general_load_gives(
    tmp_path: Path, general_opens: list[Path], kind: str
) -> None:
    state = _saved(tmp_path)
    target = _targets(state, kind)
    # jax.tree.map sorted the keys: the load keeps the target's order, whatever it is.
    target["z"] = {"b": target["z"]["b"], "a": target["z"]["a"]}
    out = io.load_pytree(tmp_path / "1", target)
    assert general_opens == []
    # partial=True takes the general load, which names every key here all the same.
    general = io.load_pytree(tmp_path / "1", target, partial=True)
    assert general_opens == [tmp_path / "1" / "state"]
    _same(out, general)
    assert list(out["z"]) == ["b", "a"]
    assert type(out["layers"][0]) is Layer
    assert type(out["opt"]) is Moments
    for value, saved in zip(jax.tree.leaves(out), jax.tree.leaves(state), strict=True):
        assert isinstance(value, np.ndarray if kind == "numpy" else jax.Array)
        np.testing.assert_array_equal(np.asarray(value), saved)


def _spans_made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    made: list[int] = []
    init = arrays.PackedSpans.__init__

    def spy(self: arrays.PackedSpans, *args: Any) -> None:
        made.append(1)
        init(self, *args)

    monkeypatch.setattr(arrays.PackedSpans, "__init__", spy)
    return made


def test_a_load_with_a_cast_is_the_general_load_reading_the_spans_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, general_opens: list[Path]
) -> None:
    state = _saved(tmp_path)
    target = _targets(state, "sharded")
    target["a"] = jax.ShapeDtypeStruct((40,), np.float16)
    made = _spans_made(monkeypatch)
    out = io.load_pytree(tmp_path / "1", target)
    assert general_opens == [tmp_path / "1" / "state"]
    # The one pass started reading the spans before it met the cast: the general load goes on
    # with those reads.
    assert made == [1]
    assert out["a"].dtype == np.float16
    np.testing.assert_array_equal(np.asarray(out["a"]), state["a"].astype(np.float16))
    np.testing.assert_array_equal(np.asarray(out["z"]["b"]), state["z"]["b"])


@pytest.mark.parametrize("change", ["subtree", "missing key", "extra key", "other shape"])
def test_a_target_that_differs_from_the_checkpoint_gets_the_general_loads_answer(
    tmp_path: Path, general_opens: list[Path], change: str
) -> None:
    state = _saved(tmp_path)
    target = _targets(state, "sharded")
    if change == "subtree":
        target["z"] = None
        out = io.load_pytree(tmp_path / "1", target)
        np.testing.assert_array_equal(out["z"]["a"], state["z"]["a"])
        assert list(out["z"]) == ["b", "a"]
    elif change == "other shape":
        target["a"] = jax.ShapeDtypeStruct((41,), np.float32)
        with pytest.raises(io.StructureMismatchError, match="shape"):
            io.load_pytree(tmp_path / "1", target)
    else:
        if change == "missing key":
            del target["z"]["a"]
        else:
            target["z"]["c"] = target["a"]
        with pytest.raises(io.StructureMismatchError) as raised:
            io.load_pytree(tmp_path / "1", target)
        named = raised.value.unexpected if change == "missing key" else raised.value.missing
        assert named == ("z.a",) if change == "missing key" else ("z.c",)
    assert general_opens == [tmp_path / "1" / "state"]


def test_saved_empty_containers_and_nones_must_be_named_as_the_general_load_requires(
    tmp_path: Path, general_opens: list[Path]
) -> None:
    """jax sees no leaf in None or {}: a target without them must still be told they are
    saved, and a None target where an array is saved takes it, as in the general load."""
    io.save_pytree(tmp_path / "1", {"w": np.ones(3, np.float32), "e": {}, "n": None})
    target: dict[str, Any] = {"w": jax.ShapeDtypeStruct((3,), np.float32)}
    for named in ({"n": None}, {"e": {}}):
        with pytest.raises(io.StructureMismatchError, match="1 saved key"):
            io.load_pytree(tmp_path / "1", {**target, **named})
    assert len(general_opens) == 2
    out = io.load_pytree(tmp_path / "1", {**target, "e": {}, "n": None})
    assert len(general_opens) == 2
    assert out["e"] == {}
    assert out["n"] is None
    out = io.load_pytree(tmp_path / "1", {"w": None, "e": {}, "n": None})
    assert len(general_opens) == 3
    np.testing.assert_array_equal(out["w"], np.ones(3, np.float32))


def test_scalars_come_back_as_the_types_the_target_holds(
    tmp_path: Path, general_opens: list[Path]
) -> None:
    state = {
        "step": 7,
        "lr": 0.5,
        "done": True,
        "np": np.float32(2.5),
        "count": jax.numpy.asarray(3, np.int32),
        "w": np.ones(4, np.float32),
    }
    io.save_pytree(tmp_path / "1", state)
    # A state restored into itself: 0-d arrays asked for as Python scalars too.
    target = {**state, "count": 0}
    out = io.load_pytree(tmp_path / "1", target)
    assert general_opens == []
    assert out == {**state, "count": 3, "w": out["w"]}
    assert [type(out[k]) for k in ("step", "lr", "done", "np", "count")] == [
        int,
        float,
        bool,
        np.float32,
        int,
    ]
    _same(out, io.load_pytree(tmp_path / "1", target, partial=True))


def test_a_flax_train_state_with_adams_state_loads_in_one_pass(
    tmp_path: Path, general_opens: list[Path]
) -> None:
    """A real training state: flax's dataclass, optax's named tuples, its empty states and
    0-d count, and the step."""
    import optax
    from flax.training import train_state

    params = {f"dense_{i}": {"kernel": jax.numpy.full((3, 2), i, np.float32)} for i in range(3)}
    state = train_state.TrainState.create(apply_fn=None, params=params, tx=optax.adam(1e-3))
    state = state.replace(tx=None, step=jax.numpy.asarray(4))
    io.save_pytree(tmp_path / "1", state)
    target = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), state
    )
    out = io.load_pytree(tmp_path / "1", target)
    assert general_opens == []
    _same(out, io.load_pytree(tmp_path / "1", target, partial=True))
    assert jax.tree.structure(out) == jax.tree.structure(state)
    for value, saved in zip(jax.tree.leaves(out), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(np.asarray(value), np.asarray(saved))


@pytest.mark.parametrize(
    "damage", ["chunk", "zarr.json", "_METADATA", "_sharding", "array_metadatas/process_0"]
)
def test_a_full_load_in_one_pass_checks_the_data_and_every_recorded_file(
    tmp_path: Path, damage: str
) -> None:
    state = _state()
    step = tmp_path / "1"
    io.save_pytree(step, state)
    item = step / "state"
    if damage in ("chunk", "zarr.json"):
        record = json.loads((item / "_tenure" / "item.json").read_text())
        located = record["located"][0]
        key = next(
            k
            for k in located["offsets"]
            if k.endswith("/c/0" if damage == "chunk" else "/zarr.json")
        )
        data_file = item / located["file"]
        data = bytearray(data_file.read_bytes())
        data[located["offsets"][key] + 2] ^= 0x01
        data_file.write_bytes(bytes(data))
    else:
        path = item / damage
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    with pytest.raises(io.CorruptCheckpointError):
        io.load_pytree(step, _targets(state, "sharded"))
    with pytest.raises(io.CorruptCheckpointError):
        io.verify(step)


def test_the_crc32_records_are_read_ahead_before_the_spans_reads_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, general_opens: list[Path]
) -> None:
    # Issued after the spans' reads, a cold read of the records the load parses first waits
    # in the disk's queue behind all of their bytes.
    state = _saved(tmp_path)
    events: list[Any] = []
    read_ahead, span_read = pytree.read_ahead, arrays.PackedSpan.read

    def ahead(paths: Any) -> None:
        events.append(sorted(p.name for p in paths))
        read_ahead(paths)

    def reading(span: arrays.PackedSpan) -> None:
        events.append("spans")
        span_read(span)

    monkeypatch.setattr(pytree, "read_ahead", ahead)
    monkeypatch.setattr(arrays.PackedSpan, "read", reading)
    out = io.load_pytree(tmp_path / "1", _targets(state, "sharded"))
    assert general_opens == []
    assert events[0] == ["checksums.process_0.json"]
    assert "spans" in events[1:]
    np.testing.assert_array_equal(np.asarray(out["a"]), state["a"])


def test_a_run_of_more_pieces_than_one_preadv_takes_is_read_whole(
    tmp_path: Path, general_opens: list[Path]
) -> None:
    # Each array is two pieces (its chunk and its zarr.json): more than `_IOV_MAX` in all.
    count = arrays._IOV_MAX // 2 + 8
    state = {f"w{i:04d}": np.full(3, i, np.int32) for i in range(count)}
    io.save_pytree(tmp_path / "1", state)
    out = io.load_pytree(tmp_path / "1", _targets(state, "sharded"))
    assert general_opens == []
    for key, value in state.items():
        np.testing.assert_array_equal(np.asarray(out[key]), value)


def test_int_dict_keys_load_in_one_pass_as_the_general_load_gives_them(
    tmp_path: Path, general_opens: list[Path]
) -> None:
    leaf = np.arange(4, dtype=np.float32)
    state = {"layers": {0: {"w": leaf}, 1: {"w": leaf + 1}}}
    io.save_pytree(tmp_path / "1", state)
    target = _targets(state, "sharded")
    out = io.load_pytree(tmp_path / "1", target)
    assert general_opens == []
    _same(out, io.load_pytree(tmp_path / "1", target, partial=True))
    assert list(out["layers"]) == [0, 1]
    np.testing.assert_array_equal(np.asarray(out["layers"][1]["w"]), leaf + 1)
