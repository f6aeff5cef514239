"""Golden retention cases: checkpoints + policy text in, decisions and reasons out.

Each `retention/*.json` file holds one case. To regenerate the expected decisions on
purpose (after checking the change is wanted), run:

    TENURE_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/golden
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tenure.retention import CheckpointInfo, PreservationContext, parse_policy, plan_retention

CASES = sorted((Path(__file__).parent / "retention").glob("*.json"))


def decide(case: dict[str, Any]) -> list[dict[str, Any]]:
    checkpoints = [
        CheckpointInfo(
            c["step"], datetime.fromisoformat(c["time"]), c.get("metrics"), c.get("item_bytes")
        )
        for c in case["checkpoints"]
    ]
    now = datetime.fromisoformat(case["now"]) if case.get("now") else None
    plan = plan_retention(
        checkpoints,
        parse_policy(case["policy"]),
        PreservationContext(now=now),
        protected=case.get("protected", []),
    )
    decisions: list[dict[str, Any]] = []
    for d in plan.decisions:
        decisions.append({"step": d.step, "keep": d.keep, "reasons": list(d.reasons)})
        if d.items is not None:  # kept in part: the items that stay
            decisions[-1]["items"] = sorted(d.items)
    if plan.over_budget:
        decisions.append({"over_budget": list(plan.over_budget)})
    return decisions


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case(path: Path) -> None:
    case = json.loads(path.read_text())
    actual = decide(case)
    if os.environ.get("TENURE_REGENERATE_GOLDEN"):
        case["expected"] = actual
        path.write_text(json.dumps(case, indent=1) + "\n")
    assert actual == case["expected"]


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 4
