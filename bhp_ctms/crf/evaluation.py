"""Working out a form entry from its values: which items show, what the calculated
items hold, and which edit checks fail."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from bhp_ctms.crf.definition.model import (
    MISSING_CODES,
    MISSING_LABELS,
    YES_NO_CHOICES,
    EditCheck,
    FormDefinition,
    Item,
    ItemGroup,
)
from bhp_ctms.crf.expressions import compiled, format_value
from bhp_ctms.crf.values import range_problem
from bhp_ctms.db import utc_today


@dataclass(frozen=True)
class CheckFailure:
    """A soft check a form entry's data fail: a soft range (``check`` is
    ``soft_range:<item>``) or an edit check (``check`` is its code)."""

    item_path: str
    check: str
    message: str
    value: str


ROW_PATH = re.compile(r"([a-z][a-z0-9_]*)\[(\d+)\]\.([a-z][a-z0-9_]*)")


def item_path(item_code: str, group: ItemGroup | None = None, row: int = 0) -> str:
    """Where a value is kept: ``weight``, or ``treatments[2].dose`` in a group's row."""
    return f"{group.code}[{row}].{item_code}" if group is not None else item_code


def split_path(path: str) -> tuple[str | None, int, str]:
    """(group code, row, item code) of an item path; (None, 0, code) outside groups."""
    match = ROW_PATH.fullmatch(path)
    if match is None:
        return None, 0, path
    return match[1], int(match[2]), match[3]


@dataclass(frozen=True)
class ItemAt:
    """The item an item path names, and where: ``group`` and ``row`` for an item in a
    row of a repeating group."""

    item: Item
    group_label: str = ""
    row: int | None = None

    @property
    def label(self) -> str:
        """The item's label as a person reads it, with its group row when it has one."""
        label = self.item.label or self.item.code
        if self.row is None:
            return label
        return f"{label} ({self.group_label}, row {self.row})"

    def show(self, value: str | None, missing_code: str | None = None) -> str:
        """A stored value as a person reads it: a choice by its label, a reason for a
        missing value by its name; "" when blank."""
        if missing_code:
            return MISSING_LABELS.get(missing_code, missing_code)
        if not value:
            return ""
        allowed_missing = {MISSING_CODES[code] for code in self.item.missing_codes}
        if value in allowed_missing:
            return MISSING_LABELS[value]
        if self.item.type == "yes_no":
            return dict(YES_NO_CHOICES).get(value, value)
        if self.item.type == "single_choice":
            return f"{self.item.choice_label(value)} ({value})"
        if self.item.type == "multiple_choice":
            return ", ".join(self.item.choice_label(code) for code in value.split("|"))
        if self.item.units:
            return f"{value} {self.item.units}"
        return value


def item_at(definition: FormDefinition, item_path: str) -> ItemAt:
    """The item ``item_path`` names (``weight``, ``medications[2].dose``); raises
    KeyError when the form has no such item, or it holds no value."""
    group_code, row, item_code = split_path(item_path)
    item = definition.item(item_code)
    group = definition.group_of(item.code)
    if not item.holds_value or (group.code if group is not None else None) != group_code:
        raise KeyError(item_path)
    if group is None:
        return ItemAt(item)
    return ItemAt(item, group.label or group.code, row)


def item_label(definition: FormDefinition, item_path: str) -> str:
    """An item's label for a list; the path itself when the form has no such item."""
    try:
        return item_at(definition, item_path).label
    except KeyError:
        return item_path


def group_rows(definition: FormDefinition, paths: Iterable[str]) -> dict[str, list[int]]:
    """The row numbers each group has values in, in order."""
    rows: dict[str, set[int]] = {group.code: set() for group in definition.groups}
    for path in paths:
        group, row, _ = split_path(path)
        if group in rows:
            rows[group].add(row)
    return {code: sorted(numbers) for code, numbers in rows.items()}


@dataclass
class Evaluation:
    """What a form entry's values come to under its definition.

    ``values`` holds every value that stays: the typed values of items that show,
    and the calculated items' values; an item hidden by show-if logic keeps no value.
    """

    values: dict[str, str]
    missing: dict[str, str]
    hidden: set[str] = field(default_factory=set)
    hard_failures: list[CheckFailure] = field(default_factory=list)
    soft_failures: list[CheckFailure] = field(default_factory=list)
    missing_required: list[str] = field(default_factory=list)
    short_groups: list[str] = field(default_factory=list)

    @property
    def completable(self) -> bool:
        return not (self.hard_failures or self.missing_required or self.short_groups)


def _scope(
    outer: Mapping[str, object], group: ItemGroup | None, row: int, values: Mapping[str, str]
) -> Mapping[str, object]:
    """The values an expression sees: the form's, and in a group's row the row's own."""
    if group is None:
        return outer
    scoped = dict(outer)
    for item in group.items:
        scoped[item.code] = values.get(item_path(item.code, group, row), "")
    return scoped


def evaluate_entry(
    definition: FormDefinition,
    values: Mapping[str, str],
    missing: Mapping[str, str] | None = None,
    *,
    context: Mapping[str, str] | None = None,
    today: date | None = None,
) -> Evaluation:
    """Work out an entry: calculations, show-if logic, ranges, edit checks, required items.

    ``values`` are canonical texts by item path (blank ones may be left out),
    ``missing`` the missing-data codes by item path, ``context`` the values of other
    forms' items that expressions refer to (by item code).
    """
    today = today or utc_today()
    kept = {path: value for path, value in values.items() if value}
    reasons = dict(missing or {})
    rows = group_rows(definition, [*kept, *reasons])
    result = Evaluation(values=kept, missing=reasons)
    _calculate(definition, result, rows, context or {}, today)
    outer = _outer_values(definition, result.values, context or {})
    for group, item in definition.iter_items():
        numbers = rows[group.code] if group is not None else [0]
        group_shown = group is None or _shows(group.show_if, outer, today)
        for row in numbers:
            path = item_path(item.code, group, row)
            scope = _scope(outer, group, row, result.values)
            if not group_shown or (item.show_if and not _shows(item.show_if, scope, today)):
                result.hidden.add(path)
                result.values.pop(path, None)
                result.missing.pop(path, None)
    for group in definition.groups:
        if _shows(group.show_if, outer, today) and len(rows[group.code]) < group.min_rows:
            result.short_groups.append(group.code)
    outer = _outer_values(definition, result.values, context or {})
    for group, item in definition.iter_items():
        for row in rows[group.code] if group is not None else [0]:
            path = item_path(item.code, group, row)
            if path in result.hidden:
                continue
            value = result.values.get(path, "")
            if item.required and item.entered and not value and path not in result.missing:
                result.missing_required.append(path)
            soft = range_problem(item, value, item.soft_range, today)
            if soft:
                failure = CheckFailure(path, f"soft_range:{item.code}", soft, value)
                result.soft_failures.append(failure)
    for check in definition.checks:
        _apply_check(definition, check, result, rows, outer, today)
    return result


def _outer_values(
    definition: FormDefinition, values: Mapping[str, str], context: Mapping[str, str]
) -> dict[str, object]:
    outer: dict[str, object] = dict(context)
    for group, item in definition.iter_items():
        if group is None:
            outer[item.code] = values.get(item.code, "")
    return outer


def _shows(expression: str, values: Mapping[str, object], today: date) -> bool:
    return not expression or compiled(expression).holds(values, today=today) is True


def _calculate(
    definition: FormDefinition,
    result: Evaluation,
    rows: Mapping[str, list[int]],
    context: Mapping[str, str],
    today: date,
) -> None:
    """Fill in calculated items; repeated so a calculation may use another's result
    whatever their order on the page (the definition refuses cycles)."""
    calculated = [(group, item) for group, item in definition.iter_items() if item.calculation]
    for _ in range(len(calculated)):
        changed = False
        outer = _outer_values(definition, result.values, context)
        for group, item in calculated:
            for row in rows[group.code] if group is not None else [0]:
                path = item_path(item.code, group, row)
                scope = _scope(outer, group, row, result.values)
                value = format_value(
                    compiled(item.calculation).evaluate(scope, today=today), item.precision
                )
                if result.values.get(path, "") != value:
                    changed = True
                    if value:
                        result.values[path] = value
                    else:
                        result.values.pop(path, None)
        if not changed:
            break


def _apply_check(
    definition: FormDefinition,
    check: EditCheck,
    result: Evaluation,
    rows: Mapping[str, list[int]],
    outer: Mapping[str, object],
    today: date,
) -> None:
    groups = {definition.group_of(code) for code in check.items} - {None}
    group = next(iter(groups)) if groups else None
    for row in rows[group.code] if group is not None else [0]:
        first = check.items[0]
        path = item_path(first, definition.group_of(first), row)
        if path in result.hidden:
            continue
        scope = _scope(outer, group, row, result.values)
        if compiled(check.condition).holds(scope, today=today) is False:
            failure = CheckFailure(path, check.code, check.message, result.values.get(path, ""))
            if check.severity == "hard":
                result.hard_failures.append(failure)
            else:
                result.soft_failures.append(failure)
