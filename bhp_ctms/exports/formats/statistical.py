"""A snapshot as SAS transport (version 5), Stata and SPSS files, with pyreadstat.

The datasets are those of the CSV files (:mod:`bhp_ctms.exports.formats.naming`):
one per form, one per repeating group and one of the participants, with the same
columns, except the CSV-only label columns. Files: ``xpt/<short name>.xpt`` (one
dataset each, named by its SAS name, lower case), ``dta/<dataset>.dta`` (Stata 14
format, 118) and ``sav/<dataset>.sav``.

Values. Numbers are stored as numbers, full dates, times and date-times as the
package's own dates (a SAS date, Stata ``%td``, SPSS ``DATE11``...); a date item that
may be partial stays text (``2024-03-UN``). Why a value is missing is in the
``<item>_missing`` column, as in the CSV files. A value that does not fit its
column's type (text in a number item) refuses the export rather than be dropped.

Names and labels. SAS transport files use the 8-character short names of the data
dictionary and labels cut to 40 bytes; Stata and SPSS the dictionary's variable
names. Text longer than 200 bytes cannot be stored in a SAS transport file: such a
value refuses the XPT export, naming each participant, event, form and item, so
that no text is ever cut short (the CSV, Stata and SPSS files hold it whole).

Value labels (Stata and SPSS). Coded items carry their codelist as value labels; a
checkbox is labelled 1 Yes, 0 No. Stata labels only whole numbers, so an item whose
codes are not all numbers (``M``, ``F``) is stored in Stata as 1, 2... in codelist
order, the ``dta_codes`` of the dictionary; SPSS keeps the text codes, with labels.

Text is written as entered: the ``'`` that CSV files put before a formula is for
spreadsheets, and these files are not opened in one. SAS transport files hold text
as UTF-8 bytes (the format records no encoding: read them as UTF-8). SAS and SPSS
store text padded with blanks, so a value's trailing blanks are not kept (the CRF
never keeps them either). Every row of a SAS transport file is made longer than
80 bytes (the first column is given the room), because pandas guesses the number
of rows of a file with shorter rows from the blanks at its end, and drops real rows.

Same bytes: pyreadstat (ReadStat) writes the time of writing into every file's
header; it is replaced by the time the snapshot was taken (UTC) at the places the
formats define, so the same snapshot always gives the same files.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal

import pandas
import pyreadstat

from bhp_ctms.crf.evaluation import split_path
from bhp_ctms.exports.formats import Sink
from bhp_ctms.exports.formats.naming import (
    Dataset,
    ExportRefused,
    FormLayout,
    StudyLayout,
    Variable,
    study_layout,
)
from bhp_ctms.exports.records import EntryRecord, ExportOptions, ParticipantRecord, Snapshot

StatisticalFormat = Literal["xpt", "dta", "sav"]
STATISTICAL_FORMATS: tuple[StatisticalFormat, ...] = ("xpt", "dta", "sav")

XPT_TEXT_LIMIT = 200  # bytes, SAS transport version 5
XPT_CARD = 80  # bytes: the file's record
XPT_LABEL_LIMIT = 40  # bytes
DTA_LABEL_LIMIT = 80  # characters
SAV_LABEL_LIMIT = 255  # bytes
SAV_FILE_LABEL_LIMIT = 64  # bytes
DTA_VERSION = 14  # format 118, read by Stata 14 and later
CHECKBOX_LABELS = {1: "Yes", 0: "No"}
# How many refused values a message names before it counts the rest.
NAMED_PROBLEMS = 10

DATE_FORMATS: dict[StatisticalFormat, dict[str, str]] = {
    "xpt": {"date": "DATE9", "time": "TIME8", "datetime": "DATETIME20"},
    "sav": {"date": "DATE11", "time": "TIME8", "datetime": "DATETIME20"},
    "dta": {"date": "%td", "time": "%tcHH:MM:SS", "datetime": "%tc"},
}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def write_xpt(snapshot: Snapshot, options: ExportOptions, sink: Sink) -> None:
    """Write a snapshot's SAS transport (version 5) files into ``sink`` (``xpt/``)."""
    write_statistical(snapshot, options, sink, ("xpt",))


def write_dta(snapshot: Snapshot, options: ExportOptions, sink: Sink) -> None:
    """Write a snapshot's Stata files into ``sink`` (``dta/``)."""
    write_statistical(snapshot, options, sink, ("dta",))


def write_sav(snapshot: Snapshot, options: ExportOptions, sink: Sink) -> None:
    """Write a snapshot's SPSS files into ``sink`` (``sav/``)."""
    write_statistical(snapshot, options, sink, ("sav",))


def write_statistical(
    snapshot: Snapshot,
    options: ExportOptions,
    sink: Sink,
    formats: Sequence[StatisticalFormat],
    *,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write the datasets of a snapshot in each of ``formats`` (several at once
    read the snapshot once). ``progress`` is called with the number of datasets
    written so far."""
    taken_at = _taken_at(snapshot.info.taken_at)
    for written, (dataset, frame) in enumerate(dataset_frames(snapshot, options), start=1):
        for kind in formats:
            _write(kind, dataset, frame, sink, taken_at)
        if progress is not None:
            progress(written)


def dataset_frames(
    snapshot: Snapshot, options: ExportOptions
) -> Iterator[tuple[Dataset, pandas.DataFrame]]:
    """Each dataset and its data frame as the files get it (columns by variable
    name), one at a time: the participants, then each form's datasets, from one
    pass over the entries per form, so memory holds one form's data at a time. The
    arm is there only when both the snapshot and the options are unblinded."""
    layout = study_layout(
        snapshot.info,
        arm=not snapshot.blinded and not options.blinded,
        labels=False,
        forms=options.forms,
    )
    participants = {record.key: record for record in snapshot.participants()}
    yield layout.participants, _participants_frame(participants.values(), layout)
    for form in layout.forms.values():
        tables = _form_tables(snapshot, layout, form, participants)
        for dataset in form.datasets:
            yield dataset, _frame(dataset, tables[dataset.name])


def _participants_frame(
    participants: Iterable[ParticipantRecord], layout: StudyLayout
) -> pandas.DataFrame:
    rows = []
    for record in participants:
        row: list[Any] = [
            record.key,
            record.site_code,
            record.status,
            record.protocol_version,
            _date(record.registered_on, record.key, "registered_on"),
            _date(record.randomised_on, record.key, "randomised_on"),
        ]
        if layout.arm:
            row.append(record.arm or "")
        rows.append(row)
    return _frame(layout.participants, rows)


def _date(text: str | None, participant: str, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ExportRefused(
            f"Participant {participant}: {name} {text!r} is not a date; the export was stopped."
        ) from None


# How a value's text becomes what a package stores, by storage.
_CONVERT: dict[str, Callable[[str], Any]] = {
    "text": str,
    "number": float,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "datetime": datetime.fromisoformat,
}


def _form_tables(
    snapshot: Snapshot,
    layout: StudyLayout,
    form: FormLayout,
    participants: Mapping[str, ParticipantRecord],
) -> dict[str, list[list[Any]]]:
    """The rows of a form's datasets (by dataset name), from one pass over the
    entries: values converted to their columns' storage."""
    tables: dict[str, list[list[Any]]] = {dataset.name: [] for dataset in form.datasets}
    for entry in snapshot.entries():
        if entry.form != form.code:
            continue
        participant = participants.get(entry.participant)
        lead: list[Any] = [
            entry.participant,
            participant.site_code if participant else "",
            entry.event,
            float(entry.instance),
            _date(entry.visit_on, entry.participant, "visit date"),
            float(entry.form_version),
            entry.status,
        ]
        if layout.arm:
            lead.append((participant.arm if participant else None) or "")
        row = lead + _blank(form.dataset)
        rows: dict[tuple[str, int], list[Any]] = {}
        for value in entry.values:
            group, number, code = split_path(value.path)
            dataset = form.dataset if group is None else form.groups.get(group)
            columns = dataset.items.get(code) if dataset is not None else None
            if columns is None or dataset is None:
                if (group or "", code) in form.left_out:
                    continue
                raise ExportRefused(
                    f"Form {form.code} has no item {value.path!r} in any of its versions"
                    " in the snapshot; the export was stopped."
                )
            cells = row
            if group is not None:
                key = (group, number)
                if key not in rows:
                    rows[key] = [*lead, float(number), *_blank(dataset)]
                cells = rows[key]
            if value.value:
                if columns.choices is not None:
                    for index in columns.choices.values():
                        cells[index] = 0.0
                    for choice in value.value.split("|"):
                        if choice not in columns.choices:
                            raise ExportRefused(
                                f"Participant {entry.participant}, {entry.form_key}: item"
                                f" {value.path} holds choice {choice!r}, which no version"
                                " of the form has; the export was stopped."
                            )
                        cells[columns.choices[choice]] = 1.0
                else:
                    variable = dataset.variables[columns.value]
                    cells[columns.value] = _convert(variable, value.value, entry, value.path)
            if value.missing:
                if columns.missing < 0:
                    raise ExportRefused(
                        f"Participant {entry.participant}, {entry.form_key}: item"
                        f" {value.path} is missing ({value.missing}) but takes no missing"
                        " codes in any version of the form; the export was stopped."
                    )
                cells[columns.missing] = value.missing
        tables[form.dataset.name].append(row)
        for (group_code, _), cells in sorted(rows.items(), key=lambda pair: pair[0][1]):
            tables[form.groups[group_code].name].append(cells)
    return tables


def _blank(dataset: Dataset) -> list[Any]:
    return ["" if v.storage == "text" else None for v in dataset.variables[dataset.leading :]]


def _convert(variable: Variable, text: str, entry: EntryRecord, path: str) -> Any:
    try:
        return _CONVERT[variable.storage](text)
    except ValueError:
        raise ExportRefused(
            f"Participant {entry.participant}, {entry.form_key}: item {path} holds"
            f" {text!r}, which is not a {variable.storage} as the item's type"
            f" ({variable.type}) needs; the export was stopped."
        ) from None


def _frame(dataset: Dataset, rows: list[list[Any]]) -> pandas.DataFrame:
    """A dataset's rows as a data frame named by variable, each column of the type
    its storage gives (a date column with no date is a numeric one, so that it is
    still written as a date)."""
    columns: dict[str, pandas.Series[Any]] = {}
    for index, variable in enumerate(dataset.variables):
        values = [row[index] for row in rows]
        if variable.storage == "text":
            columns[variable.name] = pandas.Series(values, dtype=object)
        elif variable.storage == "number" or all(value is None for value in values):
            columns[variable.name] = pandas.Series(
                [float("nan") if value is None else value for value in values], dtype="float64"
            )
        else:
            columns[variable.name] = pandas.Series(values, dtype=object)
    return pandas.DataFrame(columns, index=pandas.RangeIndex(len(rows)))


def _write(
    kind: StatisticalFormat,
    dataset: Dataset,
    frame: pandas.DataFrame,
    sink: Sink,
    taken_at: datetime,
) -> None:
    with tempfile.TemporaryDirectory(prefix="bhp-ctms-export-") as folder:
        path = Path(folder) / f"dataset.{kind}"
        formats = {
            variable.name: DATE_FORMATS[kind][variable.storage]
            for variable in dataset.variables
            if variable.storage in ("date", "time", "datetime")
        }
        if kind == "xpt":
            name = _write_xpt(dataset, frame, path, formats)
        elif kind == "dta":
            name = _write_dta(dataset, frame, path, formats)
        else:
            name = _write_sav(dataset, frame, path, formats)
        content = bytearray(path.read_bytes())
    STAMPERS[kind](content, taken_at)
    with sink.open(name) as out:
        out.write(bytes(content))


def _write_xpt(
    dataset: Dataset, frame: pandas.DataFrame, path: Path, formats: dict[str, str]
) -> str:
    _check_xpt_text(dataset, frame)
    frame = _rows_longer_than_a_card(dataset, frame)
    short = {variable.name: variable.short_name for variable in dataset.variables}
    pyreadstat.write_xport(
        frame.rename(columns=short),
        path,
        file_label=truncated(dataset.label, XPT_LABEL_LIMIT),
        column_labels=[truncated(v.label, XPT_LABEL_LIMIT) for v in dataset.variables],
        table_name=dataset.short_name,
        file_format_version=5,
        variable_format={short[name]: value for name, value in formats.items()},
    )
    return f"xpt/{dataset.short_name.lower()}.xpt"


def _check_xpt_text(dataset: Dataset, frame: pandas.DataFrame) -> None:
    """Refuse text a SAS transport file cannot hold whole, naming where it is."""
    problems = []
    for variable in dataset.variables:
        if variable.storage != "text":
            continue
        for index, text in enumerate(frame[variable.name]):
            size = len(text.encode("utf-8"))
            if size > XPT_TEXT_LIMIT:
                where = _where(dataset, frame, index)
                problems.append(f"{where}, {variable.name} ({size} bytes)")
    if problems:
        named = "; ".join(problems[:NAMED_PROBLEMS])
        more = len(problems) - NAMED_PROBLEMS
        rest = f"; and {more} more" if more > 0 else ""
        raise ExportRefused(
            f"SAS transport files hold at most {XPT_TEXT_LIMIT} bytes of text in a value,"
            f" and {len(problems)} value(s) of {dataset.name} are longer: {named}{rest}."
            " Nothing was cut short: export them as CSV, Stata or SPSS, which hold long"
            " text whole."
        )


def _rows_longer_than_a_card(dataset: Dataset, frame: pandas.DataFrame) -> pandas.DataFrame:
    """Make each row of the file longer than 80 bytes, giving the first column more
    room (as SAS's LENGTH would: text is stored padded with blanks, which every
    reader strips). pandas counts the rows of a file with rows of 80 bytes or less
    by guessing at the blanks of the last 80-byte record, and drops real rows whose
    last values are blank; with longer rows it counts them exactly."""
    width = 0
    for variable in dataset.variables:
        if variable.storage == "text":
            width += max([len(text.encode("utf-8")) for text in frame[variable.name]] + [1])
        else:
            width += 8
    if width > XPT_CARD or frame.empty:
        return frame
    first = dataset.variables[0].name
    frame = frame.copy()
    frame.at[0, first] = frame.at[0, first] + " " * (XPT_CARD + 1 - width)
    return frame


def _where(dataset: Dataset, frame: pandas.DataFrame, index: int) -> str:
    if not dataset.form:
        return f"participant {frame['participant'].iloc[index]}"
    instance = int(frame["instance"].iloc[index])
    event = frame["event"].iloc[index]
    event = event if instance == 1 else f"{event}#{instance}"
    row = f" row {int(frame['row'].iloc[index])}" if dataset.group else ""
    return f"participant {frame['participant'].iloc[index]}, {event}/{dataset.form}{row}"


def _write_dta(
    dataset: Dataset, frame: pandas.DataFrame, path: Path, formats: dict[str, str]
) -> str:
    labels: dict[str, dict[int | float, str]] = {}
    frame = frame.copy()
    for variable in dataset.variables:
        if not variable.coded:
            continue
        codes = variable.stata_codes()
        if codes:
            frame[variable.name] = _stata_numbers(dataset, frame, variable, codes)
            labels[variable.name] = {codes[c.code]: c.label for c in variable.choices}
        else:
            labels[variable.name] = {int(c.code): c.label for c in variable.choices}
    pyreadstat.write_dta(
        frame,
        path,
        file_label=truncated(dataset.label, DTA_LABEL_LIMIT, characters=True),
        column_labels=[
            truncated(v.label, DTA_LABEL_LIMIT, characters=True) for v in dataset.variables
        ],
        version=DTA_VERSION,
        variable_value_labels=labels,
        variable_format=formats,
    )
    return f"dta/{dataset.name}.dta"


def _stata_numbers(
    dataset: Dataset, frame: pandas.DataFrame, variable: Variable, codes: dict[str, int]
) -> pandas.Series[float]:
    numbers = []
    for index, code in enumerate(frame[variable.name]):
        if not code:
            numbers.append(float("nan"))
        elif code in codes:
            numbers.append(float(codes[code]))
        else:
            raise ExportRefused(
                f"{_where(dataset, frame, index)}: {variable.name} holds {code!r}, which is"
                " not in its codelist, so it has no number in the Stata file; the export"
                " was stopped."
            )
    return pandas.Series(numbers, dtype="float64", index=frame.index)


def _write_sav(
    dataset: Dataset, frame: pandas.DataFrame, path: Path, formats: dict[str, str]
) -> str:
    labels: dict[str, dict[Any, str]] = {}
    measures: dict[str, str] = {}
    for variable in dataset.variables:
        measures[variable.name] = "scale" if variable.storage != "text" else "nominal"
        if variable.coded:
            measures[variable.name] = "nominal"
            labels[variable.name] = {
                (c.code if variable.storage == "text" else float(c.code)): c.label
                for c in variable.choices
            }
    pyreadstat.write_sav(
        frame,
        path,
        file_label=truncated(dataset.label, SAV_FILE_LABEL_LIMIT),
        column_labels=[truncated(v.label, SAV_LABEL_LIMIT) for v in dataset.variables],
        variable_value_labels=labels,
        variable_measure=measures,
        variable_format=formats,
    )
    return f"sav/{dataset.name}.sav"


def truncated(text: str, limit: int, *, characters: bool = False) -> str:
    """``text`` cut to ``limit`` bytes of UTF-8 (or characters), never inside a
    character, ending with ``...`` when cut."""
    size = len(text) if characters else len(text.encode("utf-8"))
    if size <= limit:
        return text
    cut = text
    while (len(cut) if characters else len(cut.encode("utf-8"))) > limit - 3:
        cut = cut[:-1]
    return cut.rstrip() + "..."


# The time of writing in each format's header, replaced by the snapshot's.


def _taken_at(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ExportRefused(f"The snapshot's time {text!r} is not a date and time.") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


XPT_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")
# SAS transport (TS-140): created and modified, in the library header (records 2
# and 3) and in the member header (records 6 and 7), 16 characters each.
XPT_STAMP_OFFSETS = (144, 160, 464, 480)


def _stamp_xpt(content: bytearray, moment: datetime) -> None:
    stamp = (
        f"{moment.day:02d}{MONTHS[moment.month - 1].upper()}{moment.year % 100:02d}"
        f":{moment:%H:%M:%S}"
    ).encode("ascii")
    for offset in XPT_STAMP_OFFSETS:
        _replace(content, offset, XPT_STAMP, stamp, "SAS transport")


SAV_DATE = re.compile(rb"\d\d [A-Z][a-z]{2} \d\d")
SAV_TIME = re.compile(rb"\d\d:\d\d:\d\d")


def _stamp_sav(content: bytearray, moment: datetime) -> None:
    # The file header: creation date (9 bytes) at 92 and time (8 bytes) at 101.
    day = f"{moment.day:02d} {MONTHS[moment.month - 1]} {moment.year % 100:02d}"
    _replace(content, 92, SAV_DATE, day.encode("ascii"), "SPSS")
    _replace(content, 101, SAV_TIME, f"{moment:%H:%M:%S}".encode("ascii"), "SPSS")


DTA_STAMP = re.compile(rb"\d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d")


def _stamp_dta(content: bytearray, moment: datetime) -> None:
    # <timestamp>, a length byte (17), then "dd Mon yyyy hh:mm".
    start = content.find(b"<timestamp>\x11", 0, 512)
    if start < 0:
        raise RuntimeError("The Stata file has no timestamp where the format puts it.")
    stamp = f"{moment.day:02d} {MONTHS[moment.month - 1]} {moment:%Y %H:%M}"
    _replace(content, start + len(b"<timestamp>\x11"), DTA_STAMP, stamp.encode("ascii"), "Stata")


def _replace(
    content: bytearray, offset: int, pattern: re.Pattern[bytes], stamp: bytes, name: str
) -> None:
    if not pattern.fullmatch(bytes(content[offset : offset + len(stamp)])):
        raise RuntimeError(f"The {name} file has no timestamp at byte {offset}.")
    content[offset : offset + len(stamp)] = stamp


STAMPERS: dict[StatisticalFormat, Callable[[bytearray, datetime], None]] = {
    "xpt": _stamp_xpt,
    "sav": _stamp_sav,
    "dta": _stamp_dta,
}
