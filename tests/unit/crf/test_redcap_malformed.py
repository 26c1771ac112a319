"""A malformed data dictionary is refused with every problem by row and column, and
nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from bhp_ctms.crf.redcap import DictionaryError, import_dictionary
from tests.unit.crf.test_redcap_fields import HEADER, dictionary_text, field

HEADER_LINE = ",".join(f'"{title}"' if "," in title else title for title in HEADER)


def problems_of(tmp_path: Path, content: str | bytes) -> list[tuple[int | None, int | None, str]]:
    path = tmp_path / "dictionary.csv"
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    out = tmp_path / "study"
    with pytest.raises(DictionaryError) as raised:
        import_dictionary(path, out)
    assert not out.exists()
    for problem in raised.value.problems:
        assert problem.path == path
        assert str(problem).startswith(f"{path}:")
    return [(problem.line, problem.column, problem.message) for problem in raised.value.problems]


MALFORMED = [
    (
        "unknown field type",
        dictionary_text(field("weight", "txt")),
        [(3, 4, "weight: unknown field type 'txt'; REDCap's are text, notes, dropdown")],
    ),
    (
        "duplicate variable name",
        dictionary_text(field("weight"), field("height"), field("weight")),
        [(5, 1, "weight: the variable name 'weight' is given twice (first on row 3)")],
    ),
    (
        "choice without a comma",
        dictionary_text(field("smoker", "radio", choices="1 Yes | 2, No")),
        [(3, 6, "smoker: the choices cannot be read: '1 Yes' has no comma between its code")],
    ),
    (
        "choice code with a space",
        dictionary_text(field("smoker", "dropdown", choices="1 a, Yes | 2, No")),
        [(3, 6, "the code '1 a' must be letters, digits and underscores, or a number")],
    ),
    (
        "choice code twice",
        dictionary_text(field("smoker", "checkbox", choices="1, Yes | 1, No")),
        [(3, 6, "the code '1' is given twice")],
    ),
    (
        "no choices",
        dictionary_text(field("smoker", "radio")),
        [(3, 6, "smoker: the choices cannot be read: no choices given")],
    ),
    (
        "min above max",
        dictionary_text(field("weight", validation="integer", min="300", max="20")),
        [(3, 9, "weight: the min '300' is above the max '20'")],
    ),
    (
        "date min above max",
        dictionary_text(field("seen", validation="date_dmy", min="2024-02-01", max="31-01-2024")),
        [(3, 9, "seen: the min '2024-02-01' is above the max '31-01-2024'")],
    ),
    (
        "min not a number",
        dictionary_text(field("weight", validation="number", min="light")),
        [(3, 9, "weight: the min 'light' is not a number")],
    ),
    (
        "max not a date",
        dictionary_text(field("seen", validation="date_ymd", max="2024-02-30")),
        [(3, 10, "seen: the max '2024-02-30' is not a date (YYYY-MM-DD)")],
    ),
    (
        "slider limit not whole",
        dictionary_text(field("pain", "slider", max="9.5")),
        [(3, 10, "pain: the max '9.5' is not a whole number")],
    ),
    (
        "bad variable name",
        dictionary_text(field("Weight_kg"), field("2nd_visit")),
        [
            (3, 1, "the variable name 'Weight_kg' must be a lower-case letter then up to 63"),
            (4, 1, "the variable name '2nd_visit' must be a lower-case letter"),
        ],
    ),
    (
        "variable name too long",
        dictionary_text(field("a" * 65)),
        [(3, 1, "up to 63 lower-case letters, digits or underscores")],
    ),
    (
        "bad form name",
        dictionary_text(field("weight", form="Vital Signs")),
        [(3, 2, "weight: the form name 'Vital Signs' must be a lower-case letter then up to 31")],
    ),
    (
        "form name too long",
        dictionary_text(field("weight", form="f" * 33)),
        [(3, 2, "up to 31 lower-case letters")],
    ),
    (
        "instrument split in two",
        dictionary_text(field("weight"), field("dose", form="dosing"), field("height")),
        [
            (
                5,
                2,
                "height: the fields of form 'visit' must follow one another (they began on row 2)",
            )
        ],
    ),
    (
        "flag other than y",
        dictionary_text(field("initials", identifier="x", required="maybe")),
        [
            (3, 11, "initials: 'x' must be 'y' or blank"),
            (3, 13, "initials: 'maybe' must be 'y' or blank"),
        ],
    ),
    (
        "calc without a calculation",
        dictionary_text(field("bmi", "calc")),
        [(3, 6, "bmi: a calc field needs its calculation")],
    ),
    (
        "matrix of different choices",
        dictionary_text(
            field("q1", "radio", choices="0, No | 1, Yes", matrix="symptoms"),
            field("q2", "radio", choices="0, No | 1, Yes | 9, Unsure", matrix="symptoms"),
        ),
        [(4, 16, "q2: the fields of matrix group 'symptoms' share one field type and one set")],
    ),
    (
        "matrix of text",
        dictionary_text(field("q1", matrix="symptoms")),
        [(3, 16, "q1: only radio and checkbox fields can be in a matrix group, not text")],
    ),
    (
        "missing header columns",
        "Variable,Form Name,Type,Field Label\nrecord_id,enrolment,text,Record ID\n",
        [
            (
                1,
                None,
                "is not a REDCap data dictionary: its header lacks the column(s) "
                "'Variable / Field Name', 'Field Type'",
            )
        ],
    ),
    (
        "a cell beyond the header",
        HEADER_LINE + "\nrecord_id,enrolment,,text,Record ID" + "," * 13 + ",stray\n",
        [(2, 19, "a cell beyond the last column: 'stray'")],
    ),
    (
        "unterminated quote",
        dictionary_text(field("weight")) + 'height,visit,,text,"Height (cm),,,,\nnext,row\n',
        [(4, None, "a quoted cell is never closed: the quote opened on line 4 of the file")],
    ),
    (
        "text after a closing quote",
        HEADER_LINE + '\nrecord_id,enrolment,,text,"Record" ID\n',
        [(2, None, "broken quoting (line 2 of the file)")],
    ),
    ("empty file", "", [(None, None, "is empty: no header row")]),
    ("header only", HEADER_LINE + "\n\n", [(None, None, "holds no fields: only a header row")]),
]


@pytest.mark.parametrize(
    ("content", "expected"),
    [(content, expected) for _, content, expected in MALFORMED],
    ids=[name for name, _, _ in MALFORMED],
)
def test_malformed_dictionaries_name_the_row_and_column(tmp_path, content, expected):
    problems = problems_of(tmp_path, content)
    assert len(problems) == len(expected), problems
    for (row, column, message), (want_row, want_column, fragment) in zip(
        problems, expected, strict=True
    ):
        assert (row, column) == (want_row, want_column), message
        assert fragment in message


def test_every_problem_is_reported_at_once(tmp_path):
    problems = problems_of(
        tmp_path,
        dictionary_text(
            field("weight", "txt"),
            field("Height"),
            field("smoker", "radio", choices="1 Yes | 2, No"),
            field("weight"),
        ),
    )
    assert [(row, column) for row, column, _ in problems] == [(3, 4), (4, 1), (5, 6), (6, 1)]


def test_bytes_that_are_not_utf8_are_reported_by_row_column_and_byte_offset(tmp_path):
    text = dictionary_text(field("weight", label="Poids (kg)"), field("taille", label="Taille"))
    latin1 = text.replace("Poids (kg)", "Poids mesur\xe9 (kg)").encode("latin-1")
    offset = latin1.index(b"\xe9")

    problems = problems_of(tmp_path, b"\xef\xbb\xbf" + latin1)

    assert problems == [
        (
            3,
            5,
            f"is not UTF-8 text: byte 0xe9 at byte offset {offset + 3} cannot be decoded "
            "(save the dictionary as UTF-8)",
        )
    ]


def test_a_missing_file_is_a_problem_not_a_traceback(tmp_path):
    with pytest.raises(DictionaryError) as raised:
        import_dictionary(tmp_path / "absent.csv", tmp_path / "study")
    [problem] = raised.value.problems
    assert problem.message == "cannot be read: No such file or directory"


def test_a_folder_that_cannot_be_written_to_is_a_problem_not_a_traceback(tmp_path):
    path = tmp_path / "dictionary.csv"
    path.write_text(dictionary_text(field("weight")), encoding="utf-8")
    out = tmp_path / "study"
    out.mkdir()
    (out / "forms").write_text("not a folder", encoding="utf-8")

    with pytest.raises(DictionaryError) as raised:
        import_dictionary(path, out)

    [problem] = raised.value.problems
    assert (problem.path, problem.message) == (out / "forms", "cannot be written: File exists")
    assert sorted(path.name for path in out.iterdir()) == ["forms"]
