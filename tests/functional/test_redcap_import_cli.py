"""``ctms forms import-redcap``, driven as a data manager would drive it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bhp_ctms.cli import ctms

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "redcap"


def run(*args):
    return CliRunner().invoke(ctms, [*map(str, args)], catch_exceptions=False)


def test_import_prints_each_form_and_what_is_not_imported(tmp_path):
    out = tmp_path / "study"

    result = run(
        "forms", "import-redcap", SAMPLES / "longitudinal" / "dictionary.csv", "--out", out
    )

    assert result.exit_code == 0, result.output
    forms = out / "forms"
    assert f"{forms / 'demographics.yaml'}: 22 items" in result.stdout
    assert f"{forms / 'visit_observed_behavior.yaml'}: 14 items" in result.stdout
    assert result.stdout.count(".yaml: ") == 9
    assert "9 forms, 93 items from 95 fields (2 not imported)" in result.stdout
    assert result.stderr.splitlines() == [
        "not imported: row 2 (study_id): the record ID field: BHP CTMS identifies participants "
        "by their study ID, not by a form item",
        "not imported: row 4 (patient_document): file upload fields are not supported",
    ]
    checked = run("forms", "check", out)
    assert checked.exit_code == 0, checked.output
    assert f"{out}: the forms are valid" in checked.output


def test_a_malformed_dictionary_exits_1_with_row_and_column_and_writes_nothing(tmp_path):
    dictionary = tmp_path / "dictionary.csv"
    text = (SAMPLES / "simple" / "dictionary.csv").read_text(encoding="utf-8")
    text = text.replace("sex,demographics,,radio,Gender", "sex,demographics,,radios,Gender")
    text = text.replace('"0, Female | 1, Male"', '"0 Female | 1, Male"')
    dictionary.write_text(text, encoding="utf-8")
    out = tmp_path / "study"

    result = run("forms", "import-redcap", dictionary, "--out", out)

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{dictionary}:10:4: sex: unknown field type 'radios'; REDCap's are text, notes, "
        "dropdown, radio, checkbox, yesno, truefalse, calc, slider, descriptive, file, sql",
    ]
    assert result.stdout == ""
    assert not out.exists()


def test_every_problem_is_printed(tmp_path):
    dictionary = tmp_path / "dictionary.csv"
    text = (SAMPLES / "dag" / "dictionary.csv").read_text(encoding="utf-8")
    text = text.replace('"0, Female | 1, Male"', '"0 Female | 1, Male"')
    text = text.replace("number,130,215", "number,230,215")
    text = text.replace("last_name,demographics", "first_name,demographics")
    dictionary.write_text(text, encoding="utf-8")

    result = run("forms", "import-redcap", dictionary, "--out", tmp_path / "study")

    assert result.exit_code == 1
    assert [line.split(": ", 1)[0] for line in result.stderr.splitlines()] == [
        f"{dictionary}:4:1",
        f"{dictionary}:12:6",
        f"{dictionary}:13:9",
    ]
    assert "'0 Female' has no comma between its code and its label" in result.stderr
    assert "the min '230' is above the max '215'" in result.stderr
    assert "the variable name 'first_name' is given twice (first on row 3)" in result.stderr
