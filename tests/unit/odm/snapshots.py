"""Snapshots for the ODM tests: every item type, repeating events and groups, missing
values, arms, signatures and changes, built as records (no database)."""

from __future__ import annotations

from dataclasses import replace

from bhp_ctms.crf.definition.model import (
    Annotations,
    Choice,
    FormDefinition,
    Item,
    ItemGroup,
    Range,
)
from bhp_ctms.exports.records import (
    ArmRecord,
    ChangeRecord,
    EntryRecord,
    EventRecord,
    FormVersionRecord,
    ParticipantRecord,
    ProtocolVersionRecord,
    RecordSnapshot,
    SignatureRecord,
    SiteRecord,
    SnapshotInfo,
    ValueRecord,
)

SEX = (Choice("F", "Female"), Choice("M", "Male"))
SYMPTOMS = (Choice("NONE", "None"), Choice("DIZZY", "Dizzy & faint"), Choice("OTHER", "Other"))

VITALS = FormDefinition(
    code="vitals",
    title="Vital signs",
    version="1.0",
    description="Measured seated <after> 5 minutes.",
    entries=(
        Item(
            "assessed_on",
            "Date of assessment",
            "date",
            required=True,
            annotations=Annotations(cdash="VSDAT", sdtm="VS.VSDTC"),
        ),
        Item("measured", "Were vital signs measured?", "yes_no"),
        Item("measured_at", "Time of measurement", "time"),
        Item(
            "weight",
            "Weight",
            "decimal",
            units="kg",
            precision=1,
            hard_range=Range("20", "300", "Weight must be between 20 and 300 kg."),
            soft_range=Range("40", "160"),
            missing_codes=("not_done", "unknown"),
        ),
        Item("sbp", "Systolic blood pressure", "integer", units="mmHg"),
        Item("bmi", "Body mass index", "calculated", calculation="[weight]", precision=1),
        Item("notes", "Notes", "long_text", max_length=4000),
        Item("monitor_id", "Monitor", "text", max_length=7),
        Item("position", "Position", "single_choice", choices=(Choice("SIT", "Sitting"),)),
        Item("symptoms", "Symptoms", "multiple_choice", choices=SYMPTOMS),
        Item("sex", "Sex", "single_choice", choices=SEX, codelist="sex"),
        Item("instructions", "Measure on the left arm.", "descriptive"),
    ),
)

AE_V1 = FormDefinition(
    code="ae",
    title="Adverse event",
    version="1.0",
    description="",
    entries=(
        Item("term", "Adverse event", "text", required=True),
        Item("onset", "Onset", "date", partial_dates=True, hard_range=Range(maximum="today")),
        Item("started_at", "Started at", "datetime"),
        ItemGroup(
            "treatments",
            "Treatments",
            (
                Item("drug", "Drug", "text"),
                Item("dose", "Dose", "decimal", units="mg"),
                Item(
                    "sex_of_prescriber",
                    "Prescriber's sex",
                    "single_choice",
                    choices=SEX,
                    codelist="sex",
                ),
            ),
            min_rows=1,
        ),
    ),
)
AE_V2 = replace(AE_V1, version="2.0", title="Adverse event (v2)")


def _form(definition: FormDefinition, number: int) -> FormVersionRecord:
    return FormVersionRecord(
        form_code=definition.code,
        number=number,
        label=definition.version,
        title=definition.title,
        sha256=f"{definition.code}{number}".ljust(64, "0"),
        definition=definition.to_json(),
    )


INFO = SnapshotInfo(
    kind="lock",
    study_code="DEMO",
    study_title='A trial of exercise & "talking" <after> surgery',
    blinding="double",
    taken_at="2026-11-20T09:30:15.123456+00:00",
    taken_by="Dara Manager",
    description="Final lock",
    protocol_versions=(
        ProtocolVersionRecord(1, "1.0", "2026-01-05", "a" * 64),
        ProtocolVersionRecord(2, "2.0", "2026-06-01", "b" * 64),
    ),
    form_versions=(_form(VITALS, 1), _form(AE_V1, 1), _form(AE_V2, 2)),
    events=(
        EventRecord("baseline", "Baseline", False, ("vitals",)),
        EventRecord("week_2", "Week 2", False, ("vitals",)),
        EventRecord("adverse_event", "Adverse event", True, ("ae",)),
    ),
    arms=(ArmRecord("walking", "Walking"), ArmRecord("usual_care", "Usual care")),
    sites=(SiteRecord("NTH", "Northern General"), SiteRecord("CHH", "Children's Hospital")),
)

PARTICIPANTS = (
    ParticipantRecord(
        "DEMO-NTH-0001", "NTH", "randomised", "1.0", "2026-02-01", "2026-02-03", "walking"
    ),
    ParticipantRecord("DEMO-NTH-0002", "NTH", "screened", "1.0", "2026-02-02"),
    ParticipantRecord(
        "DEMO-CHH-0001", "CHH", "randomised", "2.0", "2026-07-01", "2026-07-02", "usual_care"
    ),
)

VITALS_VALUES = (
    ValueRecord("assessed_on", "2026-02-03"),
    ValueRecord("measured", "1"),
    ValueRecord("measured_at", "14:30"),
    ValueRecord("weight", None, "UNK"),
    ValueRecord("sbp", "120"),
    ValueRecord("bmi", "24.5"),
    ValueRecord("notes", 'Line one\nline "two" & <three>\ttabbed'),
    ValueRecord("monitor_id", "BP-0042"),
    ValueRecord("position", "SIT"),
    ValueRecord("symptoms", "DIZZY|OTHER"),
    ValueRecord("sex", "F"),
)

ENTRIES = (
    EntryRecord("DEMO-NTH-0001", "baseline", 1, "vitals", 1, "signed", VITALS_VALUES, "2026-02-03"),
    EntryRecord(
        "DEMO-NTH-0001",
        "week_2",
        1,
        "vitals",
        1,
        "complete",
        (ValueRecord("assessed_on", "2026-02-17"), ValueRecord("weight", None, "ND")),
    ),
    EntryRecord(
        "DEMO-NTH-0001",
        "adverse_event",
        1,
        "ae",
        1,
        "in_progress",
        (
            ValueRecord("term", "Headache"),
            ValueRecord("onset", "2026-03-UN"),
            ValueRecord("started_at", "2026-03-04T08:15"),
            ValueRecord("treatments[1].drug", "Paracetamol"),
            ValueRecord("treatments[1].dose", "500"),
            ValueRecord("treatments[2].drug", "Ibuprofen"),
            ValueRecord("treatments[2].sex_of_prescriber", "M"),
        ),
    ),
    EntryRecord(
        "DEMO-NTH-0001",
        "adverse_event",
        2,
        "ae",
        2,
        "complete",
        (ValueRecord("term", "Nausea"), ValueRecord("onset", "2026-UN-UN")),
    ),
    EntryRecord(
        "DEMO-CHH-0001",
        "baseline",
        1,
        "vitals",
        1,
        "complete",
        (ValueRecord("assessed_on", "2026-07-02"), ValueRecord("weight", "71.5")),
    ),
)

SIGNATURES = (
    SignatureRecord(
        "DEMO-NTH-0001",
        "baseline",
        1,
        "vitals",
        "Priya Investigator",
        "site_pi",
        "I confirm these data are accurate",
        "2026-02-05T10:00:00+00:00",
        "c" * 64,
    ),
    SignatureRecord(
        "DEMO-NTH-0001",
        "adverse_event",
        2,
        "ae",
        "Priya Investigator",
        "site_pi",
        "I confirm these data are accurate",
        "2026-04-05T10:00:00+00:00",
        "d" * 64,
        valid=False,
    ),
    SignatureRecord(
        "DEMO-NTH-0001",
        "",
        0,
        "",
        "Priya Investigator",
        "site_pi",
        "I approve this casebook",
        "2026-10-01T10:00:00+00:00",
        "e" * 64,
    ),
)

CHANGES = (
    ChangeRecord(
        1,
        "2026-02-03T10:00:00+00:00",
        "coordinator",
        "Cora Coordinator",
        "site_coordinator",
        "",
        "DEMO-NTH-0001",
        "baseline",
        1,
        "vitals",
        "sbp",
        None,
        "130",
        "insert",
    ),
    ChangeRecord(
        2,
        "2026-02-03T10:00:00+00:00",
        "coordinator",
        "Cora Coordinator",
        "site_coordinator",
        "",
        "DEMO-NTH-0001",
        "baseline",
        1,
        "vitals",
        "measured_at",
        None,
        "14:30",
        "insert",
    ),
    ChangeRecord(
        3,
        "2026-02-04T11:00:00+00:00",
        "coordinator",
        "Cora Coordinator",
        "site_coordinator",
        "Transcription error",
        "DEMO-NTH-0001",
        "baseline",
        1,
        "vitals",
        "sbp",
        "130",
        "120",
        "update",
    ),
    ChangeRecord(
        4,
        "2026-03-05T09:00:00+00:00",
        "pi",
        "Priya Investigator",
        "site_pi",
        "",
        "DEMO-NTH-0001",
        "adverse_event",
        1,
        "ae",
        "treatments[2].drug",
        None,
        "Ibuprofen",
        "insert",
    ),
    ChangeRecord(
        5,
        "2026-03-06T09:00:00+00:00",
        "pi",
        "Priya Investigator",
        "site_pi",
        "Entered on the wrong row",
        "DEMO-NTH-0001",
        "adverse_event",
        1,
        "ae",
        "treatments[3].drug",
        "Aspirin",
        None,
        "remove",
    ),
    ChangeRecord(
        6,
        "2026-07-02T09:00:00+00:00",
        "coordinator2",
        "Chidi <Coordinator>",
        "site_coordinator",
        "",
        "DEMO-CHH-0001",
        "baseline",
        1,
        "vitals",
        "assessed_on",
        None,
        "2026-07-02",
        "insert",
    ),
)


def full_snapshot() -> RecordSnapshot:
    """An unblinded snapshot with everything in it."""
    return RecordSnapshot(INFO, PARTICIPANTS, ENTRIES, SIGNATURES, CHANGES)


def empty_snapshot() -> RecordSnapshot:
    """A study with no forms, events, sites or participants."""
    info = replace(INFO, form_versions=(), events=(), arms=(), sites=(), protocol_versions=())
    return RecordSnapshot(info, (), ())
