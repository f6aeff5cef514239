"""One process of a multi-process tenure job (run by test_jax_distributed.py).

    python worker.py ROLE PROCESS_ID NUM_PROCESSES PORT ROOT

Each process has 2 virtual CPU devices and joins `jax.distributed` on localhost.
"""

from __future__ import annotations

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax
import numpy as np

jax.config.update("jax_cpu_collectives_implementation", "gloo")

ROLE, PID, COUNT, PORT, ROOT = (
    sys.argv[1],
    int(sys.argv[2]),
    int(sys.argv[3]),
    sys.argv[4],
    sys.argv[5],
)
if COUNT > 1:
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{PORT}", num_processes=COUNT, process_id=PID
    )

import tenure  # noqa: E402
from tenure.retention import FixedIntervalPolicy, LatestN  # noqa: E402

ROWS = 16


def expected(step: int) -> dict[str, np.ndarray]:
    """The global values saved at `step`, whatever the topology."""
    base = np.arange(ROWS * 4, dtype=np.float32).reshape(ROWS, 4)
    return {"sharded": base + step, "replicated": base * 2 + step, "partial": base * 3 + step}


def shardings() -> dict[str, jax.sharding.NamedSharding]:
    devices = np.array(jax.devices())
    flat = jax.sharding.Mesh(devices, ("x",))
    grid = jax.sharding.Mesh(devices.reshape(-1, 2), ("proc", "local"))
    return {
        "sharded": jax.sharding.NamedSharding(flat, jax.P("x")),
        "replicated": jax.sharding.NamedSharding(flat, jax.P()),
        # Split across each process's two devices, replicated across processes.
        "partial": jax.sharding.NamedSharding(grid, jax.P("local")),
    }


def global_state(step: int) -> dict[str, jax.Array]:
    values = expected(step)
    return {
        name: jax.make_array_from_callback((ROWS, 4), sharding, lambda i, v=values[name]: v[i])
        for name, sharding in shardings().items()
    }


def check(state: dict[str, jax.Array], step: int) -> None:
    """Every shard this process holds equals the saved values."""
    values = expected(step)
    for name, array in state.items():
        assert array.sharding == shardings()[name], (name, array.sharding)
        for shard in array.addressable_shards:
            np.testing.assert_array_equal(np.asarray(shard.data), values[name][shard.index])


def abstract() -> dict[str, jax.ShapeDtypeStruct]:
    return {
        name: jax.ShapeDtypeStruct((ROWS, 4), np.float32, sharding=sharding)
        for name, sharding in shardings().items()
    }


def open_root() -> tenure.Checkpointer:
    return tenure.Checkpointer(
        ROOT,
        save_decision_policy=FixedIntervalPolicy(1),
        preservation_policy=LatestN(2),
        multiprocess_timeout_secs=20,
    )


def main() -> None:
    if ROLE == "save":
        with open_root() as ckptr:
            for step in range(4):
                assert ckptr.save(step, global_state(step), metrics={"loss": 1.0 / (1 + step)})
            assert [c.step for c in ckptr.checkpoints] == [2, 3]
            check(ckptr.load(abstract_state=abstract()), 3)
    elif ROLE == "restore":
        with tenure.Checkpointer(ROOT, read_only=True) as ckptr:
            latest = ckptr.latest
            assert latest is not None
            check(ckptr.load(abstract_state=abstract()), latest.step)
            print(f"restored step {latest.step}", flush=True)
    elif ROLE == "grain":
        import grain

        def shard() -> object:
            source = grain.MapDataset.source(np.arange(40))[PID::COUNT]  # this process's share
            return iter(source.shuffle(seed=PID).batch(2).to_iter_dataset())

        data = shard()
        next(data)
        with open_root() as ckptr:
            ckptr.save_checkpointables(0, {"state": global_state(0), "data": data})
        expected_batch = next(data)
        fresh = shard()
        with open_root() as ckptr:
            ckptr.load_checkpointables(0, {"state": abstract(), "data": fresh})
        np.testing.assert_array_equal(next(fresh), expected_batch)
    elif ROLE == "die-mid-save":
        with open_root() as ckptr:
            ckptr.save(0, global_state(0))
            if PID == 1:
                response = ckptr.save_async(1, global_state(1))
                assert response is not None
                response.staged()
                os._exit(17)  # dies before the commit barrier
            try:
                ckptr.save(1, global_state(1))
            except tenure.manager.ProcessesTimedOutError as error:
                print(f"clear error: {error}", flush=True)
                os._exit(0)
            raise AssertionError("the save committed without process 1")
    print(f"process {PID} ok", flush=True)


if __name__ == "__main__":
    main()
