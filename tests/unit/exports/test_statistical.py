"""SAS transport, Stata and SPSS files of a snapshot: names and limits, values and
dates read back exactly (by pyreadstat and by pandas), value labels, refusals
instead of lost data, blinding, identifiers and byte-identical repeats."""

from __future__ import annotations

import csv
import io
import math
import time as clock
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, cast

import pandas
import pyreadstat
import pytest

from bhp_ctms.exports.formats.csv import write_csv
from bhp_ctms.exports.formats.naming import ExportRefused
from bhp_ctms.exports.formats.statistical import (
    dataset_frames,
    truncated,
    write_dta,
    write_sav,
    write_statistical,
    write_xpt,
)
from bhp_ctms.exports.records import ExportOptions, RecordSnapshot, Snapshot, ValueRecord
from tests.factories.snapshots import (
    FORMULA,
    LONG_LABEL,
    MemorySink,
    example_builder,
    example_snapshot,
)

UNBLINDED = ExportOptions(blinded=False)
SAS_EPOCH = date(1960, 1, 1)
READERS: dict[str, Callable[[Path], tuple[pandas.DataFrame, Any]]] = {
    "xpt": pyreadstat.read_xport,
    "dta": pyreadstat.read_dta,
    "sav": pyreadstat.read_sav,
}


def example(**overrides: Any) -> Snapshot:
    # RecordSnapshot is frozen; the Snapshot protocol declares settable attributes.
    return cast(Snapshot, example_snapshot(**overrides))


def export(
    snapshot: RecordSnapshot | Snapshot | None = None,
    options: ExportOptions = UNBLINDED,
    formats: tuple[Any, ...] = ("xpt", "dta", "sav"),
) -> MemorySink:
    sink = MemorySink()
    write_statistical(cast(Snapshot, snapshot) or example(), options, sink, formats)
    return sink


def read_back(sink: MemorySink, name: str, tmp_path: Path) -> tuple[pandas.DataFrame, Any]:
    path = tmp_path / name.replace("/", "_")
    path.write_bytes(sink.files[name])
    return READERS[name[-3:]](path)


def same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    if isinstance(left, pandas.Timestamp):
        left = left.to_pydatetime()
    if isinstance(right, pandas.Timestamp):
        right = right.to_pydatetime()
    if left is None or left is pandas.NaT:
        return (
            right is None or right is pandas.NaT or (isinstance(right, float) and math.isnan(right))
        )
    return bool(left == right)


def assert_same_frames(written: pandas.DataFrame, read: pandas.DataFrame) -> None:
    assert list(read.columns) == list(written.columns)
    assert len(read) == len(written)
    for column in written.columns:
        for index, (want, got) in enumerate(zip(written[column], read[column], strict=True)):
            assert same(want, got), (column, index, want, got)


def test_the_files_of_each_format() -> None:
    assert sorted(export().files) == [
        "dta/demographics.dta",
        "dta/participants.dta",
        "dta/vitals.dta",
        "dta/vitals__medications.dta",
        "sav/demographics.sav",
        "sav/participants.sav",
        "sav/vitals.sav",
        "sav/vitals__medications.sav",
        "xpt/demograp.xpt",
        "xpt/medicati.xpt",
        "xpt/particip.xpt",
        "xpt/vitals.xpt",
    ]


@pytest.mark.parametrize(
    ("writer", "folder"), [(write_xpt, "xpt/"), (write_dta, "dta/"), (write_sav, "sav/")]
)
def test_each_writer_writes_its_own_format(writer: Any, folder: str) -> None:
    sink = MemorySink()
    writer(example(), UNBLINDED, sink)
    assert len(sink.files) == 4
    assert all(name.startswith(folder) for name in sink.files)


def test_xpt_reads_back_identically_with_pyreadstat_and_pandas(tmp_path: Path) -> None:
    sink = export(formats=("xpt",))
    for dataset, frame in dataset_frames(example(), UNBLINDED):
        name = f"xpt/{dataset.short_name.lower()}.xpt"
        short = {v.name: v.short_name for v in dataset.variables}
        written = frame.rename(columns=short)

        read, meta = read_back(sink, name, tmp_path)
        assert meta.table_name == dataset.short_name
        assert_same_frames(written, read)

        path = tmp_path / f"{dataset.short_name}.xpt"
        path.write_bytes(sink.files[name])
        by_pandas = _zeros_fixed(pandas.read_sas(path, format="xport", encoding="utf-8"))
        # pandas gives SAS's own numbers: days (dates) or seconds (times and
        # date-times) since 1960-01-01.
        sas = written.copy()
        for variable in dataset.variables:
            if variable.storage in ("date", "time", "datetime"):
                sas[variable.short_name] = [_sas_number(v) for v in sas[variable.short_name]]
        assert_same_frames(sas, by_pandas)


# pandas reads an IBM zero (eight zero bytes, as SAS writes it too) as the smallest
# IBM number, 16 ** -65 (pandas-dev/pandas#50670, open): read as the 0 it is.
IBM_ZERO_AS_PANDAS_READS_IT = 16.0**-65


def _zeros_fixed(frame: pandas.DataFrame) -> pandas.DataFrame:
    return frame.replace(IBM_ZERO_AS_PANDAS_READS_IT, 0.0)


def test_pandas_misreads_zero_in_every_xpt_file(tmp_path: Path) -> None:
    # Why _zeros_fixed is needed: the zero is stored as SAS stores it.
    frame = pandas.DataFrame({"SUBJID": ["P1" * 50], "ZERO": [0.0]})
    pyreadstat.write_xport(frame, tmp_path / "zero.xpt", file_format_version=5)
    # The one row (108 bytes) fills the last two 80-byte records.
    row = (tmp_path / "zero.xpt").read_bytes()[-160:]
    assert row[100:108] == bytes(8)
    assert pyreadstat.read_xport(tmp_path / "zero.xpt")[0]["ZERO"][0] == 0.0
    by_pandas = pandas.read_sas(tmp_path / "zero.xpt", format="xport", encoding="utf-8")
    assert by_pandas["ZERO"][0] == IBM_ZERO_AS_PANDAS_READS_IT


def _sas_number(value: Any) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if isinstance(value, datetime):
        return (value - datetime(1960, 1, 1)).total_seconds()
    if isinstance(value, date):
        return float((value - SAS_EPOCH).days)
    assert isinstance(value, time)
    return float(value.hour * 3600 + value.minute * 60 + value.second)


def test_xpt_rows_are_longer_than_80_bytes_so_pandas_counts_them(tmp_path: Path) -> None:
    # pandas guesses the row count of a file with short rows from the blanks of
    # its last 80-byte record, and would drop BHP-003 (blank arm and dates).
    sink = export(formats=("xpt",))
    read, meta = read_back(sink, "xpt/particip.xpt", tmp_path)
    assert sum(meta.variable_storage_width.values()) > 80
    assert list(read["SUBJID"]) == ["BHP-001", "BHP-002", "BHP-003"]
    path = tmp_path / "particip.xpt"
    path.write_bytes(sink.files["xpt/particip.xpt"])
    by_pandas = pandas.read_sas(path, format="xport", encoding="utf-8")
    assert list(by_pandas["SUBJID"]) == ["BHP-001", "BHP-002", "BHP-003"]


def test_dates_times_and_numbers_round_trip_exactly(tmp_path: Path) -> None:
    sink = export()
    for name in ("xpt/vitals.xpt", "dta/vitals.dta", "sav/vitals.sav"):
        read, _ = read_back(sink, name, tmp_path)
        read.columns = [c.lower() for c in read.columns]
        week4 = read.iloc[1]
        visit_day = week4["visit_da" if name.startswith("xpt") else "visit_day"]
        assert visit_day == date(2026, 3, 3), name
        assert week4["visit_ti" if name.startswith("xpt") else "visit_time"] == time(9, 45), name
        assessed = week4["assessed" if name.startswith("xpt") else "assessed_at"]
        assert assessed == datetime(2026, 3, 3, 10, 15), name
        assert week4["weight"] == 70.1, name
        assert week4["bmi"] == 22.1, name
        assert week4["weight_c" if name.startswith("xpt") else "weight_change"] == -2.4, name
    path = tmp_path / "vitals.xpt"
    path.write_bytes(sink.files["xpt/vitals.xpt"])
    by_pandas = pandas.read_sas(path, format="xport", encoding="utf-8")
    assert by_pandas["VISIT_DA"][1] == (date(2026, 3, 3) - SAS_EPOCH).days
    assert by_pandas["WEIGHT"][1] == 70.1


def test_partial_dates_stay_text_and_full_dates_are_dates(tmp_path: Path) -> None:
    sink = export()
    for name in ("xpt/demograp.xpt", "dta/demographics.dta", "sav/demographics.sav"):
        read, _ = read_back(sink, name, tmp_path)
        read.columns = [c.lower() for c in read.columns]
        assert list(read["dob"]) == ["1961-04-UN", "1958-11-30"], name
        visit = "visitdt" if name.startswith("xpt") else "visit_date"
        assert list(read[visit]) == [date(2026, 3, 2)] * 2, name


def test_a_date_column_with_no_dates_is_still_a_date(tmp_path: Path) -> None:
    builder = example_builder()
    builder.entries = [e for e in builder.entries if e.form != "vitals" or e.event != "week4"]
    sink = export(builder.build())
    for name, column in (
        ("xpt/vitals.xpt", "ASSESSED"),
        ("dta/vitals.dta", "assessed_at"),
        ("sav/vitals.sav", "assessed_at"),
    ):
        read, meta = read_back(sink, name, tmp_path)
        assert meta.readstat_variable_types[column] == "double", name
        assert "DATETIME" in meta.original_variable_types[column].upper() or (
            meta.original_variable_types[column] == "%tc"
        ), name
        assert read[column].isna().all()


def test_xpt_names_labels_and_datasets_follow_the_dictionary(tmp_path: Path) -> None:
    sink = export(formats=("xpt",))
    write_csv(example(), UNBLINDED, sink)
    text = sink.files["csv/data_dictionary.csv"].decode()
    dictionary = list(csv.DictReader(io.StringIO(text, newline="")))
    for name in [n for n in sink.files if n.startswith("xpt/")]:
        read, meta = read_back(sink, name, tmp_path)
        rows = [r for r in dictionary if r["xpt_dataset"] == meta.table_name and r["short_name"]]
        assert list(read.columns) == [r["short_name"] for r in rows]
        assert all(len(column) <= 8 for column in read.columns)
        labels = meta.column_names_to_labels
        assert all(len(label.encode()) <= 40 for label in labels.values())
        for row in rows:
            assert labels[row["short_name"]] == truncated(row["label"], 40)
    _, meta = read_back(sink, "xpt/demograp.xpt", tmp_path)
    assert meta.column_names_to_labels["ETHNICIT"] == "Ethnic group, as the participant desc..."
    assert LONG_LABEL.startswith("Ethnic group, as the participant desc")


def test_truncated_labels_are_cut_cleanly() -> None:
    assert truncated("Short", 40) == "Short"
    assert truncated("x" * 40, 40) == "x" * 40
    assert truncated("x" * 41, 40) == "x" * 37 + "..."
    cut = truncated("é" * 30, 40)  # 60 bytes
    assert cut == "é" * 18 + "..."
    assert len(cut.encode()) <= 40
    assert truncated("word " * 20, 20, characters=True) == "word word word wo..."


def test_xpt_refuses_text_longer_than_200_bytes_naming_where_it_is(tmp_path: Path) -> None:
    builder = example_builder()
    builder.entry("BHP-003", "screening", "demographics", {"notes": "é" * 100})  # 200 bytes
    sink = export(builder.build(), formats=("xpt",))
    read, _ = read_back(sink, "xpt/demograp.xpt", tmp_path)
    assert read["NOTES"][2] == "é" * 100

    builder.entry("BHP-002", "week4", "vitals", {"comment": "x" * 201})
    with pytest.raises(ExportRefused) as refused:
        export(builder.build(), formats=("xpt",))
    message = str(refused.value)
    assert "at most 200 bytes" in message
    assert "participant BHP-002, week4/vitals, comment (201 bytes)" in message
    assert "Nothing was cut short" in message
    # Stata and SPSS keep long text whole.
    sink = export(builder.build(), formats=("dta", "sav"))
    for name in ("dta/vitals.dta", "sav/vitals.sav"):
        read, _ = read_back(sink, name, tmp_path)
        assert read["comment"].iloc[-1] == "x" * 201


def test_very_long_text_is_kept_whole_in_stata_and_spss(tmp_path: Path) -> None:
    builder = example_builder()
    notes = "Ntlo ya me" * 400  # 4,000 characters: a Stata strL
    builder.entry("BHP-003", "screening", "demographics", {"notes": notes})
    sink = export(builder.build(), formats=("dta", "sav"))
    for name in ("dta/demographics.dta", "sav/demographics.sav"):
        read, _ = read_back(sink, name, tmp_path)
        assert read["notes"][2] == notes, name


def test_stata_value_labels_round_trip(tmp_path: Path) -> None:
    read, meta = read_back(export(formats=("dta",)), "dta/demographics.dta", tmp_path)
    labels = meta.variable_value_labels
    # Text codes are numbered in codelist order (the dictionary's dta_codes).
    assert labels["sex"] == {1: "Male", 2: "Female"}
    assert list(read["sex"]) == [1.0, 2.0]
    assert labels["ethnicity"] == {1: "Tswana", 2: "Kalanga", 3: "Other"}
    assert list(read["ethnicity"]) == [2.0, 1.0]
    assert labels["smoker"] == {1: "Yes", 0: "No"}
    assert labels["dob_missing"] == {1: "Not done", 2: "Not applicable", 3: "Unknown"}
    assert meta.column_names_to_labels["sex"] == "Sex"
    assert meta.column_names_to_labels["ethnicity"] == LONG_LABEL

    read, meta = read_back(export(formats=("dta",)), "dta/vitals.dta", tmp_path)
    assert meta.variable_value_labels["symptoms___fever"] == {1: "Yes", 0: "No"}
    assert list(read["weight_missing"].fillna(0)) == [0, 0, 3.0, 0]
    labelled, _ = pyreadstat.read_dta(tmp_path / "dta_demographics.dta", apply_value_formats=True)
    assert list(labelled["sex"]) == ["Male", "Female"]


def test_spss_value_labels_round_trip_with_the_codes_kept(tmp_path: Path) -> None:
    read, meta = read_back(export(formats=("sav",)), "sav/demographics.sav", tmp_path)
    labels = meta.variable_value_labels
    assert labels["sex"] == {"M": "Male", "F": "Female"}
    assert list(read["sex"]) == ["M", "F"]
    assert labels["ethnicity"] == {1.0: "Tswana", 2.0: "Kalanga", 3.0: "Other"}
    assert labels["dob_missing"] == {"ND": "Not done", "NA": "Not applicable", "UNK": "Unknown"}
    assert meta.variable_measure["sex"] == "nominal"
    assert meta.column_names_to_labels["ethnicity"] == LONG_LABEL

    read, meta = read_back(export(formats=("sav",)), "sav/vitals.sav", tmp_path)
    assert meta.variable_value_labels["symptoms___short_breath"] == {1.0: "Yes", 0.0: "No"}
    assert list(read["symptoms_missing"]) == ["", "", "ND", ""]
    assert meta.variable_measure["weight"] == "scale"
    read, meta = read_back(export(formats=("sav",)), "sav/vitals__medications.sav", tmp_path)
    assert meta.variable_value_labels["route"] == {"po": "By mouth", "iv": "Into a vein"}


def test_stata_and_spss_read_back_what_was_written(tmp_path: Path) -> None:
    sink = export(formats=("dta", "sav"))
    for dataset, frame in dataset_frames(example(), UNBLINDED):
        read, _ = read_back(sink, f"sav/{dataset.name}.sav", tmp_path)
        assert_same_frames(frame, read)
        read, _ = read_back(sink, f"dta/{dataset.name}.dta", tmp_path)
        coded = [v.name for v in dataset.variables if v.stata_codes()]
        assert_same_frames(frame.drop(columns=coded), read.drop(columns=coded))


def test_values_are_written_as_entered_not_neutralised(tmp_path: Path) -> None:
    # Neutralising formulas is for spreadsheets: the packages get the data as is.
    read, _ = read_back(export(formats=("sav",)), "sav/vitals.sav", tmp_path)
    assert read["comment"][1] == FORMULA


def test_the_same_snapshot_gives_the_same_bytes_at_any_time(tmp_path: Path) -> None:
    first = export()
    clock.sleep(1.1)  # the files' headers would hold a different second
    second = export()
    assert first.files == second.files
    # The time in each header is the snapshot's, not the export's.
    for name in ("xpt/vitals.xpt", "sav/vitals.sav"):
        _, meta = read_back(first, name, tmp_path)
        assert meta.creation_time == datetime(2026, 11, 20, 14, 5, 9), name
        assert meta.modification_time == datetime(2026, 11, 20, 14, 5, 9), name
    _, meta = read_back(first, "dta/vitals.dta", tmp_path)
    assert meta.creation_time == datetime(2026, 11, 20, 14, 5)  # Stata keeps minutes
    later = export(example(taken_at="2027-01-05T08:30:00Z"))
    _, meta = read_back(later, "xpt/vitals.xpt", tmp_path)
    assert meta.creation_time == datetime(2027, 1, 5, 8, 30)


@pytest.mark.parametrize("blinded", ["snapshot", "options"])
def test_a_blinded_export_has_no_arm_anywhere(blinded: str, tmp_path: Path) -> None:
    snapshot = example_snapshot(blinded=blinded == "snapshot")
    sink = export(snapshot, ExportOptions(blinded=blinded == "options"))
    for name, content in sink.files.items():
        assert b"walking" not in content, name
        assert b"usual_care" not in content, name
        read, _ = read_back(sink, name, tmp_path)
        assert not {"arm", "ARMCD"} & set(read.columns), name


def test_an_unblinded_export_has_the_arm(tmp_path: Path) -> None:
    read, _ = read_back(export(), "xpt/particip.xpt", tmp_path)
    assert list(read["ARMCD"]) == ["walking", "usual_care", ""]


def test_identifier_items_are_never_written() -> None:
    builder = example_builder()
    leaked = builder.entries[0]
    builder.entries[0] = replace(
        leaked, values=(*leaked.values, ValueRecord("initials", "QX-SECRET"))
    )
    for name, content in export(builder.build()).files.items():
        assert b"QX-SECRET" not in content, name
        assert b"initials" not in content.lower(), name
        assert b"INITIALS" not in content, name


def test_a_value_that_does_not_fit_its_type_stops_the_export() -> None:
    builder = example_builder()
    builder.entry("BHP-002", "week4", "vitals", {"height": "tall"})
    with pytest.raises(ExportRefused) as refused:
        export(builder.build())
    assert str(refused.value) == (
        "Participant BHP-002, week4/vitals: item height holds 'tall', which is not a"
        " number as the item's type (integer) needs; the export was stopped."
    )


def test_a_text_code_outside_the_codelist_stops_the_stata_export_only(tmp_path: Path) -> None:
    builder = example_builder()
    builder.entry("BHP-003", "screening", "demographics", {"sex": "X"})
    with pytest.raises(ExportRefused, match="participant BHP-003, screening/demographics: sex"):
        export(builder.build(), formats=("dta",))
    read, _ = read_back(export(builder.build(), formats=("sav",)), "sav/demographics.sav", tmp_path)
    assert read["sex"][2] == "X"


def test_progress_counts_datasets() -> None:
    done: list[int] = []
    write_statistical(example(), UNBLINDED, MemorySink(), ("sav",), progress=done.append)
    assert done == [1, 2, 3, 4]
