"""Reading form files: what a good form reads into, and every problem reported at the
file, line and column to fix, inside expressions too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bhp_ctms.crf.definition import (
    ITEM_KEYS,
    ITEM_TYPES,
    Annotations,
    Choice,
    Codelist,
    DefinitionError,
    EditCheck,
    FormDefinition,
    Item,
    ItemGroup,
    Range,
    TextPattern,
    check_forms,
    read_codelists,
    read_form_file,
    read_forms,
)
from bhp_ctms.crf.expressions import compiled, format_value
from bhp_ctms.studies.definition import check_study
from tests.unit.studies.examples import DEMO_FOLDER, FORMS, TRIAL

DEMO_FORMS = (
    "ae",
    "demographics",
    "eligibility",
    "end_of_study",
    "hip_score",
    "unscheduled_visit",
    "vitals",
    "walking_diary",
)

CODELISTS = """\
codelists:
  - code: sex
    name: Sex
    choices:
      - {code: "F", label: Female}
      - {code: "M", label: Male}
"""

# The form of the malformed snippets below: their items start on line 5.
HEAD = 'code: vitals\ntitle: Vital signs\nversion: "1.0"\nitems:\n'
WEIGHT = "  - {code: weight, label: Weight, type: decimal, units: kg}\n"

GOOD_FORM = """\
code: ae
title: Adverse event
version: "2.1"
description: One form for each event.
items:
  - code: onset
    label: Date the event began
    type: date
    partial_dates: true
    required: true
    hard_range: {max: today}
    missing_codes: [unknown]
    annotations: {cdash: AESTDTC, sdtm: AE.AESTDTC}
  - code: sex
    section: The participant
    label: Sex
    type: single_choice
    widget: dropdown
    codelist: sex
  - code: serious
    label: Serious?
    type: yes_no
  - code: weight
    label: Weight
    help: Without shoes.
    type: decimal
    precision: 1
    units: kg
    hard_range: {min: 20, max: 300}
    soft_range: {min: 40, max: 160, message: "Unusual weight: please check."}
  - code: double_weight
    label: Twice the weight
    type: calculated
    calculation: "[weight] * 2"
    precision: 0
  - code: initials
    label: Initials
    type: text
    max_length: 3
    pattern: {regex: "[A-Z]{2,3}", message: Two or three capital letters.}
    identifier: true
    show_if: "[serious] = '1'"
  - group: treatments
    label: Treatments
    show_if: "[serious] = '1'"
    min_rows: 1
    max_rows: 5
    items:
      - {code: medicine, label: Medicine, type: text}
      - {code: dose, label: Dose, type: decimal, show_if: "[medicine] <> ''"}
checks:
  - code: dose_given
    condition: "[dose] > 0"
    message: A dose is more than 0.
    severity: soft
    items: [dose]
"""


def study_with_forms(
    tmp_path: Path, forms: dict[str, str], codelists: str | None = CODELISTS
) -> Path:
    folder = tmp_path / "study"
    (folder / "forms").mkdir(parents=True)
    if codelists is not None:
        (folder / "codelists.yaml").write_text(codelists, encoding="utf-8")
    for name, text in forms.items():
        (folder / "forms" / name).write_text(text, encoding="utf-8")
    return folder


def problems_in(folder: Path) -> list[str]:
    return [str(problem).removeprefix(f"{folder}/") for problem in check_forms(folder)]


def test_a_good_form_reads_into_its_definition(tmp_path):
    folder = study_with_forms(tmp_path, {"ae.yaml": GOOD_FORM})

    form_set = read_forms(folder)

    sex = Codelist("sex", "Sex", (Choice("F", "Female"), Choice("M", "Male")))
    assert form_set.codelists == {"sex": sex}
    assert form_set.forms == {
        "ae": FormDefinition(
            code="ae",
            title="Adverse event",
            version="2.1",
            description="One form for each event.",
            path="forms/ae.yaml",
            entries=(
                Item(
                    code="onset",
                    label="Date the event began",
                    type="date",
                    partial_dates=True,
                    required=True,
                    hard_range=Range(None, "today"),
                    missing_codes=("unknown",),
                    annotations=Annotations("AESTDTC", "AE.AESTDTC"),
                    line=6,
                ),
                Item(
                    code="sex",
                    section="The participant",
                    label="Sex",
                    type="single_choice",
                    widget="dropdown",
                    codelist="sex",
                    choices=sex.choices,
                    line=14,
                ),
                Item(
                    code="serious",
                    label="Serious?",
                    type="yes_no",
                    choices=(Choice("1", "Yes"), Choice("0", "No")),
                    line=20,
                ),
                Item(
                    code="weight",
                    label="Weight",
                    help="Without shoes.",
                    type="decimal",
                    precision=1,
                    units="kg",
                    hard_range=Range("20", "300"),
                    soft_range=Range("40", "160", "Unusual weight: please check."),
                    line=23,
                ),
                Item(
                    code="double_weight",
                    label="Twice the weight",
                    type="calculated",
                    calculation="[weight] * 2",
                    precision=0,
                    line=31,
                ),
                Item(
                    code="initials",
                    label="Initials",
                    type="text",
                    max_length=3,
                    pattern=TextPattern("[A-Z]{2,3}", "Two or three capital letters."),
                    identifier=True,
                    show_if="[serious] = '1'",
                    line=36,
                ),
                ItemGroup(
                    code="treatments",
                    label="Treatments",
                    show_if="[serious] = '1'",
                    min_rows=1,
                    max_rows=5,
                    items=(
                        Item(code="medicine", label="Medicine", type="text", line=49),
                        Item(
                            code="dose",
                            label="Dose",
                            type="decimal",
                            show_if="[medicine] <> ''",
                            line=50,
                        ),
                    ),
                    line=43,
                ),
            ),
            checks=(
                EditCheck(
                    code="dose_given",
                    condition="[dose] > 0",
                    message="A dose is more than 0.",
                    severity="soft",
                    items=("dose",),
                    line=52,
                ),
            ),
        )
    }


def test_the_demo_forms_read_in_file_name_order_with_their_codelists():
    form_set = read_forms(DEMO_FOLDER)

    assert tuple(form_set.forms) == DEMO_FORMS
    assert [form.path for form in form_set.forms.values()] == [
        f"forms/{code}.yaml" for code in DEMO_FORMS
    ]
    assert check_forms(DEMO_FOLDER) == []
    vitals = form_set.forms["vitals"]
    bmi = vitals.item("bmi")
    assert (bmi.type, bmi.calculation, bmi.precision) == (
        "calculated",
        "[weight] / ([height]/100)^2",
        1,
    )
    weight = vitals.item("weight")
    assert (weight.hard_range, weight.soft_range) == (
        Range("20", "300", "Weight must be between 20 and 300 kg."),
        Range("40", "160", "Unusual weight: please check."),
    )
    # A codelist's choices are copied into each item that names it.
    sex = form_set.forms["demographics"].item("sex")
    assert (sex.codelist, sex.choices) == ("sex", form_set.codelists["sex"].choices)
    hip_score = form_set.forms["hip_score"]
    rows = [item for item in hip_score.items if item.matrix == "hip_function"]
    assert len(rows) == 12
    assert {item.choices for item in rows} == {form_set.codelists["hip_answer"].choices}
    ae = form_set.forms["ae"]
    assert [item.code for item in ae.group_of("dose").items] == [
        "medicine",
        "dose",
        "dose_units",
        "started_on",
    ]


@pytest.mark.parametrize("code", DEMO_FORMS)
def test_each_demo_form_survives_a_round_trip_through_json(code):
    form = read_forms(DEMO_FOLDER).forms[code]

    data = json.loads(json.dumps(form.to_json()))

    assert FormDefinition.from_json(data) == form


def form(items: str, checks: str = "") -> str:
    return HEAD + items + (f"checks:\n{checks}" if checks else "")


MALFORMED = [
    pytest.param(
        form("  - code: weight\n    label: Weight\n    type: decimal\n    unit: kg\n"),
        [
            "8:5: items[0]: unknown key 'unit' (did you mean 'units'?);"
            f" allowed keys: {', '.join(ITEM_KEYS)}"
        ],
        id="unknown key",
    ),
    pytest.param(
        form("  - code: weight\n    label: Weight\n    type: decmal\n"),
        [
            "7:11: items[0].type: unknown item type 'decmal' (did you mean 'decimal'?);"
            f" types: {', '.join(ITEM_TYPES)}"
        ],
        id="unknown type",
    ),
    pytest.param(
        form("  - code: weight\n    label: Weight\n    type: decimal\n    precision: two\n"),
        ["8:16: items[0].precision: must be a whole number of decimal places >= 0"],
        id="not a number",
    ),
    pytest.param(
        form(WEIGHT + "  - {code: weight, label: Weight again, type: decimal}\n"),
        ["6:12: items[1].code: code 'weight' given twice (first on line 5)"],
        id="duplicate item code",
    ),
    pytest.param(
        form("  - code: sex\n    label: Sex\n    type: single_choice\n"),
        ["7:11: items[0].type: a single_choice item needs choices or a codelist"],
        id="missing choices",
    ),
    pytest.param(
        form("  - code: sex\n    label: Sex\n    type: single_choice\n    codelist: sexx\n"),
        ["8:15: items[0].codelist: no codelist has code 'sexx' (did you mean 'sex'?)"],
        id="unknown codelist",
    ),
    pytest.param(
        form(
            "  - code: sex\n    label: Sex\n    type: single_choice\n    codelist: sex\n"
            '    choices: [{code: "1", label: Male}]\n'
        ),
        ["8:15: items[0].codelist: give choices or a codelist, not both"],
        id="choices and a codelist",
    ),
    pytest.param(
        form(
            "  - code: sex\n    label: Sex\n    type: single_choice\n"
            '    choices: [{code: "1", label: Male}, {code: "1", label: Female}]\n'
        ),
        ["8:48: items[0].choices[1].code: choice code '1' given twice (first on line 8)"],
        id="duplicate choice code",
    ),
    pytest.param(
        form(
            "  - code: weight\n    label: Weight\n    type: decimal\n"
            "    hard_range: {min: 300, max: 20}\n"
        ),
        ["8:17: items[0].hard_range: min 300 is above max 20"],
        id="min above max",
    ),
    pytest.param(
        form(
            "  - code: weight\n    label: Weight\n    type: decimal\n    hard_range: {min: heavy}\n"
        ),
        ["8:23: items[0].hard_range.min: must be a number such as 2.5, not 'heavy'"],
        id="limit not of the item's type",
    ),
    pytest.param(
        form(
            "  - code: seen_on\n    label: Seen on\n    type: date\n"
            "    hard_range: {min: 2026-02-30}\n"
        ),
        ["8:23: items[0].hard_range.min: 2026-02-30 is not a real date"],
        id="limit not a real date",
    ),
    pytest.param(
        form(
            "  - code: weight\n    label: Weight\n    type: decimal\n"
            "    hard_range: {min: 20, max: 300}\n    soft_range: {min: 10, max: 160}\n"
        ),
        [
            "9:17: items[0].soft_range: must lie inside the hard_range (20 to 300):"
            " a value outside it is refused"
        ],
        id="soft range outside the hard range",
    ),
    pytest.param(
        form("  - code: note\n    label: Note\n    type: text\n    hard_range: {max: 10}\n"),
        [
            "8:17: items[0].hard_range: only integer, decimal, date, time, datetime and"
            " calculated items can have hard_range; this is a text item"
        ],
        id="range on a text item",
    ),
    pytest.param(
        form(
            "  - code: initials\n    label: Initials\n    type: text\n"
            '    pattern: {regex: "[A-Z", message: Capitals.}\n'
        ),
        ["8:23: items[0].pattern.regex: not a regular expression: unterminated character set"],
        id="bad regular expression",
    ),
    pytest.param(
        form(
            '  - {code: measured, label: "Measured?", type: yes_no}\n'
            "  - code: weight\n    label: Weight\n    type: decimal\n"
            "    show_if: \"[measured] = = '1'\"\n"
        ),
        [
            "9:28: items[1].show_if: unexpected '=': expected a value: a number, 'text', an"
            " item such as [weight], a function or '('"
        ],
        id="expression syntax error",
    ),
    pytest.param(
        form(
            WEIGHT + "  - code: heavy_reason\n    label: Why so heavy?\n    type: text\n"
            "    show_if: >-\n      [weight] > 150 and\n      [weight] < * 2\n"
        ),
        [
            "11:18: items[1].show_if: unexpected '*': expected a value: a number, 'text', an"
            " item such as [weight], a function or '('"
        ],
        id="expression syntax error on its second line",
    ),
    pytest.param(
        form(
            WEIGHT + "  - code: double\n    label: Double\n    type: calculated\n"
            '    calculation: "[wieght] * 2"\n'
        ),
        ["9:20: items[1].calculation: unknown item 'wieght' (did you mean 'weight'?)"],
        id="unknown item in an expression",
    ),
    pytest.param(
        form(
            WEIGHT + '  - {code: measured, label: "Measured?", type: yes_no}\n'
            "  - code: reason\n    label: Reason\n    type: text\n"
            "    show_if: '[measured] = ''0'' and [wieght] = '''''\n"
        ),
        ["10:39: items[2].show_if: unknown item 'wieght' (did you mean 'weight'?)"],
        id="unknown item after quotes doubled in YAML",
    ),
    pytest.param(
        form(
            "  - code: sex\n    label: Sex\n    type: single_choice\n"
            '    choices: [{code: "1", label: Male}, {code: "2", label: Female}]\n'
            "  - code: pregnant\n    label: Pregnant?\n    type: yes_no\n"
            "    show_if: \"[sex(2)] = '1'\"\n"
        ),
        [
            "12:16: items[1].show_if: [sex(2)] is a checkbox term, but 'sex' is a single_choice"
            " item (only multiple_choice items have one value per choice)"
        ],
        id="checkbox term on a single choice",
    ),
    pytest.param(
        form(
            "  - code: race\n    label: Race\n    type: multiple_choice\n"
            '    choices: [{code: "1", label: Asian}, {code: "2", label: Black}]\n'
            "  - code: race_other\n    label: Other\n    type: text\n"
            "    show_if: \"[race(3)] = '1'\"\n"
        ),
        ["12:16: items[1].show_if: 'race' has no choice '3'; its choices: 1 and 2"],
        id="checkbox term of no choice",
    ),
    pytest.param(
        form(
            '  - {code: a, label: A, type: calculated, calculation: "[b] + 1"}\n'
            '  - {code: b, label: B, type: calculated, calculation: "[a] + 1"}\n'
        ),
        ["5:56: items[0].calculation: calculations depend on each other in a cycle: a -> b -> a"],
        id="calculation cycle",
    ),
    pytest.param(
        form('  - {code: c, label: C, type: calculated, calculation: "[c] + 1"}\n'),
        ["5:56: items[0].calculation: the calculation uses the item's own value: c -> c"],
        id="calculation of itself",
    ),
    pytest.param(
        form("  - code: weight\n    label: Weight\n    type: calculated\n"),
        ["5:5: items[0]: a calculated item needs a calculation"],
        id="calculation missing",
    ),
    pytest.param(
        form("  - code: initials\n    label: Initials\n    type: text\n    partial_dates: true\n"),
        [
            "8:20: items[0].partial_dates: only date items can have partial_dates;"
            " this is a text item"
        ],
        id="partial dates on a text item",
    ),
    pytest.param(
        form("  - code: age\n    label: Age\n    type: integer\n    precision: 0\n"),
        [
            "8:16: items[0].precision: only decimal and calculated items can have precision;"
            " this is an integer item"
        ],
        id="precision on an integer",
    ),
    pytest.param(
        form(
            "  - code: weight\n    label: Weight\n    type: decimal\n"
            "    missing_codes: [not_done, not_known]\n"
        ),
        [
            "8:31: items[0].missing_codes[1]: unknown missing-data code 'not_known'"
            " (did you mean 'unknown'?); codes: not_done, not_applicable, unknown"
        ],
        id="unknown missing code",
    ),
    pytest.param(
        form(
            "  - code: pain\n    label: Pain\n    type: integer\n    widget: slider\n"
            "    hard_range: {min: 0}\n"
        ),
        ["8:13: items[0].widget: a slider needs a hard_range with both min and max (its two ends)"],
        id="slider without both ends",
    ),
    pytest.param(
        form(
            "  - group: treatments\n    label: Treatments\n    items:\n"
            "      - group: doses\n        label: Doses\n"
            "        items: [{code: dose, label: Dose, type: decimal}]\n"
            "      - {code: medicine, label: Medicine, type: text}\n"
        ),
        ["8:9: items[0].items[0]: groups cannot be nested: a group's items are items, not groups"],
        id="group nesting",
    ),
    pytest.param(
        form(
            "  - group: treatments\n    label: Treatments\n    items:\n"
            "      - {code: dose, label: Dose, type: decimal}\n"
            "  - code: total\n    label: Total\n    type: calculated\n"
            '    calculation: "[dose] * 2"\n'
        ),
        [
            "12:20: items[1].calculation: 'dose' is in the repeating group 'treatments':"
            " only the items of that group, and edit checks on them, can use it"
        ],
        id="group item used outside its group",
    ),
    pytest.param(
        form(
            "  - group: treatments\n    label: Treatments\n    min_rows: 3\n    max_rows: 2\n"
            "    items: [{code: dose, label: Dose, type: decimal}]\n"
        ),
        ["8:15: items[0].max_rows: 2 is fewer than min_rows (3)"],
        id="fewer rows allowed than needed",
    ),
    pytest.param(
        form(
            WEIGHT,
            '  - code: heavy\n    condition: "[weight] < 200"\n    message: Too heavy.\n'
            "    severity: soft\n    items: [wieght]\n",
        ),
        ["11:13: checks[0].items[0]: unknown item 'wieght' (did you mean 'weight'?)"],
        id="unknown item of an edit check",
    ),
    pytest.param(
        form(
            WEIGHT,
            '  - code: heavy\n    condition: "[weight] < 200 and [height] > 0"\n'
            "    message: Too heavy.\n    severity: fatal\n    items: [weight]\n",
        ),
        [
            "8:37: checks[0].condition: unknown item 'height' (did you mean 'weight'?)",
            "10:15: checks[0].severity: must be one of hard, soft, not 'fatal'",
        ],
        id="edit check with an unknown item and severity",
    ),
    pytest.param(
        HEAD.replace("title:", "titel:") + WEIGHT,
        [
            "1:1: missing required key 'title'",
            "2:1: unknown key 'titel' (did you mean 'title'?); allowed keys: code, title,"
            " version, description, items, checks",
        ],
        id="unknown key of the form",
    ),
]


@pytest.mark.parametrize(("text", "expected"), MALFORMED)
def test_each_problem_is_reported_at_its_file_line_and_column(tmp_path, text, expected):
    folder = study_with_forms(tmp_path, {"vitals.yaml": text})

    assert problems_in(folder) == [f"forms/vitals.yaml:{where}" for where in expected]
    with pytest.raises(DefinitionError) as refused:
        read_forms(folder)
    assert [str(problem) for problem in refused.value.problems] == [
        str(problem) for problem in check_forms(folder)
    ]


def test_every_problem_of_every_file_is_reported_at_once(tmp_path):
    folder = study_with_forms(
        tmp_path,
        {
            "ae.yaml": form("  - {code: onset, label: Onset, type: date, partial_dates: sure}\n"),
            "vitals.yaml": form(WEIGHT + "  - {code: bmi, label: BMI, type: calculatd}\n"),
            "old.yml": GOOD_FORM,
            "broken.yaml": "code: broken\ntitle: [unclosed\n",
        },
        codelists=CODELISTS + "  - {code: sex, name: Sex again, choices: []}\n",
    )

    assert problems_in(folder) == [
        "codelists.yaml:7:12: codelists[1].code: codelist 'sex' given twice (first on line 2)",
        "forms/ae.yaml:5:60: items[0].partial_dates: must be true or false, not 'sure'",
        "forms/broken.yaml:3:1: YAML syntax error: expected ',' or ']', but got '<stream end>'"
        " (while parsing a flow sequence)",
        "forms/old.yml: form files are named *.yaml",
        "forms/vitals.yaml:1:7: code: form 'vitals' is also in forms/ae.yaml",
        "forms/vitals.yaml:6:35: items[1].type: unknown item type 'calculatd' (did you mean"
        f" 'calculated'?); types: {', '.join(ITEM_TYPES)}",
    ]


def test_a_form_may_use_an_item_of_another_form_of_its_folder(tmp_path):
    demographics = (
        'code: demographics\ntitle: Demographics\nversion: "1.0"\nitems:\n'
        "  - {code: dob, label: Date of birth, type: date}\n"
    )
    visit = form(
        "  - {code: seen_on, label: Seen on, type: date}\n"
        "  - code: age\n    label: Age\n    type: calculated\n"
        "    calculation: \"rounddown(datediff([dob], [seen_on], 'y'), 0)\"\n"
        "  - code: weight_change\n    label: Weight change\n    type: calculated\n"
        '    calculation: "[weight] - [baseline][weight]"\n' + WEIGHT
    )
    folder = study_with_forms(tmp_path, {"demographics.yaml": demographics, "vitals.yaml": visit})

    assert check_forms(folder) == []
    # On its own, a form knows only its own items.
    problems: list = []
    assert read_form_file(folder / "forms" / "vitals.yaml", {}, problems) is None
    assert [str(problem).removeprefix(f"{folder}/") for problem in problems] == [
        "forms/vitals.yaml:9:39: items[1].calculation: unknown item 'dob'"
    ]


def test_an_unknown_item_may_be_suggested_from_another_form(tmp_path):
    demographics = (
        'code: demographics\ntitle: Demographics\nversion: "1.0"\nitems:\n'
        "  - {code: date_of_birth, label: Date of birth, type: date}\n"
    )
    visit = form(
        "  - code: age\n    label: Age\n    type: calculated\n"
        "    calculation: \"datediff([date_of_brith], 'today', 'y')\"\n"
    )
    folder = study_with_forms(tmp_path, {"demographics.yaml": demographics, "vitals.yaml": visit})

    assert problems_in(folder) == [
        "forms/vitals.yaml:8:29: items[0].calculation: unknown item 'date_of_brith'"
        " (did you mean 'date_of_birth'?)"
    ]


def test_a_fault_inside_an_escaped_expression_is_placed_exactly(tmp_path):
    text = form(
        WEIGHT + "  - code: note\n    label: Note\n    type: text\n"
        '    show_if: "[weight] <> \\"\\" and datedif([weight], 1)"\n'
    )
    folder = study_with_forms(tmp_path, {"vitals.yaml": text})

    [problem] = check_forms(folder)

    line = text.splitlines()[problem.line - 1]
    assert line[problem.column - 1 :].startswith("datedif(")
    assert problem.message == (
        "items[1].show_if: unknown function 'datedif' (did you mean 'datediff'?)"
    )


def test_a_folder_of_form_files_reads_with_codelists_beside_them(tmp_path):
    folder = tmp_path / "imported"
    folder.mkdir()
    (folder / "codelists.yaml").write_text(CODELISTS, encoding="utf-8")
    (folder / "ae.yaml").write_text(GOOD_FORM, encoding="utf-8")

    form_set = read_forms(folder)

    assert list(form_set.forms) == ["ae"]
    assert form_set.forms["ae"].path == "ae.yaml"
    assert form_set.forms["ae"].item("sex").choices == (Choice("F", "Female"), Choice("M", "Male"))
    (tmp_path / "empty").mkdir()
    assert [str(problem) for problem in check_forms(tmp_path / "empty")] == [
        f"{tmp_path / 'empty'}: holds no form files (*.yaml)"
    ]


def test_codelists_are_read_and_checked(tmp_path):
    path = tmp_path / "codelists.yaml"
    path.write_text(
        CODELISTS
        + "  - code: grade\n    nme: CTCAE grade\n    choices:\n"
        + '      - {code: "1|2", label: Mild}\n',
        encoding="utf-8",
    )
    problems: list = []

    codelists = read_codelists(path, problems)

    assert list(codelists) == ["sex", "grade"]
    assert [str(problem).removeprefix(f"{tmp_path}/") for problem in problems] == [
        "codelists.yaml:8:5: codelists[1]: unknown key 'nme' (did you mean 'name'?);"
        " allowed keys: code, name, choices",
        "codelists.yaml:7:5: codelists[1]: missing required key 'name'",
        "codelists.yaml:10:16: codelists[1].choices[0].code: a choice code cannot contain '|'",
    ]


def test_a_study_check_reports_the_problems_of_its_forms_and_codelists(tmp_path):
    forms = {**FORMS, "vitals.yaml": FORMS["vitals.yaml"].replace("units: kg", "unit: kg")}
    folder = study_with_forms(tmp_path, forms, codelists="codelist: []\n")
    (folder / "study.yaml").write_text(TRIAL, encoding="utf-8")

    problems = [str(problem).removeprefix(f"{folder}/") for problem in check_study(folder)]

    assert problems == [
        "codelists.yaml:1:1: unknown key 'codelist' (did you mean 'codelists'?);"
        " allowed keys: codelists",
        "codelists.yaml:1:1: missing required key 'codelists'",
        "forms/vitals.yaml:5:50: items[0]: unknown key 'unit' (did you mean 'units'?);"
        f" allowed keys: {', '.join(ITEM_KEYS)}",
    ]
    # A form with problems keeps its code: no event listing it is refused for that.
    assert not any("no form file" in problem for problem in problems)


def test_the_demo_forms_calculate_and_check_as_their_comments_say():
    forms = read_forms(DEMO_FOLDER).forms

    def calculated(form: str, item: str, values: dict[str, str]) -> str:
        definition = forms[form].item(item)
        return format_value(compiled(definition.calculation).evaluate(values), definition.precision)

    def holds(form: str, check: str, values: dict[str, str]) -> bool | None:
        [edit_check] = [each for each in forms[form].checks if each.code == check]
        return compiled(edit_check.condition).holds(values)

    assert calculated("vitals", "bmi", {"weight": "80", "height": "180"}) == "24.7"
    assert calculated("vitals", "bmi", {"weight": "80"}) == ""
    born = {"dob": "1950-03-12"}
    assert calculated("demographics", "age", {**born, "assessed_on": "2026-03-11"}) == "75"
    assert calculated("demographics", "age", {**born, "assessed_on": "2026-03-12"}) == "76"
    answers = {f"q{number}": "3" for number in range(1, 13)}
    assert calculated("hip_score", "total", answers) == "36"
    assert holds("vitals", "dbp_below_sbp", {"sbp": "120", "dbp": "130"}) is False
    assert holds("vitals", "dbp_below_sbp", {"sbp": "120"}) is None
    onset = {"onset": "2026-03-10"}
    assert holds("ae", "end_not_before_onset", {**onset, "end_date": "2026-03-09"}) is False
    assert holds("ae", "end_not_before_onset", {**onset, "end_date": "2026-03-10"}) is True
    # A partial date cannot be compared: the hard check lets it through.
    assert holds("ae", "end_not_before_onset", {**onset, "end_date": "2026-03-UN"}) is None
    assert forms["ae"].group_of("started_on").code == "treatments"
