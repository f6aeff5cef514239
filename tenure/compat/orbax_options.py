"""`CheckpointManagerOptions` (Orbax v0's options) and `to_policies`, which translates its
legacy fields into tenure's policies, one rule per field:

Save decision (`save_decision_policy`, when given, replaces all of these):

- `should_save_fn` -> `ShouldSaveFnPolicy(fn) | PreemptionCheckpointingPolicy()`; when
  given, `save_interval_steps` and `save_on_steps` are ignored, as in Orbax.
- otherwise `save_interval_steps` -> `FixedIntervalPolicy` (0 means no interval),
  `save_on_steps` -> `SpecificStepsPolicy`, plus `PreemptionCheckpointingPolicy()` and
  `InitialSavePolicy()`, all joined with `|`.
- Orbax also refuses a step that is not after the newest checkpoint (unless the save is
  forced): the result is `MinimumStepGapPolicy(1) & (...)`, for a given
  `save_decision_policy` too.

Preservation (`preservation_policy`, when given, replaces all of these):

- `max_to_keep` -> `LatestN`, or with `best_fn` -> `BestN(get_metric_fn=best_fn,
  reverse=best_mode == "min", n=max_to_keep, keep_checkpoints_without_metrics=...)`.
- `keep_period` -> `EveryNSteps`, `keep_time_interval` -> `EveryNSeconds`,
  `should_keep_fn` -> `ShouldKeepFnPolicy`, each joined with `|`.
- With none of them every checkpoint is kept (`PreserveAll()`). Whatever the policy,
  tenure never deletes the newest checkpoint (Orbax could: orbax#526).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any

import attrs

from tenure.compat.errors import InvalidOptionsError
from tenure.manager import StepNameFormat
from tenure.retention import (
    AnyPreservationPolicy,
    AnySavePolicy,
    BestN,
    EveryNSeconds,
    EveryNSteps,
    FixedIntervalPolicy,
    InitialSavePolicy,
    LatestN,
    MinimumStepGapPolicy,
    PreemptionCheckpointingPolicy,
    PreservationPolicy,
    PreserveAll,
    SaveDecisionPolicy,
    ShouldKeepFnPolicy,
    ShouldSaveFnPolicy,
    SpecificStepsPolicy,
)


def _optional_steps(value: Collection[int] | None) -> frozenset[int] | None:
    return None if value is None else frozenset(value)


@attrs.frozen(kw_only=True)
class CheckpointManagerOptions:
    """Every option of Orbax v0's `CheckpointManagerOptions`, with the same defaults.

    The retention and save fields become tenure policies (see `to_policies`). Options that
    only tune Orbax's own machinery or Google Cloud Storage are accepted and have no effect
    here: `async_options`, `multiprocessing_options`, `file_options`,
    `temporary_path_class`, `todelete_full_path` (a GCS bucket path),
    `enable_per_process_directory_creation`, `single_host_load_and_broadcast` (each
    process lists the root with one directory scan), and
    `enable_should_save_is_saving_in_progress_check` (tenure runs one save at a time and
    its policies always see a save in flight).

    Examples:
        >>> options = CheckpointManagerOptions(save_interval_steps=100, max_to_keep=3)
        >>> to_policies(options)[1]
        LatestN(n=3)
    """

    save_interval_steps: int = 1
    max_to_keep: int | None = None
    keep_time_interval: timedelta | None = None
    keep_period: int | None = None
    should_keep_fn: Callable[[int], bool] | None = None
    best_fn: Callable[[Any], float] | None = None
    best_mode: str = "max"
    keep_checkpoints_without_metrics: bool = True
    step_prefix: str | None = None
    step_format_fixed_length: int | None = None
    step_name_format: StepNameFormat | None = None
    create: bool = True
    cleanup_tmp_directories: bool = False
    save_on_steps: frozenset[int] | None = attrs.field(default=None, converter=_optional_steps)
    single_host_load_and_broadcast: bool = False
    todelete_subdir: str | None = None
    todelete_full_path: str | None = None
    enable_background_delete: bool = False
    read_only: bool = False
    enable_async_checkpointing: bool = True
    async_options: Any = None
    multiprocessing_options: Any = None
    should_save_fn: Callable[[int, int | None], bool] | None = None
    file_options: Any = None
    save_root_metadata: bool = True
    temporary_path_class: Any = None
    save_decision_policy: SaveDecisionPolicy | None = None
    preservation_policy: PreservationPolicy | None = None
    prevent_write_metrics: bool = False
    enable_should_save_is_saving_in_progress_check: bool = True
    enable_per_process_directory_creation: bool = False
    lightweight_initialize: bool = False

    def __attrs_post_init__(self) -> None:
        for problem in _problems(self):
            raise InvalidOptionsError(problem)

    def name_format(self) -> StepNameFormat:
        """How step directories are named: `step_name_format`, or else the format built
        from `step_prefix` and `step_format_fixed_length`."""
        if self.step_name_format is not None:
            return self.step_name_format
        return StepNameFormat(self.step_prefix, self.step_format_fixed_length)


def _problems(o: CheckpointManagerOptions) -> list[str]:
    """What is wrong with `o`, each as a message saying what to do instead."""
    problems = []
    if o.best_mode not in ("min", "max"):
        problems.append(
            f"best_mode={o.best_mode!r} must be 'min' (lower metric is better) or 'max'"
        )
    if isinstance(o.save_interval_steps, bool) or o.save_interval_steps < 0:
        problems.append(
            f"save_interval_steps={o.save_interval_steps!r} must be an integer >= 0 (0 saves "
            "on no interval)"
        )
    if o.max_to_keep is not None and o.max_to_keep < 0:
        problems.append(f"max_to_keep={o.max_to_keep} must be None (keep all) or >= 0")
    if o.keep_period is not None and o.keep_period <= 0:
        problems.append(f"keep_period={o.keep_period} must be None or a positive step count")
    if o.keep_time_interval is not None and o.keep_time_interval <= timedelta(0):
        problems.append(f"keep_time_interval={o.keep_time_interval!r} must be positive or None")
    legacy_keep = {
        "max_to_keep": o.max_to_keep,
        "keep_time_interval": o.keep_time_interval,
        "keep_period": o.keep_period,
        "should_keep_fn": o.should_keep_fn,
    }
    clashing = [name for name, value in legacy_keep.items() if value is not None]
    if o.preservation_policy is not None and clashing:
        problems.append(
            f"preservation_policy and {', '.join(clashing)} are mutually exclusive; express "
            "them in the policy instead, e.g. LatestN(3) | EveryNSteps(1000)"
        )
    if o.todelete_subdir is not None and o.todelete_full_path is not None:
        problems.append("todelete_subdir and todelete_full_path cannot both be set; pick one")
    if o.step_name_format is not None and not isinstance(o.step_name_format, StepNameFormat):
        problems.append(
            f"step_name_format={o.step_name_format!r} must be a tenure.StepNameFormat, e.g. "
            "StepNameFormat(prefix='ckpt', fixed_length=8)"
        )
    primary_host = getattr(o.multiprocessing_options, "primary_host", None)
    if o.enable_per_process_directory_creation and primary_host is not None:
        problems.append(
            "enable_per_process_directory_creation needs multiprocessing_options.primary_host "
            "to be None"
        )
    for name in ("should_save_fn", "should_keep_fn", "best_fn"):
        value = getattr(o, name)
        if value is not None and not callable(value):
            problems.append(f"{name}={value!r} must be a function")
    return problems


def to_policies(options: CheckpointManagerOptions) -> tuple[SaveDecisionPolicy, PreservationPolicy]:
    """The save-decision and preservation policies that `options` stand for (see the
    module's documentation for the rule of each field).

    Examples:
        >>> save, keep = to_policies(CheckpointManagerOptions(
        ...     save_interval_steps=1000, max_to_keep=3, keep_period=10_000))
        >>> save
        MinimumStepGapPolicy(steps=1) & (FixedIntervalPolicy(interval=1000) | \
PreemptionCheckpointingPolicy() | InitialSavePolicy())
        >>> keep
        EveryNSteps(interval_steps=10000) | LatestN(n=3)
    """
    return MinimumStepGapPolicy(1) & _save_policy(options), _preservation_policy(options)


def _save_policy(o: CheckpointManagerOptions) -> SaveDecisionPolicy:
    if o.save_decision_policy is not None:
        return o.save_decision_policy
    if o.should_save_fn is not None:
        return ShouldSaveFnPolicy(o.should_save_fn) | PreemptionCheckpointingPolicy()
    rules: list[SaveDecisionPolicy] = []
    if o.save_interval_steps:
        rules.append(FixedIntervalPolicy(o.save_interval_steps))
    if o.save_on_steps:
        rules.append(SpecificStepsPolicy(o.save_on_steps))
    rules += [PreemptionCheckpointingPolicy(), InitialSavePolicy()]
    return AnySavePolicy(rules)


def _preservation_policy(o: CheckpointManagerOptions) -> PreservationPolicy:
    if o.preservation_policy is not None:
        return o.preservation_policy
    rules: list[PreservationPolicy] = []
    if o.keep_period is not None:
        rules.append(EveryNSteps(o.keep_period))
    if o.keep_time_interval is not None:
        rules.append(EveryNSeconds(o.keep_time_interval.total_seconds()))
    if o.should_keep_fn is not None:
        rules.append(ShouldKeepFnPolicy(o.should_keep_fn))
    if o.best_fn is not None:
        rules.append(
            BestN(
                get_metric_fn=o.best_fn,
                reverse=o.best_mode == "min",
                n=o.max_to_keep,
                keep_checkpoints_without_metrics=o.keep_checkpoints_without_metrics,
            )
        )
    elif o.max_to_keep is not None:
        rules.append(LatestN(o.max_to_keep))
    else:
        return PreserveAll()  # no cap: every other rule is moot
    return rules[0] if len(rules) == 1 else AnyPreservationPolicy(rules)
