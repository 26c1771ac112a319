"""A snapshot as CSV files: one wide file per form and per repeating group, a long
item-level file, the participants, and a data dictionary.

The files (under ``csv/`` in the bundle):

- ``<form>.csv``: a row per participant x event x event instance, the columns of
  :mod:`bhp_ctms.exports.formats.naming` (every row starts with participant, site,
  event, instance, visit date, form version, form status, and the arm only in an
  unblinded export); ``<form>__<group>.csv`` the same for a repeating group's rows,
  with a ``row`` column.
- ``items_long.csv``: a row per value (participant, site, event, instance, form, form
  version, item path, value, missing code).
- ``participants.csv`` and ``data_dictionary.csv``, and ``README.txt`` saying how
  to read them.

Bytes: UTF-8 without a byte order mark (a BOM ends up in the first column's name
in R, pandas, SAS and Stata), ``\\r\\n`` line ends and minimal quoting (RFC 4180),
rows in the snapshot's order; the same snapshot and options always give the same
bytes.

Memory stays flat: the entries are read once, in order, and each row is written as
soon as its entry has been read; the wide files are written to temporary files
during that pass (a bundle's files are written one after the other) and copied
into the bundle after it.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from typing import IO, Any, BinaryIO

from bhp_ctms.crf.evaluation import split_path
from bhp_ctms.exports.formats import Sink
from bhp_ctms.exports.formats.naming import (
    Dataset,
    ExportRefused,
    FormLayout,
    ItemColumns,
    StudyLayout,
    codelist_text,
    study_layout,
)
from bhp_ctms.exports.records import EntryRecord, ExportOptions, Snapshot, ValueRecord

FOLDER = "csv"
LINE_END = "\r\n"
COPY_CHUNK = 1 << 20

# CSV injection: a spreadsheet runs a cell that starts with one of these as a
# formula (or DDE command). Such a cell gets a leading ' (OWASP's advice), which
# spreadsheets show as text and analysis packages keep as part of a text value. A
# plain number (``-3.5``, the only kind of value of a number item that starts with
# ``-``) is left alone: it cannot be a formula, and prefixing it would turn every
# negative number into text.
FORMULA_STARTS = "=+-@\t\r"
PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
NEEDS_QUOTES = re.compile(r'[,"\r\n]').search

LONG_COLUMNS = (
    ("participant", "Participant (study ID)"),
    ("site", "Site"),
    ("event", "Event"),
    ("instance", "Event instance (repeat number)"),
    ("form", "Form"),
    ("form_version", "Form version"),
    ("item", "Item path: the item code, or group[row].item in a repeating group"),
    ("value", "Value, as the data hold it (codes, ISO 8601 dates, | between choices)"),
    ("missing", "Why the value is missing: ND not done, NA not applicable, UNK unknown"),
)
DICTIONARY_COLUMNS = (
    "dataset",
    "xpt_dataset",
    "variable",
    "short_name",
    "label",
    "type",
    "units",
    "codelist",
    "dta_codes",
    "form",
    "group",
    "item",
    "events",
)
README = """\
CSV files of a dataset snapshot

Files are UTF-8 (no byte order mark), comma-separated, with CRLF line ends and
double quotes around a value only when it needs them (RFC 4180).

<form>.csv            one row per participant, event and event instance
<form>__<group>.csv   one row per row of a repeating group (column "row")
items_long.csv        one row per value, with its item path
participants.csv      one row per participant
data_dictionary.csv   every column of every file (and its short name in the SAS
                      transport files, its codes in the Stata files)

Coded items hold their codes; the codelist is in the dictionary ("code=label"
pairs), and with labels on, an <item>_label column follows each coded item.
A multiple choice item has one column per choice, <item>___<code>: 1 ticked,
0 not ticked, blank when the question was not answered.

Missing values: a value's own column is blank when there is no value. When a reason
was given, the <item>_missing column holds it: ND not done, NA not applicable,
UNK unknown. A reason is never written in the value's column, so number and date
columns only ever hold numbers and dates.

Dates are ISO 8601 (2024-03-01; a partial date 2024-03-UN), times HH:MM,
date-times YYYY-MM-DDTHH:MM.

A text value that starts with = + - @, a tab or a carriage return (which a
spreadsheet would run as a formula) starts with an added ' ; numbers such as -3.5
are written as they are.
"""


def neutralised(text: str) -> str:
    """``text`` made safe to open in a spreadsheet (see FORMULA_STARTS)."""
    if text and text[0] in FORMULA_STARTS and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def write_csv(
    snapshot: Snapshot,
    options: ExportOptions,
    sink: Sink,
    *,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write a snapshot's CSV files into ``sink`` (under ``csv/``).

    The arm appears only when both the snapshot and the options are unblinded.
    ``progress`` is called with the number of form entries written so far, every
    10,000 entries and once at the end.
    """
    layout = study_layout(
        snapshot.info,
        arm=not snapshot.blinded and not options.blinded,
        labels=options.labels,
        forms=options.forms,
    )
    _write_file(sink, "README.txt", lambda out: out.write(README.replace("\n", LINE_END)))
    sites = _write_participants(snapshot, layout, sink)
    _write_entries(snapshot, layout, sink, sites, progress)
    _write_file(sink, "data_dictionary.csv", lambda out: _write_dictionary(layout, out))


def _write_file(sink: Sink, name: str, write: Callable[[IO[str]], Any]) -> None:
    with sink.open(f"{FOLDER}/{name}") as raw:
        text = _text(raw)
        write(text)
        text.flush()
        text.detach()


def _text(raw: BinaryIO) -> io.TextIOWrapper:
    return io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=False)


def _writer(out: IO[str]) -> Any:
    return csv.writer(out, lineterminator=LINE_END, quoting=csv.QUOTE_MINIMAL, strict=True)


def _write_participants(
    snapshot: Snapshot, layout: StudyLayout, sink: Sink
) -> dict[str, tuple[str, str]]:
    """Write ``participants.csv``; the (site, arm) of each participant, for the
    entries' rows (arm blank when blinded)."""
    sites: dict[str, tuple[str, str]] = {}

    def write(out: IO[str]) -> None:
        writer = _writer(out)
        writer.writerow([variable.name for variable in layout.participants.variables])
        for record in snapshot.participants():
            arm = neutralised(record.arm or "") if layout.arm else ""
            row = [
                neutralised(record.key),
                neutralised(record.site_code),
                neutralised(record.status),
                neutralised(record.protocol_version),
                record.registered_on,
                record.randomised_on or "",
            ]
            if layout.arm:
                row.append(arm)
            writer.writerow(row)
            sites[record.key] = (row[1], arm)

    _write_file(sink, "participants.csv", write)
    return sites


def cell(text: str) -> str:
    """A value as the big files write it: neutralised, then quoted when it holds a
    comma, a double quote, CR or LF, exactly as ``csv.QUOTE_MINIMAL`` quotes."""
    if not text:
        return ""
    if text[0] in FORMULA_STARTS and not PLAIN_NUMBER.fullmatch(text):
        text = "'" + text
    if NEEDS_QUOTES(text):
        text = '"' + text.replace('"', '""') + '"'
    return text


def line(cells: Iterable[str]) -> str:
    """A row of cells already made by :func:`cell`."""
    return ",".join(cells) + LINE_END


class _Target:
    """Where a value with a given item path goes: its dataset, table row and columns.
    ``simple`` when it fills one column of the form's own row and nothing else."""

    __slots__ = (
        "choice_labels",
        "choices",
        "group",
        "label",
        "labels",
        "missing",
        "row",
        "simple",
        "value",
    )

    def __init__(self, columns: ItemColumns | None, group: _Output | None, row: int) -> None:
        self.group = group
        self.row = row
        self.value = columns.value if columns else -1
        self.choices = columns.choices if columns else None
        self.label = columns.label_column if columns else -1
        self.labels = (
            {code: cell(text) for code, text in columns.choice_labels.items()} if columns else {}
        )
        self.choice_labels = columns.choice_labels if columns else {}
        self.missing = columns.missing if columns else -1
        self.simple = bool(columns) and group is None and self.choices is None and self.label < 0


# The target of the values of items left out of exports (identifiers).
LEFT_OUT = _Target(None, None, 0)


class _Output:
    """One wide dataset being written to a temporary file."""

    def __init__(self, dataset: Dataset, stack: ExitStack) -> None:
        self.dataset = dataset
        # Closed (and deleted) by the stack when the export ends.
        self.raw = stack.enter_context(tempfile.TemporaryFile(buffering=COPY_CHUNK))  # noqa: SIM115
        self.text = _text(self.raw)  # type: ignore[arg-type]
        self.text.write(line(cell(variable.name) for variable in dataset.variables))
        self.blank = [""] * (len(dataset.variables) - dataset.leading)

    def copy_to(self, sink: Sink) -> None:
        self.text.flush()
        self.raw.seek(0)
        with sink.open(f"{FOLDER}/{self.dataset.name}.csv") as out:
            shutil.copyfileobj(self.raw, out, COPY_CHUNK)


class _Form:
    """A form's outputs and the targets of the item paths met so far."""

    def __init__(self, layout: FormLayout, stack: ExitStack) -> None:
        self.layout = layout
        self.code = cell(layout.code)
        self.output = _Output(layout.dataset, stack)
        self.groups = {code: _Output(dataset, stack) for code, dataset in layout.groups.items()}
        self.targets: dict[str, _Target] = {}

    @property
    def outputs(self) -> tuple[_Output, ...]:
        return (self.output, *self.groups.values())

    def target(self, path: str) -> _Target:
        """The target of an item path (LEFT_OUT for an identifier), kept."""
        group, row, code = split_path(path)
        key = (group or "", code)
        output = self.output if group is None else self.groups.get(group)
        columns = output.dataset.items.get(code) if output is not None else None
        if columns is None or output is None:
            if key in self.layout.left_out:
                self.targets[path] = LEFT_OUT
                return LEFT_OUT
            raise ExportRefused(
                f"Form {self.layout.code} has no item {path!r} in any of its versions"
                " in the snapshot; the export was stopped."
            )
        target = _Target(columns, None if group is None else output, row)
        self.targets[path] = target
        return target


def _write_entries(
    snapshot: Snapshot,
    layout: StudyLayout,
    sink: Sink,
    sites: dict[str, tuple[str, str]],
    progress: Callable[[int], None] | None,
) -> None:
    """One pass over the entries: the long file straight into the sink, the wide
    files into temporary files, copied into the sink at the end."""
    with ExitStack() as stack:
        forms = {code: _Form(form, stack) for code, form in layout.forms.items()}
        with sink.open(f"{FOLDER}/items_long.csv") as raw:
            long_text = _text(raw)
            long_text.write(line(name for name, _ in LONG_COLUMNS))
            count = _write_rows(snapshot, layout, forms, sites, long_text, progress)
            long_text.flush()
            long_text.detach()
        if progress is not None:
            progress(count)
        for form in forms.values():
            for output in form.outputs:
                output.copy_to(sink)


def _write_rows(
    snapshot: Snapshot,
    layout: StudyLayout,
    forms: dict[str, _Form],
    sites: dict[str, tuple[str, str]],
    long_out: IO[str],
    progress: Callable[[int], None] | None,
) -> int:
    # The hot loop of a CSV export, one turn per value: a look-up, the injection and
    # quoting checks, a store in the row and a line of the long file. Rows are built
    # of finished cells and joined, which is faster than the csv module and gives
    # the same bytes (tested).
    arm = layout.arm
    starts = FORMULA_STARTS
    count = 0
    for entry in snapshot.entries():
        form = forms.get(entry.form)
        if form is None:
            continue
        count += 1
        if progress is not None and not count % 10_000:
            progress(count)
        try:
            site, arm_code = sites[entry.participant]
        except KeyError:
            raise ExportRefused(
                f"A form entry of participant {entry.participant} is in the snapshot"
                " but the participant is not; the export was stopped."
            ) from None
        participant = cell(entry.participant)
        event = cell(entry.event)
        instance = str(entry.instance)
        version = str(entry.form_version)
        lead = [
            participant,
            site,
            event,
            instance,
            cell(entry.visit_on or ""),
            version,
            cell(entry.status),
        ]
        if arm:
            lead.append(arm_code)
        prefix = f"{participant},{site},{event},{instance},{form.code},{version},"
        row = lead + form.output.blank
        tables: dict[tuple[_Output, int], list[str]] = {}
        long_lines = []
        targets = form.targets
        for value in entry.values:
            path = value.path
            target = targets.get(path) or form.target(path)
            text = value.value or ""
            if text and (
                text[0] in starts or "," in text or '"' in text or "\n" in text or "\r" in text
            ):
                text = cell(text)
            if target.simple and value.missing is None:
                row[target.value] = text
                long_lines.append(f"{prefix}{path},{text},\r\n")
            elif target is not LEFT_OUT:
                cells = row
                if target.group is not None:
                    key = (target.group, target.row)
                    cells = tables.get(key) or tables.setdefault(
                        key, [*lead, str(target.row), *target.group.blank]
                    )
                missing = _place(target, cells, value, text, entry)
                long_lines.append(f"{prefix}{path},{text},{missing}\r\n")
        form.output.text.write(line(row))
        for (output, _), cells in sorted(tables.items(), key=lambda pair: pair[0][1]):
            output.text.write(line(cells))
        long_out.write("".join(long_lines))
    return count


def _place(
    target: _Target, cells: list[str], value: ValueRecord, text: str, entry: EntryRecord
) -> str:
    """Fill a value's cells when it is not simple: a choice's label, a multiple
    choice's 0/1 columns, a missing code; the missing code's cell."""
    raw = value.value or ""
    missing = value.missing
    if raw:
        if target.choices is None:
            cells[target.value] = text
            if target.label >= 0:
                cells[target.label] = target.labels.get(raw, text)
        else:
            _tick(target, cells, raw, entry)
    if not missing:
        return ""
    if target.missing < 0:
        raise ExportRefused(
            f"Participant {entry.participant}, {entry.form_key}: item {value.path}"
            f" is missing ({missing}) but takes no missing codes in any version of the"
            " form; the export was stopped."
        )
    code = cell(missing)
    cells[target.missing] = code
    return code


def _tick(target: _Target, cells: list[str], raw: str, entry: EntryRecord) -> None:
    """Fill a multiple choice's 0/1 columns (and its label) from ``a|b``."""
    choices = target.choices
    assert choices is not None
    for index in choices.values():
        cells[index] = "0"
    labels = []
    for code in raw.split("|"):
        column = choices.get(code)
        if column is None:
            raise ExportRefused(
                f"Participant {entry.participant}, {entry.form_key}: a value holds"
                f" choice {code!r}, which no version of the form has; the export was"
                " stopped."
            )
        cells[column] = "1"
        labels.append(target.choice_labels.get(code, code))
    if target.label >= 0:
        cells[target.label] = cell("|".join(labels))


def _write_dictionary(layout: StudyLayout, out: IO[str]) -> None:
    writer = _writer(out)
    writer.writerow(DICTIONARY_COLUMNS)
    for dataset in layout.datasets:
        writer.writerows(_dictionary_rows(dataset))
    for name, label in LONG_COLUMNS:
        row = {"dataset": "items_long", "variable": name, "label": label, "type": "text"}
        writer.writerow([neutralised(row.get(column, "")) for column in DICTIONARY_COLUMNS])


def _dictionary_rows(dataset: Dataset) -> Iterable[Sequence[str]]:
    events = "|".join(dataset.events)
    for variable in dataset.variables:
        stata = variable.stata_codes()
        row = {
            "dataset": dataset.name,
            "xpt_dataset": dataset.short_name,
            "variable": variable.name,
            "short_name": variable.short_name,
            "label": variable.label,
            "type": variable.type,
            "units": variable.units,
            "codelist": codelist_text(variable.choices),
            "dta_codes": "|".join(f"{number}={code}" for code, number in stata.items()),
            "form": dataset.form,
            "group": dataset.group,
            "item": variable.item,
            "events": events if dataset.form else "",
        }
        yield [neutralised(row[column]) for column in DICTIONARY_COLUMNS]
