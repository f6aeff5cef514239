"""The import-linter contracts in pyproject.toml stay complete as modules are added."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"


def _contract(name_start: str) -> dict[str, object]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    [contract] = [c for c in config["contracts"] if c["name"].startswith(name_start)]
    return dict(contract)


def _private_modules(package: str) -> set[str]:
    module = __import__(f"tenure.{package}", fromlist=["_"])
    return {
        f"tenure.{package}.{info.name}"
        for info in pkgutil.iter_modules(module.__path__)
        if info.name.startswith("_") and not info.name.startswith("__")
    }


def test_the_private_module_contract_lists_every_private_module() -> None:
    # import-linter wildcards match whole names only, so `_*` cannot be written; the
    # contract lists the private modules, and this test keeps the list complete.
    contract = _contract("tenure.compat and tenure.cli use only")
    listed = set(contract["forbidden_modules"])
    expected = set().union(*(_private_modules(p) for p in ("retention", "manager", "io")))
    assert listed == expected
    cli_contract = _contract("tenure.compat uses only the public modules of tenure.cli")
    assert set(cli_contract["forbidden_modules"]) == _private_modules("cli")
