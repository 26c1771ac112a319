"""The study's datasets page: its snapshots, taking an interim snapshot, exporting a
snapshot, the export jobs with their progress, and downloading a finished bundle or
its manifest.

Statisticians export any snapshot; data managers take interim snapshots and export
those. A blinded reader never gets an arm: their exports are always blinded, they
are not shown unblinded ones, and a download of one is refused. A snapshot holds
every site's data, so a role held at one site only is refused every page here.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound, HTTPSeeOther
from pyramid.response import Response
from pyramid.view import view_config, view_defaults
from sqlalchemy import select

from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import record_event
from bhp_ctms.db import utcnow
from bhp_ctms.exports.bundles import bundle_name
from bhp_ctms.exports.forms import ExportForm, InterimSnapshotForm
from bhp_ctms.exports.models import DatasetExport, DatasetSnapshot, ExportStatus, SnapshotStatus
from bhp_ctms.exports.resources import SnapshotResource
from bhp_ctms.exports.services import (
    ExportRefused,
    export_options,
    recent_exports,
    record_download,
    request_export,
    study_snapshots,
)
from bhp_ctms.exports.tasks import build_export, take_study_snapshot
from bhp_ctms.permissions import Permissions
from bhp_ctms.randomisation.schemes import sees_arms
from bhp_ctms.storage.models import StoredFile
from bhp_ctms.storage.services import file_storage
from bhp_ctms.studies.services import study_access

# Seconds between reloads of the page while an export or a snapshot is being made.
REFRESH_SECONDS = 3
# A requested interim snapshot not taken after this long is no longer shown as pending.
PENDING_SNAPSHOT = timedelta(hours=2)
PAGE = "exports/datasets.html"


class _DatasetsPage:
    def __init__(self, context: Any, request: Any) -> None:
        self.context = context
        self.request = request
        self.study = context.study
        self.access = study_access(request, self.study.id)
        if self.access is None or not self.access.all_sites:
            # A snapshot holds every site's data.
            raise HTTPForbidden()
        self.sees_arms = sees_arms(self.study, request.memberships)

    def may_export(self, snapshot: DatasetSnapshot) -> bool:
        return bool(
            self.request.has_permission(
                Permissions.DATASETS_EXPORT, SnapshotResource(self.study, snapshot)
            )
        )

    def may_see(self, export: DatasetExport) -> bool:
        return (export.blinded or self.sees_arms) and self.may_export(export.snapshot)

    def visible_exports(self) -> list[DatasetExport]:
        return [e for e in recent_exports(self.request.db, self.study.id) if self.may_see(e)]

    def page(
        self,
        interim: InterimSnapshotForm | None = None,
        failed: ExportForm | None = None,
    ) -> dict[str, Any]:
        db = self.request.db
        snapshots = [s for s in study_snapshots(db, self.study.id) if self.may_export(s)]
        forms = {
            snapshot.id: (
                failed
                if failed is not None and failed.snapshot_id == snapshot.id
                else ExportForm(snapshot_id=snapshot.id, sees_arms=self.sees_arms)
            )
            for snapshot in snapshots
            if snapshot.status == SnapshotStatus.TAKEN
        }
        exports = self.visible_exports()
        can_take_interim = bool(self.request.has_permission(Permissions.DATASETS_INTERIM))
        pending, failures = self.snapshot_requests() if can_take_interim else ([], [])
        busy = bool(pending) or any(not export.status.finished for export in exports)
        if busy:
            # The HTTP form of a meta refresh: the page works without script.
            self.request.response.headers["Refresh"] = str(REFRESH_SECONDS)
        return {
            "study": self.study,
            "access": self.access,
            "snapshots": snapshots,
            "export_forms": forms,
            "exports": exports,
            "interim": interim or InterimSnapshotForm(),
            "can_take_interim": can_take_interim,
            "sees_arms": self.sees_arms,
            "pending_snapshots": pending,
            "failed_snapshots": failures,
            "busy": busy,
            "refresh_seconds": REFRESH_SECONDS,
        }

    def snapshot_requests(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Interim snapshots asked for lately and not yet taken, and those that failed
        (from the audit trail, where each request and failure is recorded)."""
        db = self.request.db
        events = db.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.study_id == self.study.id,
                AuditEvent.entity_type == "dataset_snapshot",
                AuditEvent.action.in_(("dataset_snapshot.requested", "dataset_snapshot.failed")),
                AuditEvent.occurred_at >= utcnow() - PENDING_SNAPSHOT,
            )
            .order_by(AuditEvent.id.desc())
            .limit(50)
        ).all()
        tokens = {event.details.get("token") for event in events} - {None, ""}
        taken = set(
            db.scalars(
                select(DatasetSnapshot.request_token).where(
                    DatasetSnapshot.request_token.in_(tokens)
                )
            )
        )
        errors = {
            event.details.get("token"): event.details.get("error", "")
            for event in events
            if event.action == "dataset_snapshot.failed"
        }
        pending: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for event in events:
            token = event.details.get("token")
            if event.action != "dataset_snapshot.requested" or token in taken:
                continue
            shown = {
                "requested_at": event.occurred_at,
                "by": event.actor_name,
                "description": event.details.get("description", ""),
            }
            if token in errors:
                failures.append({**shown, "error": errors[token]})
            else:
                pending.append(shown)
        return pending, failures

    def to_page(self, message: str) -> HTTPSeeOther:
        self.request.session.flash(message, "success")
        return HTTPSeeOther(self.request.route_path("datasets", code=self.study.code))


@view_defaults(route_name="datasets", renderer=PAGE, permission=Permissions.DATASETS_EXPORT)
class DatasetsViews(_DatasetsPage):
    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page()


@view_defaults(
    route_name="datasets_snapshot", renderer=PAGE, permission=Permissions.DATASETS_INTERIM
)
class InterimSnapshotViews(_DatasetsPage):
    @view_config(request_method="POST")
    def take(self) -> Any:
        """Ask a worker for an interim snapshot (audited as asked for, then as taken)."""
        form = InterimSnapshotForm(self.request.POST)
        if not form.validate():
            self.request.response.status_code = 400
            return self.page(interim=form)
        token = uuid.uuid4().hex
        description = form.description.data or ""
        record_event(
            self.request.db,
            self.request.audit_actor,
            "dataset_snapshot.requested",
            entity_type="dataset_snapshot",
            study_id=self.study.id,
            details={"token": token, "kind": "interim", "description": description},
        )
        self.request.enqueue(
            take_study_snapshot, self.study.id, "interim", description, token=token
        )
        return self.to_page(
            "The interim snapshot is being taken. It appears in the list below when it is ready."
        )


@view_defaults(route_name="datasets_export", renderer=PAGE, permission=Permissions.DATASETS_EXPORT)
class ExportViews(_DatasetsPage):
    @view_config(request_method="POST")
    def export(self) -> Any:
        """Ask a worker for a bundle of one snapshot (``snapshot``: its id)."""
        text = self.request.POST.get("snapshot", "")
        snapshot = self.request.db.get(DatasetSnapshot, int(text)) if text.isdigit() else None
        if snapshot is None or snapshot.study_id != self.study.id:
            raise HTTPNotFound()
        if not self.may_export(snapshot):
            raise HTTPForbidden()
        form = ExportForm(self.request.POST, snapshot_id=snapshot.id, sees_arms=self.sees_arms)
        if not form.validate():
            self.request.response.status_code = 400
            return self.page(failed=form)
        # A blinded reader's form has no "unblinded" box: their bundles are blinded.
        unblinded = "unblinded" in form and bool(form.unblinded.data)
        try:
            options = export_options(
                form.formats.data or (),
                blinded=not unblinded,
                labels=bool(form.labels.data),
                audit_trail=bool(form.audit_trail.data),
            )
            export = request_export(
                self.request.db,
                self.request.audit_actor,
                snapshot,
                options,
                sees_arms=self.sees_arms,
            )
        except ExportRefused as refusal:
            form.add_form_error(str(refusal))
            self.request.response.status_code = 400
            return self.page(failed=form)
        self.request.enqueue(build_export, export.id)
        return self.to_page(
            f"Export #{export.id} of snapshot #{snapshot.id} has started. Its bundle can be "
            "downloaded from this page when it is ready."
        )


@view_defaults(
    route_name="datasets_status", renderer="json", permission=Permissions.DATASETS_EXPORT
)
class ExportStatusViews(_DatasetsPage):
    @view_config(request_method="GET")
    def status(self) -> dict[str, Any]:
        """The export jobs and their progress, as JSON (for scripts)."""
        return {
            "exports": [
                {
                    "id": export.id,
                    "snapshot": export.snapshot_id,
                    "status": export.status.value,
                    "done": export.progress_done,
                    "total": export.progress_total,
                    "percent": export.percent_done,
                    "blinded": export.blinded,
                    "error": export.error,
                    "bundle_sha256": export.bundle_sha256,
                    "download": self.request.route_path(
                        "dataset_bundle", code=self.study.code, _query={"export": export.id}
                    )
                    if export.status == ExportStatus.DONE
                    else None,
                }
                for export in self.visible_exports()
            ]
        }


@view_defaults(request_method="GET", permission=Permissions.DATASETS_EXPORT)
class DownloadViews(_DatasetsPage):
    """A finished bundle, or its manifest (``?export=<id>``); each download is audited."""

    def finished(self) -> DatasetExport:
        export: DatasetExport = self.context.export
        if not export.blinded and not self.sees_arms:
            raise HTTPForbidden()
        if export.status != ExportStatus.DONE or export.bundle_file_id is None:
            raise HTTPNotFound()
        return export

    @view_config(route_name="dataset_bundle")
    def bundle(self) -> Response:
        export = self.finished()
        stored = self.request.db.get(StoredFile, export.bundle_file_id)
        if stored is None:
            raise HTTPNotFound()
        record_download(self.request.db, self.request.audit_actor, export, "bundle")
        snapshot = export.snapshot
        name = bundle_name(self.study.code, snapshot.id, snapshot.interim, export.id)
        response = Response(content_type="application/zip")
        response.app_iter = StreamedFile(self.request, stored.id)
        response.content_length = stored.size
        response.content_disposition = f'attachment; filename="{name}"'
        response.headers["Digest"] = "sha-256=" + base64.b64encode(
            bytes.fromhex(stored.sha256)
        ).decode("ascii")
        return response

    @view_config(route_name="dataset_manifest")
    def manifest(self) -> Response:
        export = self.finished()
        record_download(self.request.db, self.request.audit_actor, export, "manifest")
        response = Response(
            body=export.manifest.encode("utf-8"), content_type="application/json", charset="utf-8"
        )
        response.content_disposition = (
            f'attachment; filename="{self.study.code}-export-{export.id}-manifest.json"'
        )
        return response


class StreamedFile:
    """A stored file's chunks as a WSGI body. The body is read after the request's
    transaction has ended, so it is read with a session of its own, closed when the
    body is."""

    def __init__(self, request: Any, file_id: int) -> None:
        self._factory = request.registry["sqlalchemy.sessionmaker"]
        self._file_id = file_id
        self._session: Any = None

    def __iter__(self) -> Iterator[bytes]:
        self._session = session = self._factory()
        stored = session.get(StoredFile, self._file_id)
        if stored is not None:
            yield from file_storage(session).chunks(session, stored)
        self.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
