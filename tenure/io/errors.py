"""Every error tenure.io raises; each message says what was wrong and what to do."""

from __future__ import annotations


class TenureIOError(Exception):
    """Base class of every error raised by `tenure.io`.

    Examples:
        >>> try:
        ...     raise NotACheckpointError("/tmp/nowhere is not a checkpoint")
        ... except TenureIOError as e:
        ...     print(type(e).__name__)
        NotACheckpointError
    """


class NotACheckpointError(TenureIOError, FileNotFoundError):
    """The directory is missing, uncommitted, or lacks the files a checkpoint needs."""


class ItemNotFoundError(NotACheckpointError):
    """The step holds no checkpointable of that name: never saved, or removed from the step by
    retention (thinned). `available` names the items it has, `thinned` those removed.

    Examples:
        >>> error = ItemNotFoundError("no 'opt_state'", available=("params",))
        >>> isinstance(error, NotACheckpointError), error.available
        (True, ('params',))
    """

    def __init__(
        self, message: str, *, available: tuple[str, ...] = (), thinned: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.available = available
        self.thinned = thinned


class CorruptCheckpointError(TenureIOError):
    """Stored bytes do not match their checksum, or a chunk or metadata file is damaged."""


class UnsupportedLeafError(TenureIOError, TypeError):
    """A pytree leaf has a type tenure cannot store."""


class InvalidKeyError(TenureIOError, TypeError):
    """A dict key cannot be stored: neither a str nor an int, or it contains '/' or NUL."""


class KeyCollisionError(TenureIOError, ValueError):
    """Two key paths encode to the same parameter name (e.g. {'a.b': x} and {'a': {'b': y}})."""


class InvalidNameError(TenureIOError, ValueError):
    """A checkpointable name is empty, contains a path separator, or is '.'/'..'."""


class CheckpointExistsError(TenureIOError, FileExistsError):
    """The step directory is already committed; tenure never overwrites a checkpoint."""


StepAlreadyCommittedError = CheckpointExistsError


class InsufficientSpaceError(TenureIOError, OSError):
    """The disk filled up (or a file-size limit was hit) while saving."""


class StructureMismatchError(TenureIOError, ValueError):
    """The abstract tree asks for a key, shape or structure the checkpoint does not have, or
    (unless the load is partial) leaves out keys the checkpoint has.

    `missing` and `unexpected` name those keys (parameter names) when the trees differ.

    Examples:
        >>> StructureMismatchError("differs", missing=("w",)).missing
        ('w',)
    """

    def __init__(
        self, message: str, *, missing: tuple[str, ...] = (), unexpected: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected


class StorageError(TenureIOError, OSError):
    """The object store refused a request: missing bucket, refused credentials, unreachable."""


class NestingTooDeepError(TenureIOError, ValueError):
    """A tree, or a JSON value to store (metrics, custom metadata, a JSON item), nests deeper
    than tenure's documented limits (`MAX_TREE_DEPTH`, `MAX_JSON_DEPTH` in `tenure.io.jsondoc`)."""


class TopologyMismatchError(TenureIOError, ValueError):
    """An array was saved over devices this process does not have, and no target sharding says
    where to load it: pass an abstract tree with shardings."""
