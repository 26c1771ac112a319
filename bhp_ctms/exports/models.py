"""Dataset snapshots and the exports made from them.

A snapshot is the study's data frozen at a lock, or at an interim cut for a data
monitoring committee: one canonical stream (:mod:`bhp_ctms.exports.snapshots`) kept
in the file storage, with the SHA-256 of its content. Once taken, what it holds and
where it came from never change (:func:`_refuse_snapshot_changes`); only its status
may, with a reason. An export is one request for a bundle of files made from a
snapshot, worked on by a Celery task that records its progress here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text, event, inspect
from sqlalchemy.orm import Mapped, Session, UOWTransaction, mapped_column, relationship

from bhp_ctms.audit.capture import AuditContext, Audited, AuditError, Change
from bhp_ctms.db import ModelBase, enum_by_value, utcnow

# Imported, not only named: the relationships below need the class mapped first.
from bhp_ctms.storage.models import StoredFile


class SnapshotKind(StrEnum):
    LOCK = "lock"
    INTERIM = "interim"

    @property
    def label(self) -> str:
        return {"lock": "Locked dataset", "interim": "INTERIM"}[self.value]


class SnapshotStatus(StrEnum):
    """A snapshot is taken once; a lock snapshot is superseded when a later lock
    snapshot of the same study is taken (after an unlock and a new lock)."""

    TAKEN = "taken"
    SUPERSEDED = "superseded"

    @property
    def label(self) -> str:
        return self.value.capitalize()


def _snapshot_reason(change: Change) -> str | None:
    if change.kind == "updated" and "status" in change.values:
        return f"changing the status of dataset snapshot #{change.obj.id}"
    return None


class DatasetSnapshot(ModelBase):
    """A study's data frozen at one moment, content-hashed and immutable.

    ``content_sha256`` is the SHA-256 of the uncompressed canonical stream, which
    holds the data and the study's metadata (not who took it, when or why: two
    snapshots of the same data have the same content hash). The stream itself is the
    stored file ``file_id`` (compressed). ``audit_sequence`` and ``audit_head_hash``
    are the study's audit chain when the data were read: the trail of everything in
    the snapshot ends there.
    """

    __tablename__ = "dataset_snapshots"
    __audit__ = Audited(
        "dataset_snapshot",
        context=lambda snapshot: AuditContext(study_id=snapshot.study_id),
        reason_rule=_snapshot_reason,
        describe=lambda snapshot: f"#{snapshot.id} ({snapshot.kind.value})",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    kind: Mapped[SnapshotKind] = mapped_column(enum_by_value(SnapshotKind))
    description: Mapped[str] = mapped_column(Text)
    # The study lock the snapshot was taken at (lock snapshots only): one per lock.
    lock_id: Mapped[int | None] = mapped_column(unique=True)
    # The request that asked for it (an interim snapshot taken by a worker): a task
    # delivered twice takes one snapshot.
    request_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    taken_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The name of whoever took it, as it was then ("ctms command (...)" from the CLI).
    taken_by_name: Mapped[str] = mapped_column(String(200))
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)
    content_sha256: Mapped[str] = mapped_column(String(64))
    file_id: Mapped[int] = mapped_column(ForeignKey("stored_files.id"))
    participant_count: Mapped[int]
    entry_count: Mapped[int]
    value_count: Mapped[int]
    signature_count: Mapped[int]
    audit_chain: Mapped[str] = mapped_column(String(32))
    audit_sequence: Mapped[int]
    audit_head_hash: Mapped[str] = mapped_column(String(64))
    # The signed checkpoint of the chain written when the snapshot was taken.
    checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("audit_checkpoints.id"))
    status: Mapped[SnapshotStatus] = mapped_column(
        enum_by_value(SnapshotStatus), default=SnapshotStatus.TAKEN
    )

    file: Mapped[StoredFile] = relationship()

    @property
    def interim(self) -> bool:
        return self.kind == SnapshotKind.INTERIM

    def __repr__(self) -> str:
        return f"<DatasetSnapshot {self.id} {self.kind.value}>"


# Everything a snapshot holds or says about where it came from: fixed once taken.
IMMUTABLE_SNAPSHOT_COLUMNS = frozenset(
    {
        "study_id",
        "kind",
        "description",
        "lock_id",
        "taken_by_id",
        "taken_by_name",
        "taken_at",
        "content_sha256",
        "file_id",
        "participant_count",
        "entry_count",
        "value_count",
        "signature_count",
        "audit_chain",
        "audit_sequence",
        "audit_head_hash",
        "checkpoint_id",
    }
)


class SnapshotImmutable(AuditError):
    """A change to what a dataset snapshot holds, which never changes once taken."""


@event.listens_for(Session, "before_flush")
def _refuse_snapshot_changes(
    session: Session, flush_context: UOWTransaction, instances: Any
) -> None:
    for obj in session.dirty:
        if not isinstance(obj, DatasetSnapshot):
            continue
        attributes = inspect(obj).attrs
        changed = sorted(
            name for name in IMMUTABLE_SNAPSHOT_COLUMNS if attributes[name].history.has_changes()
        )
        if changed:
            _doom(session)
            raise SnapshotImmutable(
                f"Dataset snapshot #{obj.id} cannot be changed once taken ({', '.join(changed)}):"
                " take a new snapshot instead. Nothing has been saved."
            )
    for obj in session.deleted:
        if isinstance(obj, DatasetSnapshot):
            _doom(session)
            raise SnapshotImmutable(
                f"Dataset snapshot #{obj.id} cannot be deleted. Nothing has been saved."
            )


def _doom(session: Session) -> None:
    request = session.info.get("request")
    manager = getattr(request, "tm", None) if request is not None else None
    if manager is not None:
        manager.doom()


class ExportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return self.value.capitalize()

    @property
    def finished(self) -> bool:
        return self in (ExportStatus.DONE, ExportStatus.FAILED)


class DatasetExport(ModelBase):
    """One bundle requested from a snapshot: its options (``ExportOptions.to_json``),
    its progress while a worker makes it, and the stored bundle when done.

    ``blinded`` repeats the options' flag as a column, so that who may download the
    bundle can be decided without reading the options."""

    __tablename__ = "dataset_exports"
    __audit__ = Audited(
        "dataset_export",
        context=lambda export: AuditContext(study_id=export.study_id),
        # Progress is operational: recorded here for the page, not in the trail.
        # The manifest repeats what the bundle's hash already vouches for.
        exclude=frozenset({"progress_done", "progress_total", "started_at", "manifest"}),
        describe=lambda export: f"#{export.id} of snapshot #{export.snapshot_id}",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("dataset_snapshots.id"), index=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    blinded: Mapped[bool]
    status: Mapped[ExportStatus] = mapped_column(
        enum_by_value(ExportStatus), default=ExportStatus.QUEUED
    )
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    bundle_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id"))
    bundle_sha256: Mapped[str] = mapped_column(String(64), default="")
    bundle_size: Mapped[int] = mapped_column(BigInteger, default=0)
    # The bundle's manifest.json, as it is in the bundle.
    manifest: Mapped[str] = mapped_column(Text, default="")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requested_by_name: Mapped[str] = mapped_column(String(200), default="")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    snapshot: Mapped[DatasetSnapshot] = relationship()
    bundle_file: Mapped[StoredFile | None] = relationship()

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(self.options.get("formats", ()))

    @property
    def percent_done(self) -> int:
        if self.status == ExportStatus.DONE:
            return 100
        if not self.progress_total:
            return 0
        return min(99, self.progress_done * 100 // self.progress_total)

    def __repr__(self) -> str:
        return f"<DatasetExport {self.id} {self.status.value}>"
