"""What a dataset snapshot holds, as the records every export format is written from.

A snapshot (:mod:`bhp_ctms.exports.snapshots`) is a stream of these records, frozen
at a lock or at an interim cut for a data monitoring committee. The writers of each
format (CSV, ODM, SAS transport, Stata, SPSS) read only these records, never the
live tables, so that the same snapshot always gives the same bytes.

Values are the canonical text of :mod:`bhp_ctms.crf.definition.model` (dates
``YYYY-MM-DD``, partial dates ``2024-03-UN``, multiple choices joined by ``|``…).
What a snapshot never holds: participants' direct identifiers and the values of items
marked ``identifier: true``. A blinded view of a snapshot (:meth:`Snapshot.blinded`)
also drops every participant's arm, and the arms of the protocol.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal, Protocol

from bhp_ctms.crf.definition.model import FormDefinition

SnapshotKind = Literal["lock", "interim"]


@dataclass(frozen=True)
class EventRecord:
    """An event of the schedule, in schedule order (the latest protocol version's)."""

    code: str
    name: str
    repeating: bool
    forms: tuple[str, ...]


@dataclass(frozen=True)
class ArmRecord:
    code: str
    name: str


@dataclass(frozen=True)
class ProtocolVersionRecord:
    number: int
    label: str
    effective_on: str
    definition_sha256: str


@dataclass(frozen=True)
class FormVersionRecord:
    """A form version some entry in the snapshot was made on, with its definition."""

    form_code: str
    number: int
    label: str
    title: str
    sha256: str
    definition: dict[str, Any]

    @cached_property
    def form(self) -> FormDefinition:
        return FormDefinition.from_json(self.definition)


@dataclass(frozen=True)
class SiteRecord:
    code: str
    name: str


@dataclass(frozen=True)
class SnapshotInfo:
    """Everything about a snapshot but its participants and data: the study, its
    metadata, and who took the snapshot, when and why."""

    kind: SnapshotKind
    study_code: str
    study_title: str
    blinding: str
    taken_at: str
    taken_by: str
    description: str
    protocol_versions: tuple[ProtocolVersionRecord, ...]
    form_versions: tuple[FormVersionRecord, ...]
    events: tuple[EventRecord, ...]
    arms: tuple[ArmRecord, ...]
    sites: tuple[SiteRecord, ...]
    # The study's audit chain when the snapshot was taken: its events up to and
    # including this sequence are the trail of the data in the snapshot.
    audit_chain: str = ""
    audit_sequence: int = 0
    audit_head_hash: str = ""

    def form_version(self, form_code: str, number: int) -> FormVersionRecord:
        for version in self.form_versions:
            if version.form_code == form_code and version.number == number:
                return version
        raise KeyError(f"{form_code} version {number}")

    def latest_form_versions(self) -> tuple[FormVersionRecord, ...]:
        """The newest version of each form, forms in schedule order of first use."""
        newest: dict[str, FormVersionRecord] = {}
        for version in self.form_versions:
            held = newest.get(version.form_code)
            if held is None or version.number > held.number:
                newest[version.form_code] = version
        order = [code for event in self.events for code in event.forms]
        order += sorted(newest)
        seen: dict[str, None] = dict.fromkeys(code for code in order if code in newest)
        return tuple(newest[code] for code in seen)


@dataclass(frozen=True)
class ParticipantRecord:
    """A participant, by their study ID (never by who they are)."""

    key: str
    site_code: str
    status: str
    protocol_version: str
    registered_on: str
    randomised_on: str | None = None
    # The arm's code; None when not randomised, and always in a blinded snapshot.
    arm: str | None = None


@dataclass(frozen=True)
class ValueRecord:
    """An item's value (``path`` is the item code, or ``group[row].item``), or the
    code of why it is missing (``ND``, ``NA``, ``UNK``)."""

    path: str
    value: str | None
    missing: str | None = None


@dataclass(frozen=True)
class EntryRecord:
    """One form entry with its values, in the order the forms were entered into it."""

    participant: str
    event: str
    instance: int
    form: str
    form_version: int
    status: str
    values: tuple[ValueRecord, ...]
    visit_on: str | None = None

    @property
    def form_key(self) -> str:
        event = self.event if self.instance == 1 else f"{self.event}#{self.instance}"
        return f"{event}/{self.form}"


@dataclass(frozen=True)
class SignatureRecord:
    """A valid or invalidated signature of one entry (``form`` set) or of a whole
    casebook (``form`` empty)."""

    participant: str
    event: str
    instance: int
    form: str
    signer: str
    signer_role: str
    meaning: str
    signed_at: str
    content_sha256: str
    valid: bool = True


@dataclass(frozen=True)
class ChangeRecord:
    """One change to clinical data from the audit trail, for ODM's AuditRecords: an
    item value set, changed or removed (``new`` None), in time order."""

    sequence: int
    occurred_at: str
    user: str
    user_name: str
    role: str
    reason: str
    participant: str
    event: str
    instance: int
    form: str
    path: str
    old: str | None
    new: str | None
    action: Literal["insert", "update", "remove"] = "update"


class Snapshot(Protocol):
    """A snapshot's records, read as many times as wanted in the same order."""

    @property
    def info(self) -> SnapshotInfo:
        """The study, its metadata and the snapshot's provenance."""

    @property
    def blinded(self) -> bool:
        """Whether arms are left out (of participants and of ``info``)."""

    def participants(self) -> Iterator[ParticipantRecord]:
        """Every participant, by study ID."""

    def entries(self) -> Iterator[EntryRecord]:
        """Every form entry: by participant (as :meth:`participants`), then event in
        schedule order, instance, then form in the event's order."""

    def signatures(self) -> Iterator[SignatureRecord]:
        """Every signature, by participant then time signed."""

    def changes(self) -> Iterator[ChangeRecord]:
        """Every change to item values up to the snapshot, in time order."""


@dataclass(frozen=True)
class RecordSnapshot:
    """A snapshot held as lists: for tests, and for small studies read whole."""

    info: SnapshotInfo
    participant_records: tuple[ParticipantRecord, ...]
    entry_records: tuple[EntryRecord, ...]
    signature_records: tuple[SignatureRecord, ...] = ()
    change_records: tuple[ChangeRecord, ...] = ()
    blinded: bool = False

    def participants(self) -> Iterator[ParticipantRecord]:
        if not self.blinded:
            return iter(self.participant_records)
        return (replace(record, arm=None) for record in self.participant_records)

    def entries(self) -> Iterator[EntryRecord]:
        return iter(self.entry_records)

    def signatures(self) -> Iterator[SignatureRecord]:
        return iter(self.signature_records)

    def changes(self) -> Iterator[ChangeRecord]:
        return iter(self.change_records)

    def as_blinded(self) -> RecordSnapshot:
        return replace(self, blinded=True, info=replace(self.info, arms=()))


@dataclass(frozen=True)
class ExportOptions:
    """How a bundle is made from a snapshot: the same options on the same snapshot
    give the same bytes."""

    formats: tuple[str, ...] = ("csv",)
    blinded: bool = True
    # CSV: a label column beside each coded value.
    labels: bool = False
    # ODM: the audit trail as AuditRecords, and the signatures.
    audit_trail: bool = False
    forms: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "formats": list(self.formats),
            "blinded": self.blinded,
            "labels": self.labels,
            "audit_trail": self.audit_trail,
            "forms": list(self.forms),
        }
