"""Step directory names: `<step>`, `<prefix>_<step>`, or zero-padded, as Orbax names them."""

from __future__ import annotations

import re

import attrs

TMP_MARKER = ".orbax-checkpoint-tmp"


def _optional_prefix(_: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and (not value or "/" in value or value.startswith(".")):
        raise ValueError(f"{attribute.name}={value!r} must be a plain, non-empty name")


@attrs.frozen
class StepNameFormat:
    """How a step's directory is named, e.g. `1000`, `ckpt_1000` or `00001000`.

    Examples:
        >>> fmt = StepNameFormat(prefix="ckpt", fixed_length=8)
        >>> fmt.build(1000)
        'ckpt_00001000'
        >>> fmt.parse("ckpt_00001000"), fmt.parse("1000.orbax-checkpoint-tmp")
        (1000, None)
    """

    prefix: str | None = attrs.field(default=None, validator=_optional_prefix)
    fixed_length: int | None = None
    _pattern: re.Pattern[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        head = re.escape(f"{self.prefix}_") if self.prefix else ""
        digits = rf"\d{{{self.fixed_length},}}" if self.fixed_length else r"0|[1-9]\d*"
        object.__setattr__(self, "_pattern", re.compile(rf"^{head}({digits})$"))

    def build(self, step: int) -> str:
        """The directory name of `step`."""
        if step < 0:
            raise ValueError(f"step {step} is negative; steps are integers >= 0")
        digits = str(step).zfill(self.fixed_length) if self.fixed_length else str(step)
        return f"{self.prefix}_{digits}" if self.prefix else digits

    def parse(self, name: str) -> int | None:
        """The step a directory name stands for, or None when it names no step."""
        match = self._pattern.match(name)
        return int(match.group(1)) if match else None
