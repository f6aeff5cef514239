"""tenure: checkpointing for JAX training runs."""
