"""``import_dictionary``: a REDCap data dictionary as form files, one per instrument."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bhp_ctms.crf.definition.model import FormDefinition, Item
from bhp_ctms.crf.redcap.dictionary import Dictionary, DictionaryError, FieldRow, read_dictionary
from bhp_ctms.crf.redcap.fields import FieldPlan, FieldPlanner, form_title
from bhp_ctms.crf.redcap.logic import UnsupportedLogic, calculation_uses, imported_logic
from bhp_ctms.crf.redcap.writer import form_yaml
from bhp_ctms.studies.definition import Problem

FORM_VERSION = "1.0"


@dataclass(frozen=True)
class SkippedField:
    """A field of the dictionary that is not imported, and why."""

    row: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row} ({self.field}): {self.reason}"


@dataclass(frozen=True)
class ImportNote:
    """Something imported differently from REDCap (logic left out, seconds dropped), or
    an instrument not written; ``subject`` is the field or ``instrument <name>``."""

    row: int
    subject: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row} ({self.subject}): {self.message}"


@dataclass(frozen=True)
class ImportedForm:
    """A form file written: its form code, title, path, and the number of its items
    (descriptive text, which holds no value, counted apart)."""

    code: str
    title: str
    path: Path
    item_count: int
    descriptive_count: int


@dataclass(frozen=True)
class RedcapImport:
    """What one import wrote, what it left out and what it changed."""

    dictionary: Path
    forms: tuple[ImportedForm, ...]
    skipped: tuple[SkippedField, ...]
    notes: tuple[ImportNote, ...]
    field_count: int

    @property
    def item_count(self) -> int:
        return sum(form.item_count for form in self.forms)


@dataclass(frozen=True)
class _Instrument:
    code: str
    plans: tuple[FieldPlan, ...]


def import_dictionary(dictionary: Path, out: Path) -> RedcapImport:
    """Turn the REDCap data dictionary at ``dictionary`` into form files
    ``out/forms/<instrument>.yaml``, one per instrument with items to import.

    Fields that cannot be imported are listed in ``skipped`` with the reason, and what
    is imported differently in ``notes``. Raises :class:`DictionaryError` with every
    problem (row and column) when the file is malformed, or when ``out`` cannot be
    written to; nothing is written then.
    """
    read = read_dictionary(dictionary)
    instruments = _planned(read)
    _attach_logic([plan for instrument in instruments for plan in instrument.plans])
    notes: list[ImportNote] = []
    skipped: list[SkippedField] = []
    files: list[tuple[ImportedForm, str]] = []
    for instrument in instruments:
        written = _form(read, instrument, out / "forms", notes, skipped)
        if written is not None:
            files.append(written)
    _write(out / "forms", files)
    return RedcapImport(
        dictionary=dictionary,
        forms=tuple(form for form, _ in files),
        skipped=tuple(sorted(skipped, key=lambda skip: skip.row)),
        notes=tuple(sorted(notes, key=lambda note: note.row)),
        field_count=len(read.rows),
    )


def _write(folder: Path, files: Sequence[tuple[ImportedForm, str]]) -> None:
    """Write every file beside its place first, then put them all in place, so that a
    folder that cannot be written to is left as it was (and said so, with no traceback)."""
    written: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for form, text in files:
            draft = form.path.with_name(f".{form.path.name}.importing")
            written.append(draft)
            draft.write_text(text, encoding="utf-8")
        for form, _ in files:
            form.path.with_name(f".{form.path.name}.importing").replace(form.path)
    except OSError as error:
        for draft in written:
            draft.unlink(missing_ok=True)
        where = Path(error.filename) if error.filename else folder
        raise DictionaryError(
            [Problem(where, None, None, f"cannot be written: {error.strerror}")]
        ) from None


def _planned(read: Dictionary) -> list[_Instrument]:
    """Each instrument's fields planned, in dictionary order; every malformed cell of
    the file raised at once as a :class:`DictionaryError`."""
    problems: list[Problem] = []
    planner = FieldPlanner(read.path, problems)
    first_rows: dict[str, int] = {}
    form_rows: dict[str, int] = {}
    by_form: dict[str, list[FieldPlan]] = {}
    previous_form = ""
    for index, row in enumerate(read.rows):
        plan = planner.plan(row, record_id=index == 0)
        name, form = row.name, plan.form
        if name in first_rows:
            planner.problem(
                row,
                "field_name",
                f"the variable name {name!r} is given twice (first on row {first_rows[name]})",
            )
        first_rows.setdefault(name, row.row)
        if form != previous_form and form in form_rows:
            planner.problem(
                row,
                "form_name",
                f"the fields of form {form!r} must follow one another "
                f"(they began on row {form_rows[form]})",
            )
        form_rows.setdefault(form, row.row)
        previous_form = form
        by_form.setdefault(form, []).append(plan)
    for plans in by_form.values():
        _check_matrices(planner, plans)
    if problems:
        raise DictionaryError(problems)
    return [_Instrument(code, tuple(plans)) for code, plans in by_form.items()]


def _check_matrices(planner: FieldPlanner, plans: Sequence[FieldPlan]) -> None:
    """A matrix group's fields follow one another and share their type and choices."""
    first: dict[str, FieldPlan] = {}
    previous = ""
    for plan in plans:
        matrix = plan.row["matrix_group"]
        if matrix:
            row_type = plan.row["field_type"].lower()
            if row_type not in ("radio", "checkbox"):
                planner.problem(
                    plan.row,
                    "matrix_group",
                    f"only radio and checkbox fields can be in a matrix group, not {row_type}",
                )
            leader = first.setdefault(matrix, plan)
            if leader is not plan and previous != matrix:
                planner.problem(
                    plan.row,
                    "matrix_group",
                    f"the fields of matrix group {matrix!r} must follow one another",
                )
            elif leader is not plan and (
                row_type != leader.row["field_type"].lower()
                or (plan.item and leader.item and plan.item.choices != leader.item.choices)
            ):
                planner.problem(
                    plan.row,
                    "matrix_group",
                    f"the fields of matrix group {matrix!r} share one field type and one set "
                    f"of choices; {plan.name} differs from {leader.name}",
                )
        previous = matrix


def _attach_logic(plans: Sequence[FieldPlan]) -> None:
    """Give each imported item its calculation and show-if where they can be imported.

    A calculated field whose calculation cannot be imported is not imported; then
    neither is logic that uses it, so this repeats until nothing more changes.
    """
    items = {plan.name: plan.item for plan in plans if plan.item is not None}
    calculations = {plan.name: plan for plan in plans if plan.item and plan.calculation}
    accepted: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for name, plan in list(calculations.items()):
            assert plan.item is not None
            try:
                accepted[name] = imported_logic(plan.calculation, plan.item, "calculation", items)
            except UnsupportedLogic as error:
                _skip(plan, f"its calculation cannot be imported: {error}")
                del calculations[name], items[name]
                accepted.pop(name, None)
                changed = True
        if not changed:
            for name in _in_cycles(
                {name: calculation_uses(text) for name, text in accepted.items()}
            ):
                _skip(calculations[name], "its calculation depends on its own value")
                del calculations[name], items[name], accepted[name]
                changed = True
    for plan in plans:
        if plan.item is None:
            continue
        if plan.name in accepted:
            plan.item = replace(plan.item, calculation=accepted[plan.name])
        if plan.branching_logic:
            try:
                show_if = imported_logic(plan.branching_logic, plan.item, "show_if", items)
            except UnsupportedLogic as error:
                plan.notes.append(f"its branching logic is not imported: {error}")
                continue
            plan.item = replace(plan.item, show_if=show_if)


def _skip(plan: FieldPlan, reason: str) -> None:
    plan.item = None
    plan.skip_reason = reason


def _in_cycles(uses: Mapping[str, Iterable[str]]) -> list[str]:
    """The calculated items that depend on themselves, directly or through others."""
    cyclic = []
    for start in uses:
        seen: set[str] = set()
        waiting = list(uses[start])
        while waiting:
            name = waiting.pop()
            if name == start:
                cyclic.append(start)
                break
            if name not in seen:
                seen.add(name)
                waiting.extend(uses.get(name, ()))
    return cyclic


def _form(
    read: Dictionary,
    instrument: _Instrument,
    folder: Path,
    notes: list[ImportNote],
    skipped: list[SkippedField],
) -> tuple[ImportedForm, str] | None:
    """The form file of one instrument, or None (and a note) when it has no items."""
    items: list[Item] = []
    comments: dict[str, list[str]] = {}
    waiting_section: FieldPlan | None = None
    for plan in instrument.plans:
        row = plan.row
        for note in plan.notes:
            notes.append(ImportNote(row.row, plan.name, note))
        if plan.item is None:
            skipped.append(SkippedField(row.row, plan.name, plan.skip_reason))
            # A heading on a field left out starts its section at the next item.
            if plan.section:
                waiting_section = plan
            continue
        section = plan.section or (waiting_section.section if waiting_section else "")
        waiting_section = None
        items.append(replace(plan.item, section=section))
        comments[plan.name] = [f"REDCap row {row.row}: {note}" for note in plan.notes]
    if waiting_section is not None:
        notes.append(
            ImportNote(
                waiting_section.row.row,
                waiting_section.name,
                f"its section header {waiting_section.section!r} is not imported: "
                "no item follows it",
            )
        )
    first_row = instrument.plans[0].row
    counted = [item for item in items if item.holds_value]
    if not counted:
        _not_written(instrument, first_row, skipped, notes)
        return None
    definition = FormDefinition(
        code=instrument.code,
        title=form_title(instrument.code),
        version=FORM_VERSION,
        description="",
        entries=tuple(items),
    )
    heading = [
        f"Imported by ctms forms import-redcap from the REDCap data dictionary {read.path.name}",
        f"(instrument {instrument.code}, rows {first_row.row} to {instrument.plans[-1].row.row}).",
    ]
    path = folder / f"{instrument.code}.yaml"
    form = ImportedForm(
        code=instrument.code,
        title=definition.title,
        path=path,
        item_count=len(counted),
        descriptive_count=len(items) - len(counted),
    )
    return form, form_yaml(definition, heading, comments)


def _not_written(
    instrument: _Instrument,
    first_row: FieldRow,
    skipped: list[SkippedField],
    notes: list[ImportNote],
) -> None:
    reason = f"its instrument {instrument.code} has no items to import, so no form file is written"
    for plan in instrument.plans:
        if plan.item is not None:
            skipped.append(SkippedField(plan.row.row, plan.name, reason))
    notes.append(
        ImportNote(
            first_row.row,
            f"instrument {instrument.code}",
            "no form file is written: none of its fields is imported as an item",
        )
    )
