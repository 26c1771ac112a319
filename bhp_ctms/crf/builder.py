"""One builder turns a form version's definition into a WTForms class, once.

The class has a field per item a person answers (``weight``), its missing-data
reason (``weight__missing``) and its reason for change (``weight__reason``); a
repeating group is a list of row forms, each carrying its row number so that rows
keep their identity (and their audit history) when another row is removed.
:meth:`EntryForm.read` turns what was posted into canonical values, noting a problem
per item without losing anything typed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import wtforms
from wtforms import Field
from wtforms.utils import unset_value

from bhp_ctms.crf.definition.model import MISSING_CODES, FormDefinition, Item, ItemGroup
from bhp_ctms.crf.evaluation import group_rows, item_path, split_path
from bhp_ctms.crf.values import DateParts, ValueProblem, parse_value
from bhp_ctms.forms import Form

MISSING_SUFFIX = "__missing"
REASON_SUFFIX = "__reason"
ROW_FIELD = "row__number"
REMOVE_FIELD = "row__remove"


class DatePartsField(Field):
    """A date typed into three boxes (day, month, year), kept exactly as typed, so
    that partial dates (``UN`` or a blank day) and mistakes come back unchanged."""

    def __init__(self, label: str | None = None, validators: Any = None, **kwargs: Any) -> None:
        super().__init__(label, validators, **kwargs)
        self.id = f"{self.name}-day"
        self.data: DateParts = DateParts()

    def process(self, formdata: Any, data: Any = unset_value, extra_filters: Any = None) -> None:
        self.process_errors: list[Any] = []
        if formdata is not None and any(
            f"{self.name}-{part}" in formdata for part in ("day", "month", "year")
        ):
            self.data = DateParts(
                *(
                    (formdata.getlist(f"{self.name}-{part}") or [""])[0]
                    for part in ("day", "month", "year")
                )
            )
        elif isinstance(data, DateParts):
            self.data = data
        elif isinstance(data, str):
            self.data = DateParts.of(data)
        else:
            self.data = DateParts()


class ChoicesField(Field):
    """The codes ticked in a set of checkboxes."""

    def __init__(self, label: str | None = None, validators: Any = None, **kwargs: Any) -> None:
        super().__init__(label, validators, **kwargs)
        self.data: list[str] = []

    def process(self, formdata: Any, data: Any = unset_value, extra_filters: Any = None) -> None:
        self.process_errors: list[Any] = []
        if formdata is not None and (self.name in formdata or f"{self.name}__shown" in formdata):
            self.data = [code for code in formdata.getlist(self.name) if code]
        elif isinstance(data, str) and data:
            self.data = data.split("|")
        elif isinstance(data, list):
            self.data = data
        else:
            self.data = []


def _field_for(item: Item) -> Field:
    if item.type == "date":
        return DatePartsField(item.label)
    if item.type == "multiple_choice":
        return ChoicesField(item.label)
    if item.type == "long_text":
        return wtforms.TextAreaField(item.label)
    return wtforms.StringField(item.label)


def _add_item_fields(attributes: dict[str, Any], item: Item) -> None:
    if not item.entered:
        return
    attributes[item.code] = _field_for(item)
    if item.missing_codes:
        attributes[item.code + MISSING_SUFFIX] = wtforms.StringField(f"Why {item.label} is missing")
    attributes[item.code + REASON_SUFFIX] = wtforms.StringField(f"Reason for changing {item.label}")


@dataclass
class ReadEntry:
    """What a posted form holds: canonical values, missing-data codes and reasons by
    item path, and a message for each item whose input could not be read."""

    values: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


class EntryForm(Form):
    """A CRF's form; subclasses are made by :func:`entry_form_class`."""

    definition: FormDefinition
    version = wtforms.HiddenField()

    def bound(self, path: str, suffix: str = "") -> Field | None:
        """The bound field of an item path (``weight``, ``treatments[2].dose``)."""
        group_code, row, code = split_path(path)
        if group_code is None:
            return self._fields.get(code + suffix)
        for row_form in self._fields[group_code]:
            if _row_number(row_form) == row:
                return row_form.form._fields.get(code + suffix)
        return None

    def rows(self, group: ItemGroup) -> list[tuple[int, Any]]:
        """(row number, row form) of a group's rows, in order."""
        return [(_row_number(row_form), row_form.form) for row_form in self._fields[group.code]]

    def number_new_rows(self) -> None:
        """Give each new row (no number yet) the next number of its group."""
        for group in self.definition.groups:
            row_forms = list(self._fields[group.code])
            highest = max((_row_number(row_form) for row_form in row_forms), default=0)
            for row_form in row_forms:
                if not _row_number(row_form):
                    highest += 1
                    row_form.form._fields[ROW_FIELD].data = str(highest)

    def read(self) -> ReadEntry:
        """Canonical values of everything posted; a problem per item that is wrong."""
        read = ReadEntry()
        for _group, item, path, bound in self.iter_bound():
            if bound is None:
                continue
            try:
                value = parse_value(item, bound.data if bound.data is not None else "")
            except ValueProblem as problem:
                read.problems[path] = problem.message
                value = ""
            if value:
                read.values[path] = value
            missing = self.bound(path, MISSING_SUFFIX)
            if missing is not None and missing.data:
                if missing.data not in item.missing_codes_stored:
                    read.problems[path] = f"{item.label}: choose a reason it is missing"
                elif value:
                    read.problems[path] = (
                        f"{item.label}: give a value or say why it is missing, not both"
                    )
                else:
                    read.missing[path] = missing.data
            reason = self.bound(path, REASON_SUFFIX)
            if reason is not None and (reason.data or "").strip():
                read.reasons[path] = reason.data.strip()
        return read

    def iter_bound(self) -> Iterator[tuple[ItemGroup | None, Any, str, Field | None]]:
        """(group, item, path, bound field) of every item a person answers."""
        for entry in self.definition.entries:
            if isinstance(entry, ItemGroup):
                for row, row_form in self.rows(entry):
                    if row_form._fields[REMOVE_FIELD].data:
                        continue
                    for item in entry.items:
                        if item.entered:
                            path = item_path(item.code, entry, row)
                            yield entry, _Answerable(item), path, row_form._fields[item.code]
            elif entry.entered:
                yield None, _Answerable(entry), entry.code, self._fields[entry.code]


class _Answerable:
    """An item with its missing-data reasons as the data hold them (ND, NA, UNK)."""

    def __init__(self, item: Item) -> None:
        self._item = item
        self.missing_codes_stored = frozenset(MISSING_CODES[code] for code in item.missing_codes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._item, name)


def _row_number(row_form: Any) -> int:
    text = (row_form.form._fields[ROW_FIELD].data or "").strip()
    return int(text) if text.isdigit() else 0


_CLASSES: dict[str, type[EntryForm]] = {}


def entry_form_class(definition: FormDefinition, key: str) -> type[EntryForm]:
    """The WTForms class of a form version (``key`` names it, e.g. its SHA-256),
    built the first time it is asked for."""
    cls = _CLASSES.get(key)
    if cls is None:
        attributes: dict[str, Any] = {"definition": definition}
        for entry in definition.entries:
            if isinstance(entry, ItemGroup):
                row_attributes: dict[str, Any] = {
                    ROW_FIELD: wtforms.HiddenField(),
                    REMOVE_FIELD: wtforms.BooleanField(f"Remove this {entry.label} row"),
                }
                for item in entry.items:
                    _add_item_fields(row_attributes, item)
                row_class = type(f"{entry.code}_row", (wtforms.Form,), row_attributes)
                attributes[entry.code] = wtforms.FieldList(wtforms.FormField(row_class))
            else:
                _add_item_fields(attributes, entry)
        cls = type(f"{definition.code}_form", (EntryForm,), attributes)
        _CLASSES[key] = cls
    return cls


def form_data(
    definition: FormDefinition,
    values: Mapping[str, str],
    missing: Mapping[str, str],
    version: int | None,
) -> dict[str, Any]:
    """Stored values as the keyword data a form class is filled with."""
    data: dict[str, Any] = {"version": "" if version is None else str(version)}
    rows = group_rows(definition, [*values, *missing])
    for entry in definition.entries:
        if isinstance(entry, ItemGroup):
            data[entry.code] = [
                {
                    ROW_FIELD: str(row),
                    **{
                        item.code: values.get(item_path(item.code, entry, row), "")
                        for item in entry.items
                        if item.entered
                    },
                    **{
                        item.code + MISSING_SUFFIX: missing.get(
                            item_path(item.code, entry, row), ""
                        )
                        for item in entry.items
                        if item.missing_codes
                    },
                }
                for row in rows[entry.code]
            ]
        elif entry.entered:
            data[entry.code] = values.get(entry.code, "")
            if entry.missing_codes:
                data[entry.code + MISSING_SUFFIX] = missing.get(entry.code, "")
    return data
