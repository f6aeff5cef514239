"""How often to checkpoint: the intervals of Young (1974) and Daly (2006), and the
measured cost of saving that they take.

Both formulas take `save_cost` (seconds the training loop is blocked by one save) and
`mtbf` (mean seconds between failures), and return the *compute* time between two saves
that minimises the expected wall time of a run under Poisson failures:

* Young, "A first order approximation to the optimum checkpoint interval", CACM 17(9),
  1974: `sqrt(2 C M)`.
* Daly, "A higher order estimate of the optimum checkpoint interval for restart dumps",
  Future Generation Computer Systems 22(3), 2006: `sqrt(2 C M) [1 + (1/3) sqrt(C / 2M) +
  (1/9) (C / 2M)] - C` while `C < 2M`, else `M`.
"""

from __future__ import annotations

import math
from collections import deque

from tenure.retention.errors import PolicyArgumentError

#: How many recent saves `SaveCostMeter.mean` averages.
SAVE_COST_WINDOW = 5


def _check(save_cost: float, mtbf: float) -> None:
    if not save_cost >= 0 or not mtbf > 0 or math.isinf(save_cost) or math.isinf(mtbf):
        raise PolicyArgumentError(
            f"save_cost={save_cost!r} must be >= 0 and mtbf={mtbf!r} > 0, both finite seconds"
        )


def young_interval(save_cost: float, mtbf: float) -> float:
    """Young's first-order optimum: seconds of compute between saves.

    Examples:
        >>> round(young_interval(20, 6 * 3600), 1)  # 20 s saves, a failure every 6 h
        929.5
    """
    _check(save_cost, mtbf)
    return math.sqrt(2 * save_cost * mtbf)


def daly_interval(save_cost: float, mtbf: float) -> float:
    """Daly's higher-order optimum: seconds of compute between saves.

    Examples:
        >>> round(daly_interval(20, 6 * 3600), 1)
        916.2
        >>> round(daly_interval(5, 6 * 60))  # Daly's example, in minutes: M = 6 h, 5 min dumps
        57
    """
    _check(save_cost, mtbf)
    if save_cost >= 2 * mtbf:
        return mtbf
    ratio = save_cost / (2 * mtbf)
    return math.sqrt(2 * save_cost * mtbf) * (1 + math.sqrt(ratio) / 3 + ratio / 9) - save_cost


class SaveCostMeter:
    """The seconds the training loop was blocked by its recent saves.

    The Checkpointer and the failure simulator both keep one, so a policy reading
    `DecisionContext.save_cost` sees the same figure in both. A save is recorded once the
    caller is free again; recording the same step again replaces its figure (a blocking
    save first records the time to start, then the time to commit).

    Examples:
        >>> meter = SaveCostMeter()
        >>> meter.mean is None
        True
        >>> meter.record(100, 18.0); meter.record(200, 1.0); meter.record(200, 22.0)
        >>> meter.mean
        20.0
    """

    __slots__ = ("_recent", "mean")

    def __init__(self) -> None:
        self._recent: deque[tuple[int, float]] = deque(maxlen=SAVE_COST_WINDOW)
        #: The mean over the last `SAVE_COST_WINDOW` saves; None before the first. Kept
        #: up to date here, since policies read it at every step and saves are rare.
        self.mean: float | None = None

    def record(self, step: int, seconds: float) -> None:
        if self._recent and self._recent[-1][0] == step:
            self._recent.pop()
        self._recent.append((step, seconds))
        self.mean = sum(s for _, s in self._recent) / len(self._recent)
