"""A small JAX training loop that checkpoints with tenure and survives preemption.

    python examples/train.py --root /tmp/run --steps 2000 [--preempt-at 1234]

It fits an MLP to synthetic data with plain SGD. Every step calls `ckptr.save(...)`; the
policies decide. With `--preempt-at K` the process sends itself SIGTERM at step K, as a
cluster scheduler would: the Checkpointer turns the signal into a preemption notice, the
next save goes through, and the loop exits. Run it again and it resumes from the latest
checkpoint, bit for bit.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import tenure
from tenure.retention import (
    BestN,
    EveryNSteps,
    FixedIntervalPolicy,
    LatestN,
    PreemptionCheckpointingPolicy,
)

SAVE = FixedIntervalPolicy(100) | PreemptionCheckpointingPolicy()
KEEP = LatestN(2) | BestN(metric="loss", mode="min", n=2) | EveryNSteps(500)
BATCH, WIDTH = 64, 32


def init_state(seed: int = 0) -> dict[str, Any]:
    key, k1, k2 = jax.random.split(jax.random.PRNGKey(seed), 3)
    return {
        "params": {
            "w1": jax.random.normal(k1, (4, WIDTH)) * 0.5,
            "b1": jnp.zeros(WIDTH),
            "w2": jax.random.normal(k2, (WIDTH, 1)) * 0.5,
            "b2": jnp.zeros(1),
        },
        "rng": key,
    }


def loss_fn(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    hidden = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.mean((hidden @ params["w2"] + params["b2"] - y) ** 2)


@jax.jit
def train_step(state: dict[str, Any]) -> tuple[dict[str, Any], jax.Array]:
    rng, batch_key = jax.random.split(state["rng"])
    x = jax.random.normal(batch_key, (BATCH, 4))
    y = jnp.sin(x.sum(axis=1, keepdims=True))
    loss, grads = jax.value_and_grad(loss_fn)(state["params"], x, y)
    params = jax.tree.map(lambda p, g: p - 0.05 * g, state["params"], grads)
    return {"params": params, "rng": rng}, loss


def fingerprint(state: dict[str, Any]) -> str:
    """A hash of every byte of the state: equal fingerprints mean bit-identical states."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(state):
        digest.update(np.asarray(leaf).tobytes())
    return digest.hexdigest()[:16]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--preempt-at", type=int, default=None)
    args = parser.parse_args()

    with tenure.Checkpointer(
        args.root, save_decision_policy=SAVE, preservation_policy=KEEP, handle_signals=True
    ) as ckptr:
        state, start = init_state(), 0
        if ckptr.latest is not None:
            state = ckptr.load(abstract_state=state)
            start = ckptr.latest.step + 1
            print(f"resumed from step {ckptr.latest.step}, state {fingerprint(state)}")
        for step in range(start, args.steps + 1):
            if step == args.preempt_at:
                os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler sends
            state, loss = train_step(state)
            ckptr.save(step, state, metrics={"loss": float(loss)})
            if ckptr.reached_preemption(step):
                print(f"preempted at step {step}: saved, state {fingerprint(state)}")
                return 0
        print(f"finished step {args.steps}, state {fingerprint(state)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
