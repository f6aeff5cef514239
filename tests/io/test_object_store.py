"""What only object stores have: commit by marker, uncommitted prefixes, the store's errors.

Everything else about S3 roots is covered by the `root`-parametrised tests beside this file.
"""

import numpy as np
import pytest

from tenure import io
from tenure.io import ObjectPath
from tests import s3server
from tests.conftest import S3_BUCKET


def test_step_without_commit_marker_is_no_checkpoint_and_is_replaced(s3_root: ObjectPath) -> None:
    """A crashed save leaves objects but no marker: readers refuse it, a new save replaces it."""
    io.save_pytree(s3_root / "1", {"w": np.ones(3)})
    (s3_root / "1" / "commit_success.txt").unlink()
    assert not io.is_committed(s3_root / "1")
    with pytest.raises(io.NotACheckpointError, match="not a committed checkpoint"):
        io.load_pytree(s3_root / "1")
    (s3_root / "1" / "state" / "stray").write_text("left by the crash")
    io.save_pytree(s3_root / "1", {"w": np.zeros(2)})
    assert io.load_pytree(s3_root / "1")["w"].tolist() == [0.0, 0.0]
    assert "state/stray" not in (s3_root / "1").list_keys()


def test_commit_marker_is_written_after_every_other_object(s3_root: ObjectPath) -> None:
    """Law of the marker commit: when the marker exists, everything else already does."""
    seen_before_commit: list[list[str]] = []

    def barrier(name: str) -> None:
        if name.endswith(":written"):
            seen_before_commit.append((s3_root / "1").list_keys())

    io.save_pytree(s3_root / "1", {"w": np.ones(3)}, processes=io.Processes(0, 1, barrier))
    assert len(seen_before_commit) == 1
    assert "commit_success.txt" not in seen_before_commit[0]
    after = (s3_root / "1").list_keys()
    assert "commit_success.txt" in after
    assert set(seen_before_commit[0]) <= set(after)


def test_object_stores_default_to_ocdbt(s3_root: ObjectPath) -> None:
    io.save_pytree(s3_root / "1", {"w": np.arange(4.0), "b": np.ones(2)})
    keys = (s3_root / "1").list_keys()
    assert "state/manifest.ocdbt" in keys
    assert not any(k.startswith("state/w/") for k in keys)


def test_missing_bucket_is_a_clear_storage_error(s3_server: s3server.S3Server) -> None:
    step = ObjectPath("s3", "no-such-bucket", "run/1")
    with pytest.raises(io.StorageError, match="bucket does not exist"):
        io.save_pytree(step, {"w": np.ones(2)})
    with pytest.raises(io.StorageError, match="bucket does not exist"):
        io.load_pytree(step)


def test_refused_credentials_are_a_clear_storage_error(
    s3_server: s3server.S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This moto checks signatures against the accounts it knows, and knows none.
    with s3server.running(extra_env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as strict:
        monkeypatch.setenv("AWS_ENDPOINT_URL", strict.endpoint)
        with pytest.raises(io.StorageError, match="refused the credentials"):
            io.save_pytree(ObjectPath("s3", S3_BUCKET, "run/1"), {"w": np.ones(2)})


def test_server_down_mid_save_fails_the_save_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The save's result() raises a tenure error within the retry budget once the server dies."""
    with s3server.running() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        for key, value in s3server.CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        server.create_bucket("doomed")
        # 64 MiB in 32 objects: far more than moto stores before the stop below.
        state = {f"w{i}": np.random.default_rng(i).random(1 << 18) for i in range(32)}
        layout = io.ArrayLayout(ocdbt=False)  # many requests, so some come after the stop
        handle = io.save_pytree_async(ObjectPath("s3", "doomed", "run/1"), state, layout=layout)
        handle.staged()
        server.stop()
        with pytest.raises(io.StorageError, match="could not be reached"):
            handle.result(timeout=120)


@pytest.mark.parametrize("url", ["s3://", "ftp://bucket/run", "s3:/bucket/run"])
def test_urls_that_name_no_object_store_root_are_refused(url: str) -> None:
    with pytest.raises(io.StorageError, match="s3://bucket/prefix"):
        ObjectPath.parse(url)


def test_object_paths_join_and_split_like_paths() -> None:
    root = io.as_location("s3://bucket//runs/a/")
    assert root == ObjectPath("s3", "bucket", "runs/a")
    assert str(root / "5" / "state") == "s3://bucket/runs/a/5/state"
    assert (root / "5").with_name("6") == root / "6"
    assert str(ObjectPath.parse("gs://bucket")) == "gs://bucket"
    assert root.kvstore_spec(directory=True)["path"] == "runs/a/"
