"""A JAX + optax training loop, resumable after preemption, checkpointed with tenure.

    python examples/train_optax.py --root /tmp/optax-run --steps 600

The optimizer state is optax's own pytree of namedtuples (Adam's moments and counters);
tenure saves it with the parameters and restores it into the same structure, so the run
continues exactly where it stopped. Run it twice: the second run resumes.
"""

from __future__ import annotations

import argparse
from typing import Any

import jax
import jax.numpy as jnp
import optax

import tenure
from tenure.retention import (
    BestN,
    FixedIntervalPolicy,
    LatestN,
    PreemptionCheckpointingPolicy,
)

OPTIMIZER = optax.adam(1e-2)


def init_state() -> dict[str, Any]:
    params = {"w": jnp.zeros((3, 1)), "b": jnp.zeros(1)}
    return {"params": params, "opt_state": OPTIMIZER.init(params), "rng": jax.random.PRNGKey(0)}


@jax.jit
def train_step(state: dict[str, Any]) -> tuple[dict[str, Any], jax.Array]:
    rng, key = jax.random.split(state["rng"])
    x = jax.random.normal(key, (32, 3))
    y = x @ jnp.array([[1.0], [-2.0], [0.5]]) + 0.3

    def loss_fn(params: dict[str, jax.Array]) -> jax.Array:
        return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)

    loss, grads = jax.value_and_grad(loss_fn)(state["params"])
    updates, opt_state = OPTIMIZER.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    return {"params": params, "opt_state": opt_state, "rng": rng}, loss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--stop-at", type=int, default=None, help="stop early, as if preempted")
    args = parser.parse_args()

    with tenure.Checkpointer(
        args.root,
        save_decision_policy=FixedIntervalPolicy(100) | PreemptionCheckpointingPolicy(),
        preservation_policy=LatestN(2) | BestN(metric="loss", mode="min", n=1),
        handle_signals=True,
    ) as ckptr:
        state, start = init_state(), 0
        if ckptr.latest is not None:
            # The fresh state is the abstract tree: same structure (optax namedtuples included).
            state = ckptr.load(abstract_state=state)
            start = ckptr.latest.step + 1
            print(f"resumed at step {start}, Adam count {int(state['opt_state'][0].count)}")
        for step in range(start, args.steps + 1):
            state, loss = train_step(state)
            ckptr.save(step, state, metrics={"loss": float(loss)})
            if step == args.stop_at or ckptr.reached_preemption(step):
                print(f"stopped at step {step}")
                return
        print(f"finished: loss {float(loss):.5f}, kept {[c.step for c in ckptr.checkpoints]}")


if __name__ == "__main__":
    main()
