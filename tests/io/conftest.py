"""Eight host CPU devices for sharded-array tests; set before anything imports jax."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax
import pytest


@pytest.fixture
def mesh() -> jax.sharding.Mesh:
    """A 4x2 mesh over the eight host devices."""
    if jax.device_count() < 8:
        pytest.fail("tests/io needs XLA_FLAGS=--xla_force_host_platform_device_count=8")
    return jax.make_mesh((4, 2), ("x", "y"))
