"""The usage examples of the reference documents (Orbax's CheckpointManager, its save and
restore methods, and ocp.args), run on tenure with only the import changed: where Orbax
code says `import orbax.checkpoint as ocp`, these say `import tenure.compat as ocp`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

import tenure.compat as ocp
from tenure.args import StandardRestore, StandardSave
from tenure.compat import CheckpointManager, CheckpointManagerOptions, args
from tenure.compat.handlers import JsonCheckpointHandler

train_state = {"params": {"w": np.arange(4.0)}, "opt": {"mu": np.zeros(4)}}
abstract_train_state = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), train_state)
json_states = {"epoch": 3, "dataset": "c4"}


def same(a: Any, b: Any) -> bool:
    return bool(jax.tree.all(jax.tree.map(lambda x, y: np.array_equal(x, y), a, b)))


def test_class_example_multiple_items(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Multiple items.
    with CheckpointManager(
        tmp_path / "dir",
        # Global metadata.
        metadata={"version": 1.1, "lang": "en"},
    ) as mngr:
        mngr.save(
            0,
            args=args.Composite(
                train_state=args.StandardSave(train_state),
                json_states=args.JsonSave(json_states),
            ),
            # Metadata varying by step.
            custom_metadata={"learning_rate": 0.001},
        )
        restored = mngr.restore(0)
        print(restored.train_state)
        print(restored.json_states)
        assert same(restored.train_state, train_state)
        assert restored.json_states == json_states
        restored = mngr.restore(
            0,
            args=args.Composite(
                train_state=args.StandardRestore(abstract_train_state),
            ),
        )
        print(restored.train_state)
        with pytest.raises(AttributeError, match="json_states"):
            print(restored.json_states)  # Error, not restored
        global_metadata = mngr.metadata()
        step_metadata = mngr.metadata(0)  # custom_metadata in here
    assert global_metadata.custom_metadata == {"version": 1.1, "lang": "en"}
    assert step_metadata.custom_metadata == {"learning_rate": 0.001}
    assert "'epoch': 3" in capsys.readouterr().out


def test_class_example_single_unnamed_item(tmp_path: Path) -> None:
    # Single, unnamed (default) item.
    with CheckpointManager(
        tmp_path / "dir",
        options=CheckpointManagerOptions(max_to_keep=5),
    ) as mngr:
        mngr.save(0, args=StandardSave(train_state))
        restored = mngr.restore(0)
        assert same(restored, train_state)
        restored = mngr.restore(0, args=StandardRestore(abstract_train_state))
        assert same(restored, train_state)
    assert (tmp_path / "dir" / "0" / "default").is_dir()


def test_save_and_restore_examples(tmp_path: Path) -> None:
    directory, step = tmp_path / "single", 10
    my_train_state, my_metadata = train_state, {"notes": ["a"]}
    # Single item
    mngr = ocp.CheckpointManager(directory)
    mngr.save(step, args=ocp.args.StandardSave(my_train_state))
    assert same(
        mngr.restore(step, args=ocp.args.StandardRestore(abstract_train_state)), train_state
    )
    mngr.close()

    directory = tmp_path / "multiple"
    # Multiple items
    mngr = ocp.CheckpointManager(directory, item_names=("state", "meta"))
    mngr.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(my_train_state), meta=ocp.args.JsonSave(my_metadata)
        ),
    )
    mngr.close()

    mngr = ocp.CheckpointManager(directory, item_names=("state", "meta"))
    restored = mngr.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_train_state),
            meta=ocp.args.JsonRestore(),
        ),
    )
    assert same(restored.state, train_state)
    assert restored.meta == my_metadata
    # If it is acceptable to restore without providing additional arguments, and if a
    # save has already been performed, it is ok to do the following:
    again = mngr.restore(step, args=ocp.args.Composite(state=None, meta=None))
    assert same(again.state, train_state)
    assert again.meta == my_metadata
    mngr.close()


class MyCheckpointHandler(JsonCheckpointHandler):
    """Stores the item with its options; restores only the item."""

    def to_store(self, item: Any) -> Any:
        return {"item": item, "stored_by": "MyCheckpointHandler"}

    def from_store(self, value: Any, item: Any) -> Any:
        return value["item"]


@ocp.args.register_with_handler(MyCheckpointHandler, for_save=True)
@dataclasses.dataclass
class MyCheckpointSave(ocp.args.CheckpointArgs):
    item: Any
    options: Any


@ocp.args.register_with_handler(MyCheckpointHandler, for_restore=True)
@dataclasses.dataclass
class MyCheckpointRestore(ocp.args.CheckpointArgs):
    options: Any


def test_args_example_custom_handler(tmp_path: Path) -> None:
    # Orbax's example saves with a bare Checkpointer; here the same args go through a manager.
    with ocp.CheckpointManager(tmp_path) as mngr:
        mngr.save(
            0, args=ocp.args.Composite(custom_state=MyCheckpointSave(item=[1, 2], options=None))
        )
        out = mngr.restore(
            0, args=ocp.args.Composite(custom_state=MyCheckpointRestore(options=None))
        )
    assert out.custom_state == [1, 2]
    assert ocp.args.get_registered_handler_cls(MyCheckpointSave) is MyCheckpointHandler
    assert ocp.args.get_registered_args_cls(MyCheckpointHandler) == (
        MyCheckpointSave,
        MyCheckpointRestore,
    )
