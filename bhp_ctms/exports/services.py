"""Exports: asking for a bundle of a snapshot, making it, and who may have which.

The pages and the command line ask through here; a worker makes the bundle
(:func:`build_bundle`, run by :func:`bhp_ctms.exports.tasks.build_export`).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from bhp_ctms.audit.services import AuditActor, record_event
from bhp_ctms.db import utcnow
from bhp_ctms.exports.bundles import (
    Bundle,
    BundleError,
    bundle_name,
    choose_formats,
    manifest_text,
    write_bundle,
)
from bhp_ctms.exports.models import (
    DatasetExport,
    DatasetSnapshot,
    ExportStatus,
    SnapshotStatus,
)
from bhp_ctms.exports.records import ExportOptions
from bhp_ctms.exports.snapshots import open_snapshot
from bhp_ctms.storage.services import CHUNK_SIZE, file_storage
from bhp_ctms.studies.models import Study

ZIP_MEDIA_TYPE = "application/zip"


class ExportRefused(Exception):
    """An export that may not be made, and why (for people)."""


def export_options(
    formats: Iterable[str],
    *,
    blinded: bool,
    labels: bool = False,
    audit_trail: bool = False,
    forms: Iterable[str] = (),
) -> ExportOptions:
    """Options with the formats checked and put in writing order."""
    try:
        chosen = choose_formats(list(formats))
    except BundleError as error:
        raise ExportRefused(str(error)) from None
    return ExportOptions(
        formats=chosen,
        blinded=blinded,
        labels=labels,
        audit_trail=audit_trail,
        forms=tuple(sorted(set(forms))),
    )


def options_from_json(data: dict[str, Any]) -> ExportOptions:
    return ExportOptions(
        formats=tuple(data.get("formats", ())),
        blinded=bool(data.get("blinded", True)),
        labels=bool(data.get("labels", False)),
        audit_trail=bool(data.get("audit_trail", False)),
        forms=tuple(data.get("forms", ())),
    )


def request_export(
    db: Session,
    actor: AuditActor,
    snapshot: DatasetSnapshot,
    options: ExportOptions,
    *,
    sees_arms: bool,
) -> DatasetExport:
    """Record a request for a bundle (the caller enqueues the task that makes it).

    An unblinded bundle is refused to anyone who may not see arms.
    """
    if not options.blinded and not sees_arms:
        raise ExportRefused(
            "Your role is blinded: you can export only blinded bundles, without any arm"
        )
    if snapshot.status != SnapshotStatus.TAKEN:
        raise ExportRefused(
            f"Snapshot #{snapshot.id} has been superseded by a later lock snapshot: export that one"
        )
    export = DatasetExport(
        study_id=snapshot.study_id,
        snapshot_id=snapshot.id,
        options=options.to_json(),
        blinded=options.blinded,
        status=ExportStatus.QUEUED,
        requested_by_id=actor.user_id,
        requested_by_name=actor.name,
        requested_at=utcnow(),
    )
    db.add(export)
    db.flush()
    return export


@dataclass(frozen=True)
class BuiltBundle:
    """A bundle written to a temporary file, ready to store."""

    bundle: Bundle
    file: IO[bytes]
    sha256: str
    size: int
    # Entries read to make it (each format reads the snapshot's entries).
    entries_read: int


def build_bundle(
    db: Session,
    snapshot: DatasetSnapshot,
    options: ExportOptions,
    out: BinaryIO,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Bundle:
    """Write the bundle of a stored snapshot to ``out``."""
    opened = open_snapshot(db, snapshot, blinded=options.blinded)
    return write_bundle(opened, options, out, progress=progress)


def spooled_bundle(
    db: Session,
    snapshot: DatasetSnapshot,
    options: ExportOptions,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> BuiltBundle:
    """The bundle written to a temporary file (closed, and removed, by the caller)."""
    spooled = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, open
    try:
        bundle = build_bundle(db, snapshot, options, cast(BinaryIO, spooled), progress=progress)
        spooled.seek(0)
        digest = hashlib.sha256()
        size = 0
        for piece in iter(lambda: spooled.read(CHUNK_SIZE), b""):
            digest.update(piece)
            size += len(piece)
        spooled.seek(0)
    except BaseException:
        spooled.close()
        raise
    return BuiltBundle(bundle, spooled, digest.hexdigest(), size, bundle.entries_read)


def store_bundle(db: Session, export: DatasetExport, built: BuiltBundle) -> DatasetExport:
    """Keep a made bundle and mark its export done (audited)."""
    snapshot = export.snapshot
    study = db.get(Study, export.study_id)
    name = bundle_name(study.code if study else "study", snapshot.id, snapshot.interim, export.id)

    def pieces() -> Iterator[bytes]:
        built.file.seek(0)
        yield from iter(lambda: built.file.read(CHUNK_SIZE), b"")

    stored = file_storage(db).store(db, name, ZIP_MEDIA_TYPE, pieces())
    if stored.sha256 != built.sha256:
        raise BundleError("the bundle changed while it was being stored: nothing was kept")
    export.bundle_file_id = stored.id
    export.bundle_sha256 = stored.sha256
    export.bundle_size = stored.size
    export.manifest = manifest_text(built.bundle.manifest)
    export.status = ExportStatus.DONE
    export.error = ""
    export.finished_at = utcnow()
    export.progress_total = export.progress_done = built.entries_read
    db.flush()
    return export


def recent_exports(db: Session, study_id: int, limit: int = 50) -> list[DatasetExport]:
    return list(
        db.scalars(
            select(DatasetExport)
            .where(DatasetExport.study_id == study_id)
            .order_by(DatasetExport.requested_at.desc(), DatasetExport.id.desc())
            .limit(limit)
        )
    )


def study_snapshots(db: Session, study_id: int) -> list[DatasetSnapshot]:
    return list(
        db.scalars(
            select(DatasetSnapshot)
            .where(DatasetSnapshot.study_id == study_id)
            .order_by(DatasetSnapshot.taken_at.desc(), DatasetSnapshot.id.desc())
        )
    )


def record_download(db: Session, actor: AuditActor, export: DatasetExport, what: str) -> None:
    """The audit event of a bundle (``what``: bundle) or manifest downloaded."""
    record_event(
        db,
        actor,
        f"dataset_export.{what}_downloaded",
        entity_type="dataset_export",
        entity_id=export.id,
        study_id=export.study_id,
        details={
            "snapshot": export.snapshot_id,
            "bundle_sha256": export.bundle_sha256,
            "blinded": export.blinded,
        },
    )
