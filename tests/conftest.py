"""Test-wide settings: hypothesis profiles.

`ci` (the default) keeps the whole suite fast; `soak` runs many more examples:

    TENURE_HYPOTHESIS_PROFILE=soak make test
"""

import os

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
