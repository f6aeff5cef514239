"""The rough edges of the command line that users hit (issue 13, defect 7)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tenure
from tenure import cli
from tenure.cli import listing
from tests.cli.conftest import run_tenure


def strict_json(text: str) -> Any:
    """JSON as the standard has it: no NaN or Infinity."""

    def refuse(constant: str) -> Any:
        pytest.fail(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two steps, one with a NaN loss; step 2 holds a readable item and an unreadable one."""
    path = tmp_path_factory.mktemp("root")
    with tenure.Checkpointer(path) as ckptr:
        ckptr.save(1, {"w": np.ones(3)}, metrics={"loss": math.nan}, force=True)
        items = {"good": {"w": np.ones(4)}, "bad": {"v": np.zeros(2)}}
        ckptr.save_checkpointables(2, items, force=True)
    (path / "2" / "bad" / "_METADATA").write_text("{ not json")
    return path


@pytest.mark.parametrize(
    "command", [["ls", "ROOT"], ["ls", "ROOT", "--json"], ["inspect", "ROOT", "1"]]
)
def test_output_into_a_closed_pipe_ends_quietly(root: Path, command: list[str]) -> None:
    argv = [str(root) if arg == "ROOT" else arg for arg in command]
    reader, writer = os.pipe()
    os.close(reader)  # like `| head` once it has read enough: every write fails
    try:
        run = subprocess.run(
            [sys.executable, "-m", "tenure", *argv],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(writer)
    assert "Traceback" not in run.stderr
    assert "BrokenPipeError" not in run.stderr
    assert run.returncode == 141


def test_json_writes_null_for_nan(root: Path) -> None:
    result = run_tenure("ls", root, "--json")
    assert result.returncode == 0, result.stderr
    rows = strict_json(result.stdout)["checkpoints"]
    assert rows[0]["metrics"] == {"loss": None}


def test_inspect_shows_the_readable_items_of_a_step_with_an_unreadable_one(root: Path) -> None:
    text = run_tenure("inspect", root, "2")
    assert text.returncode == 1
    assert "good" in text.stdout
    assert "w" in text.stdout
    assert "unreadable" in text.stdout
    assert "'bad'" in text.stderr
    as_json = run_tenure("inspect", root, "2", "--json")
    assert as_json.returncode == 1
    items = {item["name"]: item for item in strict_json(as_json.stdout)["checkpointables"]}
    assert [a["name"] for a in items["good"]["arrays"]] == ["w"]
    assert "error" in items["bad"]
    assert "error" not in items["good"]


def test_ls_says_why_a_directory_lists_no_steps(tmp_path: Path) -> None:
    single = tmp_path / "single"
    tenure.io.save_pytree(single, {"w": np.ones(2)})  # what Orbax's StandardCheckpointer writes
    assert "itself one checkpoint" in run_tenure("ls", single).stdout
    (tmp_path / "other" / "logs").mkdir(parents=True)
    assert "None of its 1 entries is a step" in run_tenure("ls", tmp_path / "other").stdout
    (tmp_path / "empty").mkdir()
    assert "It is empty." in run_tenure("ls", tmp_path / "empty").stdout


def test_a_type_error_is_a_bug_not_bad_input(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> Any:
        raise TypeError("a bug in tenure")

    monkeypatch.setattr(listing, "listing", broken)
    with pytest.raises(TypeError, match="a bug in tenure"):
        cli.main(["ls", str(root)])
