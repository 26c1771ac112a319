"""The CSV files of a snapshot: wide files with checkboxes expanded, repeating
groups, the long file, participants, the data dictionary, labels, missing codes,
formula neutralising, blinding, identifiers and the exact bytes."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bhp_ctms.crf.definition.model import Choice, FormDefinition, Item
from bhp_ctms.exports.formats.csv import cell, line, neutralised, write_csv
from bhp_ctms.exports.formats.naming import (
    ExportRefused,
    study_layout,
    unique_name,
    unique_short_name,
)
from bhp_ctms.exports.records import EntryRecord, EventRecord, ExportOptions, ValueRecord
from tests.factories.snapshots import (
    FORMULA,
    GeneratedSnapshot,
    MemorySink,
    SnapshotBuilder,
    example_builder,
    example_snapshot,
    form_version_record,
    snapshot_info,
)

UNBLINDED = ExportOptions(blinded=False)


def export(snapshot: object = None, options: ExportOptions = UNBLINDED) -> MemorySink:
    sink = MemorySink()
    write_csv(snapshot or example_snapshot(), options, sink)  # type: ignore[arg-type]
    return sink


def read(sink: MemorySink, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(sink.text(f"csv/{name}"), newline="")))


def header(sink: MemorySink, name: str) -> list[str]:
    return next(csv.reader(io.StringIO(sink.text(f"csv/{name}"), newline="")))


def test_the_files_of_a_csv_export() -> None:
    assert sorted(export().files) == [
        "csv/README.txt",
        "csv/data_dictionary.csv",
        "csv/demographics.csv",
        "csv/items_long.csv",
        "csv/participants.csv",
        "csv/vitals.csv",
        "csv/vitals__medications.csv",
    ]


def test_a_wide_file_has_a_row_per_participant_event_and_instance() -> None:
    sink = export()
    assert header(sink, "vitals.csv") == [
        "participant", "site", "event", "instance", "visit_date", "form_version",
        "form_status", "arm",
        # version 2's items in page order, the multiple choice one column per choice
        "weight", "weight_missing", "height", "weight_change", "visit_day", "visit_time",
        "assessed_at", "bmi", "symptoms___fever", "symptoms___cough",
        "symptoms___short_breath", "symptoms_missing", "comment",
        # then what only version 1 has
        "old_score",
    ]  # fmt: skip
    rows = read(sink, "vitals.csv")
    assert [(r["participant"], r["event"], r["instance"]) for r in rows] == [
        ("BHP-001", "screening", "1"),
        ("BHP-001", "week4", "1"),
        ("BHP-001", "unscheduled", "2"),
        ("BHP-002", "screening", "1"),
    ]
    screening, week4, unscheduled, other = rows
    # Entered on version 1: placed by item code.
    assert screening["form_version"] == "1"
    assert (screening["weight"], screening["height"], screening["old_score"]) == (
        "72.5",
        "178",
        "4",
    )
    assert (screening["site"], screening["arm"], screening["visit_date"]) == (
        "GAB",
        "walking",
        "2026-02-03",
    )
    assert [screening[f"symptoms___{c}"] for c in ("fever", "cough", "short_breath")] == [
        "1",
        "1",
        "0",
    ]
    assert [week4[f"symptoms___{c}"] for c in ("fever", "cough", "short_breath")] == ["0", "0", "1"]
    assert (week4["visit_time"], week4["assessed_at"], week4["bmi"]) == (
        "09:45",
        "2026-03-03T10:15",
        "22.1",
    )
    # Unanswered: every checkbox blank, not 0.
    assert [other[f"symptoms___{c}"] for c in ("fever", "cough", "short_breath")] == ["", "", ""]
    assert other["visit_date"] == ""
    assert unscheduled["form_status"] == "incomplete"


def test_a_missing_code_goes_in_its_own_column_and_the_value_stays_blank() -> None:
    rows = read(export(), "vitals.csv")
    unscheduled = rows[2]
    assert (unscheduled["weight"], unscheduled["weight_missing"]) == ("", "UNK")
    assert unscheduled["symptoms_missing"] == "ND"
    assert [unscheduled[f"symptoms___{c}"] for c in ("fever", "cough", "short_breath")] == [
        "",
        "",
        "",
    ]
    assert (rows[0]["weight"], rows[0]["weight_missing"]) == ("72.5", "")


def test_a_repeating_group_has_its_own_file_with_a_row_column() -> None:
    sink = export()
    assert header(sink, "vitals__medications.csv") == [
        "participant", "site", "event", "instance", "visit_date", "form_version",
        "form_status", "arm", "row", "drug", "dose", "started", "route",
    ]  # fmt: skip
    rows = read(sink, "vitals__medications.csv")
    assert [(r["event"], r["row"], r["drug"], r["dose"]) for r in rows] == [
        ("screening", "1", "Aspirin", "75"),
        ("screening", "2", "Atenolol", "50"),
        ("week4", "1", "'@SUM(1+1)", "-3.5"),
    ]
    assert rows[2]["started"] == "2025-UN-UN"
    assert rows[2]["route"] == "po"


def test_group_rows_are_written_in_row_order_whatever_order_the_values_come_in() -> None:
    builder = example_builder()
    builder.entries = []
    builder.entry(
        "BHP-002",
        "week4",
        "vitals",
        {
            "medications[10].drug": "Ten",
            "medications[2].drug": "Two",
            "medications[1].drug": "One",
            "medications[2].dose": "2",
        },
    )
    rows = read(export(builder.build()), "vitals__medications.csv")
    assert [(r["row"], r["drug"], r["dose"]) for r in rows] == [
        ("1", "One", ""),
        ("2", "Two", "2"),
        ("10", "Ten", ""),
    ]


def test_codes_are_raw_and_labels_only_when_asked_for() -> None:
    plain = export()
    assert not [name for name in header(plain, "demographics.csv") if name.endswith("_label")]
    assert read(plain, "demographics.csv")[0]["sex"] == "M"

    labelled = export(options=replace(UNBLINDED, labels=True))
    names = header(labelled, "demographics.csv")
    assert names[names.index("sex") + 1] == "sex_label"
    assert names[names.index("smoker") + 1] == "smoker_label"
    assert names[names.index("ethnicity") + 1] == "ethnicity_label"
    assert "notes_label" not in names
    first, second = read(labelled, "demographics.csv")
    assert (first["sex"], first["sex_label"]) == ("M", "Male")
    assert (first["smoker"], first["smoker_label"]) == ("0", "No")
    assert (second["ethnicity"], second["ethnicity_label"]) == ("1", "Tswana")
    vitals = read(labelled, "vitals.csv")
    assert vitals[0]["symptoms_label"] == "Fever|Cough"
    assert vitals[1]["symptoms_label"] == "Short of breath"
    assert read(labelled, "vitals__medications.csv")[2]["route_label"] == "By mouth"


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+44 20 7946 0000", "'+44 20 7946 0000"),
        ("-", "'-"),
        ("-2+3", "'-2+3"),
        ("-1e5", "'-1e5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        # Plain numbers stay numbers, however negative.
        ("-3.5", "-3.5"),
        ("-12", "-12"),
        ("0.25", "0.25"),
        # Only the first character counts.
        ("1+1", "1+1"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_cells_a_spreadsheet_would_run_are_neutralised(text: str, written: str) -> None:
    assert neutralised(text) == written


def test_formulas_are_neutralised_in_every_file_and_negative_numbers_kept() -> None:
    sink = export()
    vitals = read(sink, "vitals.csv")
    assert vitals[1]["comment"] == "'" + FORMULA
    assert vitals[1]["weight_change"] == "-2.4"
    assert vitals[2]["comment"] == "'+1 extra visit"
    assert vitals[3]["comment"] == "'-"
    long = {(r["event"], r["item"]): r["value"] for r in read(sink, "items_long.csv")}
    assert long[("week4", "comment")] == "'" + FORMULA
    assert long[("week4", "medications[1].drug")] == "'@SUM(1+1)"
    assert long[("week4", "medications[1].dose")] == "-3.5"
    assert long[("week4", "weight_change")] == "-2.4"


def test_labels_names_and_codes_from_definitions_are_neutralised_too() -> None:
    definition = FormDefinition(
        code="risky",
        title="Risky",
        version="1",
        description="",
        entries=(
            Item(
                code="answer",
                label="=cmd|' /C calc'!A0",
                type="single_choice",
                choices=(Choice("-1", "-ve"), Choice("=2", "@two")),
            ),
        ),
    )
    info = snapshot_info(
        [form_version_record(definition, 1)], [EventRecord("v1", "Visit 1", False, ("risky",))]
    )
    builder = SnapshotBuilder(info)
    builder.participant("=P1")
    builder.entry("=P1", "v1", "risky", {"answer": "-1"})
    builder.entry("=P1", "v1", "risky", {"answer": "=2"}, instance=2)
    sink = export(builder.build(), replace(UNBLINDED, labels=True))
    rows = read(sink, "risky.csv")
    assert (rows[0]["participant"], rows[0]["answer"], rows[0]["answer_label"]) == (
        "'=P1",
        "-1",
        "'-ve",
    )
    assert (rows[1]["answer"], rows[1]["answer_label"]) == ("'=2", "'@two")
    assert read(sink, "participants.csv")[0]["participant"] == "'=P1"
    dictionary = {r["variable"]: r for r in read(sink, "data_dictionary.csv")}
    assert dictionary["answer"]["label"] == "'=cmd|' /C calc'!A0"
    # A cell starting with = anywhere: only ever after the added quote.
    for name, content in sink.files.items():
        if name.endswith(".csv"):
            for row in csv.reader(io.StringIO(content.decode(), newline="")):
                assert not [value for value in row if value[:1] in ("=", "@", "+")], name


@pytest.mark.parametrize("blinded", ["snapshot", "options", "both"])
def test_a_blinded_export_has_no_arm_anywhere(blinded: str) -> None:
    snapshot = example_snapshot(blinded=blinded in ("snapshot", "both"))
    options = ExportOptions(blinded=blinded in ("options", "both"))
    sink = export(snapshot, options)
    for name, content in sink.files.items():
        assert b"walking" not in content, name
        assert b"usual_care" not in content, name
        if name.endswith(".csv"):
            assert "arm" not in header(sink, name.removeprefix("csv/")), name
    assert not [r for r in read(sink, "data_dictionary.csv") if r["variable"] == "arm"]


def test_an_unblinded_export_names_each_participants_arm() -> None:
    sink = export()
    assert [r["arm"] for r in read(sink, "participants.csv")] == ["walking", "usual_care", ""]
    assert {r["arm"] for r in read(sink, "vitals__medications.csv")} == {"walking"}


def test_identifier_items_are_never_written() -> None:
    builder = example_builder()
    # Even if a snapshot held an identifier's value, it would not be written.
    leaked = builder.entries[0]
    builder.entries[0] = replace(
        leaked, values=(*leaked.values, ValueRecord("initials", "QX-SECRET"))
    )
    sink = export(builder.build())
    for name, content in sink.files.items():
        assert b"initials" not in content, name
        assert b"QX-SECRET" not in content, name
    # Nor display-only items.
    assert "intro" not in header(sink, "demographics.csv")


def test_the_long_file_has_a_row_per_value() -> None:
    sink = export()
    rows = read(sink, "items_long.csv")
    assert list(rows[0]) == [
        "participant", "site", "event", "instance", "form", "form_version", "item", "value",
        "missing",
    ]  # fmt: skip
    values = sum(len(entry.values) for entry in example_snapshot().entries())
    assert len(rows) == values
    assert rows[0] == {
        "participant": "BHP-001",
        "site": "GAB",
        "event": "screening",
        "instance": "1",
        "form": "demographics",
        "form_version": "1",
        "item": "dob",
        "value": "1961-04-UN",
        "missing": "",
    }
    by_path = {(r["participant"], r["event"], r["instance"], r["item"]): r for r in rows}
    assert by_path[("BHP-001", "unscheduled", "2", "weight")]["missing"] == "UNK"
    assert by_path[("BHP-001", "unscheduled", "2", "weight")]["value"] == ""
    assert by_path[("BHP-001", "screening", "1", "medications[2].drug")]["value"] == "Atenolol"
    assert by_path[("BHP-001", "screening", "1", "symptoms")]["value"] == "fever|cough"
    assert by_path[("BHP-001", "screening", "1", "notes")]["value"] == (
        "Lives alone.\nWalks daily, 3 km"
    )


def test_the_participants_file() -> None:
    assert read(export(), "participants.csv") == [
        {
            "participant": "BHP-001",
            "site": "GAB",
            "status": "randomised",
            "protocol_version": "1.0",
            "registered_on": "2026-02-01",
            "randomised_on": "2026-02-01",
            "arm": "walking",
        },
        {
            "participant": "BHP-002",
            "site": "FTN",
            "status": "randomised",
            "protocol_version": "1.0",
            "registered_on": "2026-02-01",
            "randomised_on": "2026-02-01",
            "arm": "usual_care",
        },
        {
            "participant": "BHP-003",
            "site": "GAB",
            "status": "registered",
            "protocol_version": "1.0",
            "registered_on": "2026-02-01",
            "randomised_on": "",
            "arm": "",
        },
    ]


def test_the_dictionary_describes_every_column_of_every_file() -> None:
    sink = export(options=replace(UNBLINDED, labels=True))
    dictionary = read(sink, "data_dictionary.csv")
    for name in sink.files:
        if name.endswith(".csv") and not name.endswith("data_dictionary.csv"):
            dataset = name.removeprefix("csv/").removesuffix(".csv")
            described = [r["variable"] for r in dictionary if r["dataset"] == dataset]
            assert described == header(sink, f"{dataset}.csv"), dataset
    rows = {(r["dataset"], r["variable"]): r for r in dictionary}
    weight = rows[("vitals", "weight")]
    assert (weight["label"], weight["type"], weight["units"], weight["short_name"]) == (
        "Weight",
        "decimal",
        "kg",
        "WEIGHT",
    )
    assert (weight["form"], weight["group"], weight["item"], weight["xpt_dataset"]) == (
        "vitals",
        "",
        "weight",
        "VITALS",
    )
    assert weight["events"] == "screening|week4|unscheduled"
    fever = rows[("vitals", "symptoms___fever")]
    assert (fever["type"], fever["codelist"], fever["label"], fever["short_name"]) == (
        "checkbox",
        "1=Yes|0=No",
        "Symptoms: Fever",
        "SYMPTO_1",
    )
    missing = rows[("vitals", "weight_missing")]
    assert (missing["type"], missing["codelist"], missing["dta_codes"]) == (
        "missing_code",
        "ND=Not done|NA=Not applicable|UNK=Unknown",
        "1=ND|2=NA|3=UNK",
    )
    sex = rows[("demographics", "sex")]
    assert (sex["codelist"], sex["dta_codes"]) == ("M=Male|F=Female", "1=M|2=F")
    assert rows[("demographics", "ethnicity")]["dta_codes"] == ""
    assert rows[("demographics", "dob")]["type"] == "partial_date"
    assert rows[("demographics", "dob")]["events"] == "screening"
    assert rows[("demographics", "sex_label")]["short_name"] == ""
    drug = rows[("vitals__medications", "drug")]
    assert (drug["group"], drug["xpt_dataset"]) == ("medications", "MEDICATI")
    assert rows[("participants", "participant")]["short_name"] == "SUBJID"
    assert [r["variable"] for r in dictionary if r["dataset"] == "items_long"] == header(
        sink, "items_long.csv"
    )


def test_files_are_utf8_without_bom_with_crlf_line_ends() -> None:
    builder = example_builder()
    builder.entry("BHP-003", "screening", "demographics", {"notes": "Mmê, naledi"})
    sink = export(builder.build())
    for name, content in sink.files.items():
        assert not content.startswith(b"\xef\xbb\xbf"), name
        content.decode("utf-8")
        # Every line ends CRLF; a bare LF is only ever inside a quoted value.
        text = content.decode()
        assert text.endswith("\r\n"), name
    demographics = sink.files["csv/demographics.csv"]
    assert "Mmê, naledi".encode() in demographics
    assert b'"Lives alone.\nWalks daily, 3 km"\r\n' in demographics
    assert demographics.count(b"\r\n") == 4  # header and three rows


def test_the_same_snapshot_gives_the_same_bytes() -> None:
    first = export(options=replace(UNBLINDED, labels=True))
    second = export(options=replace(UNBLINDED, labels=True))
    assert first.files == second.files


@given(st.lists(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"])), min_size=2))
def test_rows_made_of_cells_are_what_the_csv_module_writes(values: list[str]) -> None:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerow([neutralised(v) for v in values])
    assert line(cell(value) for value in values) == buffer.getvalue()


def test_forms_can_be_chosen() -> None:
    sink = export(options=replace(UNBLINDED, forms=("demographics",)))
    assert "csv/vitals.csv" not in sink.files
    assert {r["form"] for r in read(sink, "items_long.csv")} == {"demographics"}
    assert {r["dataset"] for r in read(sink, "data_dictionary.csv")} == {
        "participants",
        "demographics",
        "items_long",
    }


def test_entries_are_read_once_and_progress_is_reported() -> None:
    snapshot = example_snapshot()
    reads = []

    class Counting:
        info = snapshot.info
        blinded = False

        def participants(self):  # type: ignore[no-untyped-def]
            return snapshot.participants()

        def entries(self):  # type: ignore[no-untyped-def]
            reads.append(1)
            return snapshot.entries()

    done: list[int] = []
    write_csv(Counting(), UNBLINDED, MemorySink(), progress=done.append)  # type: ignore[arg-type]
    assert reads == [1]
    assert done == [len(snapshot.entry_records)]


def test_a_value_of_an_item_no_version_has_stops_the_export() -> None:
    builder = example_builder()
    builder.entries.append(
        EntryRecord("BHP-002", "week4", 1, "vitals", 2, "complete", (ValueRecord("pulse", "60"),))
    )
    with pytest.raises(ExportRefused, match="Form vitals has no item 'pulse'"):
        export(builder.build())


def test_a_missing_code_on_an_item_without_missing_codes_stops_the_export() -> None:
    builder = example_builder()
    builder.entry("BHP-002", "week4", "vitals", missing={"height": "ND"})
    with pytest.raises(ExportRefused, match="BHP-002, week4/vitals: item height is missing"):
        export(builder.build())


def test_a_large_export_streams() -> None:
    snapshot = GeneratedSnapshot(participants=20, events=3, forms=2, items=10, blinded=False)
    sink = export(snapshot)
    rows = read(sink, "form0.csv")
    assert len(rows) == 60
    assert len(read(sink, "items_long.csv")) == snapshot.values


# Names


def test_short_names_are_unique_and_at_most_8_characters() -> None:
    taken: set[str] = {"SUBJID"}
    names = [
        unique_short_name(stem, suffix, taken)
        for stem, suffix in [
            ("symptoms", "_1"),
            ("symptoms", "_1"),
            ("subjid", ""),
            ("a_very_long_item_code", ""),
            ("a_very_long_item_code_2", ""),
            ("a_very_long_item_code_3", ""),
            ("1st", ""),
        ]
    ]
    assert names == ["SYMPTO_1", "SYMPT1_1", "SUBJID1", "A_VERY_L", "A_VERY_1", "A_VERY_2", "V1ST"]
    assert len(set(names)) == len(names)


def test_variable_names_are_unique_short_enough_and_not_reserved() -> None:
    taken: set[str] = {"site"}
    assert unique_name("site", taken) == "site_2"
    assert unique_name("in", taken) == "in_"
    assert unique_name("str80", taken) == "str80_"
    long = "a" * 64
    assert unique_name(long, taken) == "a" * 32
    assert unique_name(long, taken) == "a" * 30 + "_2"


def test_item_codes_that_clash_with_the_leading_columns_are_renamed() -> None:
    definition = FormDefinition(
        code="clash",
        title="Clash",
        version="1",
        description="",
        entries=(
            Item(code="site", label="Site of injection", type="text", missing_codes=("unknown",)),
            Item(
                code="event",
                label="Event",
                type="multiple_choice",
                choices=(Choice("A b", "A"), Choice("a-b", "B")),
            ),
        ),
    )
    info = snapshot_info(
        [form_version_record(definition, 1)], [EventRecord("v1", "V1", False, ("clash",))]
    )
    layout = study_layout(info, arm=False, labels=True)
    dataset = layout.forms["clash"].dataset
    names = [v.name for v in dataset.variables[dataset.leading :]]
    assert names == ["site_2", "site_2_missing", "event___a_b", "event___a_b_2", "event_label"]
    shorts = [v.short_name for v in dataset.variables]
    assert all(len(s) <= 8 for s in shorts)
    assert len({s for s in shorts if s}) == len([s for s in shorts if s])


def test_names_do_not_depend_on_the_options() -> None:
    info = example_snapshot().info

    def names(**options: object) -> dict[tuple[str, str], tuple[str, str]]:
        layout = study_layout(info, **options)  # type: ignore[arg-type]
        return {
            (dataset.name, v.item or v.name): (v.name, v.short_name)
            for dataset in layout.datasets
            for v in dataset.variables
            if v.type != "label" and v.name != "arm"
        }

    every = names(arm=True, labels=True)
    assert names(arm=False, labels=False).items() <= every.items()
    chosen = names(arm=False, labels=False, forms=("vitals",))
    assert chosen.items() <= every.items()
    assert {dataset for dataset, _ in chosen} == {"participants", "vitals", "vitals__medications"}


def test_a_form_named_like_a_fixed_file_gets_another_name() -> None:
    definition = FormDefinition(
        code="items_long",
        title="Items",
        version="1",
        description="",
        entries=(Item(code="arm", label="Arm used", type="text"),),
    )
    info = snapshot_info(
        [form_version_record(definition, 1)], [EventRecord("v1", "V1", False, ("items_long",))]
    )
    builder = SnapshotBuilder(info)
    builder.participant("P1", arm="walking")
    builder.entry("P1", "v1", "items_long", {"arm": "left"})
    sink = export(builder.build())
    assert "csv/items_long_2.csv" in sink.files
    row = read(sink, "items_long_2.csv")[0]
    # The item "arm" never takes the arm column's name, blinded or not.
    assert (row["arm"], row["arm_2"]) == ("walking", "left")
    blinded = export(builder.build(blinded=True))
    assert header(blinded, "items_long_2.csv")[-1] == "arm_2"
