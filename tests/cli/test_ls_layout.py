"""`tenure ls` reads a Kauldron workdir's `ckpt_<step>` steps and says which naming a root
uses (issue 17)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp

import tenure
from tenure.compat.kauldron import Checkpointer
from tests.cli.conftest import run_json, run_tenure, write_orbax_v0_root


def test_ls_lists_a_kauldron_workdir_and_names_its_layout(tmp_path: Path) -> None:
    """Steps written as Kauldron writes them (Orbax with `step_prefix="ckpt"`) are listed."""
    root = tmp_path / "checkpoints"
    options = ocp.CheckpointManagerOptions(step_prefix="ckpt")
    with ocp.CheckpointManager(root, options=options) as mngr:
        for step in (10, 20):
            mngr.save(step, args=ocp.args.StandardSave({"w": np.arange(3.0) * step}))
        mngr.wait_until_finished()
    doc = run_json("ls", root)
    assert [(row["step"], Path(row["path"]).name) for row in doc["checkpoints"]] == [
        (10, "ckpt_10"),
        (20, "ckpt_20"),
    ]
    text = run_tenure("ls", root)
    assert text.returncode == 0, text.stderr
    assert "2 checkpoints" in text.stdout
    assert "Step directories named ckpt_<step> (Kauldron's layout)." in text.stdout


def test_ls_names_orbax_layout_and_a_second_layout_it_does_not_list(tmp_path: Path) -> None:
    root = write_orbax_v0_root(tmp_path / "v0")
    text = run_tenure("ls", root)
    assert "Step directories named <step> (Orbax's layout)." in text.stdout
    with Checkpointer(workdir=tmp_path / "w", save_interval_steps=1) as ckpt:
        ckpt.save({"w": np.zeros(2)}, step=3)
    # A stray step in the other layout (a bare folder named 7 would be no step at all).
    tenure.io.save_pytree(tmp_path / "w" / "checkpoints" / "7", {"w": np.zeros(2)})
    text = run_tenure("ls", tmp_path / "w" / "checkpoints")
    assert text.returncode == 0, text.stderr
    assert "1 checkpoints" in text.stdout
    assert "Also steps named <step> (Orbax's layout): not listed." in text.stdout
