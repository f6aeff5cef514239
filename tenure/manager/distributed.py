"""Agreement between processes under `jax.distributed`, through JAX's own runtime.

Barriers and shared values go through JAX's coordination service (its key-value store), not
through device collectives, so the save thread can wait on them while the training loop keeps
the devices busy. Every wait has a timeout, and a timeout names the processes that are late.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np

from tenure import io
from tenure.manager.errors import ProcessesTimedOutError

_instances = itertools.count()


def _client() -> Any:
    from jax._src import distributed

    client = distributed.global_state.client
    if client is None:
        raise ProcessesTimedOutError(
            "several JAX processes are running but jax.distributed is not initialized; call "
            "jax.distributed.initialize(...) before creating the Checkpointer"
        )
    return client


class Coordination:
    """Barriers and primary-to-all values for one Checkpointer, in every process.

    SPMD programs create their Checkpointers in the same order in every process, so the
    n-th Checkpointer of each process shares the key prefix `tenure/<n>/`.

    Examples:
        >>> Coordination.__name__
        'Coordination'
    """

    def __init__(self, timeout_secs: float) -> None:
        import jax

        self.index = int(jax.process_index())
        self.count = int(jax.process_count())
        self.timeout_ms = int(timeout_secs * 1000)
        self.prefix = f"tenure/{next(_instances)}"
        self._sequence = itertools.count()

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{next(self._sequence)}/{name}"

    def barrier(self, name: str) -> None:
        """Returns once every process reached this barrier; raises naming the late ones."""
        client = _client()
        key = self._key(name.replace("/", "|"))
        client.key_value_set(f"{key}/arrived/{self.index}", "1")
        try:
            client.wait_at_barrier(key, self.timeout_ms)
        except Exception as error:  # JAX reports a timeout as a runtime error
            arrived = {
                int(k.rsplit("/", 1)[-1]) for k, _ in client.key_value_dir_get(f"{key}/arrived/")
            }
            late = sorted(set(range(self.count)) - arrived)
            what = (
                f"processes {late} did not reach '{name}'"
                if late
                else f"'{name}' did not complete (every process reached it; one probably died)"
            )
            raise ProcessesTimedOutError(
                f"{what} within {self.timeout_ms / 1000:g} s; this is process {self.index} of "
                f"{self.count}. The step was not committed. Check the other processes' logs, "
                "then restart the job to resume from the last committed step"
            ) from error

    def processes(self) -> io.Processes:
        """This process's index and count, with the barrier above, for the I/O layer."""
        return io.Processes(self.index, self.count, self.barrier)

    def share(self, name: str, value: Any) -> Any:
        """The primary process's `value` (JSON), as seen by every process."""
        client = _client()
        key = self._key(name)
        if self.index == 0:
            client.key_value_set(key, json.dumps(value))
            return value
        try:
            return json.loads(client.blocking_key_value_get(key, self.timeout_ms))
        except Exception as error:
            raise ProcessesTimedOutError(
                f"process 0 did not publish '{name}' within {self.timeout_ms / 1000:g} s; "
                "it may have died: check its log and restart the job"
            ) from error

    def decide(self, decision: bool) -> bool:
        """The primary process's save decision, so that no process disagrees."""
        from jax.experimental import multihost_utils

        shared = multihost_utils.broadcast_one_to_all(np.asarray(decision, dtype=np.bool_))
        return bool(shared)


def reached_preemption_sync_point(step: int) -> bool:
    """JAX's preemption notice; False when the job runs no preemption service."""
    from jax.experimental import multihost_utils

    try:
        return bool(multihost_utils.reached_preemption_sync_point(step))
    except RuntimeError:
        return False
