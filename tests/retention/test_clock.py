"""A clock that steps back (NTP, VM migration): the laws of docs/policies.md, "When the
clock goes backwards". Each test names its law."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from tenure.retention import (
    CheckpointInfo,
    ContinuousCheckpointingPolicy,
    DecisionContext,
    LatestDuration,
    PreservationContext,
    YoungDalyPolicy,
)
from tenure.retention.info import steady_times

from .strategies import START, checkpoint_lists, policies

DAY = timedelta(days=1)
time_policies = st.one_of(
    policies,
    st.builds(LatestDuration, st.integers(1, 20 * 86_400).map(lambda s: timedelta(seconds=s))),
)


def _retime(checkpoints: list[CheckpointInfo], times: list[Any]) -> list[CheckpointInfo]:
    return [attrs.evolve(c, time=t) for c, t in zip(checkpoints, times, strict=True)]


@given(time_policies, checkpoint_lists(), st.data())
def test_a_step_back_moves_every_earlier_time_back_by_the_step(
    policy: Any, checkpoints: list[CheckpointInfo], data: st.DataObject
) -> None:
    """Law (the newest clock is right): when the clock steps back by D before checkpoint
    k (or before now, for a policy that measures from now), every policy decides as if
    each earlier time were D earlier."""
    from_now = isinstance(policy, LatestDuration) and policy.relative_to == "now"
    last = len(checkpoints) if from_now else len(checkpoints) - 1
    if last < 1:
        return
    later = timedelta(seconds=data.draw(st.integers(0, 10**6)))
    stamps = [*(c.time for c in checkpoints), checkpoints[-1].time + later]  # ..., now
    k = data.draw(st.integers(1, last))  # the step back comes just before stamps[k]
    d = timedelta(seconds=data.draw(st.integers(1, 40 * 86_400)))
    shift = d + (stamps[k] - stamps[k - 1])
    stepped = stamps[:k] + [t - shift for t in stamps[k:]]
    steadied = [t - d for t in stamps[:k]] + stepped[k:]
    context = PreservationContext(now=stepped[-1])
    on_stepped = policy.should_preserve(_retime(checkpoints, stepped[:-1]), context=context)
    on_steadied = policy.should_preserve(_retime(checkpoints, steadied[:-1]), context=context)
    assert list(on_stepped) == list(on_steadied)


@given(checkpoint_lists(), st.integers(0, 9**6))
def test_steady_times_never_run_backwards_and_keep_forward_gaps(
    checkpoints: list[CheckpointInfo], jitter: int
) -> None:
    """Law: steady times never decrease, end at the newest time, and every forward gap
    between neighbours is kept exactly."""
    back = [c.time - timedelta(seconds=(jitter * i) % 86_400) for i, c in enumerate(checkpoints)]
    stamped = _retime(checkpoints, back)
    steady = steady_times(stamped)
    assert all(a <= b for a, b in itertools.pairwise(steady))
    for i in range(1, len(back)):
        forward = max(back[i] - back[i - 1], timedelta(0))
        assert steady[i] - steady[i - 1] == forward
    assert steady[-1:] == back[-1:]


save_policies = st.one_of(
    st.builds(ContinuousCheckpointingPolicy, st.integers(1, 86_400)),
    st.builds(YoungDalyPolicy, st.integers(60, 10**6).map(lambda s: timedelta(seconds=s))),
)


@given(save_policies, st.integers(1, 40 * 86_400), st.integers(0, 10**6))
def test_a_save_stamped_in_the_future_restarts_the_interval(
    policy: Any, back: int, later: int
) -> None:
    """Law: a newest checkpoint stamped after the step being decided means the clock
    stepped back; the policy saves, and measures the next interval from that save."""
    context = DecisionContext(save_cost=10.0)
    previous = [CheckpointInfo(0, START)]
    now = START - timedelta(seconds=back)
    assert policy.should_save(CheckpointInfo(1, now), previous, context=context)
    saved = [*previous, CheckpointInfo(1, now)]
    step = CheckpointInfo(2, now + timedelta(seconds=later))
    fresh = policy.should_save(step, [CheckpointInfo(1, now)], context=context)
    assert policy.should_save(step, saved, context=context) == fresh


def test_continuous_checkpointing_keeps_saving_after_a_day_back() -> None:
    """The reported run: 600 s minimum interval, 60 s steps, the clock back a day at
    step 60; the 60 steps after it once saved nothing."""
    policy = ContinuousCheckpointingPolicy(600)
    saved: list[CheckpointInfo] = []
    for step in range(120):
        time = START + timedelta(seconds=60 * step) - (DAY if step >= 60 else timedelta(0))
        info = CheckpointInfo(step, time)
        if policy.should_save(info, saved, context=DecisionContext()):
            saved.append(info)
    assert [c.step for c in saved if c.step >= 60] == [60, 70, 80, 90, 100, 110]


def test_latest_duration_forgets_old_checkpoints_after_the_clock_steps_back() -> None:
    """The reported run: 120 checkpoints five minutes apart, then the clock back a day;
    LatestDuration(2h) once kept all 120."""
    checkpoints = [CheckpointInfo(s, START + timedelta(minutes=5 * s)) for s in range(120)]
    now = checkpoints[-1].time - DAY
    flags = LatestDuration(timedelta(hours=2)).should_preserve(
        checkpoints, context=PreservationContext(now=now)
    )
    assert sum(flags) == 25  # the newest and the 24 within two hours of it
    assert all(flags[-25:])
