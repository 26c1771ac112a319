"""REDCap's project XML as a study folder, through the REDCap dictionary importer.

REDCap writes each field's data-dictionary cells as its own attributes
(``redcap:FieldType``, ``redcap:TextValidationType``, ``redcap:Calculation``...), a
checkbox field as one ItemDef per choice (``race___1``), and the form status and the
data access group as items of their own. Those attributes are turned back into the
rows of a data dictionary, in the file's order, and the rows are imported by
:func:`bhp_ctms.crf.redcap.import_dictionary`: the same fields become the same items,
with the same notes, as when the project's data dictionary is imported. Each row is
the line of its ItemDef, so every note and every field left out is told at its line.

A malformed cell (which the dictionary importer refuses) leaves its field out with a
warning and the rest is imported. Events become the study's events (their day offsets
and windows kept, each arm's events in one schedule), arms its arms, data access
groups its sites, and a repeating instrument of a project without events a repeating
event holding that form.
"""

from __future__ import annotations

import csv
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bhp_ctms.crf.definition.model import FormDefinition
from bhp_ctms.crf.definition.reader import read_form_file
from bhp_ctms.crf.redcap import DictionaryError, RedcapImport, import_dictionary
from bhp_ctms.crf.redcap.dictionary import COLUMNS
from bhp_ctms.odm.plan import (
    EVENT_CODE_LENGTH,
    EventPlan,
    FormPlan,
    ItemPlace,
    StudyPlan,
    code_of,
    oid_words,
    site_code_of,
    study_code_of,
)
from bhp_ctms.odm.planning import ensure_scheduled_event, plan_sites
from bhp_ctms.odm.reader import ItemDef, MetaDataVersion, OdmFile, OdmImportError, StudyDef
from bhp_ctms.studies.definition import Arm, Problem, SiteSeed

FIELD_TYPES = {"textarea": "notes", "select": "dropdown"}
VALIDATIONS = {"float": "number", "int": "integer"}
CHOICE_TYPES = frozenset({"radio", "dropdown"})
# Attempts at importing the rows, each leaving out the fields the one before refused.
_ATTEMPTS = 5


@dataclass
class _Rows:
    """The dictionary rows made from the file, each with its ItemDef's line and the
    ItemDef OIDs of its field (several for a checkbox)."""

    cells: list[dict[str, str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    oids: list[list[str]] = field(default_factory=list)
    # ItemDef OID -> the variable (field) it holds a value of.
    variables: dict[str, str] = field(default_factory=dict)


def _choices_cell(item: ItemDef, version: MetaDataVersion, field_type: str) -> str:
    if field_type == "checkbox":
        codelist = version.codelists.get(item.codelist_oid)
        return codelist.extra.get("CheckboxChoices", "") if codelist else ""
    if field_type == "calc":
        return item.extra.get("Calculation", "")
    if field_type == "slider":
        return item.extra.get("SliderLabels", "")
    if field_type in CHOICE_TYPES:
        codelist = version.codelists.get(item.codelist_oid)
        if codelist is None:
            return ""
        return " | ".join(f"{code}, {label}" for code, label in codelist.choices)
    return ""


def _bound(item: ItemDef, comparator: str) -> str:
    for check in item.range_checks:
        if check.comparator == comparator and check.values:
            return check.values[0]
    return ""


def dictionary_rows(plan: StudyPlan, version: MetaDataVersion) -> _Rows:
    """The project's fields as data dictionary rows, in the file's order."""
    rows = _Rows()
    seen: dict[str, int] = {}
    for form_oid, form in version.forms.items():
        form_name = form.extra.get("FormName") or oid_words(form_oid)
        for group_ref in form.group_refs:
            group = version.groups.get(group_ref.oid)
            if group is None:
                plan.warn(
                    group_ref.line,
                    f"form {form_oid} refers to item group {group_ref.oid!r}, which the file does "
                    "not define: left out",
                )
                continue
            for item_ref in group.item_refs:
                item = version.items.get(item_ref.oid)
                if item is None:
                    plan.warn(
                        item_ref.line,
                        f"item group {group.oid} refers to item {item_ref.oid!r}, which the file "
                        "does not define: left out",
                    )
                    continue
                variable = item.extra.get("Variable") or item_ref.extra.get("Variable") or item.name
                field_type = item.extra.get("FieldType", "")
                if not field_type:
                    # REDCap's own columns (the data access group, survey timestamps).
                    plan.left_out[item.oid] = "a column REDCap adds, not a field"
                    plan.quiet.add(item.oid)
                    continue
                if variable == f"{form_name}_complete" and field_type == "select":
                    plan.left_out[item.oid] = "REDCap's form status: entries are kept in progress"
                    plan.quiet.add(item.oid)
                    continue
                rows.variables[item.oid] = variable
                if variable in seen:
                    rows.oids[seen[variable]].append(item.oid)
                    continue
                seen[variable] = len(rows.cells)
                rows.cells.append(_cells(item, item_ref.mandatory, form_name, variable, version))
                rows.lines.append(item.line)
                rows.oids.append([item.oid])
    return rows


def _cells(
    item: ItemDef, required: bool, form_name: str, variable: str, version: MetaDataVersion
) -> dict[str, str]:
    extra = item.extra
    field_type = FIELD_TYPES.get(extra.get("FieldType", ""), extra.get("FieldType", ""))
    validation = extra.get("TextValidationType", "")
    return {
        "field_name": variable,
        "form_name": form_name,
        "section_header": extra.get("SectionHeader", ""),
        "field_type": field_type,
        "field_label": item.question,
        "choices": _choices_cell(item, version, field_type),
        "field_note": extra.get("FieldNote", ""),
        "validation": VALIDATIONS.get(validation, validation),
        "validation_min": _bound(item, "GE"),
        "validation_max": _bound(item, "LE"),
        "identifier": "y" if extra.get("Identifier", "").lower() == "y" else "",
        "branching_logic": extra.get("BranchingLogic", ""),
        "required": "y" if required else "",
        "custom_alignment": extra.get("CustomAlignment", ""),
        "question_number": extra.get("QuestionNumber", ""),
        "matrix_group": extra.get("MatrixGroupName", ""),
        "matrix_ranking": extra.get("MatrixRanking", ""),
        "field_annotation": extra.get("FieldAnnotation", ""),
    }


def _write_csv(path: Path, cells: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([headers[0] for headers in COLUMNS.values()])
        for row in cells:
            writer.writerow([row.get(name, "") for name in COLUMNS])


def import_rows(plan: StudyPlan, rows: _Rows, folder: Path) -> tuple[RedcapImport, list[int]]:
    """Import the rows into ``folder/forms``; returns what was imported and, for each
    row of the dictionary it read, the line of its ItemDef. A field with a malformed
    cell is left out with a warning, and the rest imported again."""
    cells, lines, oids = list(rows.cells), list(rows.lines), list(rows.oids)
    with tempfile.TemporaryDirectory(prefix="ctms-odm-") as scratch:
        dictionary = Path(scratch) / f"{plan.source.stem}-dictionary.csv"
        for _ in range(_ATTEMPTS):
            _write_csv(dictionary, cells)
            try:
                return import_dictionary(dictionary, folder), lines
            except DictionaryError as error:
                refused = _refused_rows(plan, error.problems, lines, cells)
                for index in sorted(refused, reverse=True):
                    for oid in oids[index]:
                        plan.left_out[oid] = "its field cannot be imported (see the warning)"
                    del cells[index], lines[index], oids[index]
    raise OdmImportError(
        [Problem(plan.source, None, None, "the project's fields cannot be imported")]
    )


def _refused_rows(
    plan: StudyPlan, problems: list[Problem], lines: list[int], cells: list[dict[str, str]]
) -> set[int]:
    """The indexes of the rows the problems are on, each problem a warning at its line."""
    refused: set[int] = set()
    for problem in problems:
        index = (problem.line or 0) - 2  # the dictionary's row 1 is its header
        if not 0 <= index < len(lines):
            raise OdmImportError(
                [
                    Problem(
                        plan.source,
                        None,
                        None,
                        f"the project cannot be imported: {problem.message}",
                    )
                ]
            )
        plan.warn(
            lines[index],
            f"field {cells[index]['field_name']} is not imported: {problem.message}",
        )
        refused.add(index)
    return refused


def _line_of(row: int, lines: list[int]) -> int | None:
    index = row - 2
    return lines[index] if 0 <= index < len(lines) else None


def plan_redcap(odm: OdmFile, folder: Path) -> StudyPlan:
    """Plan (and write the form files of) the study a REDCap project XML makes."""
    if not odm.studies or not odm.studies[0].versions:
        raise OdmImportError(
            [
                Problem(
                    odm.path,
                    None,
                    None,
                    "holds no REDCap project (no Study with a MetaDataVersion)",
                )
            ]
        )
    study = odm.studies[0]
    version = study.versions[-1]
    code = study_code_of(study, odm.path.stem)
    title = study.name or study.protocol_name or code
    plan = StudyPlan(odm.path, code, title[:500], redcap=True)
    rows = dictionary_rows(plan, version)
    imported, lines = import_rows(plan, rows, folder)
    if rows.oids:
        # The record ID is each subject's key: its values are the study IDs.
        plan.quiet.update(rows.oids[0])
    for skipped in imported.skipped:
        plan.warn(
            _line_of(skipped.row, lines), f"field {skipped.field} is not imported: {skipped.reason}"
        )
        for oid, variable in rows.variables.items():
            if variable == skipped.field:
                plan.left_out[oid] = skipped.reason
    for note in imported.notes:
        where = _line_of(note.row, lines)
        plan.notes.append(
            f"line {where}: {note.subject}: {note.message}"
            if where
            else f"{note.subject}: {note.message}"
        )
    definitions = _read_back(plan, imported)
    _plan_forms(plan, version, rows, definitions)
    event_codes: set[str] = set()
    _plan_events(plan, version, event_codes)
    _plan_repeating(plan, study, version, event_codes)
    ensure_scheduled_event(plan, event_codes)
    _plan_arms(plan, version)
    _plan_groups(plan, study)
    plan_sites(plan, odm)
    return plan


def _read_back(plan: StudyPlan, imported: RedcapImport) -> dict[str, FormDefinition]:
    definitions: dict[str, FormDefinition] = {}
    for form in imported.forms:
        problems: list[Problem] = []
        definition = read_form_file(form.path, {}, problems)
        if definition is None:
            raise OdmImportError(problems)
        definitions[form.code] = definition
    return definitions


def _plan_forms(
    plan: StudyPlan,
    version: MetaDataVersion,
    rows: _Rows,
    definitions: Mapping[str, FormDefinition],
) -> None:
    for form_oid, form in version.forms.items():
        code = form.extra.get("FormName") or oid_words(form_oid)
        definition = definitions.get(code)
        if definition is None:
            continue
        items = {item.code: item for item in definition.items}
        places: dict[str, dict[str, ItemPlace]] = {}
        for group_ref in form.group_refs:
            group = version.groups.get(group_ref.oid)
            if group is None:
                continue
            group_places = places.setdefault(group.oid, {})
            for item_ref in group.item_refs:
                variable = rows.variables.get(item_ref.oid)
                item = items.get(variable or "")
                if item is None:
                    continue
                choice = None
                if item.type == "multiple_choice":
                    choice = _checkbox_choice(item_ref.oid, variable or "", item.choices)
                    if choice is None:
                        plan.left_out[item_ref.oid] = f"not one of the choices of {item.code}"
                        continue
                group_places[item_ref.oid] = ItemPlace(item, None, choice)
        plan.forms[code] = FormPlan(
            code, form_oid, definition, places, form.repeating, form.line, written=True
        )
        plan.form_oids[form_oid] = code


def _checkbox_choice(oid: str, variable: str, choices: tuple[object, ...]) -> str | None:
    """The choice a checkbox ItemDef (``race___1``) ticks: its code after ``___``
    (REDCap writes a minus sign in a code as ``_``)."""
    prefix = f"{variable}___"
    if not oid.startswith(prefix):
        return None
    suffix = oid[len(prefix) :]
    codes = [getattr(choice, "code", "") for choice in choices]
    for candidate in (suffix, suffix.replace("_", "-"), suffix.replace("_", ".")):
        if candidate in codes:
            return candidate
    lowered = {code.lower(): code for code in codes}
    return lowered.get(suffix.lower())


def _number(text: str, default: int = 0) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _plan_events(plan: StudyPlan, version: MetaDataVersion, taken: set[str]) -> None:
    order = [ref.oid for ref in version.event_refs if ref.oid in version.events]
    order += [oid for oid in version.events if oid not in order]
    scheduled: list[tuple[int, int, EventPlan]] = []
    for position, oid in enumerate(order):
        event = version.events[oid]
        name = event.extra.get("UniqueEventName") or oid_words(oid)
        code = code_of(name, kind="event", length=EVENT_CODE_LENGTH, taken=taken)
        forms = [plan.form_oids[ref.oid] for ref in event.form_refs if ref.oid in plan.form_oids]
        planned = EventPlan(
            code,
            (event.name or code)[:200],
            event.repeating,
            list(dict.fromkeys(forms)),
            line=event.line,
        )
        plan.event_oids[oid] = code
        if event.repeating:
            plan.events.append(planned)
            continue
        planned.day_offset = _number(event.extra.get("DayOffset", ""), position)
        planned.window_before = max(0, _number(event.extra.get("OffsetMin", "")))
        planned.window_after = max(0, _number(event.extra.get("OffsetMax", "")))
        scheduled.append((planned.day_offset, position, planned))
    scheduled.sort(key=lambda found: (found[0], found[1]))
    previous: EventPlan | None = None
    for _, _, planned in scheduled:
        if previous is not None and (planned.day_offset or 0) <= (previous.day_offset or 0):
            day = (previous.day_offset or 0) + 1
            plan.warn(
                planned.line,
                f"event {planned.code} is on day {planned.day_offset}, as {previous.code} is (or "
                f"before it): a BHP CTMS schedule has one event a day, so it is put on day {day}",
            )
            planned.day_offset = day
        previous = planned
    plan.events[:0] = [planned for _, _, planned in scheduled]


def _plan_repeating(
    plan: StudyPlan, study: StudyDef, version: MetaDataVersion, taken: set[str]
) -> None:
    """Repeating instruments of a project without events become repeating events."""
    for event_name, form_name in study.repeating_instruments:
        form = plan.forms.get(form_name)
        if form is None:
            continue
        if version.events:
            plan.warn(
                form.line,
                f"form {form_name} repeats within event {event_name} in REDCap: BHP CTMS keeps "
                "one entry of a form at each occurrence of an event, so only its first "
                "instance is imported",
            )
            continue
        code = code_of(form_name, kind="event", length=EVENT_CODE_LENGTH, taken=taken)
        plan.events.append(
            EventPlan(
                code, f"{form.definition.title} (repeating)", True, [form_name], line=form.line
            )
        )
        form.repeat_event = code


def _plan_arms(plan: StudyPlan, version: MetaDataVersion) -> None:
    arms: dict[str, str] = {}
    for event in version.events.values():
        number = event.extra.get("ArmNum", "")
        if number and number not in arms:
            arms[number] = event.extra.get("ArmName", "") or f"Arm {number}"
    taken: set[str] = set()
    for number, name in arms.items():
        code = code_of(f"arm_{number}", kind="arm", length=EVENT_CODE_LENGTH, taken=taken)
        plan.arms.append(Arm(code, name[:200], 1))


def _plan_groups(plan: StudyPlan, study: StudyDef) -> None:
    """REDCap's data access groups as sites, named in the data by the group's name."""
    taken = {site.code for site in plan.sites}
    for group in study.access_groups:
        code = site_code_of(group, taken)
        # The data name a group by its unique name: lower case, spaces as "_", other
        # characters left out, at most 18 long.
        unique = re.sub(r"[^a-z0-9_]", "", group.lower().replace(" ", "_"))[:18]
        for name in (group, unique):
            plan.site_oids.setdefault(name, code)
        plan.sites.append(SiteSeed(code, group[:200], "open", None, ""))
