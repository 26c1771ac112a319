"""Every REDCap data dictionary of the samples imports into form files that read back.

The dictionaries are copies of REDCapR's test projects (tests/data/redcap/README.md).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from bhp_ctms.crf.definition import Choice, Range, check_forms, read_forms
from bhp_ctms.crf.redcap import import_dictionary

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "redcap"
SAMPLE_NAMES = sorted(path.parent.name for path in SAMPLES.glob("*/dictionary.csv"))

# The rows of each sample that are not imported (the record ID is always row 2).
NOT_IMPORTED = {
    "checkboxes-1": {2: "record_id"},
    "clinical-trial-1": {2: "record_id"},
    "dag": {2: "record_id"},
    "longitudinal": {2: "study_id", 4: "patient_document"},
    "potentially-problematic-dictionary": {2: "record_id"},
    "repeating-instruments": {2: "record_id"},
    "simple": {2: "record_id", 15: "mugshot"},
    "validation-types-1": {
        2: "record_id",
        7: "f_file_upload",
        10: "f_signature",
        12: "f_sql",
    },
}
# The form files each sample gives, with their item counts.
FORMS = {
    "checkboxes-1": {"form_2": 3},
    "clinical-trial-1": {"demographics": 11},
    "dag": {"demographics": 14},
    "longitudinal": {
        "demographics": 22,
        "contact_info": 6,
        "baseline_data": 8,
        "visit_lab_data": 5,
        "patient_morale_questionnaire": 4,
        "visit_blood_workup": 9,
        "visit_observed_behavior": 14,
        "completion_data": 12,
        "completion_project_questionnaire": 13,
    },
    "potentially-problematic-dictionary": {"form_1": 5},
    "repeating-instruments": {"demographics": 7, "bp": 3},
    "simple": {"demographics": 8, "health": 4, "race_and_ethnicity": 2},
    "validation-types-1": {"form_1": 45},
}


def field_rows(dictionary: Path) -> list[dict[str, str]]:
    with dictionary.open(encoding="utf-8-sig", newline="") as file:
        return [row for row in csv.DictReader(file) if any(value.strip() for value in row.values())]


def imported(name: str, tmp_path: Path):
    out = tmp_path / name
    result = import_dictionary(SAMPLES / name / "dictionary.csv", out)
    return result, read_forms(out).forms


def test_every_sample_is_tested():
    assert SAMPLE_NAMES == sorted(NOT_IMPORTED) == sorted(FORMS)


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_each_sample_imports_into_valid_form_files(name, tmp_path):
    dictionary = SAMPLES / name / "dictionary.csv"
    out = tmp_path / "study"

    result = import_dictionary(dictionary, out)

    assert check_forms(out) == []
    assert {form.code: form.item_count for form in result.forms} == FORMS[name]
    assert sorted(path.name for path in (out / "forms").iterdir()) == sorted(
        f"{code}.yaml" for code in FORMS[name]
    )
    assert {skipped.row: skipped.field for skipped in result.skipped} == NOT_IMPORTED[name]
    assert all(skipped.reason for skipped in result.skipped)
    rows = field_rows(dictionary)
    descriptive = sum(1 for row in rows if row["Field Type"] == "descriptive")
    assert result.field_count == len(rows)
    # Every field is an item, descriptive text, or listed as not imported.
    assert result.item_count == len(rows) - descriptive - len(result.skipped)
    forms = read_forms(out).forms
    read_back = sum(
        1 for form in forms.values() for item in form.items if item.type != "descriptive"
    )
    assert read_back == result.item_count


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_the_record_id_is_listed_as_not_imported(name, tmp_path):
    result, forms = imported(name, tmp_path)
    [record_id] = [skipped for skipped in result.skipped if skipped.row == 2]
    assert "BHP CTMS identifies participants by their study ID" in str(record_id)
    assert not any(item.code == record_id.field for form in forms.values() for item in form.items)


def test_validation_types_each_become_the_expected_item(tmp_path):
    result, forms = imported("validation-types-1", tmp_path)
    form = forms["form_1"]
    kinds = {item.code: (item.type, item.precision, item.widget) for item in form.items}

    assert kinds == {
        "f_calculated": ("calculated", None, ""),
        "f_checkbox": ("multiple_choice", None, ""),
        "f_descriptive": ("descriptive", None, ""),
        "f_dropdown": ("single_choice", None, "dropdown"),
        "f_notes": ("long_text", None, ""),
        "f_radio": ("single_choice", None, "radio"),
        "f_slider": ("integer", None, "slider"),
        "f_text": ("text", None, ""),
        "f_true_false": ("single_choice", None, "radio"),
        "f_yes_no": ("yes_no", None, ""),
        "v_alpha_only": ("text", None, ""),
        "v_date_dmy": ("date", None, ""),
        "v_date_mdy": ("date", None, ""),
        "v_date_ymd": ("date", None, ""),
        "v_datetime_dmy": ("datetime", None, ""),
        "v_datetime_mdy": ("datetime", None, ""),
        "v_datetime_seconds_dmy": ("datetime", None, ""),
        "v_datetime_seconds_mdy": ("datetime", None, ""),
        "v_datetime_seconds_ymd": ("datetime", None, ""),
        "v_datetime_ymd": ("datetime", None, ""),
        "v_email": ("text", None, ""),
        "v_integer": ("integer", None, ""),
        "v_mrn_10d": ("text", None, ""),
        "v_mrn_generic": ("text", None, ""),
        "v_number": ("decimal", None, ""),
        "v_number_1dp": ("decimal", 1, ""),
        "v_number_2dp": ("decimal", 2, ""),
        "v_number_3dp": ("decimal", 3, ""),
        "v_number_4dp": ("decimal", 4, ""),
        "v_number_comma_decimal": ("decimal", None, ""),
        "v_number_1dp_comma_decimal": ("decimal", 1, ""),
        "v_number_2dp_comma_decimal": ("decimal", 2, ""),
        "v_number_3dp_comma_decimal": ("decimal", 3, ""),
        "v_number_4dp_comma_decimal": ("decimal", 4, ""),
        "v_phone": ("text", None, ""),
        "v_phone_australia": ("text", None, ""),
        "v_postalcode_australia": ("text", None, ""),
        "v_postalcode_canada": ("text", None, ""),
        "v_postalcode_french": ("text", None, ""),
        "v_postalcode_germany": ("text", None, ""),
        "v_ssn": ("text", None, ""),
        "v_time_hh_mm": ("time", None, ""),
        "v_time_hh_mm_ss": ("time", None, ""),
        "v_time_mm_ss": ("text", None, ""),
        "v_vmrn": ("text", None, ""),
        "v_zipcode": ("text", None, ""),
    }
    patterned = {item.code for item in form.items if item.pattern is not None}
    assert patterned == {
        "v_alpha_only",
        "v_email",
        "v_mrn_10d",
        "v_mrn_generic",
        "v_phone",
        "v_phone_australia",
        "v_postalcode_australia",
        "v_postalcode_canada",
        "v_postalcode_french",
        "v_postalcode_germany",
        "v_ssn",
        "v_time_mm_ss",
        "v_vmrn",
        "v_zipcode",
    }
    assert form.item("f_true_false").choices == (Choice("1", "True"), Choice("0", "False"))
    slider = form.item("f_slider")
    assert slider.hard_range == Range("-1", "101")
    assert slider.slider_labels == ("-1", "50", "101")
    assert form.item("f_calculated").calculation == "3+4"
    assert form.item("f_calculated").section == "Menu of Field Types"
    assert form.item("v_alpha_only").section == "Menu of Validation Types (for Text Boxes)"
    noted = {note.subject for note in result.notes}
    assert noted == {
        "v_datetime_seconds_dmy",
        "v_datetime_seconds_mdy",
        "v_datetime_seconds_ymd",
        "v_time_hh_mm_ss",
        "v_number_comma_decimal",
        "v_number_1dp_comma_decimal",
        "v_number_2dp_comma_decimal",
        "v_number_3dp_comma_decimal",
        "v_number_4dp_comma_decimal",
    }
    [seconds] = [note for note in result.notes if note.subject == "v_datetime_seconds_ymd"]
    assert "seconds are dropped" in str(seconds)
    reasons = {skipped.field: skipped.reason for skipped in result.skipped}
    assert reasons["f_file_upload"] == "file upload fields are not supported"
    assert reasons["f_signature"].startswith("signature fields are not supported")
    assert str(next(s for s in result.skipped if s.field == "f_sql")).startswith(
        "row 12 (f_sql): sql fields"
    )
    assert [(form.code, form.descriptive_count) for form in result.forms] == [("form_1", 1)]


def test_text_validation_patterns_accept_and_refuse_as_redcap_does(tmp_path):
    _, forms = imported("validation-types-1", tmp_path)
    form = forms["form_1"]
    examples = {
        "v_alpha_only": (["Naledi"], ["Naledi 2", ""]),
        "v_email": (["k.moloi@bhp.org.bw"], ["k.moloi", "a@b"]),
        "v_mrn_10d": (["0123456789"], ["123456789"]),
        "v_mrn_generic": (["MRN-0042_a"], ["MRN 42"]),
        "v_phone": (["(615) 322-5000", "615.322.5000 ext 12"], ["322-5000", "(015) 322-5000"]),
        "v_phone_australia": (["02 9876 5432", "(03) 98765432"], ["9876 5432"]),
        "v_postalcode_australia": (["2000"], ["200"]),
        "v_postalcode_canada": (["K1A 0B1", "k1a0b1"], ["K1A-0B1"]),
        "v_postalcode_french": (["75001"], ["7500"]),
        "v_postalcode_germany": (["01067", "10115"], ["00123"]),
        "v_ssn": (["123-45-6789"], ["123456789"]),
        "v_time_mm_ss": (["59:59"], ["60:00", "1:05"]),
        "v_vmrn": (["1234", "123456789"], ["123"]),
        "v_zipcode": (["37232", "37232-0001"], ["3723"]),
    }
    for code, (good, bad) in examples.items():
        pattern = form.item(code).pattern
        assert pattern is not None and pattern.message
        regex = re.compile(pattern.regex)
        assert [value for value in good if not regex.fullmatch(value)] == [], code
        assert [value for value in bad if regex.fullmatch(value)] == [], code


def test_clinical_trial_ranges_are_soft_and_identifiers_flagged(tmp_path):
    _, forms = imported("clinical-trial-1", tmp_path)
    form = forms["demographics"]

    dob = form.item("dob")
    assert (dob.type, dob.identifier) == ("date", True)
    assert dob.soft_range == Range("1900-01-01", "2029-12-31")
    assert dob.hard_range is None
    assert form.item("height").type == "decimal"
    assert form.item("height").soft_range == Range("0", "250")
    assert form.item("weight").type == "integer"
    assert form.item("weight").soft_range == Range("0", "300")
    assert {item.code for item in form.items if item.identifier} == {
        "name_last",
        "name_first",
        "address",
        "phone",
        "dob",
    }
    assert [choice.label for choice in form.item("race").choices] == [
        "Asian",
        "(Not Used)",
        "Black",
        "White",
        "Other/Mixed",
        "Missing",
    ]
    assert form.title == "Demographics"
    assert form.version == "1.0"


def test_dag_calculations_and_sections(tmp_path):
    _, forms = imported("dag", tmp_path)
    form = forms["demographics"]

    bmi = form.item("bmi")
    assert bmi.type == "calculated"
    assert bmi.calculation == "round(([weight]*10000)/(([height])^(2)),1)"
    assert bmi.precision == 1
    age = form.item("age")
    assert (age.type, age.calculation) == (
        "calculated",
        "rounddown(datediff([dob],'today','y'))",
    )
    assert form.item("first_name").section == "Contact Information"
    assert form.item("comments").section == "General Comments"
    assert form.item("telephone").help == "Include Area Code"
    assert form.item("address").type == "long_text"
    assert form.item("race").widget == "dropdown"
    assert form.item("ethnicity").widget == "radio"


def test_longitudinal_branching_matrix_and_slider(tmp_path):
    result, forms = imported("longitudinal", tmp_path)
    demographics = forms["demographics"]

    assert demographics.item("given_birth").type == "yes_no"
    assert demographics.item("given_birth").show_if == '[sex] = "0"'
    assert demographics.item("num_children").show_if == '[sex] = "0" and [given_birth] = "1"'
    assert demographics.item("num_children").soft_range == Range("0", None)
    schedule = [item.code for item in demographics.items if item.matrix == "weekly_schedule"]
    assert schedule == ["gym", "aerobics", "eat", "drink"]
    assert demographics.item("gym").section == (
        "Please provide the patient's weekly schedule for the activities below."
    )
    assert demographics.item("gym").type == "multiple_choice"
    mood = demographics.item("specify_mood")
    assert (mood.type, mood.widget) == ("integer", "slider")
    assert mood.hard_range == Range("0", "100")
    assert mood.slider_labels == ("Very sad", "Indifferent", "Very happy")
    assert mood.section == "Other information"
    # The consent upload is left out; the section it did not carry is on the next row.
    assert demographics.item("date_enrolled").section == "Consent Information"
    assert forms["baseline_data"].title == "Baseline data"
    assert forms["visit_observed_behavior"].item("vob8").section == "Were you..."
    assert result.notes == ()


def test_simple_checkboxes_and_file_upload(tmp_path):
    result, forms = imported("simple", tmp_path)

    race = forms["race_and_ethnicity"].item("race")
    assert race.type == "multiple_choice"
    assert [choice.code for choice in race.choices] == ["1", "2", "3", "4", "5", "6"]
    assert "mugshot" not in {item.code for item in forms["health"].items}
    assert [str(skipped) for skipped in result.skipped][1] == (
        "row 15 (mugshot): file upload fields are not supported"
    )


def test_checkbox_codes_may_be_letters_and_an_instrument_left_empty_is_not_written(tmp_path):
    result, forms = imported("checkboxes-1", tmp_path)

    assert [choice.code for choice in forms["form_2"].item("check_two").choices] == [
        "a",
        "b",
        "c",
        "d",
        "e",
    ]
    assert "form_1" not in forms
    [note] = result.notes
    assert str(note) == (
        "row 2 (instrument form_1): no form file is written: none of its fields is imported "
        "as an item"
    )


def test_a_byte_order_mark_and_awkward_labels(tmp_path):
    _, forms = imported("potentially-problematic-dictionary", tmp_path)
    form = forms["form_1"]

    assert [item.code for item in form.items] == [
        "v1",
        "curly_quote_single",
        "curly_quote_double_left",
        "curly_quote_double_right",
        "long_dash",
    ]
    assert form.item("curly_quote_double_left").label == 'Maybe I don\'t "look the part"'
    assert "\u2212or even" in form.item("long_dash").label
    assert form.item("v1").label == "Is the laser mounted on the shark?\ufffd?\ufffd"


def test_integer_minimum_without_maximum(tmp_path):
    _, forms = imported("repeating-instruments", tmp_path)

    systolic = forms["bp"].item("bp_systolic")
    assert (systolic.type, systolic.soft_range) == ("integer", Range("0", None))
    assert forms["demographics"].item("first_name").help == (
        "If no middle initial, please put a hyphen (-) as a place holder"
    )
