"""Reading a REDCap data dictionary (CSV) into field rows, each with its row number.

A row number counts the header as row 1 and a multi-line cell as one row, as a
spreadsheet shows the file. Columns are found by their header, in REDCap's own words
(``Variable / Field Name``) or in the API's (``field_name``), and numbered from 1.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bhp_ctms.studies.definition import Problem

# Our name for each column, with REDCap's header as the data dictionary writes it and
# as the API's metadata export writes it.
COLUMNS: Mapping[str, tuple[str, str]] = {
    "field_name": ("Variable / Field Name", "field_name"),
    "form_name": ("Form Name", "form_name"),
    "section_header": ("Section Header", "section_header"),
    "field_type": ("Field Type", "field_type"),
    "field_label": ("Field Label", "field_label"),
    "choices": ("Choices, Calculations, OR Slider Labels", "select_choices_or_calculations"),
    "field_note": ("Field Note", "field_note"),
    "validation": (
        "Text Validation Type OR Show Slider Number",
        "text_validation_type_or_show_slider_number",
    ),
    "validation_min": ("Text Validation Min", "text_validation_min"),
    "validation_max": ("Text Validation Max", "text_validation_max"),
    "identifier": ("Identifier?", "identifier"),
    "branching_logic": ("Branching Logic (Show field only if...)", "branching_logic"),
    "required": ("Required Field?", "required_field"),
    "custom_alignment": ("Custom Alignment", "custom_alignment"),
    "question_number": ("Question Number (surveys only)", "question_number"),
    "matrix_group": ("Matrix Group Name", "matrix_group_name"),
    "matrix_ranking": ("Matrix Ranking?", "matrix_ranking"),
    "field_annotation": ("Field Annotation", "field_annotation"),
}
# Without these a file is not a data dictionary; the others are blank when absent
# (older REDCap versions wrote fewer columns).
REQUIRED_COLUMNS = ("field_name", "form_name", "field_type", "field_label")


def _header_key(text: str) -> str:
    return " ".join(text.replace("\ufeff", "").split()).lower()


HEADER_NAMES: Mapping[str, str] = {
    _header_key(header): name for name, headers in COLUMNS.items() for header in headers
}

# Bytes that are not UTF-8 survive decoding as lone surrogates (surrogateescape), so
# the file is still parsed and each bad cell reported where it is.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


class DictionaryError(ValueError):
    """A data dictionary that cannot be imported; ``problems`` lists every reason,
    each with its row and column."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True)
class FieldRow:
    """One field of the dictionary: its cells by column name, and where it is."""

    row: int
    cells: Mapping[str, str]
    columns: Mapping[str, int]

    def __getitem__(self, name: str) -> str:
        return self.cells.get(name, "")

    def column(self, name: str) -> int | None:
        """The 1-based column of ``name`` (None when the file has no such column)."""
        return self.columns.get(name)

    @property
    def name(self) -> str:
        return self["field_name"]


@dataclass(frozen=True)
class Dictionary:
    path: Path
    rows: tuple[FieldRow, ...]
    columns: Mapping[str, int]


def read_dictionary(path: Path) -> Dictionary:
    """The field rows of the dictionary at ``path``, blank rows left out.

    Raises :class:`DictionaryError` when the file cannot be read as a dictionary: not
    UTF-8 (each bad cell by row and column, with the byte offset), a broken quote, or a
    header without REDCap's columns.
    """
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DictionaryError(
            [Problem(path, None, None, f"cannot be read: {error.strerror}")]
        ) from None
    byte_order_mark = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    text = raw[byte_order_mark:].decode("utf-8", "surrogateescape")
    problems: list[Problem] = []
    records = list(_records(path, text, problems))
    if problems:
        raise DictionaryError(problems)
    if not records:
        raise DictionaryError([Problem(path, None, None, "is empty: no header row")])
    _, header = records[0]
    columns = _columns(path, header, problems)
    if problems:
        raise DictionaryError(problems)
    problems.extend(_undecodable_cells(path, text, records, byte_order_mark))
    rows = []
    width = len(header)
    for row, cells in records[1:]:
        if not any(cell.strip() for cell in cells):
            continue
        for number, cell in enumerate(cells[width:], width + 1):
            if cell.strip():
                problems.append(
                    Problem(path, row, number, f"a cell beyond the last column: {cell!r}")
                )
        values = {
            name: cells[number - 1].replace("\r\n", "\n").replace("\r", "\n").strip()
            for name, number in columns.items()
            if number <= len(cells)
        }
        rows.append(FieldRow(row, values, columns))
    if not rows and not problems:
        problems.append(Problem(path, None, None, "holds no fields: only a header row"))
    if problems:
        raise DictionaryError(problems)
    return Dictionary(path, tuple(rows), columns)


def _records(path: Path, text: str, problems: list[Problem]) -> Iterator[tuple[int, list[str]]]:
    """Each CSV record with its row number; a broken quote is a problem at its row."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    row = 0
    line = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            row += 1
            first_line = line + 1
            if "unexpected end of data" in str(error):
                message = (
                    f"a quoted cell is never closed: the quote opened on line {first_line} "
                    "of the file runs to its end"
                )
            else:
                message = f"broken quoting (line {reader.line_num} of the file): {error}"
            problems.append(Problem(path, row, None, message))
            return
        row += 1
        line = reader.line_num
        yield row, cells


def _columns(path: Path, header: list[str], problems: list[Problem]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for number, title in enumerate(header, 1):
        name = HEADER_NAMES.get(_header_key(title))
        if name is None:
            continue
        if name in columns:
            problems.append(
                Problem(
                    path, 1, number, f"column {title!r} given twice (first column {columns[name]})"
                )
            )
            continue
        columns[name] = number
    missing = [COLUMNS[name][0] for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        named = ", ".join(repr(title) for title in missing)
        problems.append(
            Problem(
                path,
                1,
                None,
                f"is not a REDCap data dictionary: its header lacks the column(s) {named}",
            )
        )
    return columns


def _undecodable_cells(
    path: Path, text: str, records: list[tuple[int, list[str]]], start: int
) -> Iterator[Problem]:
    """A problem for each cell holding bytes that are not UTF-8, with the file's byte
    offset (from 0) of the first of them; ``text`` begins at byte ``start``."""
    if not _UNDECODABLE.search(text):
        return
    offsets = iter(
        start + len(text[: match.start()].encode("utf-8", "surrogateescape"))
        for match in _UNDECODABLE.finditer(text)
    )
    for row, cells in records:
        for column, cell in enumerate(cells, 1):
            bad = _UNDECODABLE.findall(cell)
            if not bad:
                continue
            offset = next(offsets)
            for _ in bad[1:]:
                next(offsets)
            byte = ord(bad[0]) - 0xDC00
            yield Problem(
                path,
                row,
                column,
                f"is not UTF-8 text: byte 0x{byte:02x} at byte offset {offset} cannot be "
                "decoded (save the dictionary as UTF-8)",
            )
