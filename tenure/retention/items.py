"""Parts of a checkpoint and their sizes: the item sets policies keep, and byte counts as text.

A step holds checkpointable items (`params`, `opt_state`, ...). A preservation policy keeps
an `ItemSet` of each step: all of it, none of it, or some items. Item sets are either finite
("just these") or co-finite ("everything but these"), so `|`, `&` and `~` are closed without
knowing which items a step holds; `resolve` turns one into the items kept of a given step.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from tenure.retention.errors import PolicyArgumentError
from tenure.retention.report import rule_of


def item_names(names: Iterable[Any]) -> frozenset[str]:
    """Converter: item names as a frozenset, refusing anything but non-empty strings.

    Examples:
        >>> sorted(item_names(["params", "opt_state", "params"]))
        ['opt_state', 'params']
        >>> item_names("params")
        Traceback (most recent call last):
        ...
        tenure.retention.errors.PolicyArgumentError: items='params' is one string; ...
    """
    if isinstance(names, str):
        raise PolicyArgumentError(
            f"items={names!r} is one string; give item names one by one, e.g. "
            ".only('params', 'opt_state')"
        )
    result = frozenset(names)
    bad = sorted(repr(n) for n in result if not isinstance(n, str) or not n)
    if bad:
        raise PolicyArgumentError(
            f"item names must be non-empty strings, such as 'params'; got {', '.join(bad)}"
        )
    return result


@attrs.frozen(slots=True, repr=False)
class ItemSet:
    """The items a policy keeps of one step: `names`, or all but `names` when `complement`.

    Examples:
        >>> params = ItemSet.of("params")
        >>> sorted((params | ItemSet.of("opt_state")).resolve({"params", "opt_state", "ema"}))
        ['opt_state', 'params']
        >>> sorted((~params).resolve({"params", "opt_state"}))
        ['opt_state']
        >>> params & ~params == ItemSet.NONE, params | ~params == ItemSet.ALL
        (True, True)
        >>> bool(ItemSet.NONE), ItemSet.ALL.is_all
        (False, True)
    """

    names: frozenset[str] = attrs.field(converter=item_names)
    complement: bool = False

    ALL: ClassVar[ItemSet]
    NONE: ClassVar[ItemSet]

    @classmethod
    def of(cls, *names: str) -> ItemSet:
        """Just the items named."""
        return cls(frozenset(names))

    @property
    def is_all(self) -> bool:
        """Whether every item is kept (the whole step)."""
        return self.complement and not self.names

    def resolve(self, names: Iterable[str]) -> frozenset[str]:
        """The items kept of a step that holds `names`."""
        held = frozenset(names)
        return held - self.names if self.complement else held & self.names

    def __bool__(self) -> bool:
        return self.complement or bool(self.names)

    def __or__(self, other: ItemSet) -> ItemSet:
        if self.is_all or not other:
            return self
        if other.is_all or not self:
            return other
        if self.complement and other.complement:
            return _item_set(self.names & other.names, complement=True)
        if self.complement:
            return _item_set(self.names - other.names, complement=True)
        if other.complement:
            return _item_set(other.names - self.names, complement=True)
        return _item_set(self.names | other.names, complement=False)

    def __and__(self, other: ItemSet) -> ItemSet:
        return ~(~self | ~other)

    def __invert__(self) -> ItemSet:
        return _item_set(self.names, complement=not self.complement)

    def __repr__(self) -> str:
        if self.is_all:
            return "ItemSet.ALL"
        if not self:
            return "ItemSet.NONE"
        listed = f"ItemSet.of({', '.join(map(repr, sorted(self.names)))})"
        return f"~{listed}" if self.complement else listed


def _item_set(names: frozenset[str], *, complement: bool) -> ItemSet:
    """An `ItemSet` from names already checked: the operators build many, in every plan."""
    result = object.__new__(ItemSet)
    object.__setattr__(result, "names", names)
    object.__setattr__(result, "complement", complement)
    return result


ItemSet.ALL = ItemSet(frozenset(), complement=True)
ItemSet.NONE = ItemSet(frozenset())

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGTP]?i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1}
for _power, _letter in enumerate("KMGTP", start=1):
    _UNITS[f"{_letter}IB"] = 1024**_power
    _UNITS[f"{_letter}B"] = 1000**_power
# Largest first, binary before decimal: the unit `format_bytes_text` writes.
_CANONICAL = sorted(
    ((unit[0] + unit[1:].replace("IB", "iB"), size) for unit, size in _UNITS.items() if size > 1),
    key=lambda pair: -pair[1],
)


def parse_bytes(value: int | str) -> int:
    """A byte count from an int or text: `"2GiB"`, `"500MB"`, `"1.5KiB"`; bare numbers are
    bytes. Binary units (KiB ... PiB) count in 1024s, decimal ones (KB ... PB) in 1000s;
    a fraction of a byte is rounded down.

    Examples:
        >>> parse_bytes("2GiB"), parse_bytes("500MB"), parse_bytes("1.5KiB"), parse_bytes(7)
        (2147483648, 500000000, 1536, 7)
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise PolicyArgumentError(f"{value} bytes is negative; give a size of 0 or more")
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if not match:
        raise PolicyArgumentError(
            f"{value!r} is not a size; write e.g. 2GiB, 500MB or a number of bytes"
        )
    number, unit = match.groups()
    return int(Decimal(number) * _UNITS[(unit or "").upper()])


def format_bytes_text(nbytes: int) -> int | str:
    """`nbytes` as `parse_bytes` text in the largest unit it is a whole multiple of, else
    the int itself.

    Examples:
        >>> format_bytes_text(2 * 2**40), format_bytes_text(500_000_000), format_bytes_text(7)
        ('2TiB', '500MB', 7)
    """
    for unit, size in _CANONICAL:
        if nbytes and nbytes % size == 0:
            return f"{nbytes // size}{unit}"
    return nbytes


def label_with_items(label: str, items: ItemSet) -> str:
    """A rule's reason with the items it keeps: as is for the whole step, else
    `"EveryNSteps(interval_steps=10).only('params')"` (before a detail such as `": rank 2"`).

    Examples:
        >>> label_with_items("BestN(metric='loss', mode='min', n=2): rank 1", ItemSet.of("params"))
        "BestN(metric='loss', mode='min', n=2).only('params'): rank 1"
        >>> label_with_items("~LatestN(n=1)", ~ItemSet.of("opt_state"))
        "~LatestN(n=1) (all items but 'opt_state')"
    """
    if items.is_all:
        return label
    listed = ", ".join(map(repr, sorted(items.names)))
    if items.complement:
        return f"{label} (all items but {listed})"
    rule = rule_of(label)
    if rule.startswith("~") or " | " in rule or " & " in rule:
        rule = f"({rule})"  # .only binds tighter than ~, | and &
    return f"{rule}.only({listed}){label[len(rule_of(label)) :]}"
