"""The datasets of an export and their variables, named for every format at once.

Each form gives one *wide* dataset (a row per participant x event x event instance),
each repeating group of a form one more (a row per table row), and the participants
one; the CSV, SAS transport, Stata and SPSS writers all write these same datasets, so
that a variable means the same thing in every file, and the data dictionary
(``csv/data_dictionary.csv``) describes them all.

The variables of a form are the items of its latest version in page order, then the
items that only older versions have (so that no value entered on an older version is
lost); a value is placed by its item code, whatever version it was entered on. Items
marked ``identifier`` and display-only items have no variable.

Names. ``Variable.name`` is the name in CSV, Stata and SPSS: the item code, or for
the columns derived from an item ``<item>___<choice>`` (one 0/1 column per choice of
a multiple choice), ``<item>_label`` and ``<item>_missing``; at most 32 characters,
never a word Stata or SPSS reserve, unique in its dataset (a clash gets ``_2``,
``_3``...). ``Variable.short_name`` is the SAS transport (version 5) name: at most 8
characters, upper case, made from the item code (``WEIGHT``, ``SYMPTO_1``), made
unique in the dataset by a number in place of its last letters. Names are given in
column order, so the same definitions always give the same names, and they do not
depend on the export's options: every form is named whether chosen or not, and the
names of the arm and label columns are taken whether or not they are there.

Why a value is missing (``ND``, ``NA``, ``UNK``) is never written in the value's own
column, which then stays blank: it goes in the item's ``<item>_missing`` column, so a
numeric column stays numeric in every package and a reason can never be mistaken for
a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from bhp_ctms.crf.definition.model import (
    MISSING_LABELS,
    Choice,
    FormDefinition,
    Item,
    ItemGroup,
)
from bhp_ctms.exports.records import SnapshotInfo

# How a statistical package stores a variable's values.
Storage = Literal["text", "number", "date", "time", "datetime"]

NAME_LIMIT = 32  # Stata's limit (SPSS allows 64)
SHORT_NAME_LIMIT = 8  # SAS transport version 5

# Words Stata (including str1 ... str2045) and SPSS refuse as variable names.
RESERVED_WORDS = frozenset(
    {
        "_all", "_b", "byte", "_coef", "_cons", "double", "float", "if", "in", "int",
        "long", "_n", "_pi", "_pred", "_rc", "_skip", "strl", "using", "with",
        "all", "and", "by", "eq", "ge", "gt", "le", "lt", "ne", "not", "or", "to",
    }
)  # fmt: skip
STATA_STRING_TYPE = re.compile(r"str\d+")

CHECKBOX_CHOICES = (Choice("1", "Yes"), Choice("0", "No"))
MISSING_CHOICES = tuple(Choice(code, label) for code, label in MISSING_LABELS.items())
# A choice code that is a whole number written the canonical way (not ``01``).
INTEGER_CODE = re.compile(r"-?(0|[1-9][0-9]*)")


class ExportRefused(Exception):
    """The snapshot cannot be written in a format without losing or changing data;
    the message says where, and nothing of that dataset has been written."""


@dataclass(frozen=True)
class Variable:
    """One column of a dataset.

    ``type`` is what the dictionary says: the item's type (``partial_date`` for a
    date that may be partial), ``checkbox`` (1 ticked, 0 not, blank unanswered),
    ``label`` (the label of a coded value), ``missing_code``, or for the columns of
    every row ``text``, ``integer`` or ``date``. ``short_name`` is blank for a
    column only CSV has (labels).
    """

    name: str
    short_name: str
    label: str
    type: str
    storage: Storage
    units: str = ""
    choices: tuple[Choice, ...] = ()
    item: str = ""

    @property
    def coded(self) -> bool:
        return bool(self.choices)

    def stata_codes(self) -> dict[str, int]:
        """Stata labels only whole numbers: a codelist with codes that are not
        numbers is stored in Stata as 1, 2, 3... in codelist order (the dictionary's
        ``dta_codes``); {} when the codes are numbers and are stored as they are."""
        if not self.choices or self.storage == "number":
            return {}
        return {choice.code: number for number, choice in enumerate(self.choices, start=1)}


@dataclass(frozen=True)
class ItemColumns:
    """Where one item's value goes in its dataset: the index of its column (or of
    one column per choice of a multiple choice), of its label and missing columns
    (-1 when it has none)."""

    item: str
    group: str
    label: str
    value: int
    choices: Mapping[str, int] | None
    label_column: int
    missing: int
    choice_labels: Mapping[str, str]


@dataclass(frozen=True)
class Dataset:
    """A table of the export: ``name`` is the CSV, Stata and SPSS file name (without
    its extension), ``short_name`` the SAS transport dataset name."""

    name: str
    short_name: str
    label: str
    form: str
    group: str
    events: tuple[str, ...]
    variables: tuple[Variable, ...]
    items: Mapping[str, ItemColumns] = field(default_factory=dict)
    # The columns every row starts with (participant ... form status, arm, row).
    leading: int = 0

    def column(self, name: str) -> int:
        for index, variable in enumerate(self.variables):
            if variable.name == name:
                return index
        raise KeyError(name)


@dataclass(frozen=True)
class FormLayout:
    """A form's wide dataset and one dataset per repeating group, and the items left
    out (identifiers), as ``(group, item)`` codes."""

    code: str
    dataset: Dataset
    groups: Mapping[str, Dataset]
    left_out: frozenset[tuple[str, str]]

    @property
    def datasets(self) -> tuple[Dataset, ...]:
        return (self.dataset, *self.groups.values())


@dataclass(frozen=True)
class StudyLayout:
    """Every dataset of an export."""

    participants: Dataset
    forms: Mapping[str, FormLayout]
    arm: bool
    labels: bool

    @property
    def datasets(self) -> tuple[Dataset, ...]:
        return (
            self.participants,
            *(dataset for form in self.forms.values() for dataset in form.datasets),
        )


# The columns every row of a form's dataset starts with: name, short name, label,
# dictionary type, storage.
_Leading = tuple[str, str, str, str, Storage]
ENTRY_COLUMNS: tuple[_Leading, ...] = (
    ("participant", "SUBJID", "Participant (study ID)", "text", "text"),
    ("site", "SITEID", "Site", "text", "text"),
    ("event", "EVENT", "Event", "text", "text"),
    ("instance", "INSTANCE", "Event instance (repeat number)", "integer", "number"),
    ("visit_date", "VISITDT", "Visit date", "date", "date"),
    ("form_version", "FORMVER", "Form version", "integer", "number"),
    ("form_status", "FORMSTAT", "Form status", "text", "text"),
)
ARM_COLUMN: _Leading = ("arm", "ARMCD", "Arm (code)", "text", "text")
ROW_COLUMN: _Leading = ("row", "ROW", "Row of the table", "integer", "number")
PARTICIPANT_COLUMNS: tuple[_Leading, ...] = (
    ("participant", "SUBJID", "Participant (study ID)", "text", "text"),
    ("site", "SITEID", "Site", "text", "text"),
    ("status", "STATUS", "Participant status", "text", "text"),
    ("protocol_version", "PROTVER", "Protocol version", "text", "text"),
    ("registered_on", "REGDT", "Date registered", "date", "date"),
    ("randomised_on", "RANDDT", "Date randomised", "date", "date"),
)
PARTICIPANTS = "participants"
# Files of every CSV export besides the datasets.
FIXED_FILES = (PARTICIPANTS, "items_long", "data_dictionary", "readme")


def study_layout(
    info: SnapshotInfo, *, arm: bool, labels: bool, forms: Sequence[str] = ()
) -> StudyLayout:
    """The datasets of a snapshot: ``arm`` adds the arm column (only ever for an
    unblinded export), ``labels`` a label column after each coded item (CSV only),
    ``forms`` keeps only those forms (all when empty)."""
    events_of: dict[str, list[str]] = {}
    for event in info.events:
        for form in event.forms:
            events_of.setdefault(form, []).append(event.code)
    datasets = _Names()
    participants_short_name = datasets.short(PARTICIPANTS, "")
    layouts: dict[str, FormLayout] = {}
    # Every form is named, chosen or not, so that choosing forms does not change
    # the names of the others.
    for latest in info.latest_form_versions():
        versions = sorted(
            (v for v in info.form_versions if v.form_code == latest.form_code),
            key=lambda v: -v.number,
        )
        layouts[latest.form_code] = _form_layout(
            [v.form for v in versions],
            latest.title or latest.form.title,
            tuple(events_of.get(latest.form_code, ())),
            arm=arm,
            labels=labels,
            names=datasets,
        )
    leading = [*PARTICIPANT_COLUMNS, ARM_COLUMN] if arm else list(PARTICIPANT_COLUMNS)
    participants = Dataset(
        name=PARTICIPANTS,
        short_name=participants_short_name,
        label="Participants",
        form="",
        group="",
        events=(),
        variables=tuple(Variable(n, s, lab, t, st) for n, s, lab, t, st in leading),
        leading=len(leading),
    )
    if forms:
        layouts = {code: layout for code, layout in layouts.items() if code in forms}
    return StudyLayout(participants, layouts, arm, labels)


def _form_layout(
    definitions: Sequence[FormDefinition],
    title: str,
    events: tuple[str, ...],
    *,
    arm: bool,
    labels: bool,
    names: _Names,
) -> FormLayout:
    """A form's datasets from its versions' definitions, newest first."""
    code = definitions[0].code
    # (group, item) -> the item in each version that has it, newest first.
    versions_of: dict[tuple[str, str], list[Item]] = {}
    group_of: dict[str, ItemGroup] = {}
    left_out: set[tuple[str, str]] = set()
    for definition in definitions:
        for group, item in definition.iter_items():
            key = (group.code if group else "", item.code)
            if group is not None:
                group_of.setdefault(group.code, group)
            if item.identifier:
                left_out.add(key)
            if item.holds_value:
                versions_of.setdefault(key, []).append(item)
    keys = [key for key in versions_of if key not in left_out]
    main = _dataset(
        code,
        "",
        title,
        events,
        [(key[1], versions_of[key]) for key in keys if not key[0]],
        arm=arm,
        labels=labels,
        names=names,
    )
    groups: dict[str, Dataset] = {}
    for group_code in dict.fromkeys(key[0] for key in keys if key[0]):
        group = group_of[group_code]
        groups[group_code] = _dataset(
            code,
            group_code,
            f"{title}: {group.label}",
            events,
            [(key[1], versions_of[key]) for key in keys if key[0] == group_code],
            arm=arm,
            labels=labels,
            names=names,
        )
    return FormLayout(code, main, groups, frozenset(left_out))


def _dataset(
    form: str,
    group: str,
    label: str,
    events: tuple[str, ...],
    items: Sequence[tuple[str, Sequence[Item]]],
    *,
    arm: bool,
    labels: bool,
    names: _Names,
) -> Dataset:
    leading = [*ENTRY_COLUMNS, *([ARM_COLUMN] if arm else []), *([ROW_COLUMN] if group else [])]
    columns = _Columns()
    # The arm and row columns' names are never an item's, whether or not they are
    # there, so that blinding does not change names.
    for name, short, *_ in (*ENTRY_COLUMNS, ARM_COLUMN, ROW_COLUMN):
        columns.reserve(name, short)
    for name, short, text, kind, storage in leading:
        columns.add(Variable(name, short, text, kind, storage), fixed=True)
    placed: dict[str, ItemColumns] = {}
    for code, versions in items:
        placed[code] = _item_columns(group, code, versions, columns, labels=labels)
    return Dataset(
        name=names.name(f"{form}__{group}" if group else form),
        short_name=names.short(group or form, ""),
        label=label,
        form=form,
        group=group,
        events=events,
        variables=tuple(columns.variables),
        items=placed,
        leading=len(leading),
    )


def _item_columns(
    group: str, code: str, versions: Sequence[Item], columns: _Columns, *, labels: bool
) -> ItemColumns:
    """Add an item's columns (newest version first in ``versions``) to a dataset."""
    latest = versions[0]
    choices = _merged_choices(versions)
    choice_labels = {choice.code: choice.label for choice in choices}
    kind = _dictionary_type(versions)
    storages = {_storage(item, choices) for item in versions}
    storage: Storage = storages.pop() if len(storages) == 1 else "text"
    base = dict(item=code, units=latest.units)
    value = -1
    by_choice: dict[str, int] | None = None
    if latest.type == "multiple_choice":
        by_choice = {}
        stem = columns.name_of(code)
        for position, choice in enumerate(choices, start=1):
            suffix = _short_code(choice.code, position)
            by_choice[choice.code] = columns.add(
                Variable(
                    name=f"{stem}___{_name_part(choice.code)}",
                    short_name=columns.short(code, f"_{suffix}"),
                    label=f"{latest.label}: {choice.label}",
                    type="checkbox",
                    storage="number",
                    choices=CHECKBOX_CHOICES,
                    **base,
                )
            )
    else:
        value = columns.add(
            Variable(
                name=code,
                short_name=columns.short(code, ""),
                label=latest.label,
                type=kind,
                storage=storage,
                choices=choices,
                **base,
            )
        )
    label_column = -1
    if choices:
        # Named even when left out, so that labels on or off give the same names.
        label_column = columns.add(
            Variable(
                name=f"{columns.name_of(code)}_label",
                short_name="",
                label=f"{latest.label} (label)",
                type="label",
                storage="text",
                item=code,
            ),
            keep=labels,
        )
    missing = -1
    if any(item.missing_codes for item in versions):
        missing = columns.add(
            Variable(
                name=f"{columns.name_of(code)}_missing",
                short_name=columns.short(code, "_M"),
                label=f"{latest.label}: why missing",
                type="missing_code",
                storage="text",
                choices=MISSING_CHOICES,
                item=code,
            )
        )
    return ItemColumns(
        item=code,
        group=group,
        label=latest.label,
        value=value,
        choices=by_choice,
        label_column=label_column,
        missing=missing,
        choice_labels=choice_labels,
    )


def _merged_choices(versions: Sequence[Item]) -> tuple[Choice, ...]:
    """The choices of every version, newest first (a code keeps its newest label)."""
    merged: dict[str, Choice] = {}
    for item in versions:
        for choice in item.choices:
            merged.setdefault(choice.code, choice)
    return tuple(merged.values())


def _dictionary_type(versions: Sequence[Item]) -> str:
    latest = versions[0]
    if latest.type == "date" and any(item.partial_dates for item in versions):
        return "partial_date"
    return latest.type


def _storage(item: Item, choices: Sequence[Choice]) -> Storage:
    """How a version's item is stored by statistical packages. Partial dates stay
    text (ISO 8601, ``2024-03-UN``); codes are numbers only when every code is."""
    kind = item.type
    if kind in ("integer", "decimal", "calculated"):
        return "number"
    if kind == "date":
        return "text" if item.partial_dates else "date"
    if kind in ("time", "datetime"):
        return "time" if kind == "time" else "datetime"
    if kind in ("single_choice", "yes_no") and choices:
        numbers = all(INTEGER_CODE.fullmatch(choice.code) for choice in choices)
        return "number" if numbers else "text"
    return "text"


def _name_part(text: str) -> str:
    """Text made fit for a variable name: lower case letters, digits and ``_``."""
    return re.sub(r"[^a-z0-9_]", "_", text.lower()) or "_"


def _short_code(code: str, position: int) -> str:
    """A choice code short enough for a SAS name's suffix, or its position."""
    part = re.sub(r"[^A-Z0-9_]", "_", code.upper())
    return part if 0 < len(part) <= 3 else str(position)


def short_stem(text: str) -> str:
    """Text made fit for a SAS name: upper case letters, digits and ``_``, not
    starting with a digit."""
    stem = re.sub(r"[^A-Z0-9_]", "_", text.upper())
    return stem if stem[:1].isalpha() or stem[:1] == "_" else f"V{stem}"


def unique_short_name(stem: str, suffix: str, taken: set[str]) -> str:
    """``stem`` + ``suffix`` cut to 8 characters, not in ``taken`` (then added to
    it): on a clash, a number replaces the stem's last characters (``SYMPTO1``)."""
    stem = short_stem(stem)
    room = SHORT_NAME_LIMIT - len(suffix)
    candidate = stem[:room] + suffix
    number = 1
    while candidate in taken:
        digits = str(number)
        candidate = stem[: room - len(digits)] + digits + suffix
        number += 1
    taken.add(candidate)
    return candidate


def unique_name(name: str, taken: set[str]) -> str:
    """A CSV, Stata and SPSS name: at most 32 characters, not reserved, not in
    ``taken`` (compared ignoring case, as SPSS does; then added to it)."""
    name = name[:NAME_LIMIT]
    if name.lower() in RESERVED_WORDS or STATA_STRING_TYPE.fullmatch(name.lower()):
        name = f"{name}_"
    candidate = name
    number = 2
    while candidate.lower() in taken:
        suffix = f"_{number}"
        candidate = name[: NAME_LIMIT - len(suffix)] + suffix
        number += 1
    taken.add(candidate.lower())
    return candidate


class _Names:
    """Dataset names (file names) and SAS dataset names, unique across an export;
    the names of the files every export has are never a form's."""

    def __init__(self) -> None:
        self.taken: set[str] = set()
        self.names: set[str] = set(FIXED_FILES)

    def short(self, stem: str, suffix: str) -> str:
        return unique_short_name(stem, suffix, self.taken)

    def name(self, name: str) -> str:
        return unique_name(name, self.names)


class _Columns:
    """A dataset's variables as they are added, with their names made unique."""

    def __init__(self) -> None:
        self.variables: list[Variable] = []
        self.names: set[str] = set()
        self.short_names: set[str] = set()
        self.item_names: dict[str, str] = {}

    def add(self, variable: Variable, *, fixed: bool = False, keep: bool = True) -> int:
        """Add a variable (its name made unique unless ``fixed``); its index, or -1
        when only its name is taken (``keep`` false)."""
        if fixed:
            self.names.add(variable.name)
            self.short_names.add(variable.short_name)
        else:
            name = unique_name(variable.name, self.names)
            if variable.item and variable.name == variable.item:
                self.item_names[variable.item] = name
            variable = replace(variable, name=name)
        if not keep:
            return -1
        self.variables.append(variable)
        return len(self.variables) - 1

    def reserve(self, name: str, short_name: str) -> None:
        """Keep names from items even where their column is left out."""
        self.names.add(name)
        self.short_names.add(short_name)

    def name_of(self, item: str) -> str:
        """The stem of an item's derived columns: its own column's name when it has
        one (``site_2`` when ``site`` clashed), else its code."""
        return self.item_names.get(item, item)

    def short(self, stem: str, suffix: str) -> str:
        return unique_short_name(stem, suffix, self.short_names)


def codelist_text(choices: Iterable[Choice]) -> str:
    """A codelist as the dictionary writes it: ``1=Yes|0=No``."""
    return "|".join(f"{choice.code}={choice.label}" for choice in choices)
