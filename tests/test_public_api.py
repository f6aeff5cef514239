"""Every public name is importable from where docs/api.md says it is."""

from __future__ import annotations

import importlib

import pytest

import tenure


@pytest.mark.parametrize("package", ["tenure.retention", "tenure.manager"])
def test_the_top_level_exports_every_name_of_the_retention_and_manager_packages(
    package: str,
) -> None:
    # docs/api.md: the Checkpointer and the policies are "importable from tenure".
    module = importlib.import_module(package)
    missing = sorted(set(module.__all__) - set(tenure.__all__))
    assert missing == []
    for name in module.__all__:
        assert getattr(tenure, name) is getattr(module, name), name


@pytest.mark.parametrize(
    "package", ["tenure", "tenure.retention", "tenure.manager", "tenure.io", "tenure.compat"]
)
def test_every_name_in_all_exists(package: str) -> None:
    module = importlib.import_module(package)
    assert [name for name in module.__all__ if not hasattr(module, name)] == []
    assert len(module.__all__) == len(set(module.__all__))


def test_the_callable_policies_are_at_the_top_level() -> None:
    assert tenure.ShouldKeepFnPolicy is tenure.retention.ShouldKeepFnPolicy
    assert tenure.ShouldSaveFnPolicy is tenure.retention.ShouldSaveFnPolicy
