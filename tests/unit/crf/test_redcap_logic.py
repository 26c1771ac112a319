"""REDCap branching logic and calculations: imported as show-if and calculations when
our expression language can hold them, otherwise left out and listed with the reason."""

from __future__ import annotations

import pytest

from tests.unit.crf.test_redcap_fields import field, notes_of, run_import

SEX = field("sex", "radio", choices="1, Male | 2, Female")
SYMPTOMS = field("symptoms", "checkbox", choices="1, Fever | 2, Rash | -9, Unknown")


def test_redcap_syntax_is_kept_as_written(tmp_path):
    logic = "[sex] <> \"1\" AND ([symptoms(2)] = '1' OR [symptoms(-9)] = '1')"
    result, forms = run_import(tmp_path, SEX, SYMPTOMS, field("rash_site", logic=logic))

    assert forms["visit"].item("rash_site").show_if == logic
    assert result.notes == ()


def test_calculations_and_logic_across_forms(tmp_path):
    result, forms = run_import(
        tmp_path,
        field("visit_date", validation="date_ymd"),
        field("age", "calc", choices="rounddown(datediff([dob], [visit_date], 'y'))"),
        field("guardian", logic="[age] < 18"),
        field("dob", validation="date_ymd", form="screening"),
    )

    visit = forms["visit"]
    assert visit.item("age").calculation == "rounddown(datediff([dob], [visit_date], 'y'))"
    assert visit.item("guardian").show_if == "[age] < 18"
    assert result.skipped[1:] == ()
    assert forms["screening"].item("dob").type == "date"


@pytest.mark.parametrize(
    ("logic", "reason"),
    [
        ("[event-name] = 'baseline_arm_1'", "[event-name] is a REDCap smart variable"),
        ("[sex:label] = 'Female'", "REDCap piping such as [sex:label] is not supported"),
        (
            "[enrolment_arm_1][sex] = '2'",
            "[enrolment_arm_1][sex] refers to the REDCap event 'enrolment_arm_1'",
        ),
        ("[sex][2] = '2'", "[sex][2] refers to an instance of a repeating instrument"),
        ("[sex][previous-instance] = '2'", "refers to an instance of a repeating instrument"),
        ("[record_id] <> ''", "it uses [record_id], which is not imported"),
        ("[consent_file] <> ''", "it uses [consent_file], which is not imported"),
        ("[no_such_field] = '1'", "it uses [no_such_field], which is not imported"),
        ("[sex(2)] = '1'", "[sex(2)] is a checkbox term, but sex is not a checkbox field"),
        ("[symptoms(7)] = '1'", "symptoms has no choice '7'"),
        ("[pregnant] = '1'", "it uses the field's own value"),
        ("[sex] = '2' and", "cannot be read:"),
    ],
)
def test_logic_that_cannot_be_imported_is_left_out_and_listed(tmp_path, logic, reason):
    result, forms = run_import(
        tmp_path,
        field("consent_file", "file"),
        SEX,
        SYMPTOMS,
        field("pregnant", "yesno", logic=logic),
    )

    assert forms["visit"].item("pregnant").show_if == ""
    [note] = notes_of(result, "pregnant")
    assert note.startswith("its branching logic is not imported: ")
    assert reason in note
    # Quoted text is only text: brackets in it are not references.
    assert "pregnant" not in {skipped.field for skipped in result.skipped}


def test_brackets_inside_quoted_text_are_not_references(tmp_path):
    result, forms = run_import(tmp_path, SEX, field("note", logic="[sex] <> '[event-name]'"))
    assert forms["visit"].item("note").show_if == "[sex] <> '[event-name]'"
    assert result.notes == ()


def test_a_calculation_that_cannot_be_imported_leaves_its_field_and_what_uses_it_out(tmp_path):
    result, forms = run_import(
        tmp_path,
        field("scan", "file"),
        field("scan_count", "calc", choices="if([scan] <> '', 1, 0)"),
        field("scan_total", "calc", choices="[scan_count] * 2"),
        field("scan_note", logic="[scan_total] > 0"),
    )

    assert {skipped.field: skipped.reason for skipped in result.skipped[1:]} == {
        "scan": "file upload fields are not supported",
        "scan_count": "its calculation cannot be imported: it uses [scan], which is not imported",
        "scan_total": "its calculation cannot be imported: it uses [scan_count], which is not "
        "imported",
    }
    assert forms["visit"].item("scan_note").show_if == ""
    assert notes_of(result, "scan_note") == [
        "its branching logic is not imported: it uses [scan_total], which is not imported"
    ]


def test_calculations_that_depend_on_each_other_are_left_out(tmp_path):
    result, forms = run_import(
        tmp_path,
        field("weight", validation="number"),
        field("first", "calc", choices="[second] + [weight]"),
        field("second", "calc", choices="[first] + 1"),
        field("own", "calc", choices="[own] + 1"),
        field("fine", "calc", choices="[weight] * 2"),
    )

    assert {skipped.field: skipped.reason for skipped in result.skipped if skipped.row > 2} == {
        "first": "its calculation depends on its own value",
        "second": "its calculation depends on its own value",
        "own": "its calculation depends on its own value",
    }
    assert forms["visit"].item("fine").calculation == "[weight] * 2"


def test_a_calculation_rounded_as_a_whole_keeps_its_places(tmp_path):
    _, forms = run_import(
        tmp_path,
        field("weight", validation="number"),
        field("height", validation="number"),
        field("bmi", "calc", choices="round([weight] / ([height]/100)^2, 1)"),
        field("sum_rounded", "calc", choices="round([weight], 1) + round([height], 2)"),
        field("plain", "calc", choices="[weight] + [height]"),
    )
    form = forms["visit"]

    assert form.item("bmi").precision == 1
    assert form.item("sum_rounded").precision is None
    assert form.item("plain").precision is None
