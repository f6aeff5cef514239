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


# -- storage roots: every test taking `root` runs on a local directory and on S3 -------------

import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402

import pytest  # noqa: E402

from tests import s3server  # noqa: E402

S3_BUCKET = "tenure-tests"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[s3server.S3Server]:
    """One moto server for the session, with tenure's AWS variables pointing at it."""
    with s3server.running() as server:
        saved = {k: os.environ.get(k) for k in server.environment()}
        os.environ.update(server.environment())
        server.create_bucket(S3_BUCKET)
        try:
            yield server
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture
def s3_root(s3_server: s3server.S3Server) -> object:
    """A fresh, empty prefix in the test bucket."""
    from tenure.io import ObjectPath

    return ObjectPath("s3", S3_BUCKET, f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["local", "s3"])
def new_root(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], object]:
    """Makes fresh, empty checkpoint roots: local directories, then S3 prefixes.

    A factory, so that hypothesis tests get a new root for every example.
    """
    if request.param == "local":
        return lambda: tmp_path_factory.mktemp("root")
    from tenure.io import ObjectPath

    request.getfixturevalue("s3_server")
    return lambda: ObjectPath("s3", S3_BUCKET, f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def root(new_root: Callable[[], object]) -> object:
    """A fresh checkpoint root: a local directory, then an S3 prefix."""
    return new_root()


# `tenure simulate` of a run whose steps hold two items of known sizes (CLI and plot tests).
SIMULATE_ITEM_ARGS = [
    "simulate",
    "--save",
    "FixedIntervalPolicy(100)",
    "--keep",
    "LatestN(3) | EveryNSteps(1000)",
    "--steps",
    "5001",
    "--step-seconds",
    "2",
    "--item-size",
    "params=1GiB",
    "--item-size",
    "opt_state=2GiB",
]
