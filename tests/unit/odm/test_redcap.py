"""REDCap's project XML imports as its data dictionary does: the same forms, the same
items of the same types; each fault of the file a warning at its line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bhp_ctms.crf.definition import read_forms
from bhp_ctms.crf.redcap import import_dictionary
from bhp_ctms.odm.folder import write_study_folder
from bhp_ctms.odm.reader import read_odm
from bhp_ctms.odm.redcap import plan_redcap
from bhp_ctms.studies.definition import check_study, read_study

SHARED = Path("/work/shared/samples")
PROJECTS = sorted((SHARED / "redcap").glob("*/project.xml"))
# Fields of a project that its dictionary.csv lacks: the samples' dictionaries were
# saved before these fields were added to the projects.
NOT_IN_DICTIONARY = {"simple": {"race_and_ethnicity": {"interpreter_needed"}}}

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="the shared samples are absent")


def imported(project: Path, out: Path):
    odm = read_odm(project)
    plan = plan_redcap(odm, out)
    write_study_folder(plan, out, effective_on=date(2026, 11, 23))
    return odm, plan


@pytest.mark.parametrize("project", PROJECTS, ids=[path.parent.name for path in PROJECTS])
def test_a_project_imports_the_fields_of_its_data_dictionary(project, tmp_path):
    name = project.parent.name
    _, plan = imported(project, tmp_path / "odm")
    from_dictionary = import_dictionary(project.parent / "dictionary.csv", tmp_path / "csv")

    assert check_study(tmp_path / "odm") == []
    from_xml = read_forms(tmp_path / "odm").forms
    expected = read_forms(tmp_path / "csv").forms
    assert set(from_xml) == set(expected)
    extra = NOT_IN_DICTIONARY.get(name, {})
    for code, form in expected.items():
        items = {item.code: item.type for item in from_xml[code].items}
        for item in form.items:
            assert items.pop(item.code) == item.type, (code, item.code)
        assert set(items) == extra.get(code, set()), code
    # The count the REDCap dictionary importer gives, field for field.
    counted = sum(1 for form in from_xml.values() for item in form.items if item.holds_value) - sum(
        len(codes) for codes in extra.values()
    )
    assert counted == from_dictionary.item_count
    assert plan.redcap


def test_each_fault_of_the_project_is_a_warning_at_its_line(tmp_path):
    project = SHARED / "redcap" / "simple" / "project.xml"

    odm, plan = imported(project, tmp_path)

    warnings = [(warning.line, warning.message) for warning in odm.warnings + plan.warnings]
    assert all(line for line, _ in warnings[1:])
    assert (
        170,
        "field mugshot is not imported: file upload fields are not supported",
    ) in warnings
    assert sum("Element 'FormData': This element is not expected" in m for _, m in warnings) == 5
    # Notes of the dictionary importer name the ItemDef's line too.
    assert any(note.startswith("line ") for note in plan.notes) or not plan.notes


def test_a_malformed_field_is_left_out_with_a_warning_and_the_rest_imported(tmp_path):
    source = (SHARED / "redcap" / "simple" / "project.xml").read_text(encoding="utf-8")
    # A choice code REDCap would never write: the sex field cannot be imported.
    broken = source.replace(
        '<CodeListItem CodedValue="0"><Decode><TranslatedText>Female',
        '<CodeListItem CodedValue="0 0"><Decode><TranslatedText>Female',
        1,
    )
    assert broken != source
    project = tmp_path / "project.xml"
    project.write_text(broken, encoding="utf-8")

    _, plan = imported(project, tmp_path / "study")

    line = next(
        number for number, text in enumerate(broken.splitlines(), 1) if '<ItemDef OID="sex"' in text
    )
    assert any(
        warning.line == line
        and warning.message.startswith("field sex is not imported: sex: the choices cannot be read")
        for warning in plan.warnings
    )
    forms = read_forms(tmp_path / "study").forms
    assert "sex" not in {item.code for item in forms["demographics"].items}
    assert "dob" in {item.code for item in forms["demographics"].items}
    assert check_study(tmp_path / "study") == []


def test_events_arms_and_data_access_groups_become_the_studys(tmp_path):
    _, plan = imported(SHARED / "redcap" / "longitudinal" / "project.xml", tmp_path)

    definition = read_study(tmp_path)
    assert [arm.name for arm in definition.arms] == ["Drug A", "Drug B"]
    events = {event.code: event for event in definition.events}
    assert events["enrollment_arm_1"].day_offset == 0
    assert events["first_visit_arm_2"].window_before == 2
    assert events["visit_1_arm_1"].forms == (
        "visit_lab_data",
        "patient_morale_questionnaire",
        "visit_blood_workup",
        "visit_observed_behavior",
    )
    # Two arms' events in one schedule: a day each, each move a warning.
    offsets = [event.day_offset for event in definition.events if not event.repeating]
    assert offsets == sorted(set(offsets))
    assert any("a BHP CTMS schedule has one event a day" in w.message for w in plan.warnings)

    imported(SHARED / "redcap" / "dag" / "project.xml", tmp_path / "dag")
    assert [site.name for site in read_study(tmp_path / "dag").sites] == ["dag-a", "dag-b"]


def test_a_repeating_instrument_becomes_a_repeating_event(tmp_path):
    _, plan = imported(SHARED / "redcap" / "repeating-instruments" / "project.xml", tmp_path)

    events = {event.code: event for event in read_study(tmp_path).events}
    assert events["bp"].repeating and events["bp"].forms == ("bp",)
    assert events["odm_forms"].forms == ("demographics",)
    assert plan.forms["bp"].repeat_event == "bp"


@pytest.mark.parametrize("project", sorted((SHARED / "odm" / "pycap").glob("*.xml")))
def test_pycap_projects_import(project, tmp_path):
    imported(project, tmp_path)
    assert check_study(tmp_path) == []
