"""Taking a dataset snapshot from the live tables, and reading one back.

:func:`take_snapshot` reads a study's participants (never their direct
identifiers), signatures, form entries and item values (never those of items marked
``identifier: true``) with Core selects over server-side cursors, a batch of
participants at a time, and writes them as one canonical stream
(:mod:`bhp_ctms.exports.stream`) straight into the file storage: memory stays flat
whatever the study's size. On PostgreSQL the reads share one REPEATABLE READ
transaction of their own, so the snapshot and the audit chain's head it records are
one consistent moment even while data entry goes on.

:func:`open_snapshot` gives a :class:`~bhp_ctms.exports.records.Snapshot` that reads
the stored stream again each time it is asked for records, and checks the content
hash whenever a read reaches the end.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import JSON, ColumnElement, Connection, Engine, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from bhp_ctms.audit.capture import change_reason, current_actor
from bhp_ctms.audit.chain import chain_head, chain_of
from bhp_ctms.audit.checkpoints import write_study_checkpoint
from bhp_ctms.audit.models import AuditEvent, CheckpointTrigger
from bhp_ctms.crf.definition.model import FormDefinition, ItemGroup
from bhp_ctms.crf.models import FormEntry, FormVersion, ItemValue, Signature
from bhp_ctms.db import utcnow
from bhp_ctms.exports import records
from bhp_ctms.exports.models import DatasetSnapshot, SnapshotKind, SnapshotStatus
from bhp_ctms.exports.records import (
    ArmRecord,
    ChangeRecord,
    EntryRecord,
    EventRecord,
    FormVersionRecord,
    ParticipantRecord,
    ProtocolVersionRecord,
    SignatureRecord,
    SiteRecord,
    SnapshotInfo,
)
from bhp_ctms.exports.stream import (
    MEDIA_TYPE,
    SnapshotCorrupt,
    StreamReader,
    compressed,
    encode_header,
    encode_line,
)
from bhp_ctms.participants.models import Participant, Visit
from bhp_ctms.randomisation.models import Allocation
from bhp_ctms.sites.models import Site
from bhp_ctms.storage.services import file_storage
from bhp_ctms.studies.models import ProtocolVersion, Study

__all__ = [
    "SnapshotCorrupt",
    "SnapshotError",
    "StoredSnapshot",
    "latest_snapshot",
    "open_snapshot",
    "take_snapshot",
]

# A batch of participants is read with one query for their entries and one for their
# values: about this many entries (of ~50 values) at a time...
ENTRIES_PER_BATCH = 2_000
# ...and never more participants than this in one IN list.
PARTICIPANTS_PER_BATCH = 500
# Rows fetched from a server-side cursor at a time.
YIELD_PER = 10_000

# A path whose place in its form is not worked out yet.
_UNKNOWN: Any = object()
_GROUP_PATH = re.compile(r"(?P<group>[^\[\].]+)\[(?P<row>\d+)\]\.(?P<item>.+)")


class SnapshotError(Exception):
    """A snapshot that cannot be taken; the message says why, for people."""


def time_text(moment: datetime) -> str:
    """A UTC timestamp as the records hold it: ``2026-03-12T09:30:00Z``."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}Z"


def _text(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    return value


# -- reading the live tables ----------------------------------------------------------


@contextmanager
def _reading_connection(db: Session) -> Iterator[Connection]:
    """Where the snapshot's data are read: on PostgreSQL, a REPEATABLE READ transaction
    of its own, so every query sees one moment; otherwise (SQLite, whose transactions
    see one moment anyway, or a session bound to a connection, as in tests) the
    session's own connection."""
    bind = db.get_bind()
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
        with bind.connect() as connection:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield connection
        return
    yield db.connection()


@dataclass(frozen=True)
class _FormOrder:
    """Where each value of a form version goes, and which values are left out."""

    definition: FormDefinition
    number: int
    keys: dict[str, tuple[Any, ...] | None]

    def key(self, path: str) -> tuple[Any, ...] | None:
        """The value's place in the form's order; None for an identifier's value."""
        try:
            return self.keys[path]
        except KeyError:
            key = self.keys[path] = _value_key(self.definition, path)
            return key


def _value_key(definition: FormDefinition, path: str) -> tuple[Any, ...] | None:
    match = _GROUP_PATH.fullmatch(path)
    item_code = match["item"] if match else path
    row = int(match["row"]) if match else 0
    entries = definition.entries
    try:
        item = definition.item(item_code)
        group = definition.group_of(item_code)
    except KeyError:
        return (len(entries), 0, 0, path)
    if item.identifier:
        return None
    if isinstance(group, ItemGroup):
        return (entries.index(group), row, group.items.index(item), path)
    return (entries.index(item), 0, 0, path)


class _LiveStudy:
    """A study's metadata, read once; then its records, read in batches."""

    def __init__(self, reader: Connection, study: Study) -> None:
        self.reader = reader
        self.study = study
        versions = reader.execute(
            select(
                ProtocolVersion.id,
                ProtocolVersion.number,
                ProtocolVersion.label,
                ProtocolVersion.effective_on,
                ProtocolVersion.definition_sha256,
                ProtocolVersion.definition,
            )
            .where(ProtocolVersion.study_id == study.id)
            .order_by(ProtocolVersion.number)
        ).all()
        self.protocol_labels = {row.id: row.label for row in versions}
        self.protocol_versions = [
            {
                "number": row.number,
                "label": row.label,
                "effective_on": row.effective_on.isoformat(),
                "definition_sha256": row.definition_sha256,
            }
            for row in versions
        ]
        latest: dict[str, Any] = dict(versions[-1].definition) if versions else {}
        self.events = [
            {
                "code": event["code"],
                "name": event["name"],
                "repeating": bool(event["repeating"]),
                "forms": list(event["forms"]),
            }
            for event in latest.get("events", ())
        ]
        self.arms = [{"code": arm["code"], "name": arm["name"]} for arm in latest.get("arms", ())]
        self.event_order = {event["code"]: index for index, event in enumerate(self.events)}
        self.form_order = {
            (event["code"], form): index
            for event in self.events
            for index, form in enumerate(event["forms"])
        }
        sites = reader.execute(
            select(Site.id, Site.code, Site.name).where(Site.study_id == study.id)
        ).all()
        self.site_codes = {row.id: row.code for row in sites}
        self.sites = [
            {"code": row.code, "name": row.name} for row in sorted(sites, key=lambda s: s.code)
        ]
        self._read_form_versions(latest)
        self._read_participants()
        # Each entry's paths, values and missing codes as three arrays in one order: the
        # aggregates of a group step through its rows together (and the values are put
        # in the form's order afterwards).
        columns = (ItemValue.item_path, ItemValue.value, ItemValue.missing_code)
        self._arrays: list[ColumnElement[Any]]
        if reader.dialect.name == "postgresql":
            # Untyped: psycopg gives lists of text, with nothing left to convert.
            self._arrays = [func.array_agg(column, type_=NullType()) for column in columns]
        else:
            self._arrays = [func.json_group_array(column, type_=JSON) for column in columns]

    def _read_form_versions(self, latest: dict[str, Any]) -> None:
        used = set(
            self.reader.scalars(
                select(FormEntry.form_version_id)
                .join(Participant, Participant.id == FormEntry.participant_id)
                .where(Participant.study_id == self.study.id)
                .distinct()
            )
        )
        listed = {(form["code"], form["sha256"]) for form in latest.get("forms", ())}
        rows = self.reader.execute(
            select(
                FormVersion.id,
                FormVersion.form_code,
                FormVersion.number,
                FormVersion.label,
                FormVersion.title,
                FormVersion.sha256,
                FormVersion.definition,
            ).where(FormVersion.study_id == self.study.id)
        ).all()
        chosen = sorted(
            (row for row in rows if row.id in used or (row.form_code, row.sha256) in listed),
            key=lambda row: (row.form_code, row.number),
        )
        self.form_versions = [
            {
                "form_code": row.form_code,
                "number": row.number,
                "label": row.label,
                "title": row.title,
                "sha256": row.sha256,
                "definition": row.definition,
            }
            for row in chosen
        ]
        self.forms = {
            row.id: _FormOrder(FormDefinition.from_json(row.definition), row.number, {})
            for row in chosen
        }

    def _read_participants(self) -> None:
        study_id = self.study.id
        rows = self.reader.execute(
            select(
                Participant.id,
                Participant.code,
                Participant.site_id,
                Participant.status,
                Participant.protocol_version_id,
                Participant.registered_on,
                Participant.randomised_on,
            ).where(Participant.study_id == study_id)
        ).all()
        # Ordered here rather than by the database, whose collation may differ.
        self.participants = sorted(rows, key=lambda row: row.code)
        arms = self.reader.execute(
            select(Allocation.participant_id, Allocation.arm_code).where(
                Allocation.study_id == study_id, Allocation.invalidated_at.is_(None)
            )
        ).all()
        self.arm_of = {row.participant_id: row.arm_code for row in arms}
        counts = self.reader.execute(
            select(FormEntry.participant_id, func.count(FormEntry.id))
            .join(Participant, Participant.id == FormEntry.participant_id)
            .where(Participant.study_id == study_id)
            .group_by(FormEntry.participant_id)
        ).all()
        self.entry_counts = {row[0]: row[1] for row in counts}

    def header(self) -> dict[str, Any]:
        study = self.study
        return {
            "study": {
                "code": study.code,
                "title": study.title,
                "blinding": _text(study.blinding),
            },
            "protocol_versions": self.protocol_versions,
            "form_versions": self.form_versions,
            "events": self.events,
            "arms": self.arms,
            "sites": self.sites,
        }

    def batches(self) -> Iterator[Sequence[Any]]:
        """The participants in study-ID order, a batch at a time."""
        batch: list[Any] = []
        entries = 0
        for row in self.participants:
            batch.append(row)
            entries += self.entry_counts.get(row.id, 0)
            if entries >= ENTRIES_PER_BATCH or len(batch) >= PARTICIPANTS_PER_BATCH:
                yield batch
                batch, entries = [], 0
        if batch:
            yield batch

    def participant_line(self, row: Any) -> str:
        return encode_line(
            {
                "type": "participant",
                "key": row.code,
                "site": self.site_codes.get(row.site_id, ""),
                "status": _text(row.status),
                "protocol_version": self.protocol_labels.get(row.protocol_version_id, ""),
                "registered_on": _text(row.registered_on),
                "randomised_on": _text(row.randomised_on),
                "arm": self.arm_of.get(row.id),
            }
        )

    def signature_lines(self, batch: Sequence[Any]) -> list[str]:
        ids = [row.id for row in batch]
        rows = self.reader.execute(
            select(
                Signature.participant_id,
                FormEntry.event_code,
                FormEntry.event_instance,
                FormEntry.form_code,
                Signature.signer_name,
                Signature.signer_role,
                Signature.meaning,
                Signature.signed_at,
                Signature.content_sha256,
                Signature.invalidated_at,
            )
            .outerjoin(FormEntry, FormEntry.id == Signature.form_entry_id)
            .where(Signature.participant_id.in_(ids))
            .order_by(Signature.participant_id, Signature.signed_at, Signature.id)
        ).all()
        by_participant: dict[int, list[str]] = {}
        code_of = {row.id: row.code for row in batch}
        for row in rows:
            by_participant.setdefault(row.participant_id, []).append(
                encode_line(
                    {
                        "type": "signature",
                        "participant": code_of[row.participant_id],
                        "event": row.event_code or "",
                        "instance": row.event_instance or 0,
                        "form": row.form_code or "",
                        "signer": row.signer_name,
                        "signer_role": row.signer_role,
                        "meaning": _text(row.meaning),
                        "signed_at": time_text(row.signed_at),
                        "content_sha256": row.content_sha256,
                        "valid": row.invalidated_at is None,
                    }
                )
            )
        return [line for row in batch for line in by_participant.get(row.id, ())]

    def entry_lines(self, batch: Sequence[Any]) -> tuple[list[str], int]:
        """The batch's entry lines, in order, and how many values they hold."""
        ids = [row.id for row in batch]
        entries = self.reader.execute(
            select(
                FormEntry.id,
                FormEntry.participant_id,
                FormEntry.event_code,
                FormEntry.event_instance,
                FormEntry.form_code,
                FormEntry.form_version_id,
                FormEntry.status,
            ).where(FormEntry.participant_id.in_(ids))
        ).all()
        # A row per entry, its values in arrays made by the database: a row per value,
        # and a list per value kept until the batch is written, cost far more (the
        # garbage collector's passes over them alone, 40% of the time).
        statement = (
            select(ItemValue.form_entry_id, *self._arrays)
            .join(FormEntry, FormEntry.id == ItemValue.form_entry_id)
            .where(FormEntry.participant_id.in_(ids))
            .group_by(ItemValue.form_entry_id)
            .execution_options(yield_per=ENTRIES_PER_BATCH)
        )
        values: dict[int, tuple[list[str], list[str | None], list[str | None]]] = {}
        for rows in self.reader.execute(statement).partitions():
            for row in rows:
                values[row[0]] = (row[1], row[2], row[3])
        visits = {
            (row.participant_id, row.event_code, row.instance): row.visit_on
            for row in self.reader.execute(
                select(
                    Visit.participant_id, Visit.event_code, Visit.instance, Visit.visit_on
                ).where(Visit.participant_id.in_(ids))
            )
        }
        events = self.event_order
        forms = self.form_order
        last = len(events)
        by_participant: dict[int, list[Any]] = {}
        for entry in entries:
            by_participant.setdefault(entry.participant_id, []).append(entry)
        lines: list[str] = []
        value_count = 0
        for participant in batch:
            made = by_participant.get(participant.id, [])
            made.sort(
                key=lambda e: (
                    events.get(e.event_code, last),
                    e.event_code,
                    e.event_instance,
                    forms.get((e.event_code, e.form_code), last),
                    e.form_code,
                )
            )
            for entry in made:
                order = self.forms[entry.form_version_id]
                keys = order.keys
                kept = []
                for path, value, missing in zip(*values.pop(entry.id, ((), (), ())), strict=True):
                    key = keys.get(path, _UNKNOWN)
                    if key is _UNKNOWN:
                        key = order.key(path)
                    if key is not None:
                        kept.append((key, path, value, missing))
                # Each path has its own key: what follows it is never compared.
                kept.sort()
                value_count += len(kept)
                visit_on = visits.get((participant.id, entry.event_code, entry.event_instance))
                lines.append(
                    encode_line(
                        {
                            "type": "entry",
                            "participant": participant.code,
                            "event": entry.event_code,
                            "instance": entry.event_instance,
                            "form": entry.form_code,
                            "form_version": order.number,
                            "status": _text(entry.status),
                            "visit_on": _text(visit_on),
                            "values": [[path, value, missing] for _, path, value, missing in kept],
                        }
                    )
                )
        return lines, value_count


@dataclass
class _Counts:
    participants: int = 0
    signatures: int = 0
    entries: int = 0
    values: int = 0


def _canonical_blocks(live: _LiveStudy, counts: _Counts) -> Iterator[bytes]:
    """The canonical stream, in blocks of whole lines."""
    yield encode_header(live.header())
    block = [live.participant_line(row) for row in live.participants]
    counts.participants = len(block)
    yield "".join(block).encode("utf-8")
    for batch in live.batches():
        lines = live.signature_lines(batch)
        counts.signatures += len(lines)
        yield "".join(lines).encode("utf-8")
    for batch in live.batches():
        lines, values = live.entry_lines(batch)
        counts.entries += len(lines)
        counts.values += values
        yield "".join(lines).encode("utf-8")


# -- taking a snapshot -----------------------------------------------------------------


def _secret_key(db: Session) -> str | None:
    request = db.info.get("request")
    registry = getattr(request, "registry", None)
    if registry is None:
        return None
    settings = registry.settings.get("bhp_ctms") if registry.settings else None
    return getattr(settings, "secret_key", None) or None


def take_snapshot(
    db: Session,
    study: Study,
    *,
    kind: records.SnapshotKind,
    description: str,
    lock_id: int | None = None,
    secret_key: str | None = None,
    request_token: str | None = None,
) -> DatasetSnapshot:
    """Freeze the study's data now as a content-hashed, immutable snapshot.

    Taken by the session's acting user (the audit actor). The study's audit chain is
    signed at the same time (a checkpoint with the lock or export trigger) when the
    deployment's secret key is known (``secret_key``, or the session's application).
    A new lock snapshot supersedes the study's earlier ones. ``request_token`` names
    the request a worker takes it for, so that a request is taken once.
    """
    description = description.strip()
    if not description:
        raise SnapshotError(
            "Give a description of the snapshot (what it is for): nothing was saved"
        )
    snapshot_kind = SnapshotKind(kind)
    actor = current_actor(db)
    taken_at = utcnow().replace(microsecond=0)
    counts = _Counts()
    digest = hashlib.sha256()
    with _reading_connection(db) as reader:
        chain = chain_of(study.id)
        sequence, head_hash = chain_head(reader, chain)
        live = _LiveStudy(reader, study)
        name = f"{study.code}-{snapshot_kind.value}-{taken_at:%Y%m%dT%H%M%SZ}.jsonl.z"
        stored = file_storage(db).store(
            db, name, MEDIA_TYPE, compressed(_canonical_blocks(live, counts), digest)
        )
    key = secret_key or _secret_key(db)
    checkpoint = None
    if key:
        trigger = (
            CheckpointTrigger.LOCK
            if snapshot_kind == SnapshotKind.LOCK
            else CheckpointTrigger.EXPORT
        )
        checkpoint = write_study_checkpoint(db, key, study.id, trigger)
    if snapshot_kind == SnapshotKind.LOCK:
        _supersede_lock_snapshots(db, study)
    snapshot = DatasetSnapshot(
        study_id=study.id,
        kind=snapshot_kind,
        description=description,
        lock_id=lock_id,
        request_token=request_token,
        taken_by_id=actor.user_id,
        taken_by_name=actor.name,
        taken_at=taken_at,
        content_sha256=digest.hexdigest(),
        file_id=stored.id,
        participant_count=counts.participants,
        entry_count=counts.entries,
        value_count=counts.values,
        signature_count=counts.signatures,
        audit_chain=chain,
        audit_sequence=sequence,
        audit_head_hash=head_hash,
        checkpoint_id=checkpoint.id if checkpoint is not None else None,
        status=SnapshotStatus.TAKEN,
    )
    db.add(snapshot)
    db.flush()
    return snapshot


def _supersede_lock_snapshots(db: Session, study: Study) -> None:
    earlier = db.scalars(
        select(DatasetSnapshot).where(
            DatasetSnapshot.study_id == study.id,
            DatasetSnapshot.kind == SnapshotKind.LOCK,
            DatasetSnapshot.status == SnapshotStatus.TAKEN,
        )
    ).all()
    if not earlier:
        return
    with change_reason(db, "a new lock snapshot of the study was taken"):
        for snapshot in earlier:
            snapshot.status = SnapshotStatus.SUPERSEDED


def latest_snapshot(db: Session, study_id: int) -> DatasetSnapshot | None:
    """The snapshot an export uses by default: the current lock snapshot, or else the
    newest interim one."""
    return db.scalars(
        select(DatasetSnapshot)
        .where(
            DatasetSnapshot.study_id == study_id,
            DatasetSnapshot.status == SnapshotStatus.TAKEN,
        )
        .order_by(
            (DatasetSnapshot.kind == SnapshotKind.LOCK).desc(),
            DatasetSnapshot.taken_at.desc(),
            DatasetSnapshot.id.desc(),
        )
        .limit(1)
    ).first()


# -- reading a snapshot ------------------------------------------------------------------


class StoredSnapshot:
    """A stored snapshot's records (:class:`~bhp_ctms.exports.records.Snapshot`).

    Each call reads the stream afresh from the storage; ``entries()`` reads it to the
    end and checks the content hash (:class:`SnapshotCorrupt` if it differs). Blinded,
    every participant's arm and the protocol's arms are left out.
    """

    def __init__(self, db: Session, snapshot: DatasetSnapshot, *, blinded: bool) -> None:
        self._db = db
        self.snapshot_id = snapshot.id
        self.study_id = snapshot.study_id
        self.content_sha256 = snapshot.content_sha256
        self.entry_count = snapshot.entry_count
        self.blinded = blinded
        stored = snapshot.file
        storage = file_storage(db)
        self._stream = StreamReader(lambda: storage.chunks(db, stored), snapshot.content_sha256)
        header = self._stream.header()
        study = header["study"]
        self.info = SnapshotInfo(
            kind=snapshot.kind.value,  # type: ignore[arg-type]
            study_code=study["code"],
            study_title=study["title"],
            blinding=study["blinding"],
            taken_at=time_text(snapshot.taken_at),
            taken_by=snapshot.taken_by_name,
            description=snapshot.description,
            protocol_versions=tuple(
                ProtocolVersionRecord(**version) for version in header["protocol_versions"]
            ),
            form_versions=tuple(
                FormVersionRecord(**version) for version in header["form_versions"]
            ),
            events=tuple(
                EventRecord(
                    code=event["code"],
                    name=event["name"],
                    repeating=event["repeating"],
                    forms=tuple(event["forms"]),
                )
                for event in header["events"]
            ),
            arms=() if blinded else tuple(ArmRecord(**arm) for arm in header["arms"]),
            sites=tuple(SiteRecord(**site) for site in header["sites"]),
            audit_chain=snapshot.audit_chain,
            audit_sequence=snapshot.audit_sequence,
            audit_head_hash=snapshot.audit_head_hash,
        )

    def participants(self) -> Iterator[ParticipantRecord]:
        return self._stream.participants(blinded=self.blinded)

    def entries(self) -> Iterator[EntryRecord]:
        return self._stream.entries()

    def signatures(self) -> Iterator[SignatureRecord]:
        return self._stream.signatures()

    def changes(self) -> Iterator[ChangeRecord]:
        return _changes(self._db, self.study_id, self.info)

    def verify(self) -> None:
        """Read the whole stream and check its content hash."""
        for _ in self._stream.lines():
            pass


def open_snapshot(db: Session, snapshot: DatasetSnapshot, *, blinded: bool) -> StoredSnapshot:
    """The snapshot's records, read from storage as they are needed."""
    return StoredSnapshot(db, snapshot, blinded=blinded)


# -- the audit trail of the snapshot's values ---------------------------------------------


def _identifier_items(info: SnapshotInfo) -> dict[str, frozenset[str]]:
    """Per form, the codes of items marked as identifiers in any of its versions."""
    found: dict[str, set[str]] = {}
    for version in info.form_versions:
        codes = found.setdefault(version.form_code, set())
        codes.update(item.code for item in version.form.items if item.identifier)
    return {form: frozenset(codes) for form, codes in found.items()}


def _form_key(key: str) -> tuple[str, int, str]:
    """``event#2/form`` as (event, instance, form)."""
    event, _, form = key.partition("/")
    event, _, instance = event.partition("#")
    return event, int(instance) if instance.isdigit() else 1, form


def _loaded(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _changes(db: Session, study_id: int, info: SnapshotInfo) -> Iterator[ChangeRecord]:
    """Every change to an item value in the study's audit chain up to the snapshot's
    place in it, in chain order (time order). Values of identifier items are left out,
    as are changes of a missing-data code alone."""
    identifiers = _identifier_items(info)
    codes = {
        row.id: row.code
        for row in db.execute(
            select(Participant.id, Participant.code).where(Participant.study_id == study_id)
        )
    }
    statement = (
        select(
            AuditEvent.sequence,
            AuditEvent.occurred_at,
            AuditEvent.action,
            AuditEvent.actor_id,
            AuditEvent.actor_name,
            AuditEvent.actor_role,
            AuditEvent.reason,
            AuditEvent.participant_id,
            AuditEvent.form,
            AuditEvent.field,
            AuditEvent.old_value,
            AuditEvent.new_value,
            AuditEvent.details_json,
        )
        .where(
            AuditEvent.chain == info.audit_chain,
            AuditEvent.sequence <= info.audit_sequence,
            AuditEvent.entity_type == "item_value",
            or_(AuditEvent.field == "value", AuditEvent.action == "item_value.deleted"),
        )
        .order_by(AuditEvent.sequence)
        .execution_options(yield_per=YIELD_PER)
    )
    for row in db.execute(statement):
        event, instance, form = _form_key(row.form)
        path = json.loads(row.details_json).get("item", "")
        match = _GROUP_PATH.fullmatch(path)
        if (match["item"] if match else path) in identifiers.get(form, ()):
            continue
        if row.action == "item_value.deleted":
            deleted = _loaded(row.old_value) or {}
            old, new, action = deleted.get("value"), None, "remove"
            if old is None:
                continue
        else:
            old, new = _loaded(row.old_value), _loaded(row.new_value)
            action = "insert" if row.action == "item_value.created" else "update"
            if new is None and old is not None:
                action = "remove"
        yield ChangeRecord(
            sequence=row.sequence,
            occurred_at=time_text(row.occurred_at),
            user="" if row.actor_id is None else str(row.actor_id),
            user_name=row.actor_name,
            role=row.actor_role,
            reason=row.reason,
            participant=codes.get(row.participant_id, ""),
            event=event,
            instance=instance,
            form=form,
            path=path,
            old=None if old is None else str(old),
            new=None if new is None else str(new),
            action=action,  # type: ignore[arg-type]
        )
