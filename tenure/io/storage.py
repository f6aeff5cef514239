"""Where checkpoints live: local directories, or S3 and GCS prefixes through tensorstore.

A `Location` is either a `pathlib.Path` or an `ObjectPath`, which offers the part of the
`Path` interface that tenure uses (joining, names, listing, reading, writing, deleting), so
the format code is written once. What object stores cannot do (rename, fsync, exclusive
create) is decided by the callers through `is_object_store`.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeGuard

import attrs
import tensorstore as ts

from tenure.io.errors import StorageError

OBJECT_SCHEMES = {"s3": "s3", "gs": "gcs"}

# tensorstore retries a failing request up to 32 times over many minutes by default; a save
# to a server that went away should fail within seconds, not hang the training loop.
_RETRIES = {"max_retries": 8, "initial_delay": "0.1s", "max_delay": "4s"}


@functools.cache
def context() -> ts.Context:
    """The shared tensorstore context, tuned for bulk transfer rather than caching."""
    return new_context()


def new_context() -> ts.Context:
    """A tensorstore context of its own (see `context`): an OCDBT database is opened in one
    per save or load, so that no state cached from an earlier database at the same path (a
    replaced or rewritten step) is ever reused."""
    return ts.Context(
        {
            "file_io_concurrency": {"limit": 64},
            "data_copy_concurrency": {"limit": "shared"},
            "cache_pool": {"total_bytes_limit": 0},
            "cache_pool#ocdbt": {"total_bytes_limit": 100_000_000},
            # tenure fsyncs every file itself just before the commit rename.
            "file_io_sync": False,
            "s3_request_retries": _RETRIES,
            "gcs_request_retries": _RETRIES,
        }
    )


def _s3_settings() -> dict[str, Any]:
    """Endpoint, region and credentials from the standard AWS environment variables."""
    settings: dict[str, Any] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        settings["endpoint"] = endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        settings["aws_region"] = region
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        # Skips the profile and instance-metadata lookups of the default chain.
        settings["aws_credentials"] = {"type": "environment"}
    return settings


def _end_of_prefix(prefix: str) -> str:
    """The smallest key greater than every key that starts with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def describe_store_error(where: object, error: BaseException) -> str:
    """What went wrong talking to an object store, and what to do about it."""
    # tensorstore's messages start with an absl status and the service's error code, then
    # append the raw response body, which only repeats them.
    text = str(error).split(" [http_response_body", 1)[0].splitlines()[0][:300]
    if "NoSuchBucket" in text:
        why = "the bucket does not exist: create it, or fix the bucket in the root"
    elif text.startswith(("PERMISSION_DENIED", "UNAUTHENTICATED")) or any(
        code in text for code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied")
    ):
        why = "the store refused the credentials: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    elif "CURL error" in text or "retry attempts failed" in text:
        why = "the store could not be reached: check the endpoint (AWS_ENDPOINT_URL) and network"
    else:
        why = "the store returned an error"
    return f"{where}: {why} ({text})"


@attrs.frozen(order=True, repr=False)
class ObjectPath:
    """A key prefix in an object-store bucket, used like a `pathlib.Path`.

    Directories do not exist on object stores: a prefix "is a directory" when some key lies
    under it. S3 endpoints, regions and credentials come from the usual AWS environment
    variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...).

    Examples:
        >>> root = ObjectPath.parse("s3://bucket/runs/a")
        >>> str(root / "5" / "state")
        's3://bucket/runs/a/5/state'
        >>> (root / "5").name, str(root.parent)
        ('5', 's3://bucket/runs')
    """

    scheme: str
    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, url: str) -> ObjectPath:
        """Parse `s3://bucket/prefix` or `gs://bucket/prefix`."""
        scheme, sep, rest = url.partition("://")
        bucket, _, key = rest.partition("/")
        if not sep or scheme not in OBJECT_SCHEMES or not bucket:
            raise StorageError(
                f"{url!r} is not an object-store root: write s3://bucket/prefix or "
                "gs://bucket/prefix"
            )
        return cls(scheme, bucket, "/".join(p for p in key.split("/") if p))

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}".rstrip("/")

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __truediv__(self, part: str | os.PathLike[str]) -> ObjectPath:
        joined = "/".join(p for p in (self.key, *os.fspath(part).split("/")) if p)
        return ObjectPath(self.scheme, self.bucket, joined)

    @property
    def name(self) -> str:
        """The last component of the key."""
        return self.key.rpartition("/")[2]

    @property
    def parent(self) -> ObjectPath:
        """The prefix one level up."""
        return ObjectPath(self.scheme, self.bucket, self.key.rpartition("/")[0])

    def with_name(self, name: str) -> ObjectPath:
        """The sibling called `name`."""
        return self.parent / name

    def kvstore_spec(self, *, directory: bool = True) -> dict[str, Any]:
        """The tensorstore kvstore spec of this prefix (with a trailing '/' for a directory)."""
        path = self.key + "/" if directory and self.key else self.key
        spec: dict[str, Any] = {"driver": OBJECT_SCHEMES[self.scheme], "bucket": self.bucket}
        if self.scheme == "s3":
            spec.update(_s3_settings())
        return {**spec, "path": path}

    def _store(self) -> ts.KvStore:
        bucket = ObjectPath(self.scheme, self.bucket)
        return _open_bucket(repr(bucket.kvstore_spec(directory=False)), bucket)

    def _call(self, future: Any) -> Any:
        try:
            return future.result()
        except ValueError as e:
            raise StorageError(describe_store_error(self, e)) from e

    def read_bytes(self) -> bytes:
        """The object's bytes; `FileNotFoundError` when it does not exist."""
        result = self._call(self._store().read(self.key))
        if result.state != "value":
            raise FileNotFoundError(f"{self} does not exist")
        return bytes(result.value)

    def read_text(self, encoding: str = "utf-8") -> str:
        """The object's text."""
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        """Store `data` under this key (a single PUT: readers see all of it or nothing)."""
        self._call(self._store().write(self.key, data))
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        """Store `text` under this key."""
        return self.write_bytes(text.encode(encoding))

    def list_keys(self) -> list[str]:
        """Every key under this prefix, relative to it, sorted."""
        prefix = self.key + "/" if self.key else ""
        if not prefix:
            found = self._call(self._store().list())
        else:
            key_range = ts.KvStore.KeyRange(prefix, _end_of_prefix(prefix))
            found = self._call(self._store().list(key_range, strip_prefix_length=len(prefix)))
        return sorted(k.decode() for k in found)

    def is_file(self) -> bool:
        """True when an object has exactly this key."""
        return bool(self.key) and self._call(self._store().read(self.key)).state == "value"

    def is_dir(self) -> bool:
        """True when some object lies under this prefix."""
        return bool(self.list_keys())

    def exists(self) -> bool:
        """True for an object or a non-empty prefix."""
        return self.is_file() or self.is_dir()

    def iterdir(self) -> Iterator[ObjectPath]:
        """The distinct next components under this prefix."""
        names = dict.fromkeys(k.partition("/")[0] for k in self.list_keys())
        return (self / name for name in names)

    def glob(self, pattern: str) -> Iterator[ObjectPath]:
        """Children whose name matches `pattern` (one level, like `Path.glob`)."""
        return (p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern))

    def rglob(self, pattern: str) -> Iterator[ObjectPath]:
        """Objects at any depth below whose name matches `pattern`."""
        return (
            self / key
            for key in self.list_keys()
            if fnmatch.fnmatchcase(key.rpartition("/")[2], pattern)
        )

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: prefixes exist once a key is written under them."""

    def unlink(self, missing_ok: bool = False) -> None:
        """Delete the object (object stores do not report a missing key)."""
        self._call(self._store().write(self.key, None))

    def remove_tree(self) -> None:
        """Delete every object under this prefix, and the object with this exact key."""
        store = self._store()
        prefix = self.key + "/"
        self._call(store.delete_range(ts.KvStore.KeyRange(prefix, _end_of_prefix(prefix))))
        self._call(store.write(self.key, None))


@functools.cache
def _open_bucket(spec_text: str, bucket: ObjectPath) -> ts.KvStore:
    # Keyed by the spec's text: a changed endpoint or region opens a new store.
    try:
        return ts.KvStore.open(bucket.kvstore_spec(directory=False), context=context()).result()
    except ValueError as e:
        raise StorageError(describe_store_error(bucket, e)) from e


Location = Path | ObjectPath
"""A local directory or an object-store prefix."""


def as_location(where: str | os.PathLike[str] | ObjectPath) -> Location:
    """An absolute local path, or an `ObjectPath` for `s3://` and `gs://` URLs.

    Examples:
        >>> as_location("s3://bucket/run")
        ObjectPath('s3://bucket/run')
        >>> as_location("/tmp/run")
        PosixPath('/tmp/run')
    """
    if isinstance(where, ObjectPath):
        return where
    text = os.fspath(where)
    if "://" in text:
        return ObjectPath.parse(text)
    return Path(os.path.abspath(text))


def is_object_store(where: Location) -> TypeGuard[ObjectPath]:
    """True for object-store locations, where commits use a marker instead of a rename."""
    return isinstance(where, ObjectPath)


def kvstore_spec(where: Location) -> dict[str, Any]:
    """The tensorstore kvstore spec of directory `where`."""
    if isinstance(where, ObjectPath):
        return where.kvstore_spec()
    return {"driver": "file", "path": f"{where}/"}


def remove_tree(where: Location) -> None:
    """Delete a directory (or prefix) and everything under it; a plain file too."""
    if isinstance(where, ObjectPath):
        where.remove_tree()
    elif where.is_dir():
        shutil.rmtree(where)
    else:
        where.unlink(missing_ok=True)


def list_dir(where: Location, pattern: str = "*") -> list[Location]:
    """The entries directly under `where` whose names match `pattern`, sorted by name."""
    found: list[Location] = list(where.glob(pattern))
    return sorted(found, key=lambda p: p.name)
