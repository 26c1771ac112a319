"""Exports through the datasets page, its worker tasks and ``ctms export``: who may
take and export which snapshot, blinded or not; bundles made twice are the same
bytes and their manifests verify; downloads are audited; progress and failures are
shown. On SQLite and PostgreSQL.

Tasks run eagerly once the request that enqueued them has committed.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bhp_ctms.audit.capture import change_reason, use_actor
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.audit.verify import verify_audit_trail
from bhp_ctms.crf.models import FormEntry, FormVersion, ItemValue
from bhp_ctms.db import create_database_engine
from bhp_ctms.exports.bundles import MANIFEST
from bhp_ctms.exports.models import DatasetExport, DatasetSnapshot, ExportStatus, SnapshotKind
from bhp_ctms.exports.tasks import build_export
from bhp_ctms.locks.models import Lock
from bhp_ctms.participants.models import Participant
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site
from bhp_ctms.storage.models import StoredFile, StoredFileChunk
from bhp_ctms.studies.services import find_study, protocol_versions
from tests.conftest import TEST_SECRET_KEY
from tests.databases import BACKENDS, throwaway_database
from tests.factories import PASSWORD
from tests.functional.helpers import csrf_token, form_posting_to, login
from tests.functional.test_participant_registration import flash, shown, staff
from tests.functional.test_snapshots import SECRET_INITIALS, snapshot_trial, take

DATASETS = "/studies/DEMO/datasets"
ARMS = (b"usual_care", b"Daily walking programme", b"Usual care")
# The format boxes, in the page's order.
FORMAT_BOXES = ("csv", "dta", "odm", "sav", "xpt")


def login_as(app, username: str) -> None:
    app.reset()
    login(app, username)


@pytest.fixture
def setup(db_session):
    setup = snapshot_trial(db_session)
    study = setup.study
    staff("dara", Role.DATA_MANAGER, study=study)
    staff("sam", Role.STATISTICIAN_BLINDED, study=study)
    staff("una", Role.STATISTICIAN_UNBLINDED, study=study)
    staff("cora", Role.SITE_COORDINATOR, setup.trial.site)
    staff("site_dm", Role.DATA_MANAGER, setup.trial.site)
    return setup


def export_form(page, snapshot_id: int):
    """The export form of one snapshot (the page has one for each)."""
    for form in page.forms.values():
        if form.action == f"{DATASETS}/exports" and form["snapshot"].value == str(snapshot_id):
            return form
    raise AssertionError(f"no export form for snapshot {snapshot_id}")


def ask_for_export(app, snapshot_id: int, *formats: str, unblinded: bool = False, **ticks):
    form = export_form(app.get(DATASETS), snapshot_id)
    prefix = f"snapshot-{snapshot_id}-"
    for name in formats:
        form.get(prefix + "formats", index=FORMAT_BOXES.index(name)).checked = True
    if unblinded:
        form[prefix + "unblinded"] = True
    for name, ticked in ticks.items():
        form[prefix + name] = ticked
    return form.submit()


def latest_export(db_session) -> DatasetExport:
    return db_session.scalars(select(DatasetExport).order_by(DatasetExport.id.desc())).first()


def bundle_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def assert_manifest_verifies(data: bytes) -> dict:
    files = bundle_members(data)
    manifest = json.loads(files.pop(MANIFEST))
    assert sorted(files) == [entry["name"] for entry in manifest["files"]]
    for entry in manifest["files"]:
        assert hashlib.sha256(files[entry["name"]]).hexdigest() == entry["sha256"]
        assert len(files[entry["name"]]) == entry["size"]
    return manifest


def events(db_session, action: str) -> list[AuditEvent]:
    return list(
        db_session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )
    )


# -- the data manager: interim snapshots ----------------------------------------------------


def test_a_data_manager_takes_an_interim_snapshot_and_exports_it(app, db_session, setup):
    login_as(app, "dara")
    study_page = app.get("/studies/DEMO/")
    assert shown(study_page, "datasets-link") == "Dataset snapshots and exports"
    page = app.get(DATASETS)
    assert "no-snapshots" in page.text
    form = form_posting_to(page, f"{DATASETS}/snapshots")
    form["description"] = ""
    refused = form.submit(status=400)
    assert "Enter what the interim snapshot is for" in refused.text
    form = form_posting_to(refused, f"{DATASETS}/snapshots")
    form["description"] = "Data monitoring committee, 12 Mar 2026"
    page = form.submit().follow()
    assert "The interim snapshot is being taken" in flash(page)
    snapshot = db_session.scalars(select(DatasetSnapshot)).one()
    assert snapshot.kind == SnapshotKind.INTERIM
    assert snapshot.taken_by_name == "Dara"
    assert [e.details["token"] for e in events(db_session, "dataset_snapshot.requested")] == [
        snapshot.request_token
    ]
    card = shown(page, f"snapshot-{snapshot.id}")
    assert "INTERIM" in card
    assert snapshot.content_sha256 in card
    assert "3 participants, 5 forms" in card
    assert "snapshot-pending" not in page.text

    # A data manager's role is blinded: the form offers no unblinded bundle.
    assert f"snapshot-{snapshot.id}-unblinded" not in page.text
    page = ask_for_export(app, snapshot.id, "csv").follow()
    export = latest_export(db_session)
    assert f"Export #{export.id} of snapshot #{snapshot.id} has started" in flash(page)
    assert (export.status, export.blinded, export.formats) == (ExportStatus.DONE, True, ("csv",))
    assert export.progress_done == export.progress_total == snapshot.entry_count
    row = shown(page, f"export-{export.id}")
    assert "Done" in row and "INTERIM" in row and export.bundle_sha256 in row

    bundle = app.get(f"{DATASETS}/bundle.zip", {"export": export.id})
    assert bundle.content_type == "application/zip"
    assert hashlib.sha256(bundle.body).hexdigest() == export.bundle_sha256
    manifest = assert_manifest_verifies(bundle.body)
    assert manifest["kind"] == "INTERIM"
    assert manifest["snapshot"]["content_sha256"] == snapshot.content_sha256
    assert manifest["snapshot"]["description"] == "Data monitoring committee, 12 Mar 2026"
    assert manifest["blinded"] is True
    for content in bundle_members(bundle.body).values():
        assert SECRET_INITIALS.encode() not in content
        for arm in ARMS:
            assert arm not in content
    fetched = app.get(f"{DATASETS}/manifest.json", {"export": export.id})
    assert json.loads(fetched.body) == manifest
    assert fetched.body == bundle_members(bundle.body)[MANIFEST]

    [downloaded] = events(db_session, "dataset_export.bundle_downloaded")
    assert (downloaded.actor_name, downloaded.entity_id) == ("Dara", str(export.id))
    assert downloaded.details["bundle_sha256"] == export.bundle_sha256
    assert len(events(db_session, "dataset_export.manifest_downloaded")) == 1
    created = events(db_session, "dataset_snapshot.created")
    assert {event.field for event in created} >= {"content_sha256", "kind"}


def test_a_data_manager_cannot_export_a_lock_snapshot(app, db_session, setup):
    lock = take(db_session, setup, kind="lock", description="Final lock", lock_id=1)
    interim = take(db_session, setup)
    login_as(app, "dara")
    page = app.get(DATASETS)
    assert f"snapshot-{lock.id}" not in page.text
    assert f"snapshot-{interim.id}" in page.text
    token = csrf_token(app, DATASETS)
    app.post(
        f"{DATASETS}/exports",
        {"csrf_token": token, "snapshot": lock.id, f"snapshot-{lock.id}-formats": "csv"},
        status=403,
    )
    assert db_session.scalar(select(func.count(DatasetExport.id))) == 0


# -- statisticians, blinded and unblinded ----------------------------------------------------


def test_a_blinded_statistician_gets_blinded_bundles_only(app, db_session, setup):
    snapshot = take(db_session, setup, kind="lock", description="Final lock", lock_id=1)
    login_as(app, "una")
    ask_for_export(app, snapshot.id, "csv", unblinded=True).follow()
    unblinded = latest_export(db_session)
    assert (unblinded.status, unblinded.blinded) == (ExportStatus.DONE, False)
    body = app.get(f"{DATASETS}/bundle.zip", {"export": unblinded.id}).body
    assert_manifest_verifies(body)
    assert any(b"usual_care" in c or b"walking" in c for c in bundle_members(body).values())

    login_as(app, "sam")
    page = app.get(DATASETS)
    assert "blinded-note" in page.text
    assert f"snapshot-{snapshot.id}-unblinded" not in page.text
    # The unblinded export is not listed, and cannot be fetched.
    assert f"export-{unblinded.id}" not in page.text
    app.get(f"{DATASETS}/bundle.zip", {"export": unblinded.id}, status=403)
    app.get(f"{DATASETS}/manifest.json", {"export": unblinded.id}, status=403)
    assert unblinded.id not in [
        e["id"] for e in app.get(f"{DATASETS}/exports.json").json["exports"]
    ]
    # Asking for an unblinded bundle anyway gives a blinded one.
    token = csrf_token(app, DATASETS)
    app.post(
        f"{DATASETS}/exports",
        {
            "csrf_token": token,
            "snapshot": snapshot.id,
            f"snapshot-{snapshot.id}-formats": "csv",
            f"snapshot-{snapshot.id}-unblinded": "y",
        },
        status=303,
    )
    blinded = latest_export(db_session)
    assert (blinded.status, blinded.blinded) == (ExportStatus.DONE, True)
    body = app.get(f"{DATASETS}/bundle.zip", {"export": blinded.id}).body
    manifest = assert_manifest_verifies(body)
    assert (manifest["kind"], manifest["blinded"]) == ("lock", True)
    for content in bundle_members(body).values():
        for arm in ARMS:
            assert arm not in content
    downloads = events(db_session, "dataset_export.bundle_downloaded")
    assert [(e.actor_name, e.details["blinded"]) for e in downloads] == [
        ("Una", False),
        ("Sam", True),
    ]


def test_the_same_snapshot_exported_twice_gives_the_same_bundle(app, db_session, setup):
    snapshot = take(db_session, setup, kind="lock", description="Final lock", lock_id=1)
    login_as(app, "sam")
    ask_for_export(app, snapshot.id, "csv", labels=True)
    first = latest_export(db_session)
    # A change after the snapshot changes nothing in it.
    value = db_session.scalars(select(ItemValue).where(ItemValue.item_path == "sbp")).first()
    with change_reason(db_session, "Transcription error"):
        value.value = "199"
    ask_for_export(app, snapshot.id, "csv", labels=True)
    second = latest_export(db_session)
    assert first.id != second.id and first.bundle_file_id != second.bundle_file_id
    assert first.bundle_sha256 == second.bundle_sha256
    one = app.get(f"{DATASETS}/bundle.zip", {"export": first.id}).body
    two = app.get(f"{DATASETS}/bundle.zip", {"export": second.id}).body
    assert one == two


@pytest.mark.parametrize("username", ["cora", "site_dm"])
def test_site_staff_and_site_scoped_roles_are_refused(app, db_session, setup, username):
    snapshot = take(db_session, setup)
    login_as(app, "sam")
    ask_for_export(app, snapshot.id, "csv")
    export = latest_export(db_session)
    login_as(app, username)
    assert "datasets-link" not in app.get("/studies/DEMO/").text
    app.get(DATASETS, status=403)
    app.get(f"{DATASETS}/exports.json", status=403)
    app.get(f"{DATASETS}/bundle.zip", {"export": export.id}, status=403)
    app.get(f"{DATASETS}/manifest.json", {"export": export.id}, status=403)
    token = csrf_token(app)
    app.post(f"{DATASETS}/snapshots", {"csrf_token": token, "description": "x"}, status=403)
    app.post(
        f"{DATASETS}/exports",
        {"csrf_token": token, "snapshot": snapshot.id, f"snapshot-{snapshot.id}-formats": "csv"},
        status=403,
    )


def test_an_unknown_export_is_not_found(app, db_session, setup):
    login_as(app, "sam")
    app.get(f"{DATASETS}/bundle.zip", status=404)
    app.get(f"{DATASETS}/bundle.zip", {"export": "999"}, status=404)


# -- the task: progress, failure, idempotence ------------------------------------------------


def test_the_status_shows_progress_and_a_failure_says_why(app, db_session, setup):
    snapshot = take(db_session, setup)
    login_as(app, "sam")
    # No format chosen: refused, with the message by the boxes.
    refused = export_form(app.get(DATASETS), snapshot.id).submit(status=400)
    assert "Choose at least one format" in refused.text

    # The snapshot's stored data damaged: the export fails, and says so.
    db_session.execute(
        update(StoredFileChunk)
        .where(StoredFileChunk.file_id == snapshot.file_id)
        .values(data=b"not what was stored")
    )
    db_session.flush()
    page = ask_for_export(app, snapshot.id, "csv").follow()
    export = latest_export(db_session)
    assert export.status == ExportStatus.FAILED
    assert export.error.startswith("The export could not be made: ")
    assert "altered or damaged" in export.error
    assert export.bundle_file_id is None
    assert export.error in shown(page, f"export-{export.id}")
    status = app.get(f"{DATASETS}/exports.json").json["exports"][0]
    assert (status["id"], status["status"], status["error"], status["download"]) == (
        export.id,
        "failed",
        export.error,
        None,
    )
    app.get(f"{DATASETS}/bundle.zip", {"export": export.id}, status=404)


def test_a_redelivered_task_makes_no_second_bundle(app, db_session, setup):
    snapshot = take(db_session, setup)
    login_as(app, "sam")
    ask_for_export(app, snapshot.id, "csv")
    export = latest_export(db_session)
    assert export.status == ExportStatus.DONE
    status = app.get(f"{DATASETS}/exports.json").json["exports"][0]
    assert (status["status"], status["percent"], status["bundle_sha256"]) == (
        "done",
        100,
        export.bundle_sha256,
    )
    files = db_session.scalar(select(func.count(StoredFile.id)))
    trail = db_session.scalar(select(func.count(AuditEvent.id)))
    task = app.app.registry["celery.app"].tasks["bhp_ctms.exports.tasks.build_export"]
    assert task.apply(args=(export.id,)).get() == "done"
    assert build_export.__name__ == "build_export"
    assert db_session.scalar(select(func.count(StoredFile.id))) == files
    assert db_session.scalar(select(func.count(AuditEvent.id))) == trail


def test_a_page_with_work_in_progress_reloads_itself(app, db_session, setup):
    snapshot = take(db_session, setup)
    db_session.add(
        DatasetExport(
            study_id=setup.study.id,
            snapshot_id=snapshot.id,
            options={"formats": ["csv"], "blinded": True},
            blinded=True,
            status=ExportStatus.RUNNING,
            progress_done=2,
            progress_total=5,
        )
    )
    db_session.flush()
    login_as(app, "sam")
    page = app.get(DATASETS)
    assert page.headers["Refresh"] == "3"
    assert shown(page, "progress") == "40% (2 of 5 forms read)"


# -- ctms export ----------------------------------------------------------------------------


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=BACKENDS)
def deployment(request, tmp_path, monkeypatch):
    """A fresh deployment with the demo study and one participant's vitals."""
    for name in ("BHP_CTMS_BROKER_URL", "BHP_CTMS_RESULT_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    text = (ROOT / "development.ini").read_text()
    text = text.replace("%(here)s/var", str(tmp_path / "var"))
    text = text.replace("%(here)s/alembic", str(ROOT / "alembic"))
    text = text.replace("%(here)s/forms", str(ROOT / "forms"))
    ini = tmp_path / "ctms.ini"
    ini.write_text(text)
    monkeypatch.setenv("BHP_CTMS_DEMO_PASSWORD", "lighthouse-cabbage-origami")
    with throwaway_database(request.param, tmp_path, "ctms_export") as url:
        monkeypatch.setenv("BHP_CTMS_DATABASE_URL", url)
        assert run(ini, "initdb").exit_code == 0
        assert run(ini, "demo").exit_code == 0
        engine = create_database_engine(url)
        try:
            with Session(engine) as db:
                use_actor(db, AuditActor.system("test set-up"))
                study = find_study(db, "DEMO")
                site = db.scalars(select(Site).where(Site.study_id == study.id)).first()
                participant = Participant(
                    study_id=study.id,
                    site_id=site.id,
                    code=f"DEMO-{site.code}-9001",
                    sequence=9001,
                    protocol_version_id=protocol_versions(db, study.id)[-1].id,
                    registered_on=date(2026, 1, 20),
                )
                version = db.scalars(
                    select(FormVersion).where(
                        FormVersion.study_id == study.id, FormVersion.form_code == "vitals"
                    )
                ).one()
                entry = FormEntry(
                    participant=participant,
                    event_code="baseline",
                    event_instance=1,
                    form_code="vitals",
                    form_version=version,
                )
                entry.values.append(ItemValue(item_path="weight", value="64.2"))
                db.add(entry)
                db.commit()
        finally:
            engine.dispose()
        yield str(ini), url


def run(ini, *args):
    from bhp_ctms.cli import ctms

    return CliRunner().invoke(ctms, ["-c", str(ini), *map(str, args)], catch_exceptions=False)


def test_ctms_export_writes_a_bundle_and_says_its_hash(deployment, tmp_path):
    ini, url = deployment
    out = tmp_path / "bundle.zip"
    refused = run(ini, "export", "--study", "DEMO", "--format", "csv", "--out", out)
    assert refused.exit_code == 1
    assert "has no dataset snapshot yet" in refused.output
    assert not out.exists()
    assert run(ini, "export", "--study", "NOPE", "--format", "csv", "--out", out).exit_code == 1
    wrong = run(ini, "export", "--study", "DEMO", "--format", "pdf", "--out", out)
    assert wrong.exit_code == 2 and "choose from csv, dta, odm, sav, xpt or all" in wrong.output

    result = run(ini, "export", "--study", "DEMO", "--format", "csv", "--out", out, "--interim")
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    assert f"SHA-256 {sha256}" in result.output
    assert "INTERIM snapshot" in result.output and "blinded" in result.output
    manifest = assert_manifest_verifies(data)
    assert manifest["kind"] == "INTERIM"
    for entry in manifest["files"]:
        assert f"{entry['sha256']}  {entry['size']:>12}  {entry['name']}" in result.output
    assert not (tmp_path / "bundle.zip.part").exists()

    # Again, without --interim: the same snapshot, the same bytes.
    again = tmp_path / "again.zip"
    result = run(ini, "export", "--study", "DEMO", "--format", "csv", "--out", again)
    assert result.exit_code == 0, result.output
    assert again.read_bytes() == data

    engine = create_database_engine(url)
    try:
        with Session(engine) as db:
            written = db.scalars(
                select(AuditEvent).where(AuditEvent.action == "dataset_export.written")
            ).all()
            snapshots = db.scalars(select(DatasetSnapshot)).all()
    finally:
        engine.dispose()
    assert [event.details["bundle_sha256"] for event in written] == [sha256, sha256]
    assert all(event.actor_role == "operator" for event in written)
    assert [snapshot.kind for snapshot in snapshots] == [SnapshotKind.INTERIM]
    assert snapshots[0].description == "Interim snapshot taken with ctms export --interim"
    assert snapshots[0].entry_count >= 1


# -- a lock takes the lock snapshot -----------------------------------------------------------


def test_locking_the_study_takes_the_lock_snapshot_that_a_statistician_exports(
    app, db_session, setup
):
    login_as(app, "dara")
    page = app.get("/studies/DEMO/locks")
    page = app.get(page.html.find(attrs={"data-testid": "lock-study-link"})["href"])
    form = form_posting_to(page, "/studies/DEMO/locks/new")
    form["reason"] = "Database lock for the final analysis"
    form["password"] = PASSWORD
    form.submit().follow()
    snapshot = db_session.scalars(select(DatasetSnapshot)).one()
    assert (snapshot.kind, snapshot.lock_id) == (
        SnapshotKind.LOCK,
        db_session.scalar(select(Lock.id)),
    )
    assert snapshot.taken_by_name == "Dara"
    assert snapshot.checkpoint_id is not None

    # A second delivery of the task takes no second snapshot.
    task = app.app.registry["celery.app"].tasks["bhp_ctms.exports.tasks.take_study_snapshot"]
    args = (setup.study.id, "lock", "Locked dataset", snapshot.lock_id)
    assert task.apply(args=args).get() == snapshot.id
    assert db_session.scalar(select(func.count(DatasetSnapshot.id))) == 1

    # The data manager may not export the locked dataset; the statistician may.
    assert f"snapshot-{snapshot.id}" not in app.get(DATASETS).text
    login_as(app, "sam")
    page = ask_for_export(app, snapshot.id, "csv", "odm").follow()
    export = latest_export(db_session)
    assert export.status == ExportStatus.DONE, export.error
    body = app.get(page.html.find(attrs={"data-testid": "download"})["href"]).body
    manifest = assert_manifest_verifies(body)
    assert (manifest["kind"], manifest["blinded"]) == ("lock", True)
    assert manifest["snapshot"]["content_sha256"] == snapshot.content_sha256
    assert {entry["name"].split("/")[0] for entry in manifest["files"]} == {"csv", "odm"}

    # The trail of the snapshot and the export replays to the rows as they are.
    report = verify_audit_trail(db_session, TEST_SECRET_KEY, setup.study.id, all_chains=False)
    assert report.ok, report.lines()
