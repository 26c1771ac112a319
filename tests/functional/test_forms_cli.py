"""``ctms forms check``, driven as a data manager writing forms would drive it: no
database and no ini file needed."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from bhp_ctms.cli import ctms

ROOT = Path(__file__).resolve().parents[2]
DEMO_FOLDER = ROOT / "forms" / "demo"


def run(*args):
    return CliRunner().invoke(ctms, ["-c", "absent.ini", *map(str, args)])


def test_the_demo_forms_are_valid(monkeypatch):
    monkeypatch.chdir(ROOT)

    result = run("forms", "check", "forms/demo")

    assert result.exit_code == 0, result.output
    assert result.stdout == "forms/demo: the forms are valid\n"
    assert result.stderr == ""


def test_a_broken_folder_exits_1_with_every_problem_at_its_file_line_and_column(tmp_path):
    folder = tmp_path / "study"
    shutil.copytree(DEMO_FOLDER, folder)
    vitals = folder / "forms" / "vitals.yaml"
    text = vitals.read_text(encoding="utf-8")
    text = text.replace('calculation: "[weight] / ([height]/100)^2"', 'calculation: "[weight] / "')
    text = text.replace("    units: kg\n", "    unit: kg\n")
    vitals.write_text(text, encoding="utf-8")
    codelists = folder / "codelists.yaml"
    codelists.write_text(
        codelists.read_text(encoding="utf-8").replace("code: ctcae_grade", "code: ctcae"),
        encoding="utf-8",
    )
    lines = text.splitlines()
    calculation = next(n for n, line in enumerate(lines, 1) if '"[weight] / "' in line)
    unit = lines.index("    unit: kg") + 1
    ae = (folder / "forms" / "ae.yaml").read_text(encoding="utf-8").splitlines()
    grade = ae.index("    codelist: ctcae_grade") + 1

    result = run("forms", "check", folder)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{folder}/forms/ae.yaml:{grade}:15: items[7].codelist: no codelist has code"
        " 'ctcae_grade' (did you mean 'ctcae'?)",
        f"{folder}/forms/vitals.yaml:{unit}:5: items[5]: unknown key 'unit' (did you mean"
        " 'units'?); allowed keys: code, label, type, required, help, section, units,"
        " precision, widget, choices, codelist, slider_labels, hard_range, soft_range,"
        " pattern, max_length, partial_dates, missing_codes, show_if, calculation,"
        " identifier, matrix, annotations",
        # The fault is placed inside the expression: just after its last character.
        f"{folder}/forms/vitals.yaml:{calculation}:29: items[6].calculation: the expression"
        " ends too early: expected a value: a number, 'text', an item such as [weight],"
        " a function or '('",
    ]


def test_a_folder_that_is_not_there_is_refused():
    result = run("forms", "check", "no/such/folder")

    assert result.exit_code == 2
    assert "does not exist" in result.stderr
