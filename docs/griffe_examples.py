"""A griffe extension for the API reference (see `mkdocs.yml`).

tenure's docstrings head their doctests with `Example:`, which Google style reads as an
admonition of plain Markdown: `[80, 90]` in an output line then looks like a link.
Renaming the heading to `Examples:` renders them as example sections, as code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
