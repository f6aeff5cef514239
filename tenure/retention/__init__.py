"""Pure save-decision and preservation policies, the retention planner and the simulator.

Nothing here performs I/O or imports jax, numpy or tensorstore: every decision is a
function of the data passed in (steps, times, metrics, flags).

Examples:
    >>> from tenure.retention import BestN, EveryNSteps, LatestN, parse_policy
    >>> keep = LatestN(3) | BestN(metric="loss", mode="min", n=2) | EveryNSteps(10_000)
    >>> parse_policy(repr(keep)) == keep
    True
"""

from tenure.retention.bucket_policies import (
    Daily,
    Hourly,
    Monthly,
    PerBucket,
    PerStepBucket,
    Weekly,
    Yearly,
)
from tenure.retention.budget import WithinBytes
from tenure.retention.cadence import SaveCostMeter, daly_interval, young_interval
from tenure.retention.callable_policies import ShouldKeepFnPolicy, ShouldSaveFnPolicy
from tenure.retention.errors import (
    MissingNowError,
    NaiveDatetimeError,
    PolicyArgumentError,
    PolicyTextError,
    RetentionError,
    UnsortedCheckpointsError,
)
from tenure.retention.failures import (
    FailureReport,
    FailureRun,
    Failures,
    IntervalScan,
    scan_intervals,
    simulate_failure_run,
    simulate_failures,
)
from tenure.retention.info import CheckpointInfo, DecisionContext, PreservationContext
from tenure.retention.items import ItemSet, parse_bytes
from tenure.retention.metrics import best, lookup_metric
from tenure.retention.planner import Decision, RetentionPlan, explain, plan_retention
from tenure.retention.preservation_policies import (
    AllPreservationPolicy,
    AnyPreservationPolicy,
    BestN,
    CustomSteps,
    EveryNSeconds,
    EveryNSteps,
    EveryNStepsClosest,
    LatestDuration,
    LatestN,
    NotPreservationPolicy,
    Only,
    PreservationPolicy,
    PreserveAll,
)
from tenure.retention.save_policies import (
    AllSavePolicy,
    AnySavePolicy,
    ContinuousCheckpointingPolicy,
    FixedIntervalPolicy,
    InitialSavePolicy,
    MinimumStepGapPolicy,
    NewBestPolicy,
    NotSavePolicy,
    PreemptionCheckpointingPolicy,
    SaveDecisionPolicy,
    SpecificStepsPolicy,
    StepRangePolicy,
    YoungDalyPolicy,
)
from tenure.retention.simulator import (
    CheckpointLifetime,
    SimulationEvent,
    SimulationResult,
    simulate,
)
from tenure.retention.text import parse_policy

__all__ = [
    "AllPreservationPolicy",
    "AllSavePolicy",
    "AnyPreservationPolicy",
    "AnySavePolicy",
    "BestN",
    "CheckpointInfo",
    "CheckpointLifetime",
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
    "ItemSet",
    "LatestDuration",
    "LatestN",
    "MinimumStepGapPolicy",
    "MissingNowError",
    "Monthly",
    "NaiveDatetimeError",
    "NewBestPolicy",
    "NotPreservationPolicy",
    "NotSavePolicy",
    "Only",
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
    "SaveCostMeter",
    "SaveDecisionPolicy",
    "ShouldKeepFnPolicy",
    "ShouldSaveFnPolicy",
    "SimulationEvent",
    "SimulationResult",
    "SpecificStepsPolicy",
    "StepRangePolicy",
    "UnsortedCheckpointsError",
    "Weekly",
    "WithinBytes",
    "Yearly",
    "YoungDalyPolicy",
    "best",
    "daly_interval",
    "explain",
    "lookup_metric",
    "parse_bytes",
    "parse_policy",
    "plan_retention",
    "scan_intervals",
    "simulate",
    "simulate_failure_run",
    "simulate_failures",
    "young_interval",
]
