"""Every Python code block in docs/ and README.md runs, in order, file by file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("**/*.md")])
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_code_blocks_run(page: Path, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    for number, block in enumerate(BLOCK.findall(page.read_text()), start=1):
        code = compile(block, f"{page.name}[block {number}]", "exec")
        exec(code, namespace)


def test_migrating_native_loop_resumes_when_run_a_second_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Doc snippets start fresh; a user reruns them on the same root, so this one runs twice."""
    blocks = BLOCK.findall((ROOT / "docs" / "migrating.md").read_text())
    loop = next(i for i, block in enumerate(blocks) if "tenure.Checkpointer(" in block)
    namespace: dict[str, object] = {"__name__": "docs.migrating"}
    for block in [*blocks[: loop + 1], blocks[loop]]:
        exec(compile(block, "migrating.md", "exec"), namespace)
    runs = [line for line in capsys.readouterr().out.splitlines() if line.startswith("from step")]
    assert [run.split(":")[0] for run in runs] == ["from step 0", "from step 1001"]
