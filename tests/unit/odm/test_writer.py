"""``write_odm``: every variant of a snapshot gives a file valid against ODM 1.3.2 that
holds what the snapshot holds, the same bytes every time, in flat memory."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace

import pytest
from lxml import etree

from bhp_ctms.crf.definition.model import Choice, FormDefinition, Item
from bhp_ctms.exports.records import (
    EntryRecord,
    EventRecord,
    ExportOptions,
    FormVersionRecord,
    ParticipantRecord,
    RecordSnapshot,
    ValueRecord,
)
from bhp_ctms.odm.schema import schema_problems
from bhp_ctms.odm.writer import write_odm, write_odm_files
from tests.unit.odm.snapshots import CHANGES, INFO, SIGNATURES, empty_snapshot, full_snapshot

ODM = "{http://www.cdisc.org/ns/odm/v1.3}"


def written(snapshot: RecordSnapshot, **options: object) -> bytes:
    out = io.BytesIO()
    values = {"formats": ("odm",), "blinded": snapshot.blinded, **options}
    write_odm(snapshot, ExportOptions(**values), out)  # type: ignore[arg-type]
    return out.getvalue()


def parsed(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(no_network=True, resolve_entities=False))


def item_values(root: etree._Element) -> list[tuple[str, str, str, str, str | None]]:
    """(subject, event, form, item, value) of every ItemData, in file order."""
    found = []
    for subject in root.iter(ODM + "SubjectData"):
        for event in subject.iter(ODM + "StudyEventData"):
            key = event.get("StudyEventRepeatKey", "")
            for form in event.iter(ODM + "FormData"):
                for group in form.iter(ODM + "ItemGroupData"):
                    row = group.get("ItemGroupRepeatKey", "")
                    for item in group.iter(ODM + "ItemData"):
                        found.append(
                            (
                                subject.get("SubjectKey"),
                                f"{event.get('StudyEventOID')}#{key}",
                                form.get("FormOID"),
                                f"{item.get('ItemOID')}[{row}]",
                                item.get("Value"),
                            )
                        )
    return found


VARIANTS = {
    "unblinded": lambda: full_snapshot(),
    "blinded": lambda: full_snapshot().as_blinded(),
    "empty study": empty_snapshot,
}


@pytest.mark.parametrize("audit_trail", [False, True], ids=["snapshot", "audit trail"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_is_valid_odm_1_3_2(variant, audit_trail):
    data = written(VARIANTS[variant](), audit_trail=audit_trail)

    assert schema_problems(data) == []
    root = parsed(data)
    assert root.get("ODMVersion") == "1.3.2"
    assert root.get("FileType") == ("Transactional" if audit_trail else "Snapshot")
    # The file's time is the snapshot's, never the time it was written.
    assert root.get("CreationDateTime") == "2026-11-20T09:30:15+00:00"


def test_a_form_filter_keeps_the_file_valid_and_holds_only_those_forms():
    data = written(full_snapshot(), forms=("ae",))

    assert schema_problems(data) == []
    root = parsed(data)
    assert [form.get("OID") for form in root.iter(ODM + "FormDef")] == [
        "F.ae.1",
        "F.ae.2",
        "F.RANDOMISATION",
    ]
    assert {form for _, _, form, _, _ in item_values(root)} == {
        "F.ae.1",
        "F.ae.2",
        "F.RANDOMISATION",
    }


def test_the_same_snapshot_gives_the_same_bytes():
    for audit_trail in (False, True):
        first = written(full_snapshot(), audit_trail=audit_trail)
        assert written(full_snapshot(), audit_trail=audit_trail) == first


def test_a_blinded_file_names_no_arm_anywhere():
    for audit_trail in (False, True):
        data = written(full_snapshot().as_blinded(), audit_trail=audit_trail)
        for word in (b"walking", b"usual_care", b"Usual care", b"RANDOMISATION", b"ARM"):
            assert word not in data
    # Even an unblinded snapshot exported as blinded.
    data = written(full_snapshot(), blinded=True)
    assert b"walking" not in data and b"RANDOMISATION" not in data


def test_an_unblinded_file_holds_each_participants_arm_in_its_own_form():
    root = parsed(written(full_snapshot()))

    arms = [
        (subject, value)
        for subject, _, form, item, value in item_values(root)
        if item.startswith("IT.RANDOMISATION.ARM")
    ]
    assert arms == [("DEMO-NTH-0001", "walking"), ("DEMO-CHH-0001", "usual_care")]
    codelist = root.find(f".//{ODM}CodeList[@OID='CL.ARM']")
    assert [item.get("CodedValue") for item in codelist.iter(ODM + "CodeListItem")] == [
        "walking",
        "usual_care",
    ]


def test_metadata_names_every_event_form_group_item_and_codelist():
    root = parsed(written(full_snapshot()))

    events = {event.get("OID"): event for event in root.iter(ODM + "StudyEventDef")}
    assert (events["SE.baseline"].get("Repeating"), events["SE.baseline"].get("Type")) == (
        "No",
        "Scheduled",
    )
    assert (
        events["SE.adverse_event"].get("Repeating"),
        events["SE.adverse_event"].get("Type"),
    ) == (
        "Yes",
        "Unscheduled",
    )
    groups = {group.get("OID"): group.get("Repeating") for group in root.iter(ODM + "ItemGroupDef")}
    assert groups["IG.vitals.1"] == "No"
    assert groups["IG.ae.1.treatments"] == "Yes"
    items = {item.get("OID"): item for item in root.iter(ODM + "ItemDef")}
    types = {oid.rsplit(".", 1)[1]: item.get("DataType") for oid, item in items.items()}
    assert types["assessed_on"] == "date"
    assert types["measured"] == "integer"
    assert types["measured_at"] == "time"
    assert types["weight"] == "float"
    assert types["sbp"] == "integer"
    assert types["notes"] == "text"
    assert types["symptoms"] == "text"
    assert types["onset"] == "partialDate"
    assert types["started_at"] == "datetime"
    # Descriptive text holds no value: it is no ItemDef.
    assert "IT.vitals.1.instructions" not in items
    weight = items["IT.vitals.1.weight"]
    assert weight.get("SignificantDigits") == "1"
    assert weight.find(f"{ODM}MeasurementUnitRef").get("MeasurementUnitOID") == "MU.kg"
    assert items["IT.vitals.1.notes"].get("Length") == "4000"
    aliases = {
        alias.get("Context"): alias.get("Name")
        for alias in items["IT.vitals.1.assessed_on"].iter(ODM + "Alias")
    }
    assert aliases["CDASH"] == "VSDAT" and aliases["SDTM"] == "VS.VSDTC"
    checks = [
        (check.get("Comparator"), check.get("SoftHard"))
        for check in weight.iter(ODM + "RangeCheck")
    ]
    assert checks == [("GE", "Hard"), ("LE", "Hard"), ("GE", "Soft"), ("LE", "Soft")]
    # A "today" limit is not a fixed value: no RangeCheck.
    assert items["IT.ae.1.onset"].find(f"{ODM}RangeCheck") is None
    codelists = {codelist.get("OID") for codelist in root.iter(ODM + "CodeList")}
    assert {"CL.YES_NO", "CL.sex", "CL.vitals.1.position", "CL.MISSING", "CL.ARM"} <= codelists
    # Items of both forms using the shared codelist refer to the one CodeList.
    assert (
        items["IT.ae.2.sex_of_prescriber"].find(f"{ODM}CodeListRef").get("CodeListOID") == "CL.sex"
    )
    units = {unit.get("OID") for unit in root.iter(ODM + "MeasurementUnit")}
    assert units == {"MU.kg", "MU.mg", "MU.mmHg"}


def test_values_are_written_as_odm_wants_them():
    root = parsed(written(full_snapshot()))
    values = {(subject, event, item): value for subject, event, _, item, value in item_values(root)}

    first = "DEMO-NTH-0001"
    assert values[(first, "SE.baseline#", "IT.vitals.1.measured_at[]")] == "14:30:00"
    assert values[(first, "SE.adverse_event#1", "IT.ae.1.onset[]")] == "2026-03"
    assert values[(first, "SE.adverse_event#2", "IT.ae.2.onset[]")] == "2026"
    assert values[(first, "SE.adverse_event#1", "IT.ae.1.started_at[]")] == "2026-03-04T08:15:00"
    assert values[(first, "SE.adverse_event#1", "IT.ae.1.drug[2]")] == "Ibuprofen"
    assert values[(first, "SE.baseline#", "IT.vitals.1.symptoms[]")] == "DIZZY|OTHER"
    # Line breaks, tabs and markup come back exactly as they were.
    assert values[(first, "SE.baseline#", "IT.vitals.1.notes[]")] == (
        'Line one\nline "two" & <three>\ttabbed'
    )
    # A participant with no entries is still there, at their site.
    subject = root.find(f".//{ODM}SubjectData[@SubjectKey='DEMO-NTH-0002']")
    assert subject.find(f"{ODM}SiteRef").get("LocationOID") == "LOC.NTH"


def test_a_missing_value_is_null_with_its_reason_as_a_flag():
    root = parsed(written(full_snapshot()))

    nulls = [
        (item.get("ItemOID"), item.find(f".//{ODM}FlagValue").text)
        for item in root.iter(ODM + "ItemData")
        if item.get("IsNull") == "Yes"
    ]
    assert nulls == [("IT.vitals.1.weight", "UNK"), ("IT.vitals.1.weight", "ND")]
    assert all(
        item.get("Value") is None for item in root.iter(ODM + "ItemData") if item.get("IsNull")
    )
    flag = root.find(f".//{ODM}FlagValue")
    assert flag.get("CodeListOID") == "CL.MISSING"


def test_the_audit_trail_is_one_audit_record_per_change_in_time_order():
    root = parsed(written(full_snapshot(), audit_trail=True))

    records = [
        (
            item.get("ItemOID"),
            item.get("TransactionType"),
            item.get("Value"),
            item.find(f"{ODM}AuditRecord/{ODM}DateTimeStamp").text,
            item.findtext(f"{ODM}AuditRecord/{ODM}ReasonForChange"),
            item.find(f"{ODM}AuditRecord/{ODM}UserRef").get("UserOID"),
            item.find(f"{ODM}AuditRecord/{ODM}LocationRef").get("LocationOID"),
        )
        for item in root.iter(ODM + "ItemData")
        if item.find(f"{ODM}AuditRecord") is not None
    ]
    assert len(records) == len(CHANGES)
    assert [record[3] for record in records] == sorted(record[3] for record in records)
    assert records[2] == (
        "IT.vitals.1.sbp",
        "Update",
        "120",
        "2026-02-04T11:00:00+00:00",
        "Transcription error",
        "USR.coordinator",
        "LOC.NTH",
    )
    assert records[4][:3] == ("IT.ae.2.drug", "Remove", None)
    assert records[5][-1] == "LOC.CHH"
    users = {user.get("OID"): user.findtext(f"{ODM}FullName") for user in root.iter(ODM + "User")}
    assert users["USR.coordinator2"] == "Chidi <Coordinator>"


def test_signatures_are_on_their_form_data_or_subject_data_with_their_meaning():
    root = parsed(written(full_snapshot(), audit_trail=True))

    definitions = {
        definition.get("OID"): definition.findtext(f"{ODM}Meaning")
        for definition in root.iter(ODM + "SignatureDef")
    }
    assert sorted(definitions.values()) == [
        "I approve this casebook",
        "I confirm these data are accurate",
    ]
    signatures = list(root.iter(ODM + "Signature"))
    assert len(signatures) == len(SIGNATURES)
    placed = [signature.getparent().tag.replace(ODM, "") for signature in signatures]
    assert placed == ["FormData", "FormData", "SubjectData"]
    meanings = [
        definitions[signature.find(f"{ODM}SignatureRef").get("SignatureOID")]
        for signature in signatures
    ]
    assert meanings[2] == "I approve this casebook"
    # The signature a later change invalidated says so.
    note = signatures[1].getparent().find(f"{ODM}Annotation/{ODM}Comment")
    assert "no longer holds" in note.text
    assert signatures[0].getparent().find(f"{ODM}Annotation") is None


def test_the_file_goes_into_a_bundle_under_odm():
    files: dict[str, bytes] = {}

    class Sink:
        def open(self, name: str):
            import contextlib

            @contextlib.contextmanager
            def opened() -> Iterator[io.BytesIO]:
                out = io.BytesIO()
                yield out
                files[name] = out.getvalue()

            return opened()

    result = write_odm_files(
        full_snapshot(), ExportOptions(formats=("odm",), blinded=False), Sink()
    )

    assert list(files) == ["odm/demo.xml"]
    assert files["odm/demo.xml"] == written(full_snapshot())
    assert (result.participants, result.entries, result.values) == (3, 5, 24)


# -- streaming ------------------------------------------------------------------------------


def generated(participants: int) -> RecordSnapshot:
    """A snapshot of ``participants`` x 10 events x 5 forms x 50 items, its records made
    as they are read (like a snapshot streamed from storage)."""
    choices = tuple(Choice(str(code), f"Answer {code}") for code in range(1, 6))
    kinds = ("integer", "decimal", "text", "date", "single_choice")
    forms = [
        FormDefinition(
            f"form_{number}",
            f"Form {number}",
            "1.0",
            "",
            tuple(
                Item(
                    f"item_{index}",
                    f"Item {index}",
                    kinds[index % 5],  # type: ignore[arg-type]
                    choices=choices if kinds[index % 5] == "single_choice" else (),
                )
                for index in range(50)
            ),
        )
        for number in range(5)
    ]
    sample = {
        "integer": "72",
        "decimal": "72.5",
        "text": "A & B",
        "date": "2026-03-12",
        "single_choice": "3",
    }
    info = replace(
        INFO,
        form_versions=tuple(
            FormVersionRecord(form.code, 1, "1.0", form.title, "0" * 64, form.to_json())
            for form in forms
        ),
        events=tuple(
            EventRecord(
                f"event_{event}", f"Event {event}", False, tuple(form.code for form in forms)
            )
            for event in range(10)
        ),
    )

    class Generated(RecordSnapshot):
        def participants(self) -> Iterator[ParticipantRecord]:
            return (
                ParticipantRecord(f"P-{number:05d}", "NTH", "randomised", "1.0", "2026-01-01")
                for number in range(participants)
            )

        def entries(self) -> Iterator[EntryRecord]:
            for number in range(participants):
                for event in range(10):
                    for form in forms:
                        yield EntryRecord(
                            f"P-{number:05d}",
                            f"event_{event}",
                            1,
                            form.code,
                            1,
                            "complete",
                            tuple(ValueRecord(item.code, sample[item.type]) for item in form.items),
                        )

    return Generated(info, (), (), blinded=True)


class _Counting(io.RawIOBase):
    def __init__(self) -> None:
        self.size = 0
        self.writes = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def,override]
        self.size += len(data)
        self.writes += 1
        return len(data)


def peak_memory(participants: int) -> tuple[int, int]:
    out = _Counting()
    tracemalloc.start()
    try:
        result = write_odm(generated(participants), ExportOptions(formats=("odm",)), out)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.values == participants * 10 * 5 * 50
    assert out.writes > 10  # written as it goes, never held whole
    return peak, out.size


def test_memory_stays_flat_as_the_study_grows():
    small_peak, small_size = peak_memory(4)  # 10,000 values
    large_peak, large_size = peak_memory(40)  # 100,000 values

    assert large_size > 8 * small_size
    # Ten times the values, much the same memory: what is held is the metadata and
    # one form entry, not the data.
    assert large_peak < small_peak * 1.5 + 256 * 1024
    assert large_peak < 8 * 1024 * 1024


def test_a_generated_file_is_valid():
    out = io.BytesIO()
    write_odm(generated(1), ExportOptions(formats=("odm",)), out)
    assert schema_problems(out.getvalue()) == []
