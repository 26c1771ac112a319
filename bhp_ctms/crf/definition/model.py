"""A case report form's definition as frozen data, and its round trip through JSON.

A form is a list of *entries* in page order: items, and repeating item groups (a
concomitant medication table) whose rows hold items of their own. Expressions
(show-if logic, calculations, edit checks) are kept as their source text; the
expression language compiles each once (:func:`bhp_ctms.crf.expressions.compiled`).

Values are kept as text in one canonical form whatever the item type: integers and
decimals as written without grouping (``72.5``), dates ``YYYY-MM-DD`` (partial dates
``2024-03-UN`` or ``2024-UN-UN``), times ``HH:MM``, datetimes ``YYYY-MM-DDTHH:MM``,
a choice by its code, multiple choices as their codes joined by ``|`` in codelist
order, yes/no as ``1`` or ``0``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

ItemType = Literal[
    "text",
    "long_text",
    "integer",
    "decimal",
    "date",
    "time",
    "datetime",
    "single_choice",
    "multiple_choice",
    "yes_no",
    "calculated",
    "descriptive",
]
ITEM_TYPES: tuple[str, ...] = ItemType.__args__  # type: ignore[attr-defined]

# The types that hold no value a person types: shown, never entered.
DISPLAY_ONLY_TYPES = frozenset({"descriptive"})

Widget = Literal["", "radio", "dropdown", "slider", "checkboxes"]
CheckSeverity = Literal["hard", "soft"]

# Why a value is missing, as the data hold it (CDISC's null flavours) and in the
# definition files (the keys).
MISSING_CODES: Mapping[str, str] = {
    "not_done": "ND",
    "not_applicable": "NA",
    "unknown": "UNK",
}
MISSING_LABELS: Mapping[str, str] = {
    "ND": "Not done",
    "NA": "Not applicable",
    "UNK": "Unknown",
}

YES_NO_CHOICES: tuple[tuple[str, str], ...] = (("1", "Yes"), ("0", "No"))


@dataclass(frozen=True)
class Choice:
    code: str
    label: str


@dataclass(frozen=True)
class Codelist:
    """A list of choices shared by the items of a study's forms (``codelists.yaml``)."""

    code: str
    name: str
    choices: tuple[Choice, ...]


@dataclass(frozen=True)
class Range:
    """Limits on a value, each given as canonical text (``18``, ``2.5``,
    ``2020-01-01``) or ``today`` for dates; ``None`` where there is no limit.
    ``message`` is shown instead of the generated one when given."""

    minimum: str | None = None
    maximum: str | None = None
    message: str = ""


@dataclass(frozen=True)
class TextPattern:
    """A regular expression a text value must match in full, and what to tell a
    person whose value does not."""

    regex: str
    message: str


@dataclass(frozen=True)
class Annotations:
    """Where an item goes in CDISC terms, for export metadata."""

    cdash: str = ""
    sdtm: str = ""


@dataclass(frozen=True)
class Item:
    """One question on a form.

    ``hard_range`` refuses a value outside it; ``soft_range`` keeps the value and
    raises a query. ``show_if`` hides the item (and drops its value from checks)
    unless it holds; ``calculation`` gives a calculated item its value.
    ``missing_codes`` are the reasons (``not_done``, ...) a person may give instead
    of a value. ``identifier`` flags a direct identifier (never exported).
    ``section`` starts a new section, with that heading, before the item.
    ``matrix`` names the matrix (a table of questions sharing one set of choices)
    the item is a row of.
    """

    code: str
    label: str
    type: ItemType
    required: bool = False
    help: str = ""
    units: str = ""
    section: str = ""
    precision: int | None = None
    choices: tuple[Choice, ...] = ()
    codelist: str = ""
    widget: Widget = ""
    slider_labels: tuple[str, ...] = ()
    hard_range: Range | None = None
    soft_range: Range | None = None
    pattern: TextPattern | None = None
    max_length: int | None = None
    partial_dates: bool = False
    show_if: str = ""
    calculation: str = ""
    missing_codes: tuple[str, ...] = ()
    identifier: bool = False
    matrix: str = ""
    annotations: Annotations = field(default_factory=Annotations)
    line: int = 0

    @property
    def entered(self) -> bool:
        """Whether a person types or picks this item's value."""
        return self.type not in DISPLAY_ONLY_TYPES and self.type != "calculated"

    @property
    def holds_value(self) -> bool:
        return self.type not in DISPLAY_ONLY_TYPES

    def choice_label(self, code: str) -> str:
        for choice in self.choices:
            if choice.code == code:
                return choice.label
        return code


@dataclass(frozen=True)
class ItemGroup:
    """A table of rows, each answering the group's items (a medication per row)."""

    code: str
    label: str
    items: tuple[Item, ...]
    help: str = ""
    section: str = ""
    show_if: str = ""
    min_rows: int = 0
    max_rows: int | None = None
    line: int = 0


@dataclass(frozen=True)
class EditCheck:
    """A rule across items: ``condition`` holds when the data are right.

    A condition that cannot be worked out (an item it needs is blank) is not a
    failure. A failing ``hard`` check refuses the save, with ``message`` on the first
    of ``items``; a failing ``soft`` check keeps the data and raises one query on it.
    """

    code: str
    condition: str
    message: str
    severity: CheckSeverity
    items: tuple[str, ...]
    line: int = 0


Entry = Item | ItemGroup


@dataclass(frozen=True)
class FormDefinition:
    """One version of a CRF, as read from its file."""

    code: str
    title: str
    version: str
    description: str
    entries: tuple[Entry, ...]
    checks: tuple[EditCheck, ...] = ()
    path: str = ""

    def iter_items(self) -> Iterator[tuple[ItemGroup | None, Item]]:
        """Every item in page order, with the group it is in (None outside groups)."""
        for entry in self.entries:
            if isinstance(entry, ItemGroup):
                for item in entry.items:
                    yield entry, item
            else:
                yield None, entry

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(item for _, item in self.iter_items())

    @property
    def groups(self) -> tuple[ItemGroup, ...]:
        return tuple(entry for entry in self.entries if isinstance(entry, ItemGroup))

    @functools.cached_property
    def _by_code(self) -> dict[str, tuple[ItemGroup | None, Item]]:
        return {item.code: (group, item) for group, item in self.iter_items()}

    def item(self, code: str) -> Item:
        return self._by_code[code][1]

    def group_of(self, item_code: str) -> ItemGroup | None:
        return self._by_code[item_code][0]

    def to_json(self) -> dict[str, Any]:
        """The definition as plain JSON data; each entry carries ``kind``."""
        return cast(dict[str, Any], _plain(self))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FormDefinition:
        """The definition that :meth:`to_json` gave ``data``."""
        return cls(
            code=data["code"],
            title=data["title"],
            version=data["version"],
            description=data["description"],
            entries=tuple(_entry(entry) for entry in data["entries"]),
            checks=tuple(
                EditCheck(**{**check, "items": tuple(check["items"])}) for check in data["checks"]
            ),
            path=data.get("path", ""),
        )


def _item(data: Mapping[str, Any]) -> Item:
    values = {key: value for key, value in data.items() if key != "kind"}
    values["choices"] = tuple(Choice(**choice) for choice in data["choices"])
    values["slider_labels"] = tuple(data["slider_labels"])
    values["missing_codes"] = tuple(data["missing_codes"])
    values["annotations"] = Annotations(**data["annotations"])
    for name in ("hard_range", "soft_range"):
        if data[name] is not None:
            values[name] = Range(**data[name])
    if data["pattern"] is not None:
        values["pattern"] = TextPattern(**data["pattern"])
    return Item(**values)


def _entry(data: Mapping[str, Any]) -> Entry:
    if data["kind"] == "group":
        values = {key: value for key, value in data.items() if key != "kind"}
        values["items"] = tuple(_item(item) for item in data["items"])
        return ItemGroup(**values)
    return _item(data)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        plain = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Item):
            plain["kind"] = "item"
        elif isinstance(value, ItemGroup):
            plain["kind"] = "group"
        return plain
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    return value
