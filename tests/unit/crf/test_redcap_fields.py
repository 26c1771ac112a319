"""How each REDCap field becomes a form item: types, choices, labels, ranges, flags,
sections, and the rows left out, read back through the form file reader."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from bhp_ctms.crf.definition import Choice, Range, check_forms, read_forms
from bhp_ctms.crf.redcap import RedcapImport, import_dictionary

HEADER = (
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
)
# Our short names for the columns a test fills in, in HEADER's order.
CELLS = (
    "name",
    "form",
    "section",
    "type",
    "label",
    "choices",
    "note",
    "validation",
    "min",
    "max",
    "identifier",
    "logic",
    "required",
    "alignment",
    "number",
    "matrix",
    "ranking",
    "annotation",
)
RECORD_ID = {"name": "record_id", "form": "visit", "type": "text", "label": "Record ID"}


def field(name: str, kind: str = "text", label: str = "", form: str = "visit", **cells: str):
    return {"name": name, "form": form, "type": kind, "label": label or name, **cells}


def dictionary_text(*fields: dict[str, str], header: tuple[str, ...] = HEADER) -> str:
    """A data dictionary as REDCap writes it: the record ID first, then ``fields``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for cells in (RECORD_ID, *fields):
        unknown = set(cells) - set(CELLS)
        assert not unknown, unknown
        writer.writerow([cells.get(name, "") for name in CELLS])
    return buffer.getvalue()


def write_dictionary(tmp_path: Path, *fields: dict[str, str], text: str | None = None) -> Path:
    path = tmp_path / "dictionary.csv"
    path.write_text(dictionary_text(*fields) if text is None else text, encoding="utf-8")
    return path


def run_import(tmp_path: Path, *fields: dict[str, str], text: str | None = None):
    """Import a dictionary; the result and the forms as the reader reads them back."""
    out = tmp_path / "study"
    result = import_dictionary(write_dictionary(tmp_path, *fields, text=text), out)
    assert check_forms(out) == []
    return result, read_forms(out).forms


def notes_of(result: RedcapImport, subject: str) -> list[str]:
    return [note.message for note in result.notes if note.subject == subject]


@pytest.mark.parametrize(
    ("label", "plain"),
    [
        ("<b>Weight</b> &amp; height<br>in cm", "Weight & height\nin cm"),
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ('<span style="color:red">Hb</span>&nbsp;(g/dL)', "Hb (g/dL)"),
        ("Age < 18 and BP >= 140", "Age < 18 and BP >= 140"),
        ("Line one\nLine two", "Line one\nLine two"),
        ("<ul><li>fever</li><li>rash</li></ul>", "- fever\n- rash"),
        ("  spaced   out  ", "spaced out"),
        ("Nausea <!-- REDCap note --> today", "Nausea today"),
    ],
)
def test_labels_are_plain_text(tmp_path, label, plain):
    _, forms = run_import(tmp_path, field("symptom", label=label))
    assert forms["visit"].item("symptom").label == plain


def test_choices_with_commas_in_labels_and_letter_or_negative_codes(tmp_path):
    _, forms = run_import(
        tmp_path,
        field("consent", "radio", choices="1, Yes, fully | 2, No, not yet"),
        field("smoker", "dropdown", choices="-1, Don't know | 0, Never | 1, <i>Current</i>"),
        field("site", "checkbox", choices="GAB, Gaborone|FTN, Francistown"),
    )
    form = forms["visit"]

    assert form.item("consent").choices == (Choice("1", "Yes, fully"), Choice("2", "No, not yet"))
    assert form.item("smoker").choices == (
        Choice("-1", "Don't know"),
        Choice("0", "Never"),
        Choice("1", "Current"),
    )
    assert form.item("site").choices == (Choice("GAB", "Gaborone"), Choice("FTN", "Francistown"))
    assert form.item("site").type == "multiple_choice"


def test_required_identifier_and_field_note(tmp_path):
    _, forms = run_import(
        tmp_path,
        field("initials", required="y", identifier="y", note="First, middle, last"),
        field("bmi", "calc", choices="[weight]", required="y"),
        field("weight", "text", validation="number"),
    )
    form = forms["visit"]

    initials = form.item("initials")
    assert (initials.required, initials.identifier, initials.help) == (
        True,
        True,
        "First, middle, last",
    )
    # A calculated item is not typed, so it cannot be required.
    assert form.item("bmi").required is False


def test_yes_no_true_false_notes_and_descriptive(tmp_path):
    result, forms = run_import(
        tmp_path,
        field("intro", "descriptive", label="<h3>Vital signs</h3>Measured seated."),
        field("fasting", "yesno"),
        field("pregnant", "truefalse"),
        field("remarks", "notes"),
    )
    form = forms["visit"]

    assert [item.type for item in form.items] == [
        "descriptive",
        "yes_no",
        "single_choice",
        "long_text",
    ]
    assert form.item("intro").label == "Vital signs\n\nMeasured seated."
    assert form.item("pregnant").choices == (Choice("1", "True"), Choice("0", "False"))
    [visit] = result.forms
    assert (visit.item_count, visit.descriptive_count) == (3, 1)
    assert result.item_count == 3


def test_slider_range_defaults_to_0_100_and_keeps_three_labels(tmp_path):
    result, forms = run_import(
        tmp_path,
        field("pain", "slider", choices="None | Moderate | Worst imaginable"),
        field("mood", "slider", choices="Sad | | Happy", min="-10", max="10", validation="number"),
        field("effort", "slider", choices="a | b | c | d"),
        field("plain", "slider"),
    )
    form = forms["visit"]

    pain = form.item("pain")
    assert (pain.type, pain.widget, pain.hard_range) == ("integer", "slider", Range("0", "100"))
    assert pain.slider_labels == ("None", "Moderate", "Worst imaginable")
    assert form.item("mood").hard_range == Range("-10", "10")
    assert form.item("mood").slider_labels == ("Sad", "Happy")
    assert notes_of(result, "mood") == ["its blank slider labels are dropped"]
    assert form.item("effort").slider_labels == ("a", "b", "c")
    assert notes_of(result, "effort") == [
        "a slider shows 3 labels (left, middle, right): 'd' dropped"
    ]
    assert form.item("plain").slider_labels == ()


@pytest.mark.parametrize(
    ("validation", "minimum", "maximum", "kind", "soft_range"),
    [
        ("integer", "0", "300", "integer", Range("0", "300")),
        ("int", "+5", "", "integer", Range("5", None)),
        ("number", "", "2.5", "decimal", Range(None, "2.5")),
        ("number_1dp_comma_decimal", "0,5", "99,9", "decimal", Range("0.5", "99.9")),
        ("number_2dp", "007.50", "99,", "decimal", Range("7.50", "99")),
        ("number_1dp", "-.5", "", "decimal", Range("-0.5", None)),
        ("date_ymd", "2020-01-01", "today", "date", Range("2020-01-01", "today")),
        ("date_dmy", "31-12-2019", "", "date", Range("2019-12-31", None)),
        ("date_mdy", "12/31/2019", "2020-06-30", "date", Range("2019-12-31", "2020-06-30")),
        ("datetime_ymd", "2020-01-01 08:00", "", "datetime", Range("2020-01-01T08:00", None)),
        (
            "datetime_seconds_dmy",
            "01-02-2020 08:00:30",
            "",
            "datetime",
            Range("2020-02-01T08:00", None),
        ),
        ("time", "7:30", "17:00", "time", Range("07:30", "17:00")),
        ("time_hh_mm_ss", "", "23:59:59", "time", Range(None, "23:59")),
    ],
)
def test_validation_min_and_max_become_a_soft_range(
    tmp_path, validation, minimum, maximum, kind, soft_range
):
    _, forms = run_import(tmp_path, field("value", validation=validation, min=minimum, max=maximum))
    item = forms["visit"].item("value")
    assert (item.type, item.soft_range, item.hard_range) == (kind, soft_range, None)


def test_limits_that_cannot_be_kept_are_noted(tmp_path):
    result, forms = run_import(
        tmp_path,
        field("zip", validation="zipcode", min="10000"),
        field("free", min="1", max="9"),
        field("seen_at", validation="datetime_mdy", max="now"),
        field("colour", validation="colour_name"),
        field("visit_on", validation="date_ymd", min="[consent_date]", max="today"),
    )
    form = forms["visit"]

    assert notes_of(result, "zip") == ["min '10000' not imported: zipcode has no range"]
    assert notes_of(result, "free") == [
        "min '1' and max '9' not imported: it has no validation type"
    ]
    assert form.item("seen_at").soft_range is None
    assert notes_of(result, "seen_at") == [
        "its max 'now' is not imported: a datetime range has fixed limits"
    ]
    assert form.item("colour").type == "text"
    assert notes_of(result, "colour") == [
        "its validation type 'colour_name' is unknown: it is a plain text item"
    ]
    assert form.item("visit_on").soft_range == Range(None, "today")
    assert notes_of(result, "visit_on") == [
        "its min '[consent_date]' is not imported: a limit taken from another field is not "
        "supported"
    ]


def test_a_section_header_on_a_field_left_out_moves_to_the_next_item(tmp_path):
    result, forms = run_import(
        tmp_path,
        field("consent_form", "file", section="<b>Consent</b>"),
        field("consent_date", validation="date_ymd"),
        field("photo", "file", form="closing", section="Photographs"),
        field("closing_note", "notes", form="closing"),
        field("signature", "file", form="closing", validation="signature", section="Sign-off"),
    )

    assert forms["visit"].item("consent_date").section == "Consent"
    assert forms["closing"].item("closing_note").section == "Photographs"
    assert notes_of(result, "signature") == [
        "its section header 'Sign-off' is not imported: no item follows it"
    ]


def test_matrix_groups(tmp_path):
    _, forms = run_import(
        tmp_path,
        field("q1", "radio", choices="0, No | 1, Yes", matrix="symptoms", section="Symptoms"),
        field("q2", "radio", choices="0, No | 1, Yes", matrix="symptoms"),
        field("other", "notes"),
    )
    form = forms["visit"]

    assert [(item.code, item.matrix) for item in form.items] == [
        ("q1", "symptoms"),
        ("q2", "symptoms"),
        ("other", ""),
    ]
    assert form.item("q1").section == "Symptoms"


def test_blank_rows_are_skipped_and_rows_are_counted_as_a_spreadsheet_shows_them(tmp_path):
    text = dictionary_text(
        field("history", "notes", label="Medical history\n(one condition a line)"),
        field("lookup", "sql", choices="select 1"),
    )
    lines = text.splitlines(keepends=True)
    # The record ID, a blank row, the two-line history, a row of empty cells, the sql.
    blank = "," * (len(HEADER) - 1) + "\n"
    text = lines[0] + lines[1] + "\n" + "".join(lines[2:4]) + blank + lines[4]
    result, forms = run_import(tmp_path, text=text)

    assert result.field_count == 3
    assert [str(skipped) for skipped in result.skipped] == [
        "row 2 (record_id): the record ID field: BHP CTMS identifies participants by their "
        "study ID, not by a form item",
        "row 6 (lookup): sql fields (dynamic queries of the REDCap database) are not supported",
    ]
    assert forms["visit"].item("history").label == "Medical history\n(one condition a line)"


def test_the_api_metadata_header_is_read_too(tmp_path):
    header = tuple(
        name.replace(" ", "_")
        for name in (
            "field_name",
            "form_name",
            "section_header",
            "field_type",
            "field_label",
            "select_choices_or_calculations",
            "field_note",
            "text_validation_type_or_show_slider_number",
            "text_validation_min",
            "text_validation_max",
            "identifier",
            "branching_logic",
            "required_field",
            "custom_alignment",
            "question_number",
            "matrix_group_name",
            "matrix_ranking",
            "field_annotation",
        )
    )
    text = dictionary_text(field("weight", validation="integer", min="20"), header=header)
    _, forms = run_import(tmp_path, text=text)
    assert forms["visit"].item("weight").soft_range == Range("20", None)


def test_an_instrument_of_descriptive_text_only_is_not_written(tmp_path):
    result, forms = run_import(
        tmp_path,
        field("weight", validation="integer"),
        field("welcome", "descriptive", form="introduction", label="Welcome to the study."),
    )

    assert sorted(forms) == ["visit"]
    assert [str(skipped) for skipped in result.skipped][1] == (
        "row 4 (welcome): its instrument introduction has no items to import, so no form file "
        "is written"
    )
    assert notes_of(result, "instrument introduction") == [
        "no form file is written: none of its fields is imported as an item"
    ]
    assert result.item_count == 1


def test_titles_action_tags_ontology_and_unlabelled_fields(tmp_path):
    result, forms = run_import(
        tmp_path,
        field("when_seen", form="adverse_event_log", annotation="@HIDDEN-SURVEY @NOW"),
        field("diagnosis", form="adverse_event_log", choices="BIOPORTAL:ICD10"),
        {"name": "unlabelled", "form": "adverse_event_log", "type": "text"},
    )
    form = forms["adverse_event_log"]

    assert form.title == "Adverse event log"
    assert notes_of(result, "when_seen") == [
        "REDCap action tags are not imported: @HIDDEN-SURVEY, @NOW"
    ]
    assert notes_of(result, "diagnosis") == [
        "its ontology search (BIOPORTAL:ICD10) is not imported: it is a plain text item"
    ]
    assert form.item("unlabelled").label == "unlabelled"
    text = (tmp_path / "study" / "forms" / "adverse_event_log.yaml").read_text()
    assert "# REDCap row 3: REDCap action tags are not imported: @HIDDEN-SURVEY, @NOW" in text
    assert text.startswith(
        "# Imported by ctms forms import-redcap from the REDCap data dictionary dictionary.csv\n"
        "# (instrument adverse_event_log, rows 3 to 5).\n"
    )


def test_an_import_over_an_earlier_one_replaces_its_files(tmp_path):
    run_import(tmp_path, field("weight", validation="integer"))
    result, forms = run_import(tmp_path, field("weight", validation="number_1dp"))

    assert forms["visit"].item("weight").precision == 1
    assert [form.path for form in result.forms] == [tmp_path / "study" / "forms" / "visit.yaml"]


def test_field_and_validation_types_are_read_in_any_case(tmp_path):
    _, forms = run_import(
        tmp_path,
        field("smoker", "Radio", choices="0, No | 1, Yes"),
        field("weight", "TEXT", validation="Number_1DP"),
    )
    form = forms["visit"]

    assert (form.item("smoker").type, form.item("smoker").widget) == ("single_choice", "radio")
    assert (form.item("weight").type, form.item("weight").precision) == ("decimal", 1)
