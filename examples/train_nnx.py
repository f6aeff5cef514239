"""A Flax NNX model with an `nnx.Optimizer`, fed by a Grain pipeline, checkpointed with
tenure and resumed bit for bit after preemption.

    python examples/train_nnx.py --root /tmp/nnx-run --steps 300 --stop-at 120
    python examples/train_nnx.py --root /tmp/nnx-run --steps 300

The model, its optimizer (optax chains are tuples, so the state has integer keys) and the
Grain iterator's position are saved in one step. The second run resumes from the newest
checkpoint, sees the same batches it would have seen, and ends with the same parameters as
an uninterrupted run: `--compare` runs one and checks.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import tenure
from tenure.retention import FixedIntervalPolicy, LatestN, PreemptionCheckpointingPolicy


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(4, 16, rngs=rngs)
        self.out = nnx.Linear(16, 1, rngs=rngs)
        self.dropout = nnx.Dropout(0.1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.dropout(nnx.relu(self.hidden(x))))


def pipeline() -> Any:
    """An endless shuffled stream of (x, y) batches, whose position Grain can checkpoint."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32))[:, None]
    dataset = grain.MapDataset.source(list(zip(x, y, strict=True))).shuffle(seed=0).repeat()
    return iter(dataset.batch(32).to_iter_dataset())


def init() -> tuple[MLP, nnx.Optimizer[MLP]]:
    model = MLP(nnx.Rngs(0))
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2))
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


@nnx.jit
def train_step(model: MLP, optimizer: nnx.Optimizer[MLP], x: jax.Array, y: jax.Array) -> Any:
    def loss_fn(model: MLP) -> jax.Array:
        return jnp.mean((model(x) - y) ** 2)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def train(root: str, steps: int, stop_at: int | None = None) -> Any:
    """Train to `steps` (stopping after `stop_at`, as if preempted); return the final state."""
    model, optimizer = init()
    data = pipeline()
    with tenure.Checkpointer(
        root,
        save_decision_policy=FixedIntervalPolicy(50) | PreemptionCheckpointingPolicy(),
        preservation_policy=LatestN(2),
        handle_signals=True,
    ) as ckptr:
        start = 0
        if ckptr.latest is not None:
            # The fresh model and iterator are the targets: the state is loaded into the
            # model's structure, the iterator is moved to the saved position in place.
            loaded = ckptr.load_checkpointables(
                None, {"state": nnx.state((model, optimizer)), "data": data}
            )
            nnx.update((model, optimizer), loaded["state"])
            start = ckptr.latest.step + 1
            print(f"resumed at step {start}, optimizer step {int(optimizer.step[...])}")
        for step in range(start, steps + 1):
            x, y = next(data)
            loss = train_step(model, optimizer, x, y)
            ckptr.save_checkpointables(
                step,
                {"state": nnx.state((model, optimizer)), "data": data},
                metrics={"loss": loss},  # a jax scalar: stored as a Python float
            )
            if step == stop_at or ckptr.reached_preemption(step):
                print(f"stopped at step {step}")
                return None
        print(f"finished: loss {float(loss):.5f}, kept {[c.step for c in ckptr.checkpoints]}")
    return nnx.state((model, optimizer))


def _equal(a: jax.Array, b: jax.Array) -> bool:
    if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):  # dropout's key: compare its data
        a, b = jax.random.key_data(a), jax.random.key_data(b)
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--stop-at", type=int, default=None, help="stop early, as if preempted")
    parser.add_argument("--compare", action="store_true", help="check against a run without stops")
    args = parser.parse_args()
    final = train(args.root, args.steps, args.stop_at)
    if args.compare and final is not None:
        reference = train(tempfile.mkdtemp(), args.steps)
        same = jax.tree_util.tree_all(jax.tree_util.tree_map(_equal, final, reference))
        print("bit-identical final state" if same else "final states DIFFER")


if __name__ == "__main__":
    main()
