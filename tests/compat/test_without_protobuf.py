"""protobuf is optional: tenure's Orbax surface imports where no `google` package is installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Run in a fresh interpreter whose import system finds no `google` package, as on a machine
# without protobuf (here orbax, a dev dependency, installs it).
_HIDE_GOOGLE = textwrap.dedent(
    """
    import sys

    class HideGoogle:
        def find_spec(self, name, path=None, target=None):
            if name == "google" or name.startswith("google."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, HideGoogle())
    import tenure.compat, tenure.args
    assert not tenure.args.HAS_PROTOBUF
    assert not hasattr(tenure.args, "ProtoSave")
    print("imported")
    """
)


def test_compat_and_args_import_without_a_google_package() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _HIDE_GOOGLE], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "imported"
