"""tenure.CheckpointManager's own behaviour: items, args kinds, options, errors."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from google.protobuf import duration_pb2

import tenure
import tenure.args as args
from tenure.compat import (
    ArgsError,
    CheckpointManager,
    CheckpointManagerOptions,
    HandlerRegistrationError,
    NoCheckpointError,
    StandardCheckpointHandler,
)
from tenure.manager import StepAlreadyExistsError, StepNameFormat
from tenure.retention import NewBestPolicy


def w(step: int) -> dict[str, np.ndarray]:
    return {"w": np.full(3, float(step))}


def test_every_args_kind_round_trips_and_restores_without_args(tmp_path: Path) -> None:
    generator = np.random.default_rng(3)
    legacy = np.random.RandomState(5).get_state()
    items = args.Composite(
        tree=args.PyTreeSave({"a": [np.arange(3), 2.5]}),
        array=args.ArraySave(np.eye(2)),
        config=args.JsonSave({"lr": 0.1}),
        key=args.JaxRandomKeySave(jax.random.key(7)),
        raw_key=args.JaxRandomKeySave(jax.random.PRNGKey(7)),
        rng=args.NumpyRandomKeySave(generator),
        legacy_rng=args.NumpyRandomKeySave(legacy),
        proto=args.ProtoSave(duration_pb2.Duration(seconds=9)),
    )
    with CheckpointManager(tmp_path) as mngr:
        assert mngr.save(0, args=items)
        for out in (
            mngr.restore(0),
            mngr.restore(0, args=args.Composite(**dict.fromkeys(items))),
        ):
            np.testing.assert_array_equal(out.tree["a"][0], np.arange(3))
            np.testing.assert_array_equal(out.array, np.eye(2))
            assert out.config == {"lr": 0.1}
            assert (
                jax.random.key_data(out.key).tolist()
                == jax.random.key_data(jax.random.key(7)).tolist()
            )
            assert out.raw_key.tolist() == jax.random.PRNGKey(7).tolist()
            assert out.rng.random() == np.random.default_rng(3).random()
            assert out.legacy_rng[0] == "MT19937"
            np.testing.assert_array_equal(out.legacy_rng[1], legacy[1])
        typed = mngr.restore(0, args=args.Composite(proto=args.ProtoRestore(duration_pb2.Duration)))
        assert typed.proto.seconds == 9


def test_restore_without_args_uses_the_handler_given_at_construction(tmp_path: Path) -> None:
    with CheckpointManager(tmp_path) as mngr:
        mngr.save(0, args=args.StandardSave(w(0)))
    with CheckpointManager(tmp_path, item_handlers=StandardCheckpointHandler()) as mngr:
        np.testing.assert_array_equal(mngr.restore(None)["w"], w(0)["w"])
        assert mngr.item_metadata(0)["w"].shape == (3,)


def test_save_follows_the_policy_force_and_refuses_old_steps(tmp_path: Path) -> None:
    options = CheckpointManagerOptions(save_interval_steps=5, enable_async_checkpointing=False)
    with CheckpointManager(tmp_path, options=options) as mngr:
        assert [mngr.save(s, args=args.StandardSave(w(s))) for s in range(7)] == [
            True, False, False, False, False, True, False,
        ]  # fmt: skip
        assert not mngr.should_save(5)
        assert not mngr.save(3, args=args.StandardSave(w(3)))  # not after the newest
        assert mngr.save(3, args=args.StandardSave(w(3)), force=True)
        with pytest.raises(StepAlreadyExistsError):
            mngr.save(5, args=args.StandardSave(w(5)), force=True)
        assert mngr.all_steps() == [0, 3, 5]


def test_best_step_and_metrics(tmp_path: Path) -> None:
    options = CheckpointManagerOptions(best_fn=lambda m: m["acc"], max_to_keep=2)
    with CheckpointManager(tmp_path, options=options) as mngr:
        for step, acc in [(0, 0.5), (1, 0.9), (2, 0.7), (3, 0.6)]:
            mngr.save(step, args=args.StandardSave(w(step)), metrics={"acc": np.float32(acc)})
        mngr.wait_until_finished()
        assert mngr.all_steps() == [1, 2, 3]  # the two best, and the newest
        assert mngr.best_step() == 1
        assert mngr.metrics(1) == pytest.approx({"acc": 0.9})
        assert mngr.metrics(0) is None
    with CheckpointManager(tmp_path) as mngr:
        assert mngr.best_step() == 3  # without best_fn: the latest


def test_step_names_read_only_and_create(tmp_path: Path) -> None:
    options = CheckpointManagerOptions(step_prefix="ckpt", step_format_fixed_length=4)
    with CheckpointManager(tmp_path, options=options) as mngr:
        mngr.save(7, args=args.StandardSave(w(7)))
    assert (tmp_path / "ckpt_0007" / "default").is_dir()
    named = CheckpointManagerOptions(
        step_name_format=StepNameFormat("ckpt", 4), read_only=True, step_prefix="ignored"
    )
    with CheckpointManager(tmp_path, options=named) as mngr:
        assert mngr.all_steps() == [7]
        assert not mngr.save(8, args=args.StandardSave(w(8)), force=True)
        mngr.delete(7)  # skipped, as in Orbax
        assert mngr.all_steps() == [7]
    with pytest.raises(NoCheckpointError, match="create"):
        CheckpointManager(tmp_path / "missing", options=CheckpointManagerOptions(create=False))


def test_restore_from_another_directory(tmp_path: Path) -> None:
    with CheckpointManager(tmp_path / "a") as mngr:
        mngr.save(4, args=args.StandardSave(w(4)))
    with CheckpointManager(tmp_path / "b") as mngr:
        out = mngr.restore(None, directory=tmp_path / "a")
        np.testing.assert_array_equal(out["w"], w(4)["w"])
        with pytest.raises(NoCheckpointError):
            mngr.restore(None)


def test_wrong_args_are_refused_with_clear_errors(tmp_path: Path) -> None:
    with CheckpointManager(tmp_path) as mngr:
        with pytest.raises(ArgsError, match="by keyword"):
            mngr.save(0, args=w(0))  # type: ignore[arg-type]
        mngr.save(0, args=args.StandardSave(w(0)))
        with pytest.raises(ArgsError, match="one unnamed item"):
            mngr.save(1, args=args.Composite(a=args.StandardSave(w(1))))
        with pytest.raises(NoCheckpointError, match="step 9"):
            mngr.restore(9)
    with (
        CheckpointManager(tmp_path / "named", item_names=["a"]) as mngr,
        pytest.raises(ArgsError, match="named items"),
    ):
        mngr.save(0, args=args.StandardSave(w(0)))
    with pytest.raises(ArgsError, match="mutually exclusive"):
        CheckpointManager(tmp_path, item_names=["a"], handler_registry={})
    with pytest.raises(HandlerRegistrationError, match="for_save"):
        args.register_with_handler(StandardCheckpointHandler)
    with pytest.raises(ArgsError, match="metrics"):
        args.Composite(metrics=args.JsonSave(1))


def test_async_save_is_listed_while_in_flight_and_read_only_refuses_writes(tmp_path: Path) -> None:
    with CheckpointManager(tmp_path) as mngr:
        mngr.save(0, args=args.StandardSave(w(0)))
        assert mngr.latest_step() == 0  # listed, committed or not
        np.testing.assert_array_equal(mngr.restore(0)["w"], w(0)["w"])
        mngr.check_for_errors()
        assert not mngr.is_saving_in_progress()
    with CheckpointManager(tmp_path, options=CheckpointManagerOptions(read_only=True)) as mngr:
        assert not mngr.should_save(1)
        assert not mngr.save(1, args=args.StandardSave(w(1)), force=True)


def test_the_save_policy_sees_the_metrics_as_the_checkpointer_does(tmp_path: Path) -> None:
    """Issue 13, defect 2: the manager asked the policy without the metrics, so NewBestPolicy
    (which needs them) saved nothing where tenure.Checkpointer saved steps 0, 1 and 2."""
    policy = NewBestPolicy("loss", mode="min")
    losses = [3.0, 2.0, 1.0, 1.5]
    with tenure.Checkpointer(tmp_path / "tenure", save_decision_policy=policy) as ckptr:
        for step, loss in enumerate(losses):
            ckptr.save(step, w(step), metrics={"loss": loss})
        expected = [c.step for c in ckptr.checkpoints]
    assert expected == [0, 1, 2]
    options = CheckpointManagerOptions(save_decision_policy=policy)
    with CheckpointManager(tmp_path / "compat", options=options) as mngr:
        for step, loss in enumerate(losses):
            mngr.save(step, args=args.StandardSave(w(step)), metrics={"loss": np.float32(loss)})
        mngr.wait_until_finished()
        assert mngr.all_steps() == expected
