"""The exports' Celery tasks: making a bundle, and taking a snapshot (an interim one
asked for on the datasets page, or the lock snapshot when a study is locked).

Both are idempotent under redelivery: a bundle already made, a lock already
snapshotted or an interim request already taken is left alone.

While a bundle is made its progress is written by a short transaction of its own
(another session from the application's session maker), committed at once so the
page shows it; the task's own transaction only reads until the bundle is written,
then ends, and a fresh one stores the bundle and marks the export done. So a
long export holds no lock that the progress writes, or anyone else, would wait for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bhp_ctms.audit.capture import use_actor
from bhp_ctms.audit.services import record_event
from bhp_ctms.db import utcnow
from bhp_ctms.exports.bundles import BundleError
from bhp_ctms.exports.models import DatasetExport, DatasetSnapshot, ExportStatus
from bhp_ctms.exports.services import options_from_json, spooled_bundle, store_bundle
from bhp_ctms.exports.snapshots import SnapshotError, take_snapshot
from bhp_ctms.exports.stream import SnapshotCorrupt
from bhp_ctms.storage.services import StoredFileCorrupt
from bhp_ctms.studies.models import Study
from bhp_ctms.tasks import is_transient_error, task

log = logging.getLogger(__name__)

# Progress is written at most this often (seconds), and once at the end.
PROGRESS_INTERVAL = 2.0
# Errors whose message is written for people already.
_EXPLAINED = (BundleError, SnapshotCorrupt, SnapshotError, StoredFileCorrupt)


def _settings(request: Any) -> Any:
    return request.registry.settings["bhp_ctms"]


def _record(request: Any, export_id: int, **values: Any) -> None:
    """Write to the export in a short transaction of its own, committed at once."""
    session: Session = request.registry["sqlalchemy.sessionmaker"]()
    try:
        use_actor(session, request.audit_actor)
        export = session.get(DatasetExport, export_id)
        if export is not None:
            for name, value in values.items():
                setattr(export, name, value)
            session.commit()
    finally:
        session.close()


def _progress_recorder(request: Any, export_id: int) -> Callable[[int, int], None]:
    last = 0.0

    def record(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done < total and now - last < PROGRESS_INTERVAL:
            return
        last = now
        _record(request, export_id, progress_done=done, progress_total=total)

    return record


def failure_message(error: BaseException, what: str = "The export could not be made") -> str:
    if isinstance(error, _EXPLAINED):
        return f"{what}: {error}"
    return f"{what}: {type(error).__name__}: {error}"


@task()
def build_export(request: Any, export_id: int) -> str | None:
    """Make the bundle of a requested export; returns the export's status.

    Idempotent: an export already done (or failed) is left as it is; one left
    running by a worker that died is made again from the start (its bundle is kept
    only when it is finished, with the export marked done in the same transaction).
    A transient database error is retried; any other error fails the export with a
    message the page shows.
    """
    db = request.db
    export = db.get(DatasetExport, export_id)
    if export is None:
        log.warning("dataset export %s does not exist", export_id)
        return None
    if export.status.finished:
        return str(export.status)
    snapshot = export.snapshot
    options = options_from_json(export.options)
    total = snapshot.entry_count * len(options.formats)
    _record(
        request,
        export_id,
        status=ExportStatus.RUNNING,
        started_at=utcnow(),
        progress_done=0,
        progress_total=total,
        error="",
    )
    try:
        built = spooled_bundle(
            db, snapshot, options, progress=_progress_recorder(request, export_id)
        )
    except Exception as error:
        if is_transient_error(error):
            raise
        log.exception("dataset export %s could not be made", export_id)
        return _fail(request, export_id, failure_message(error))
    with built.file:
        # The reading transaction ends here; the bundle is kept by a new one.
        request.tm.commit()
        request.tm.begin()
        export = db.get(DatasetExport, export_id)
        if export is None or export.status.finished:
            return None if export is None else str(export.status)
        try:
            store_bundle(db, export, built)
        except BundleError as error:
            request.tm.abort()
            request.tm.begin()
            return _fail(request, export_id, failure_message(error))
    return str(ExportStatus.DONE)


def _fail(request: Any, export_id: int, message: str) -> str:
    # The failed work's transaction may be unusable (PostgreSQL aborts it on an error).
    request.tm.abort()
    request.tm.begin()
    export = request.db.get(DatasetExport, export_id)
    if export is not None:
        export.status = ExportStatus.FAILED
        export.error = message[:2000]
        export.finished_at = utcnow()
    return str(ExportStatus.FAILED)


@task()
def take_study_snapshot(
    request: Any,
    study_id: int,
    kind: str,
    description: str,
    lock_id: int | None = None,
    token: str | None = None,
) -> int | None:
    """Take a snapshot of the study (``kind`` lock, at lock ``lock_id``, or interim,
    for the request ``token``); returns its id.

    Idempotent: the lock's snapshot, or the request's, is taken once. An interim
    snapshot that cannot be taken is recorded in the audit trail with the reason
    (the datasets page shows it); a lock snapshot's failure is raised (and logged)
    so that the worker retries it.
    """
    db = request.db
    existing = None
    if lock_id is not None:
        existing = db.scalar(select(DatasetSnapshot.id).where(DatasetSnapshot.lock_id == lock_id))
    elif token:
        existing = db.scalar(
            select(DatasetSnapshot.id).where(DatasetSnapshot.request_token == token)
        )
    if existing is not None:
        return int(existing)
    study = db.get(Study, study_id)
    if study is None:
        log.warning("study %s does not exist: no snapshot taken", study_id)
        return None
    try:
        snapshot = take_snapshot(
            db,
            study,
            kind=kind,  # type: ignore[arg-type]
            description=description,
            lock_id=lock_id,
            secret_key=_settings(request).secret_key,
            request_token=token,
        )
    except Exception as error:
        if is_transient_error(error) or lock_id is not None:
            raise
        log.exception("the snapshot of study %s could not be taken", study_id)
        request.tm.abort()
        request.tm.begin()
        record_event(
            request.db,
            request.audit_actor,
            "dataset_snapshot.failed",
            entity_type="dataset_snapshot",
            study_id=study_id,
            details={
                "token": token or "",
                "error": failure_message(error, "The snapshot could not be taken")[:500],
            },
        )
        return None
    return snapshot.id


def enqueue_lock_snapshot(event: Any) -> None:
    """A study was locked: take its lock snapshot once the lock has committed."""
    lock = event.lock
    event.request.enqueue(
        take_study_snapshot,
        lock.study_id,
        "lock",
        f"Locked dataset (lock #{lock.id})",
        lock_id=lock.id,
    )


def includeme(config: Any) -> None:
    try:
        from bhp_ctms.locks.events import StudyLocked
    except ImportError:  # pragma: no cover - a deployment without locks
        log.warning("bhp_ctms.locks is not installed: study locks take no snapshot")
        return
    config.add_subscriber(enqueue_lock_snapshot, StudyLocked)
