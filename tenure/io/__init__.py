"""Storage of (sharded) pytrees with tensorstore, in Orbax's on-disk format.

Knows nothing about policies. Saves are atomic (temporary directory, fsync, rename on local
disks; a commit marker written last on S3 and GCS) and readable by orbax-checkpoint 0.12;
Orbax checkpoints are readable here.

Examples:
    >>> import tempfile, numpy as np
    >>> from tenure import io
    >>> step = tempfile.mkdtemp() + "/100"
    >>> io.save_pytree(step, {"params": {"w": np.ones((2, 2))}, "step": 100})
    >>> io.load_pytree(step)["step"]
    100
"""

from tenure.io.api import (
    AsyncSave,
    load_checkpointables,
    load_pytree,
    plan_load,
    pytree_metadata,
    save_checkpointables,
    save_checkpointables_async,
    save_pytree,
    save_pytree_async,
)
from tenure.io.arrays import ArrayLayout
from tenure.io.commit import Barrier, Processes
from tenure.io.errors import (
    CheckpointExistsError,
    CorruptCheckpointError,
    InsufficientSpaceError,
    InvalidKeyError,
    InvalidNameError,
    ItemNotFoundError,
    KeyCollisionError,
    NestingTooDeepError,
    NotACheckpointError,
    StepAlreadyCommittedError,
    StorageError,
    StructureMismatchError,
    TenureIOError,
    TopologyMismatchError,
    UnsupportedLeafError,
)
from tenure.io.metadata import StepMetadata, read_step_metadata
from tenure.io.pytree import LoadPlan
from tenure.io.root import DEFAULT_ITEM, is_committed, is_temporary, remove_temporary
from tenure.io.storage import Location, ObjectPath, as_location, is_object_store
from tenure.io.verify import verify

__all__ = [
    "DEFAULT_ITEM",
    "ArrayLayout",
    "AsyncSave",
    "Barrier",
    "CheckpointExistsError",
    "CorruptCheckpointError",
    "InsufficientSpaceError",
    "InvalidKeyError",
    "InvalidNameError",
    "ItemNotFoundError",
    "KeyCollisionError",
    "LoadPlan",
    "Location",
    "NestingTooDeepError",
    "NotACheckpointError",
    "ObjectPath",
    "Processes",
    "StepAlreadyCommittedError",
    "StepMetadata",
    "StorageError",
    "StructureMismatchError",
    "TenureIOError",
    "TopologyMismatchError",
    "UnsupportedLeafError",
    "as_location",
    "is_committed",
    "is_object_store",
    "is_temporary",
    "load_checkpointables",
    "load_pytree",
    "plan_load",
    "pytree_metadata",
    "read_step_metadata",
    "remove_temporary",
    "save_checkpointables",
    "save_checkpointables_async",
    "save_pytree",
    "save_pytree_async",
    "verify",
]
