"""tenure: checkpointing for JAX training runs.

The policy algebra and simulator (`tenure.retention`) import no array library; the
Checkpointer and the I/O layer load jax and tensorstore on first use, so
`import tenure` stays cheap for the command line and for policy design.

Examples:
    >>> import tenure
    >>> keep = tenure.LatestN(3) | tenure.BestN(metric="loss", mode="min", n=2)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tenure.retention import (
    AllPreservationPolicy,
    AllSavePolicy,
    AnyPreservationPolicy,
    AnySavePolicy,
    BestN,
    CheckpointInfo,
    CheckpointLifetime,
    ContinuousCheckpointingPolicy,
    CustomSteps,
    Daily,
    Decision,
    DecisionContext,
    EveryNSeconds,
    EveryNSteps,
    EveryNStepsClosest,
    FailureReport,
    FailureRun,
    Failures,
    FixedIntervalPolicy,
    Hourly,
    InitialSavePolicy,
    IntervalScan,
    LatestDuration,
    LatestN,
    MinimumStepGapPolicy,
    MissingNowError,
    Monthly,
    NaiveDatetimeError,
    NewBestPolicy,
    NotPreservationPolicy,
    NotSavePolicy,
    PerBucket,
    PerStepBucket,
    PolicyArgumentError,
    PolicyTextError,
    PreemptionCheckpointingPolicy,
    PreservationContext,
    PreservationPolicy,
    PreserveAll,
    RetentionError,
    RetentionPlan,
    SaveCostMeter,
    SaveDecisionPolicy,
    SimulationEvent,
    SimulationResult,
    SpecificStepsPolicy,
    StepRangePolicy,
    UnsortedCheckpointsError,
    Weekly,
    Yearly,
    YoungDalyPolicy,
    daly_interval,
    explain,
    parse_policy,
    plan_retention,
    scan_intervals,
    simulate,
    simulate_failure_run,
    simulate_failures,
    young_interval,
)

if TYPE_CHECKING:
    from tenure import args, io
    from tenure.compat import CheckpointManager, CheckpointManagerOptions
    from tenure.manager import (
        BackgroundSaveError,
        Checkpointer,
        CheckpointMetadata,
        RootLockedError,
        SaveResponse,
        StepAlreadyExistsError,
        StepNameFormat,
        StepNotFoundError,
    )

_LAZY = {
    "Checkpointer": "tenure.manager",
    "CheckpointMetadata": "tenure.manager",
    "SaveResponse": "tenure.manager",
    "StepNameFormat": "tenure.manager",
    "StepAlreadyExistsError": "tenure.manager",
    "StepNotFoundError": "tenure.manager",
    "RootLockedError": "tenure.manager",
    "BackgroundSaveError": "tenure.manager",
    "io": "tenure.io",
    "args": "tenure.args",
    "CheckpointManager": "tenure.compat",
    "CheckpointManagerOptions": "tenure.compat",
}


def __getattr__(name: str) -> Any:
    """Loads the jax-backed parts on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'tenure' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if name in ("io", "args") else getattr(module, name)
    globals()[name] = value
    return value


__all__ = [
    "AllPreservationPolicy",
    "AllSavePolicy",
    "AnyPreservationPolicy",
    "AnySavePolicy",
    "BackgroundSaveError",
    "BestN",
    "CheckpointInfo",
    "CheckpointLifetime",
    "CheckpointManager",
    "CheckpointManagerOptions",
    "CheckpointMetadata",
    "Checkpointer",
    "ContinuousCheckpointingPolicy",
    "CustomSteps",
    "Daily",
    "Decision",
    "DecisionContext",
    "EveryNSeconds",
    "EveryNSteps",
    "EveryNStepsClosest",
    "FailureReport",
    "FailureRun",
    "Failures",
    "FixedIntervalPolicy",
    "Hourly",
    "InitialSavePolicy",
    "IntervalScan",
    "LatestDuration",
    "LatestN",
    "MinimumStepGapPolicy",
    "MissingNowError",
    "Monthly",
    "NaiveDatetimeError",
    "NewBestPolicy",
    "NotPreservationPolicy",
    "NotSavePolicy",
    "PerBucket",
    "PerStepBucket",
    "PolicyArgumentError",
    "PolicyTextError",
    "PreemptionCheckpointingPolicy",
    "PreservationContext",
    "PreservationPolicy",
    "PreserveAll",
    "RetentionError",
    "RetentionPlan",
    "RootLockedError",
    "SaveCostMeter",
    "SaveDecisionPolicy",
    "SaveResponse",
    "SimulationEvent",
    "SimulationResult",
    "SpecificStepsPolicy",
    "StepAlreadyExistsError",
    "StepNameFormat",
    "StepNotFoundError",
    "StepRangePolicy",
    "UnsortedCheckpointsError",
    "Weekly",
    "Yearly",
    "YoungDalyPolicy",
    "args",
    "daly_interval",
    "explain",
    "io",
    "parse_policy",
    "plan_retention",
    "scan_intervals",
    "simulate",
    "simulate_failure_run",
    "simulate_failures",
    "young_interval",
]
