"""Damage to any byte of a step is either caught by both `load` and `verify`, or harmless.

Law: after a single bit flip, a truncation or a zeroing of any one file of a committed step,
either `load_checkpointables` raises a `TenureIOError` and `verify` raises a
`CorruptCheckpointError` naming the step, or the load returns exactly what was saved (equal
values, equal dtypes, equal strings and JSON) and `verify` passes. Never a silent wrong
value, a raw exception, or a crash.

Each array layout (per-array zarr3 directories, OCDBT) gets its own step. The normal run tries
100 cases per layout from a fixed seed; `TENURE_FUZZ_CASES` sets the count per layout (the
soak profile, `TENURE_HYPOTHESIS_PROFILE=soak`, defaults to 3,000) and `TENURE_FUZZ_SEED` the
seed.
"""

import os
import random
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

from tenure import io

_SOAK = os.environ.get("TENURE_HYPOTHESIS_PROFILE") == "soak"
CASES = int(os.environ.get("TENURE_FUZZ_CASES", 3_000 if _SOAK else 100))
SEED = int(os.environ.get("TENURE_FUZZ_SEED", 20_260_101))

Damage = Callable[[bytes, random.Random], bytes]


def _flip_bit(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    bit = rng.randrange(len(out) * 8)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def _zero(data: bytes, rng: random.Random) -> bytes:
    return bytes(len(data))


def _saved(mesh: jax.sharding.Mesh) -> dict[str, Any]:
    sharded = jax.device_put(
        np.arange(32, dtype=np.float32).reshape(8, 4), jax.NamedSharding(mesh, jax.P("x"))
    )
    return {
        "state": {
            "w": sharded,
            "b": np.arange(6, dtype=np.int16),
            "big_endian": np.arange(3, dtype=">i4"),
            # Larger than a packed piece: its chunk is read straight from an OCDBT data file.
            "emb": np.arange(80_000, dtype=np.float32),
            "lr": 0.5,
            "name": "mlp",
        },
        "config": {"layers": [4, 4], "act": "relu"},
    }


def _assert_exact(loaded: Any, saved: Any, path: str = "") -> None:
    """Equal structure, values and dtypes (native byte order), strings and JSON."""
    if isinstance(saved, dict):
        assert isinstance(loaded, dict), path
        assert set(loaded) == set(saved), path
        for key in saved:
            _assert_exact(loaded[key], saved[key], f"{path}/{key}")
    elif isinstance(saved, np.ndarray | jax.Array):
        expected = np.asarray(saved)
        got = np.asarray(loaded)
        assert got.dtype == expected.dtype.newbyteorder("="), path
        assert np.array_equal(got, expected), path
    else:
        assert type(loaded) is type(saved), path
        assert loaded == saved, path


@pytest.fixture(scope="module", params=[False, True], ids=["per-array", "ocdbt"])
def template(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    mesh = jax.make_mesh((4, 2), ("x", "y"))
    saved = _saved(mesh)
    step = tmp_path_factory.mktemp("template") / "1"
    layout = io.ArrayLayout(ocdbt=request.param)
    io.save_checkpointables(step, saved, metrics={"loss": 0.25}, layout=layout)
    return step, saved


def _cases(step: Path) -> list[tuple[str, Damage]]:
    files = sorted(str(p.relative_to(step)) for p in step.rglob("*") if p.is_file())
    nonempty = [f for f in files if (step / f).stat().st_size]
    rng = random.Random(SEED)
    # Every file zeroed and truncated once, then random bit flips anywhere.
    cases: list[tuple[str, Damage]] = [(f, _zero) for f in nonempty]
    cases += [(f, _truncate) for f in nonempty]
    while len(cases) < CASES:
        cases.append((rng.choice(nonempty), _flip_bit))
    return cases


def _outcome(step: Path, saved: dict[str, Any]) -> str:
    try:
        loaded = io.load_checkpointables(step)
        metrics = io.read_step_metadata(step, check=True).metrics
    except io.TenureIOError as e:
        rejected: io.TenureIOError | None = e
    else:
        rejected = None
    if rejected is not None:
        with pytest.raises(io.CorruptCheckpointError, match=re.escape(str(step))):
            io.verify(step)
        return "rejected"
    checked = io.verify(step)
    assert checked == 5
    _assert_exact(loaded, saved)
    assert metrics == {"loss": 0.25}
    return "exact"


def test_no_damage_is_silent_law(
    template: tuple[Path, dict[str, Any]], tmp_path: Path, record_property: Any
) -> None:
    source, saved = template
    _assert_exact(io.load_checkpointables(source), saved)
    rng = random.Random(SEED + 1)
    outcomes: Counter[tuple[str, str]] = Counter()
    for number, (name, damage) in enumerate(_cases(source)):
        step = tmp_path / str(number)
        shutil.copytree(source, step)
        path = step / name
        path.write_bytes(damage(path.read_bytes(), rng))
        try:
            outcomes[(_outcome(step, saved), damage.__name__)] += 1
        except Exception as e:  # a raw exception is a failure too: name the case
            what = f"case {number}, {damage.__name__} of {name}"
            raise AssertionError(f"{what}: {type(e).__name__}: {e}") from e
        shutil.rmtree(step)
    record_property("fuzz_outcomes", dict(outcomes))
    print(f"{sum(outcomes.values())} cases: {dict(outcomes)}")
    assert sum(outcomes.values()) >= CASES
