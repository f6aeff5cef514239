"""Handlers: how one item's `args` become what `tenure.io` stores, and back.

Orbax pairs each `CheckpointArgs` class with a `CheckpointHandler` that writes its own
files. Here every handler stores through `tenure.io` (so every item gets tenure's atomic,
Orbax-readable format) and only converts values on the way in and out. To plug in an item
type of your own, subclass `CheckpointHandler` and register args classes with
`tenure.args.register_with_handler`.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from tenure import io
from tenure.io.storage import Location


def abstract_of(tree: Any) -> Any:
    """`tree` with each jax.Array replaced by its shape, dtype and sharding, so a restore
    reads into the same layout without holding on to the arrays themselves."""

    def leaf(x: Any) -> Any:
        if isinstance(x, jax.Array) and not jax.numpy.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)  # type: ignore[no-untyped-call]
        return x

    return jax.tree.map(leaf, tree)


class CheckpointHandler:
    """Stores an item's value as it is and returns what `tenure.io` reads back.

    Examples:
        >>> import tempfile
        >>> from tenure import io
        >>> step = tempfile.mkdtemp() + "/0"
        >>> handler = JsonCheckpointHandler()
        >>> io.save_checkpointables(step, {"cfg": handler.to_store(7)})
        >>> handler.from_store(io.load_checkpointables(step)["cfg"], None)
        7
    """

    def to_store(self, item: Any) -> Any:
        """The value handed to `tenure.io` for the save args' `item`."""
        return item

    def abstract(self, item: Any) -> Any:
        """The target handed to `tenure.io` for the restore args' `item` (None: as saved)."""
        return item

    def from_store(self, value: Any, item: Any) -> Any:
        """The restored value, from what `tenure.io` read."""
        return value

    def metadata(self, step_dir: Location, name: str) -> Any:
        """What `item_metadata` reports for the item; None when it has no tree."""
        return None


class StandardCheckpointHandler(CheckpointHandler):
    """Pytrees of arrays and scalars; restore targets may be arrays or shape structs.

    Examples:
        >>> StandardCheckpointHandler().abstract(None) is None
        True
    """

    def abstract(self, item: Any) -> Any:
        return None if item is None else abstract_of(item)

    def metadata(self, step_dir: Location, name: str) -> Any:
        return io.pytree_metadata(step_dir, name=name)


class PyTreeCheckpointHandler(StandardCheckpointHandler):
    """Generic pytrees; stored exactly as `StandardCheckpointHandler` stores them.

    Examples:
        >>> isinstance(PyTreeCheckpointHandler(), StandardCheckpointHandler)
        True
    """


class ArrayCheckpointHandler(StandardCheckpointHandler):
    """One array (jax or numpy) or scalar.

    Examples:
        >>> from pathlib import Path
        >>> ArrayCheckpointHandler().metadata(Path("/nowhere"), "x") is None
        True
    """

    def metadata(self, step_dir: Location, name: str) -> Any:
        return None


class JsonCheckpointHandler(CheckpointHandler):
    """JSON values (dicts, lists, strings, numbers, booleans, None).

    Examples:
        >>> JsonCheckpointHandler().to_store({"lr": 0.1})
        {'lr': 0.1}
    """


class JaxRandomKeyCheckpointHandler(CheckpointHandler):
    """A JAX PRNG key, typed (`jax.random.key`) or raw (`jax.random.PRNGKey`).

    Examples:
        >>> JaxRandomKeyCheckpointHandler().from_store(np.zeros(2, np.uint32), None).dtype
        dtype('uint32')
    """

    def from_store(self, value: Any, item: Any) -> Any:
        # A raw key is stored as a plain uint32 array; hand it back as a jax array.
        return value if isinstance(value, jax.Array) else jax.numpy.asarray(value)


class NumpyRandomKeyCheckpointHandler(CheckpointHandler):
    """Numpy random state: a `Generator`, its `bit_generator.state` dict, or the legacy
    tuple of `np.random.get_state()`; it comes back in the form it was saved in.

    Examples:
        >>> handler = NumpyRandomKeyCheckpointHandler()
        >>> state = np.random.RandomState(0).get_state()
        >>> back = handler.from_store(handler.to_store(state), None)
        >>> back[0], bool((back[1] == state[1]).all())
        ('MT19937', True)
    """

    def to_store(self, item: Any) -> Any:
        if isinstance(item, tuple):  # np.random.get_state(): (name, keys, pos, gauss...)
            name, keys, position, has_gauss, gauss = item
            return {
                "legacy_state": [str(name), np.asarray(keys).tolist(), int(position)],
                "gauss": [int(has_gauss), float(gauss)],
            }
        return item

    def from_store(self, value: Any, item: Any) -> Any:
        if isinstance(value, dict) and "legacy_state" in value:
            name, keys, position = value["legacy_state"]
            has_gauss, gauss = value["gauss"]
            return (name, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss)
        return value


class ProtoCheckpointHandler(CheckpointHandler):
    """A protocol buffer message, stored as its text format (needs `protobuf`); restore
    args name the message class.

    Examples:
        >>> from google.protobuf import duration_pb2
        >>> handler = ProtoCheckpointHandler()
        >>> text = handler.to_store(duration_pb2.Duration(seconds=3))
        >>> handler.from_store(text, duration_pb2.Duration).seconds
        3
    """

    def to_store(self, item: Any) -> Any:
        from google.protobuf import text_format  # type: ignore[import-untyped]

        return str(text_format.MessageToString(item))

    def abstract(self, item: Any) -> Any:
        return None

    def from_store(self, value: Any, item: Any) -> Any:
        from google.protobuf import text_format

        if item is None:
            return value  # no message class given: the text format itself
        return text_format.Parse(value, item())
