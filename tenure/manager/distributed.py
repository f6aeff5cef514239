"""Agreement between processes under `jax.distributed`, through JAX's own runtime."""

from __future__ import annotations

import numpy as np

from tenure import io


def broadcast_decision(decision: bool) -> bool:
    """The primary process's decision, sent to every process."""
    from jax.experimental import multihost_utils

    value = multihost_utils.broadcast_one_to_all(np.asarray(decision, dtype=np.bool_))
    return bool(value)


def reached_preemption_sync_point(step: int) -> bool:
    from jax.experimental import multihost_utils

    try:
        return bool(multihost_utils.reached_preemption_sync_point(step))
    except RuntimeError:  # the preemption service is not running in this job
        return False


def processes() -> io.Processes:
    """This process's index and a barrier over JAX's distributed key-value store."""
    import jax
    from jax.experimental import multihost_utils

    def barrier(name: str) -> None:
        multihost_utils.sync_global_devices(name)

    return io.Processes(jax.process_index(), jax.process_count(), barrier)
