"""Each REDCap field as the form item it becomes, or the reason it is not imported.

Branching logic and calculations are kept as REDCap wrote them here; whether they can
be imported depends on the other fields (:mod:`bhp_ctms.crf.redcap.logic`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from bhp_ctms.crf.definition.model import Choice, Item, ItemType, Range, Widget
from bhp_ctms.crf.redcap.dictionary import FieldRow
from bhp_ctms.crf.redcap.labels import plain_text
from bhp_ctms.crf.redcap.validation import (
    VALIDATIONS,
    BoundError,
    Bounds,
    bound_above,
    canonical_bound,
)
from bhp_ctms.studies.definition import Problem

ITEM_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
FORM_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")
# REDCap's raw values: letters, digits and underscores, or a (negative) number.
CHOICE_CODE = re.compile(r"[A-Za-z0-9_]+|-?[0-9]+(\.[0-9]+)?")
ACTION_TAG = re.compile(r"(?<![A-Za-z0-9_.])@[A-Z][A-Z0-9_-]+")

FIELD_TYPES = (
    "text",
    "notes",
    "dropdown",
    "radio",
    "checkbox",
    "yesno",
    "truefalse",
    "calc",
    "slider",
    "descriptive",
    "file",
    "sql",
)
CHOICE_WIDGETS: dict[str, Widget] = {"radio": "radio", "dropdown": "dropdown", "checkbox": ""}
TRUE_FALSE_CHOICES = (Choice("1", "True"), Choice("0", "False"))
SLIDER_RANGE = ("0", "100")
MAX_SLIDER_LABELS = 3
YES = frozenset({"y", "yes", "1"})
NO = frozenset({"", "n", "no", "0"})

RECORD_ID_REASON = (
    "the record ID field: BHP CTMS identifies participants by their study ID, not by a form item"
)
SKIPPED_TYPES = {
    "file": "file upload fields are not supported",
    "sql": "sql fields (dynamic queries of the REDCap database) are not supported",
}
SIGNATURE_REASON = (
    "signature fields are not supported: forms are signed with BHP CTMS's e-signatures"
)


@dataclass
class FieldPlan:
    """One dictionary row: the item it becomes (logic not yet attached), or why not."""

    row: FieldRow
    form: str
    item: Item | None
    skip_reason: str = ""
    branching_logic: str = ""
    calculation: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def section(self) -> str:
        return plain_text(self.row["section_header"])


class ChoiceError(ValueError):
    pass


def parse_choices(text: str) -> tuple[Choice, ...]:
    """``1, Yes | 2, No`` as choices (a label may hold commas; a code may be letters or
    a negative number). Raises :class:`ChoiceError` naming the part at fault."""
    separator = "|" if "|" in text or "\n" not in text else "\n"
    choices: list[Choice] = []
    seen: set[str] = set()
    for part in text.split(separator):
        part = part.strip()
        if not part:
            continue
        code, comma, label = part.partition(",")
        code = code.strip()
        if not comma:
            raise ChoiceError(f"{part!r} has no comma between its code and its label")
        if not CHOICE_CODE.fullmatch(code):
            raise ChoiceError(
                f"{part!r}: the code {code!r} must be letters, digits and underscores, or a number"
            )
        if code in seen:
            raise ChoiceError(f"the code {code!r} is given twice")
        seen.add(code)
        choices.append(Choice(code, plain_text(label) or code))
    if not choices:
        raise ChoiceError("no choices given")
    return tuple(choices)


def form_title(form_code: str) -> str:
    """A form name in words: ``baseline_data`` is "Baseline data"."""
    words = " ".join(form_code.replace("_", " ").split())
    return words[:1].upper() + words[1:]


class FieldPlanner:
    """Plans each row of one dictionary, noting each malformed cell as a problem at
    its row and column."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems

    def problem(self, row: FieldRow, column: str, message: str) -> None:
        name = row.name or f"row {row.row}"
        self.problems.append(Problem(self.path, row.row, row.column(column), f"{name}: {message}"))

    def plan(self, row: FieldRow, record_id: bool) -> FieldPlan:
        """The plan for ``row``; ``record_id`` for the dictionary's first field."""
        name, form = row.name, row["form_name"]
        if not ITEM_CODE.fullmatch(name):
            self.problem(
                row,
                "field_name",
                f"the variable name {name!r} must be a lower-case letter then up to 63 "
                "lower-case letters, digits or underscores",
            )
        if not FORM_CODE.fullmatch(form):
            self.problem(
                row,
                "form_name",
                f"the form name {form!r} must be a lower-case letter then up to 31 "
                "lower-case letters, digits or underscores",
            )
        field_type = row["field_type"].lower()
        identifier = self._flag(row, "identifier")
        required = self._flag(row, "required")
        self._flag(row, "matrix_ranking")
        if field_type not in FIELD_TYPES:
            self.problem(
                row,
                "field_type",
                f"unknown field type {field_type!r}; REDCap's are {', '.join(FIELD_TYPES)}",
            )
            return FieldPlan(row, form, None, "unknown field type")
        plan = FieldPlan(row, form, None, branching_logic=row["branching_logic"])
        if record_id:
            plan.skip_reason = RECORD_ID_REASON
            return plan
        if field_type == "file":
            signature = row["validation"].lower() == "signature"
            plan.skip_reason = SIGNATURE_REASON if signature else SKIPPED_TYPES["file"]
            return plan
        if field_type == "sql":
            plan.skip_reason = SKIPPED_TYPES["sql"]
            return plan
        label = plain_text(row["field_label"])
        if field_type == "descriptive":
            if not label:
                plan.skip_reason = "a descriptive field without text (attachments are not imported)"
                return plan
            plan.item = Item(
                code=name, label=label, type="descriptive", help=plain_text(row["field_note"])
            )
            return plan
        if not label:
            label = name
            plan.notes.append("it has no label in REDCap: its variable name is its label")
        item = Item(
            code=name,
            label=label,
            type="text",
            required=required and field_type != "calc",
            identifier=identifier,
            help=plain_text(row["field_note"]),
            matrix=self._matrix(row),
        )
        plan.item = self._typed(plan, item, field_type)
        tags = sorted(set(ACTION_TAG.findall(row["field_annotation"])))
        if tags:
            plan.notes.append(f"REDCap action tags are not imported: {', '.join(tags)}")
        return plan

    def _flag(self, row: FieldRow, column: str) -> bool:
        value = row[column].lower()
        if value in YES:
            return True
        if value not in NO:
            self.problem(row, column, f"{value!r} must be 'y' or blank")
        return False

    def _matrix(self, row: FieldRow) -> str:
        matrix = row["matrix_group"]
        if matrix and not ITEM_CODE.fullmatch(matrix):
            self.problem(
                row,
                "matrix_group",
                f"the matrix group name {matrix!r} must be a lower-case letter then "
                "lower-case letters, digits or underscores",
            )
        return matrix

    def _choices(self, row: FieldRow) -> tuple[Choice, ...]:
        try:
            return parse_choices(row["choices"])
        except ChoiceError as error:
            self.problem(row, "choices", f"the choices cannot be read: {error}")
            return ()

    def _typed(self, plan: FieldPlan, item: Item, field_type: str) -> Item:
        row = plan.row
        if field_type == "notes":
            return replace(item, type="long_text")
        if field_type in CHOICE_WIDGETS:
            choice_type: ItemType = (
                "multiple_choice" if field_type == "checkbox" else "single_choice"
            )
            return replace(
                item,
                type=choice_type,
                widget=CHOICE_WIDGETS[field_type],
                choices=self._choices(row),
            )
        if field_type == "yesno":
            return replace(item, type="yes_no")
        if field_type == "truefalse":
            return replace(item, type="single_choice", widget="radio", choices=TRUE_FALSE_CHOICES)
        if field_type == "calc":
            plan.calculation = row["choices"]
            if not plan.calculation:
                self.problem(row, "choices", "a calc field needs its calculation")
            return replace(item, type="calculated", precision=_rounded_places(plan.calculation))
        if field_type == "slider":
            minimum, maximum = self._bounds(row, "integer", "ymd", plan.notes)
            given = [plain_text(label) for label in row["choices"].split("|")]
            labels = tuple(label for label in given if label)
            if len(labels) > MAX_SLIDER_LABELS:
                plan.notes.append(
                    f"a slider shows {MAX_SLIDER_LABELS} labels (left, middle, right): "
                    f"{', '.join(repr(label) for label in labels[MAX_SLIDER_LABELS:])} dropped"
                )
                labels = labels[:MAX_SLIDER_LABELS]
            elif 0 < len(labels) < len(given):
                plan.notes.append("its blank slider labels are dropped")
            return replace(
                item,
                type="integer",
                widget="slider",
                hard_range=Range(minimum or SLIDER_RANGE[0], maximum or SLIDER_RANGE[1]),
                slider_labels=labels,
            )
        return self._text(plan, item)

    def _text(self, plan: FieldPlan, item: Item) -> Item:
        row = plan.row
        if row["choices"]:
            plan.notes.append(
                f"its ontology search ({row['choices']}) is not imported: it is a plain text item"
            )
        name = row["validation"].lower()
        if not name:
            self._ignored_bounds(plan, "it has no validation type")
            return item
        validation = VALIDATIONS.get(name)
        if validation is None:
            plan.notes.append(f"its validation type {name!r} is unknown: it is a plain text item")
            self._ignored_bounds(plan, f"its validation type {name!r} is unknown")
            return item
        if validation.note:
            plan.notes.append(f"{name}: {validation.note}")
        item = replace(
            item, type=validation.type, precision=validation.precision, pattern=validation.pattern
        )
        if not validation.bounds:
            self._ignored_bounds(plan, f"{name} has no range")
            return item
        minimum, maximum = self._bounds(row, validation.bounds, validation.date_order, plan.notes)
        if minimum is None and maximum is None:
            return item
        # REDCap's range check warns and keeps the value: a soft range.
        return replace(item, soft_range=Range(minimum, maximum))

    def _ignored_bounds(self, plan: FieldPlan, why: str) -> None:
        given = [
            f"{word} {plan.row[column]!r}"
            for word, column in (("min", "validation_min"), ("max", "validation_max"))
            if plan.row[column]
        ]
        if given:
            plan.notes.append(f"{' and '.join(given)} not imported: {why}")

    def _bounds(
        self, row: FieldRow, bounds: Bounds, date_order: str, notes: list[str]
    ) -> tuple[str | None, str | None]:
        limits: list[str | None] = []
        for column in ("validation_min", "validation_max"):
            text = row[column]
            if not text:
                limits.append(None)
                continue
            word = "min" if column == "validation_min" else "max"
            if bounds == "datetime" and text.lower() in ("today", "now"):
                notes.append(
                    f"its {word} {text!r} is not imported: a datetime range has fixed limits"
                )
                limits.append(None)
                continue
            if text.startswith("["):
                notes.append(
                    f"its {word} {text!r} is not imported: a limit taken from another field "
                    "is not supported"
                )
                limits.append(None)
                continue
            try:
                limits.append(canonical_bound(text, bounds, date_order))
            except BoundError as error:
                self.problem(row, column, f"the {word} {error}")
                limits.append(None)
        minimum, maximum = limits
        if minimum is not None and maximum is not None and bound_above(minimum, maximum, bounds):
            self.problem(
                row,
                "validation_min",
                f"the min {row['validation_min']!r} is above the max {row['validation_max']!r}",
            )
        return minimum, maximum


def _rounded_places(calculation: str) -> int | None:
    """The places a calculation is rounded to as a whole (``round(..., 1)``), if it is."""
    match = _OUTER_ROUND.fullmatch(calculation.strip())
    if not match:
        return None
    depth = 0
    body = match["body"]
    for character in body:
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth < 0:
            return None
    return int(match["places"]) if depth == 0 else None


_OUTER_ROUND = re.compile(r"round\s*\((?P<body>.*),\s*(?P<places>[0-9])\s*\)", re.DOTALL)
