"""The datasets pages' context factories and their ACLs.

A snapshot holds every site's data, so only roles held for the whole study (or for
every study) reach these pages: a data manager or statistician granted at one site
does not. Holders of ``datasets:interim`` (data managers) may export interim
snapshots: on an interim snapshot, and on the page listing them, they are granted
``datasets:export`` too; on a lock snapshot they are not.
"""

from __future__ import annotations

from typing import Any

from pyramid.authorization import Allow
from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound

from bhp_ctms.exports.models import DatasetExport, DatasetSnapshot
from bhp_ctms.permissions import (
    MATRIX,
    Permissions,
    global_principal,
    study_principal,
)
from bhp_ctms.studies.models import Study
from bhp_ctms.studies.resources import StudyFactory

DATASET_PERMISSIONS = frozenset({Permissions.DATASETS_EXPORT, Permissions.DATASETS_INTERIM})


def datasets_acl(study_id: int, *, interim: bool) -> list[tuple[str, str, str]]:
    """Who may do what with a study's snapshots (``interim``: with interim ones)."""
    acl: list[tuple[str, str, str]] = []
    for role, permissions in MATRIX.items():
        granted = set(permissions & DATASET_PERMISSIONS)
        if interim and Permissions.DATASETS_INTERIM in granted:
            granted.add(Permissions.DATASETS_EXPORT)
        for permission in sorted(granted):
            acl.append((Allow, global_principal(role), permission))
            acl.append((Allow, study_principal(study_id, role), permission))
    return acl


class DatasetsResource:
    """A study's datasets page."""

    def __init__(self, study: Study) -> None:
        self.study = study

    @property
    def __acl__(self) -> list[tuple[str, str, str]]:
        return datasets_acl(self.study.id, interim=True)


class SnapshotResource:
    """One snapshot: exported by statisticians, and by data managers when interim."""

    def __init__(self, study: Study, snapshot: DatasetSnapshot) -> None:
        self.study = study
        self.snapshot = snapshot

    @property
    def __acl__(self) -> list[tuple[str, str, str]]:
        return datasets_acl(self.study.id, interim=self.snapshot.interim)


class ExportResource(SnapshotResource):
    """One export, with its snapshot's ACL."""

    def __init__(self, study: Study, export: DatasetExport) -> None:
        super().__init__(study, export.snapshot)
        self.export = export


def DatasetsFactory(request: Any) -> DatasetsResource:
    return DatasetsResource(StudyFactory(request).study)


def ExportFactory(request: Any) -> ExportResource:
    """The export ``?export=<id>`` of the study in the path."""
    study = StudyFactory(request).study
    if request.identity is None:
        raise HTTPForbidden()
    text = request.GET.get("export", "")
    export = request.db.get(DatasetExport, int(text)) if text.isdigit() else None
    if export is None or export.study_id != study.id:
        raise HTTPNotFound()
    return ExportResource(study, export)
