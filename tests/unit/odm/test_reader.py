"""Reading ODM files: valid ones into records, invalid ones refused by line, REDCap's
project XML leniently with each fault a warning at its line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bhp_ctms.crf.definition.model import Choice, Item
from bhp_ctms.crf.values import ValueProblem
from bhp_ctms.exports.records import ExportOptions
from bhp_ctms.odm.importer import canonical_value
from bhp_ctms.odm.reader import OdmImportError, read_odm
from bhp_ctms.odm.writer import write_odm
from tests.unit.odm.snapshots import full_snapshot

SHARED = Path("/work/shared/samples")
ODM_SAMPLES = SHARED / "odm"

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="the shared samples are absent")


@pytest.mark.parametrize(
    ("name", "line", "message"),
    [
        (
            "cdash-odm-test-invalid.xml",
            14,
            "not valid ODM 1.3.2: Element 'studyName': This element is not expected. "
            "Expected is ( StudyName )",
        ),
        (
            "test_odm_001.xml",
            2,
            "not namespace-well-formed XML: Namespace prefix xs for schemaLocation on ODM is "
            "not defined",
        ),
    ],
)
def test_an_invalid_file_is_refused_with_its_file_line_and_problem(name, line, message):
    with pytest.raises(OdmImportError) as raised:
        read_odm(ODM_SAMPLES / name)
    assert [
        (problem.path.name, problem.line, problem.message) for problem in raised.value.problems
    ] == [(name, line, message)]


def test_xml_that_is_not_odm_is_refused(tmp_path):
    path = tmp_path / "other.xml"
    path.write_text('<?xml version="1.0"?>\n<project><field/></project>\n')

    with pytest.raises(OdmImportError) as raised:
        read_odm(path)

    assert str(raised.value) == (
        f"{path}:2: is not a CDISC ODM file: its root element is 'project', not ODM in the "
        "namespace http://www.cdisc.org/ns/odm/v1.3"
    )


def test_a_valid_file_is_read_with_its_lines():
    odm = read_odm(ODM_SAMPLES / "odm-data-snapshot.xml")

    assert not odm.redcap and odm.warnings == []
    (study,) = odm.studies
    assert (study.oid, study.name) == ("1001_virus", "virus")
    version = study.versions[0]
    assert list(version.events)[:2] == ["SE.SCREENING", "SE.VISIT 1"]
    assert version.forms["AE"].repeating is True
    assert version.items["IT.SEX"].codelist_oid == "CL.SEX"
    assert version.items["IT.AGEU"].units_oid == "MU.YEARS"
    assert study.units["MU.YEARS"] == "Age Unit"
    assert odm.locations["ISSS"].type == "Site"
    subject = odm.clinical[0].subjects[0]
    assert (subject.key, subject.line) == ("SS_0001", 847)
    first = subject.events[0].forms[0].groups[0].items[0]
    assert (first.oid, first.value, first.line) == ("IT.AGE", "56", 851)
    assert odm.value_count == 165


def test_redcap_project_xml_is_read_leniently_each_fault_a_warning_at_its_line():
    path = SHARED / "redcap" / "simple" / "project.xml"

    odm = read_odm(path)

    assert odm.redcap
    messages = [(warning.line, warning.message) for warning in odm.warnings]
    assert messages[0][0] is None and "REDCap elements and attributes are not ODM" in messages[0][1]
    lines = {line for line, _ in messages[1:]}
    assert None not in lines
    assert any(
        "Element 'ItemGroupDef', attribute 'Name': [facet 'minLength'] The value '' has a "
        "length of '0'" in message
        for _, message in messages
    )
    assert any(
        "attribute 'DataType': [facet 'enumeration'] The value 'boolean'" in message
        for _, message in messages
    )
    assert (
        434,
        "not valid ODM 1.3.2: Element 'FormData': This element is not expected. "
        "Expected is one of ( AuditRecord, Signature, InvestigatorRef, SiteRef, Annotation, "
        "StudyEventData )",
    ) in messages
    # Its forms are given straight under each SubjectData: read as forms of no event.
    subject = odm.clinical[0].subjects[0]
    assert subject.events[0].oid == "" and subject.events[0].forms[0].oid == "Form.demographics"
    version = odm.studies[0].versions[0]
    assert version.items["race___1"].extra["Variable"] == "race"
    assert odm.studies[0].access_groups == ("dag_1", "dag_2")


def test_pycap_project_files_are_redcap_too():
    for path in sorted((ODM_SAMPLES / "pycap").glob("*.xml")):
        odm = read_odm(path)
        assert odm.redcap, path
        assert all(warning.path == path for warning in odm.warnings)


def test_our_own_export_reads_back_with_its_missing_codes(tmp_path):
    path = tmp_path / "demo.xml"
    with path.open("wb") as out:
        write_odm(full_snapshot(), ExportOptions(formats=("odm",), blinded=False), out)

    odm = read_odm(path)

    items = [
        item
        for data in odm.clinical
        for subject in data.subjects
        for event in subject.events
        for form in event.forms
        for group in form.groups
        for item in group.items
    ]
    nulls = [(item.oid, item.value, item.missing) for item in items if item.missing]
    assert nulls == [("IT.vitals.1.weight", None, "UNK"), ("IT.vitals.1.weight", None, "ND")]
    notes = next(item for item in items if item.oid == "IT.vitals.1.notes")
    assert notes.value == 'Line one\nline "two" & <three>\ttabbed'


@pytest.mark.parametrize(
    ("item", "raw", "canonical"),
    [
        (Item("t", "Time", "time"), "14:30:00", "14:30"),
        (Item("t", "Time", "time"), "09:05", "09:05"),
        (Item("d", "When", "datetime"), "2026-03-04T08:15:00+01:00", "2026-03-04T08:15"),
        (Item("d", "When", "datetime"), "2015-04-02 10:15", "2015-04-02T10:15"),
        (Item("d", "Date", "date", partial_dates=True), "2024-03", "2024-03-UN"),
        (Item("d", "Date", "date", partial_dates=True), "2024", "2024-UN-UN"),
        (Item("d", "Date", "date"), "2006-07-14T14:48", "2006-07-14"),
        (Item("y", "Yes?", "yes_no", choices=(Choice("1", "Yes"), Choice("0", "No"))), "true", "1"),
        (Item("n", "Number", "decimal"), "72.50", "72.50"),
        (Item("i", "Count", "integer"), "+7", "7"),
        (Item("s", "Sex", "single_choice", choices=(Choice("F", "Female"),)), "female", "F"),
        (
            Item("m", "Many", "multiple_choice", choices=(Choice("A", "a"), Choice("B", "b"))),
            "B|A",
            "A|B",
        ),
    ],
)
def test_values_become_canonical(item, raw, canonical):
    assert canonical_value(item, raw) == canonical


def test_a_value_that_is_not_one_of_its_item_is_refused():
    with pytest.raises(ValueProblem):
        canonical_value(Item("i", "Count", "integer"), "8.9")
    with pytest.raises(ValueProblem):
        canonical_value(Item("d", "Date", "date"), "2024-03")


def test_read_from_bytes_in_memory(tmp_path):
    # A writer's output read straight back, without touching the disk but once.
    buffer = io.BytesIO()
    write_odm(full_snapshot().as_blinded(), ExportOptions(formats=("odm",)), buffer)
    path = tmp_path / "blinded.xml"
    path.write_bytes(buffer.getvalue())
    assert read_odm(path).studies[0].name == "DEMO"
