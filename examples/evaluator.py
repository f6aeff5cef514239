"""An evaluator job: watches a training run's root and evaluates each new checkpoint.

    python examples/evaluator.py --root /tmp/run --timeout 600

It runs beside `examples/train.py` (another process, often another machine with the same
filesystem), opens the root read-only, so it never contends for the writer's lock, and
waits for checkpoints with `Checkpointer.iter_new_checkpoints`. Each new step's parameters
are loaded and scored on a fixed held-out batch. It stops after `--timeout` seconds without
a new checkpoint, or once it has evaluated a step at or past `--stop-at`.

The training job's retention policy may delete a step before the evaluator gets to it;
that step is reported as skipped, not as an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

import tenure

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import init_state, loss_fn


def held_out_batch() -> tuple[jax.Array, jax.Array]:
    """The same 1024 examples for every step, drawn from a key training never uses."""
    x = jax.random.normal(jax.random.PRNGKey(2**31 - 1), (1024, 4))
    return x, jnp.sin(x.sum(axis=1, keepdims=True))


def evaluate(params: dict[str, Any], batch: tuple[jax.Array, jax.Array]) -> float:
    return float(loss_fn(params, *batch))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--timeout", type=float, default=600, help="seconds without news")
    parser.add_argument("--stop-at", type=int, default=None, help="last step to wait for")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between looks")
    args = parser.parse_args()

    args.root.mkdir(parents=True, exist_ok=True)
    batch, abstract = held_out_batch(), init_state()
    with tenure.Checkpointer(args.root, read_only=True) as ckptr:
        # New checkpoints are those after the newest present now, so say when that is fixed.
        print(f"watching {args.root}", flush=True)
        seen: set[int] = set()
        while True:
            try:
                for entry in ckptr.iter_new_checkpoints(timeout=args.timeout, poll_secs=args.poll):
                    if entry.step in seen:
                        continue
                    seen.add(entry.step)
                    try:
                        state = ckptr.load(entry, abstract_state=abstract)
                    except FileNotFoundError:
                        print(f"step {entry.step}: deleted by the trainer's retention, skipped")
                        continue
                    loss = evaluate(state["params"], batch)
                    print(f"step {entry.step}: eval loss {loss:.5f}", flush=True)
                    if args.stop_at is not None and entry.step >= args.stop_at:
                        return 0
            except FileNotFoundError:
                # A step vanished between listing the root and reading it: look again.
                continue
            print(f"no new checkpoint for {args.timeout:g} s; stopping")
            return 0


if __name__ == "__main__":
    sys.exit(main())
