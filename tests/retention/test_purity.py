"""The retention layer stays pure: importing it loads no jax, numpy or tensorstore."""

from __future__ import annotations

import subprocess
import sys


def test_importing_tenure_retention_imports_no_array_library() -> None:
    code = (
        "import sys, tenure.retention; "
        "print(sorted(m for m in ('jax', 'numpy', 'tensorstore') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"
