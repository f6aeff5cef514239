"""Test-wide settings: hypothesis profiles.

`ci` (the default) keeps the whole suite fast; `soak` runs many more examples:

    TENURE_HYPOTHESIS_PROFILE=soak make test
"""

import os

# Eight virtual CPU devices, so sharded-array tests run on any machine. It must be set
# before jax is first imported.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "soak",
    max_examples=2_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("TENURE_HYPOTHESIS_PROFILE", "ci"))
