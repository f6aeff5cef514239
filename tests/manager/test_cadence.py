"""Under failures, the Checkpointer makes the save decisions the failure simulator replays.

A training loop runs on a fake clock: each step takes a second, each save blocks it for
20 s (the store's save advances the clock), and at the failure times the loop is killed
and restarted from the newest checkpoint, as the simulator models it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tenure
from tenure.manager import _store
from tenure.retention import (
    Failures,
    LatestN,
    PreemptionCheckpointingPolicy,
    YoungDalyPolicy,
    daly_interval,
    simulate_failure_run,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=1)
BLOCKED = timedelta(seconds=20)
RESTART = timedelta(minutes=2)
STEPS = 4000
POLICY = YoungDalyPolicy(mtbf=timedelta(hours=6)) | PreemptionCheckpointingPolicy()


class Killed(Exception):
    """The process died."""


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Loop:
    """A training loop that dies at the given times and restarts from the newest checkpoint."""

    def __init__(self, root: Path, failures: list[datetime], monkeypatch: Any) -> None:
        self.root = root
        self.clock = FakeClock()
        self.failures: Iterator[datetime] = iter(failures)
        self.next_failure: datetime | None = next(self.failures, None)
        self.saved: list[int] = []
        self.resumed_from: list[int | None] = []
        self.costs: list[float | None] = []
        real_save = _store.save_async

        def blocking_save(*args: Any, **kwargs: Any) -> Any:
            end = self.clock.now + BLOCKED
            if self.next_failure is not None and self.next_failure < end:
                self.clock.now = self.next_failure
                raise Killed  # before anything is written: the save is lost
            self.clock.now = end
            return real_save(*args, **kwargs)

        monkeypatch.setattr(_store, "save_async", blocking_save)
        self.ckptr = self.open()

    def open(self) -> tenure.Checkpointer:
        return tenure.Checkpointer(
            self.root, save_decision_policy=POLICY, preservation_policy=LatestN(2), clock=self.clock
        )

    def run(self) -> None:
        step, decide = 0, True
        while True:
            if decide:
                try:
                    if self.ckptr.save(step, {"w": np.full(4, step)}):
                        self.saved.append(step)
                        self.costs.append(self.ckptr.save_cost)
                except Killed:
                    self.saved.append(step)
                    step, decide = self.restart()
                    continue
            if step == STEPS - 1:
                return
            arrival = self.clock.now + STEP
            if self.next_failure is not None and self.next_failure <= arrival:
                self.clock.now = self.next_failure
                step, decide = self.restart()
                continue
            self.clock.now, step, decide = arrival, step + 1, True

    def restart(self) -> tuple[int, bool]:
        self.ckptr.close()  # releases the root's lock, as the dead process's exit would
        self.next_failure = next(self.failures, None)
        self.clock.now += RESTART
        while self.next_failure is not None and self.next_failure <= self.clock.now:
            self.clock.now = self.next_failure + RESTART  # died again while restarting
            self.next_failure = next(self.failures, None)
        self.ckptr = self.open()
        latest = self.ckptr.latest
        if latest is None:
            self.resumed_from.append(None)
            return 0, True
        self.ckptr.load(latest.step)
        assert self.ckptr.save_cost is None  # a new process has measured nothing yet
        self.resumed_from.append(latest.step)
        return latest.step, False


@pytest.mark.parametrize("seed", [0, 1])
def test_checkpointer_under_failures_decides_as_the_simulator_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    # One failure during the very first save (a start from scratch), one during a
    # restart, and a few at random.
    offsets = sorted(
        [
            timedelta(seconds=10),
            timedelta(seconds=200),
            timedelta(seconds=250),
            *(timedelta(seconds=rng.uniform(300, STEPS)) for _ in range(3)),
        ]
    )
    loop = Loop(tmp_path, [START + offset for offset in offsets], monkeypatch)
    loop.run()
    loop.ckptr.close()

    simulated = simulate_failure_run(
        POLICY,
        LatestN(2),
        steps=STEPS,
        step_duration=STEP,
        failures=Failures(times=offsets),
        blocked_seconds=BLOCKED.total_seconds(),
        restart_duration=RESTART,
        start_time=START,
    )
    assert loop.saved == list(simulated.saved)
    assert loop.resumed_from == list(simulated.resumed_from)
    assert (loop.clock.now - START).total_seconds() == simulated.wall_seconds
    assert simulated.failures == len(offsets)


def test_young_daly_policy_converges_to_dalys_interval_for_the_measured_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = Loop(tmp_path, [], monkeypatch)
    loop.run()
    loop.ckptr.close()
    # The measured cost is the 20 s each save blocked the loop; the steps between saves
    # are Daly's interval for it (916.2 s of compute at 1 s a step), rounded up.
    assert loop.costs == [20.0] * len(loop.saved)
    expected = -(-daly_interval(20, 6 * 3600) // 1)
    assert expected == 917
    assert [b - a for a, b in zip(loop.saved, loop.saved[1:], strict=False)] == [917] * 4
