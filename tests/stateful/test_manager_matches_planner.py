"""The manager on real storage against the pure planner replayed: they must agree.

A hypothesis state machine drives a real `tenure.Checkpointer` on a temporary directory
(and, a second time, on an S3 prefix of the tests' moto server) with a fake clock: steps
advance, saves (sync and async) carry random metrics (NaN and missing included), preemption
signals arrive, the job restarts and resumes, a write fails half way (on disk), someone
deletes a step behind the manager's back, foreign files, numbered folders of somebody
else's, symlinked steps, leftovers of crashed saves and killed deletions appear in the root,
and a step's metadata is damaged. Saves hold one item or two (`state` and `opt_state`), and
some policies keep only `state` of some steps (`.only`), so retention thins steps too. After
every rule, the committed steps and the items each holds equal the model's: the save policy
and `plan_retention` replayed over the same history (its `thin` applied), where a damaged
step is quarantined (out of the model, never deleted) and nothing foreign is ever touched.
"""

from __future__ import annotations

import math
import os
import resource
import signal
import tempfile
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import tenure
from tenure.io import Location, ObjectPath
from tenure.io import root as rootfs
from tenure.io.storage import list_dir, remove_tree
from tenure.manager import DamagedCheckpointWarning
from tenure.retention import (
    BestN,
    CheckpointInfo,
    DecisionContext,
    EveryNSteps,
    FixedIntervalPolicy,
    InitialSavePolicy,
    LatestN,
    MinimumStepGapPolicy,
    NewBestPolicy,
    PreemptionCheckpointingPolicy,
    PreservationContext,
    Weekly,
    plan_retention,
)
from tests.conftest import S3_BUCKET

SAVE_POLICIES = [
    FixedIntervalPolicy(2) | PreemptionCheckpointingPolicy(),
    MinimumStepGapPolicy(3) | InitialSavePolicy() | PreemptionCheckpointingPolicy(),
    NewBestPolicy("loss", mode="min") | FixedIntervalPolicy(5) | PreemptionCheckpointingPolicy(),
]
KEEP_POLICIES = [
    LatestN(2),
    LatestN(2) | BestN(metric="loss", mode="min", n=2) | EveryNSteps(6),
    BestN(metric="loss", mode="max", n=1, keep_checkpoints_without_metrics=False),
    Weekly(2) | LatestN(1),
    LatestN(2) | EveryNSteps(4).only("state"),
    LatestN(1) | BestN(metric="loss", mode="min", n=2).only("state") | EveryNSteps(6),
]
ITEMS = [("state",), ("state", "opt_state")]
metrics = st.one_of(
    st.none(),
    st.just({}),
    st.builds(lambda v: {"loss": v}, st.floats(0, 10, allow_nan=False) | st.just(math.nan)),
)


def content(step: int) -> dict[str, Any]:
    """What a step saves: distinct per step, so a load proves which step it read."""
    return {"w": np.arange(6, dtype=np.float32) + step, "step": np.int64(step)}


def checkpointables(step: int, items: tuple[str, ...]) -> dict[str, Any]:
    """`state`, and an optimizer state beside it when two items are saved."""
    extra = {"opt_state": {"mu": np.zeros(4, np.float32) + step}} if len(items) > 1 else {}
    return {"state": content(step), **extra}


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class ManagerMatchesPlanner(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = self.make_root()
        self.clock = FakeClock()
        self.step = 0
        self.alive: list[CheckpointInfo] = []
        self.resumed_from: int | None = None
        self.preempted = False
        self.foreign: list[Location] = []
        self.damaged: set[int] = set()
        self.ckptr: tenure.Checkpointer

    def make_root(self) -> Location:
        return Path(tempfile.mkdtemp(prefix="tenure-stateful-"))

    @initialize(save=st.sampled_from(SAVE_POLICIES), keep=st.sampled_from(KEEP_POLICIES))
    def open(self, save: Any, keep: Any) -> None:
        self.save_policy, self.keep_policy = save, keep
        self.ckptr = self._new_checkpointer()

    def _new_checkpointer(self) -> tenure.Checkpointer:
        with warnings.catch_warnings():
            # Damaged steps are announced at every open; the invariants check them instead.
            warnings.simplefilter("ignore", DamagedCheckpointWarning)
            return tenure.Checkpointer(
                self.root,
                save_decision_policy=self.save_policy,
                preservation_policy=self.keep_policy,
                clock=self.clock,
                handle_signals=True,
                preemption_signals=[signal.SIGUSR1],
            )

    # -- the model: the pure decision code, replayed ------------------------------------

    def model_save(self, metrics: dict[str, float] | None, items: tuple[str, ...]) -> bool:
        # Only the item names matter to these policies (none has a byte budget).
        info = CheckpointInfo(self.step, self.clock(), metrics, dict.fromkeys(items, 1))
        context = DecisionContext(reached_preemption=self.preempted)
        if not self.save_policy.should_save(info, list(self.alive), context=context):
            return False
        self.alive.append(info)
        protected = [] if self.resumed_from is None else [self.resumed_from]
        plan = plan_retention(
            self.alive, self.keep_policy, PreservationContext(now=self.clock()), protected
        )
        self.alive = [
            attrs.evolve(c, item_bytes=_without(c.item_bytes, plan.thin.get(c.step, frozenset())))
            for c in self.alive
            if c.step in plan.keep
        ]
        return True

    # -- rules -----------------------------------------------------------------------------

    @rule(steps=st.integers(1, 3), seconds=st.integers(1, 3 * 86_400))
    def advance(self, steps: int, seconds: int) -> None:
        self.step += steps
        self.clock.now += timedelta(seconds=seconds)

    @rule(metrics=metrics, asynchronous=st.booleans(), items=st.sampled_from(ITEMS))
    def save(
        self, metrics: dict[str, float] | None, asynchronous: bool, items: tuple[str, ...]
    ) -> None:
        if self.alive and self.alive[-1].step >= self.step:
            self.step = self.alive[-1].step + 1
        expected = self.model_save(metrics, items)
        saved = checkpointables(self.step, items)
        if asynchronous:
            response = self.ckptr.save_checkpointables_async(self.step, saved, metrics=metrics)
            assert (response is not None) == expected
            if response is not None:
                response.staged()
                assert response.result()
        else:
            assert self.ckptr.save_checkpointables(self.step, saved, metrics=metrics) == expected

    @rule()
    def preemption_notice(self) -> None:
        os.kill(os.getpid(), signal.SIGUSR1)
        self.preempted = True
        assert self.ckptr.reached_preemption(self.step)

    @rule()
    def restart_and_resume(self) -> None:
        self.ckptr.close()
        self.ckptr = self._new_checkpointer()
        self.preempted = False
        # A writable open removes what killed deletions left, and nothing else.
        kinds = {leftover.kind for leftover in rootfs.leftovers(self.root)}
        assert not kinds & {"interrupted-delete", "interrupted-thin"}
        if self.alive:
            loaded = self.ckptr.load(abstract_state=content(0))
            np.testing.assert_array_equal(loaded["w"], content(self.alive[-1].step)["w"])
            self.resumed_from = self.alive[-1].step
        else:
            self.resumed_from = None

    @precondition(lambda self: self.step not in {c.step for c in self.alive})
    @rule()
    def write_fails_half_way(self) -> None:
        """The disk refuses to grow past 64 KiB in the middle of writing a big array."""
        big = {"w": np.ones(1_000_000, dtype=np.float32)}
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
        try:
            with pytest.raises(tenure.io.InsufficientSpaceError):
                self.ckptr.save(self.step, big, force=True)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, previous)

    @precondition(lambda self: len(self.alive) >= 2)
    @rule(data=st.data())
    def someone_deletes_a_step(self, data: st.DataObject) -> None:
        victim = data.draw(st.sampled_from(self.alive[:-1]))
        remove_tree(self.root / str(victim.step))
        self.ckptr.reload()
        self.alive.remove(victim)
        if self.resumed_from == victim.step:
            self.resumed_from = None

    @rule(name=st.sampled_from(["notes.txt", "tensorboard", "12abc", "007"]))
    def foreign_file_appears(self, name: str) -> None:
        path = self.root / name
        if path.exists():
            return
        if "." in name:
            path.write_text("not a checkpoint")
        else:
            path.mkdir()
            (path / "events").write_text("not a checkpoint")
        self.foreign.append(path)

    @rule(number=st.integers(5000, 5003))
    def numbered_folder_of_somebody_else_appears(self, number: int) -> None:
        """A folder whose name is a step, but holds no checkpoint: never listed or deleted."""
        path = self.root / str(number)
        if path.exists():
            return
        path.mkdir()
        (path / "notes.txt").write_text("not a checkpoint")
        self.foreign.append(path)

    @rule(number=st.integers(6000, 6001))
    def symlinked_step_appears(self, number: int) -> None:
        """A link to a real checkpoint elsewhere: never listed, followed or deleted."""
        assert isinstance(self.root, Path)
        link = self.root / str(number)
        if link.is_symlink():
            return
        target = Path(tempfile.mkdtemp(prefix="tenure-elsewhere-")) / "1"
        tenure.io.save_pytree(target, content(1))
        link.symlink_to(target, target_is_directory=True)
        self.foreign.extend([link, target])

    @precondition(lambda self: len(self.alive) >= 2)
    @rule(data=st.data())
    def a_steps_metadata_is_damaged(self, data: st.DataObject) -> None:
        """Quarantined: out of every decision, kept on disk, the run resumes elsewhere."""
        victim = data.draw(st.sampled_from(self.alive[:-1]))
        (self.root / str(victim.step) / rootfs.STEP_METADATA_FILE).write_bytes(b'{"item_ha')
        with pytest.warns(DamagedCheckpointWarning, match=f"step {victim.step}"):
            self.ckptr.reload()
        self.alive.remove(victim)
        self.damaged.add(victim.step)
        if self.resumed_from == victim.step:
            self.resumed_from = None

    @rule(step=st.integers(0, 40))
    def leftover_of_a_killed_deletion_appears(self, step: int) -> None:
        (self.root / f"{step}.orbax-checkpoint-tmp.tenure-deleting" / "state").mkdir(
            parents=True, exist_ok=True
        )

    @rule(step=st.integers(0, 40))
    def leftover_of_a_killed_thinning_appears(self, step: int) -> None:
        """A thinning killed before its intent was written: the step was never changed."""
        (self.root / f"{step}.orbax-checkpoint-tmp.tenure-thinning" / "opt_state").mkdir(
            parents=True, exist_ok=True
        )

    @rule(step=st.integers(0, 40), as_file=st.booleans())
    def leftover_of_a_crashed_save_appears(self, step: int, as_file: bool) -> None:
        """A temporary name belongs to the checkpointer: never listed, may be replaced."""
        path = self.root / f"{step}.orbax-checkpoint-tmp"
        if path.exists():
            return
        if as_file:
            path.write_text("half written")
        else:
            (path / "state").mkdir(parents=True)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def disk_matches_model(self) -> None:
        if not hasattr(self, "ckptr"):
            return
        self.ckptr.wait()
        expected = [c.step for c in self.alive]
        on_disk = sorted(
            int(p.name)
            for p in list_dir(self.root)
            if p.name.isdigit() and p.name == str(int(p.name)) and tenure.io.is_committed(p)
        )
        assert on_disk == sorted([*expected, *self.damaged])
        assert [c.step for c in self.ckptr.checkpoints] == expected
        assert {d.step for d in self.ckptr.damaged} == self.damaged
        # The items too: as the manager describes them, as the step's metadata lists them,
        # and as directories in the step.
        items = {c.step: sorted(c.item_bytes or ()) for c in self.alive}
        assert {c.step: sorted(c.item_bytes or ()) for c in self.ckptr.checkpoints} == items
        for c in self.ckptr.checkpoints:
            assert list(tenure.io.read_step_metadata(c.path).item_names) == items[c.step]
            held = sorted(p.name for p in c.path.iterdir() if p.name in ("state", "opt_state"))
            assert held == items[c.step]

    @invariant()
    def latest_loads_what_was_saved(self) -> None:
        if not hasattr(self, "ckptr") or not self.alive:
            return
        latest = self.ckptr.latest
        assert latest is not None
        assert latest.step == self.alive[-1].step
        loaded = tenure.io.load_pytree(latest.path)
        np.testing.assert_array_equal(loaded["w"], content(latest.step)["w"])

    @invariant()
    def foreign_files_survive(self) -> None:
        assert all(p.exists() for p in self.foreign)  # links still lead to their targets

    def teardown(self) -> None:
        if hasattr(self, "ckptr"):
            self.ckptr.close()
        remove_tree(self.root)


ManagerMatchesPlanner.TestCase.settings = settings(
    max_examples=settings().max_examples,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestManagerMatchesPlanner = ManagerMatchesPlanner.TestCase


class ManagerMatchesPlannerOnS3(ManagerMatchesPlanner):
    """The same machine on an S3 prefix, where a crashed save leaves a prefix without its
    commit marker. The disk-full rule has no S3 counterpart here (moto sets no quota)."""

    def make_root(self) -> Location:
        return ObjectPath("s3", S3_BUCKET, f"stateful-{uuid.uuid4().hex[:12]}")

    write_fails_half_way = None  # type: ignore[assignment]
    symlinked_step_appears = None  # type: ignore[assignment]  # no links in a bucket
    leftover_of_a_killed_deletion_appears = None  # type: ignore[assignment]  # no renames

    @rule(step=st.integers(0, 40))
    def leftover_of_a_killed_thinning_appears(self, step: int) -> None:
        """A thinning killed before its intent was written: the step was never changed."""
        prefix = self.root / f"{step}.orbax-checkpoint-tmp.tenure-thinning"
        (prefix / rootfs.STEP_METADATA_FILE).write_text("{}")

    @rule(number=st.integers(5000, 5003))
    def numbered_folder_of_somebody_else_appears(self, number: int) -> None:
        """A prefix named like a step, without a marker or checkpoint files: never touched."""
        path = self.root / str(number) / "notes.txt"
        if not path.exists():
            path.write_text("not a checkpoint")
            self.foreign.append(path)

    @rule(step=st.integers(0, 40))
    def leftover_of_a_crashed_save_appears(self, step: int, as_file: bool = False) -> None:
        """Objects of a save that never wrote its marker: never listed, replaced on save."""
        if step in {c.step for c in self.alive}:
            return
        (self.root / str(step) / "state" / "_METADATA").write_text("half written")


# Every rule costs several requests to moto (a Python server): a quarter of the examples.
ManagerMatchesPlannerOnS3.TestCase.settings = settings(
    ManagerMatchesPlanner.TestCase.settings, max_examples=max(10, settings().max_examples // 4)
)
TestManagerMatchesPlannerOnS3 = ManagerMatchesPlannerOnS3.TestCase


def _without(sizes: Any, items: frozenset[str]) -> dict[str, int] | None:
    return None if sizes is None else {k: v for k, v in sizes.items() if k not in items}


@pytest.fixture(autouse=True)
def _s3(s3_server: object) -> None:
    """Points tenure at the tests' S3 server (the state machines are unittest cases)."""
