"""Dataset snapshots taken from the live tables: what they hold (never an identifier),
in what order, blinded or not, that they never change once taken, that the same data
give the same content hash, and that the audit trail of their values ends where they
were taken. On SQLite and PostgreSQL.

The set-up at the top (:func:`snapshot_trial`) is shared by the export tests.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bhp_ctms.accounts.models import User
from bhp_ctms.audit.capture import ReasonRequired, change_reason
from bhp_ctms.audit.models import AuditCheckpoint, CheckpointTrigger
from bhp_ctms.crf.definition.model import Choice, FormDefinition, Item
from bhp_ctms.crf.models import (
    FormEntry,
    FormStatus,
    FormVersion,
    ItemValue,
    Signature,
    SignatureMeaning,
)
from bhp_ctms.db import utcnow
from bhp_ctms.exports.bundles import write_bundle
from bhp_ctms.exports.models import (
    DatasetSnapshot,
    SnapshotImmutable,
    SnapshotKind,
    SnapshotStatus,
)
from bhp_ctms.exports.records import ExportOptions
from bhp_ctms.exports.snapshots import (
    SnapshotError,
    latest_snapshot,
    open_snapshot,
    take_snapshot,
)
from bhp_ctms.exports.stream import SnapshotCorrupt
from bhp_ctms.participants.models import (
    Participant,
    ParticipantIdentifiers,
    ParticipantStatus,
    Visit,
    VisitStatus,
)
from bhp_ctms.permissions import Role
from bhp_ctms.randomisation.models import Allocation
from bhp_ctms.storage.models import StoredFile, StoredFileChunk
from bhp_ctms.storage.services import StoredFileCorrupt
from bhp_ctms.studies.models import Study
from tests.conftest import TEST_SECRET_KEY
from tests.factories import ParticipantFactory
from tests.factories.crf import form_entry, store_form_version, vitals_definition
from tests.functional.test_participant_registration import Trial, demo_trial, staff

SECRET_NAME = "SECRET-NAME-CIPHERTEXT"
SECRET_HMAC = "5ec7e7" * 10 + "abcd"
SECRET_INITIALS = "JQZ"


def demographics_definition() -> FormDefinition:
    return FormDefinition(
        code="demographics",
        title="Demographics",
        version="1.0",
        description="",
        entries=(
            Item(code="initials", label="Initials", type="text", identifier=True),
            Item(
                code="sex",
                label="Sex",
                type="single_choice",
                choices=(Choice("M", "Male"), Choice("F", "Female")),
            ),
            Item(code="height", label="Height", type="decimal", units="cm"),
        ),
    )


@dataclass
class SnapshotTrial:
    trial: Trial
    study: Study
    first: Participant
    second: Participant
    third: Participant
    vitals: FormVersion
    demographics: FormVersion
    baseline: FormEntry
    signer: User


def snapshot_trial(db_session) -> SnapshotTrial:
    """The demo study with three participants: the first randomised to walking, with
    demographics (an identifier item among them), vitals at baseline, week 2 and an
    unscheduled visit, a visit date, a signature and recorded identifiers; the second
    at the other site with vitals and an allocation marked invalid; the third with
    nothing entered."""
    trial = demo_trial()
    study = trial.study
    signer = staff("priya", Role.SITE_PI, trial.site)
    vitals = store_form_version(study.id, vitals_definition())
    demographics = store_form_version(study.id, demographics_definition())
    first = ParticipantFactory(site=trial.site, status=ParticipantStatus.RANDOMISED)
    second = ParticipantFactory(site=trial.other_site, status=ParticipantStatus.RANDOMISED)
    third = ParticipantFactory(site=trial.site)
    first.randomised_on = date(2026, 2, 11)
    # Entered out of schedule order: the snapshot puts them in order.
    form_entry(first, vitals, {"weight": "71"}, event="unscheduled", instance=2)
    form_entry(first, vitals, missing={"weight": "ND"}, event="week_2")
    baseline = form_entry(
        first,
        vitals,
        {
            "medications[2].drug": "=HYPERLINK()",
            "position": "1",
            "dbp": "80",
            "medications[1].drug": "Aspirin",
            "sbp": "120",
            "weight": "70.5",
        },
        event="baseline",
        status=FormStatus.COMPLETE,
    )
    form_entry(
        first,
        demographics,
        {"initials": SECRET_INITIALS, "sex": "F", "height": "168"},
        event="screening",
    )
    form_entry(second, vitals, {"weight": "82", "sbp": "131"}, event="baseline")
    db_session.add_all(
        [
            Visit(
                participant=first,
                event_code="baseline",
                instance=1,
                protocol_version_id=first.protocol_version_id,
                status=VisitStatus.DONE,
                visit_on=date(2026, 2, 12),
            ),
            Allocation(
                study_id=study.id,
                site_id=trial.site.id,
                participant_id=first.id,
                method="simple",
                stratum="all",
                sequence=1,
                arm_code="walking",
            ),
            Allocation(
                study_id=study.id,
                site_id=trial.other_site.id,
                participant_id=second.id,
                method="simple",
                stratum="all",
                sequence=2,
                arm_code="usual_care",
                invalidated_at=utcnow(),
                invalid_reason="Randomised before consent was recorded",
            ),
            ParticipantIdentifiers(
                participant_id=first.id,
                study_id=study.id,
                site_id=trial.site.id,
                full_name_encrypted=SECRET_NAME,
                nhs_number_hmac=SECRET_HMAC,
            ),
            Signature(
                participant=first,
                entry=baseline,
                signer_id=signer.id,
                signer_name="Priya",
                signer_role="Site PI",
                meaning=SignatureMeaning.REVIEWED,
                content_sha256="ab" * 32,
                signed_at=datetime(2026, 2, 13, 9, 30, 5, tzinfo=utcnow().tzinfo),
            ),
        ]
    )
    db_session.flush()
    return SnapshotTrial(trial, study, first, second, third, vitals, demographics, baseline, signer)


def take(db_session, setup: SnapshotTrial, kind: str = "interim", **values) -> DatasetSnapshot:
    values.setdefault("description", "Data monitoring committee, March")
    return take_snapshot(db_session, setup.study, kind=kind, **values)


def raw_stream(db_session, snapshot: DatasetSnapshot) -> bytes:
    chunks = db_session.scalars(
        select(StoredFileChunk.data)
        .where(StoredFileChunk.file_id == snapshot.file_id)
        .order_by(StoredFileChunk.sequence)
    )
    return zlib.decompress(b"".join(chunks))


def tiny_writer(snapshot, options, sink) -> None:
    """A writer of every record as text, for bundles made before the formats exist."""
    with sink.open("records.txt") as out:
        for record in (
            *snapshot.participants(),
            *snapshot.signatures(),
            *snapshot.entries(),
        ):
            out.write(repr(record).encode("utf-8") + b"\n")


# -- what a snapshot holds ---------------------------------------------------------------


def test_a_snapshot_holds_the_study_in_order_and_no_identifier(db_session):
    setup = snapshot_trial(db_session)
    snapshot = take(db_session, setup)
    assert snapshot.kind == SnapshotKind.INTERIM
    assert snapshot.status == SnapshotStatus.TAKEN
    assert (snapshot.participant_count, snapshot.entry_count, snapshot.signature_count) == (
        3,
        5,
        1,
    )
    # The identifier item's value is left out of the count too.
    assert snapshot.value_count == 6 + 1 + 1 + 2 + 2

    opened = open_snapshot(db_session, snapshot, blinded=False)
    info = opened.info
    assert (info.kind, info.study_code, info.blinding) == ("interim", "DEMO", "double")
    assert info.description == "Data monitoring committee, March"
    assert [arm.code for arm in info.arms] == ["walking", "usual_care"]
    assert [event.code for event in info.events][:3] == ["screening", "baseline", "week_2"]
    assert [site.code for site in info.sites] == ["CHH", "NTH"]
    assert [(v.form_code, v.number) for v in info.form_versions] == [
        ("demographics", 1),
        ("vitals", 1),
    ]
    assert info.audit_sequence == snapshot.audit_sequence > 0

    participants = list(opened.participants())
    assert [p.key for p in participants] == sorted(
        [setup.first.code, setup.second.code, setup.third.code]
    )
    by_key = {p.key: p for p in participants}
    assert by_key[setup.first.code].arm == "walking"
    assert by_key[setup.first.code].randomised_on == "2026-02-11"
    assert by_key[setup.first.code].site_code == "NTH"
    # An allocation marked invalid gives no arm.
    assert by_key[setup.second.code].arm is None

    entries = [e for e in opened.entries() if e.participant == setup.first.code]
    assert [e.form_key for e in entries] == [
        "screening/demographics",
        "baseline/vitals",
        "week_2/vitals",
        "unscheduled#2/vitals",
    ]
    demographics, baseline, week_2, _ = entries
    assert [v.path for v in demographics.values] == ["sex", "height"]
    assert [(v.path, v.value) for v in baseline.values] == [
        ("weight", "70.5"),
        ("sbp", "120"),
        ("dbp", "80"),
        ("position", "1"),
        ("medications[1].drug", "Aspirin"),
        ("medications[2].drug", "=HYPERLINK()"),
    ]
    assert (baseline.status, baseline.visit_on, baseline.form_version) == (
        "complete",
        "2026-02-12",
        1,
    )
    assert [(v.path, v.value, v.missing) for v in week_2.values] == [("weight", None, "ND")]

    [signature] = list(opened.signatures())
    assert (signature.participant, signature.event, signature.form, signature.signer) == (
        setup.first.code,
        "baseline",
        "vitals",
        "Priya",
    )
    assert (signature.meaning, signature.signed_at, signature.valid) == (
        "reviewed",
        "2026-02-13T09:30:05Z",
        True,
    )

    # Nothing that identifies anyone is anywhere in the stored stream (the identifier
    # item is described in the form definition; its value is not there).
    stream = raw_stream(db_session, snapshot)
    for secret in (SECRET_NAME, SECRET_HMAC, SECRET_INITIALS):
        assert secret.encode() not in stream


def test_a_blinded_snapshot_holds_no_arm(db_session):
    setup = snapshot_trial(db_session)
    snapshot = take(db_session, setup)
    blinded = open_snapshot(db_session, snapshot, blinded=True)
    assert blinded.blinded is True
    assert blinded.info.arms == ()
    assert all(p.arm is None for p in blinded.participants())
    # The study's title and a form speak of walking; no arm is named anywhere.
    records = repr(list(blinded.participants())) + repr(blinded.info)
    for arm in ("'walking'", "usual_care", "Daily walking programme", "Usual care"):
        assert arm not in records


def test_a_description_is_required(db_session):
    setup = snapshot_trial(db_session)
    with pytest.raises(SnapshotError, match="Give a description"):
        take(db_session, setup, description="   ")


# -- content hash and immutability --------------------------------------------------------


def test_the_same_data_give_the_same_content_hash_and_a_change_another(db_session):
    setup = snapshot_trial(db_session)
    first = take(db_session, setup)
    second = take(db_session, setup, description="Taken again")
    assert first.content_sha256 == second.content_sha256
    assert first.file_id != second.file_id
    value = db_session.scalars(
        select(ItemValue).where(
            ItemValue.form_entry_id == setup.baseline.id, ItemValue.item_path == "weight"
        )
    ).one()
    with change_reason(db_session, "Transcription error"):
        value.value = "75.5"
    third = take(db_session, setup)
    assert third.content_sha256 != first.content_sha256


def test_a_change_after_an_interim_snapshot_does_not_alter_it(db_session):
    setup = snapshot_trial(db_session)
    snapshot = take(db_session, setup)
    options = ExportOptions(formats=("csv",), blinded=True)
    writers = {"csv": tiny_writer}

    def bundle() -> bytes:
        import io

        out = io.BytesIO()
        write_bundle(
            open_snapshot(db_session, snapshot, blinded=True), options, out, writers=writers
        )
        return out.getvalue()

    before = bundle()
    value = db_session.scalars(
        select(ItemValue).where(
            ItemValue.form_entry_id == setup.baseline.id, ItemValue.item_path == "weight"
        )
    ).one()
    with change_reason(db_session, "Transcription error"):
        value.value = "99.9"
    with change_reason(db_session, "Registered in error"):
        db_session.delete(db_session.get(Participant, setup.third.id))
    assert bundle() == before
    weights = [
        v.value
        for e in open_snapshot(db_session, snapshot, blinded=True).entries()
        if e.form_key == "baseline/vitals" and e.participant == setup.first.code
        for v in e.values
        if v.path == "weight"
    ]
    assert weights == ["70.5"]


def test_what_a_snapshot_holds_cannot_be_changed(db_session):
    setup = snapshot_trial(db_session)
    snapshot = take(db_session, setup)
    snapshot.content_sha256 = "0" * 64
    snapshot.value_count += 1
    with (
        pytest.raises(SnapshotImmutable, match=r"content_sha256, value_count\): take a new"),
        change_reason(db_session, "Even with a reason"),
    ):
        db_session.flush()


def test_a_snapshot_status_changes_only_with_a_reason(db_session):
    setup = snapshot_trial(db_session)
    snapshot = take(db_session, setup)
    snapshot.status = SnapshotStatus.SUPERSEDED
    with pytest.raises(ReasonRequired, match="status of dataset snapshot"):
        db_session.flush()


def test_a_snapshot_cannot_be_deleted(db_session):
    setup = snapshot_trial(db_session)
    snapshot = take(db_session, setup)
    db_session.delete(snapshot)
    with (
        pytest.raises(SnapshotImmutable, match="cannot be deleted"),
        change_reason(db_session, "Even with a reason"),
    ):
        db_session.flush()


def test_stored_data_altered_after_the_snapshot_are_detected(db_session):
    setup = snapshot_trial(db_session)
    snapshot = take(db_session, setup)
    opened = open_snapshot(db_session, snapshot, blinded=True)
    stream = raw_stream(db_session, snapshot).replace(b'"70.5"', b'"99.5"')
    # Altered data, and the stored file's own hash recomputed to match them: only the
    # content hash can tell.
    altered = zlib.compress(stream)
    db_session.execute(
        update(StoredFileChunk)
        .where(StoredFileChunk.file_id == snapshot.file_id, StoredFileChunk.sequence == 0)
        .values(data=altered)
    )
    import hashlib

    stored = db_session.get(StoredFile, snapshot.file_id)
    stored.sha256 = hashlib.sha256(altered).hexdigest()
    stored.size = len(altered)
    db_session.flush()
    with pytest.raises(SnapshotCorrupt, match="do not match its content hash"):
        list(opened.entries())
    # Altered bytes alone fail the stored file's own check first.
    db_session.execute(
        update(StoredFileChunk)
        .where(StoredFileChunk.file_id == snapshot.file_id, StoredFileChunk.sequence == 0)
        .values(data=zlib.compress(stream + b"\n"))
    )
    with pytest.raises((StoredFileCorrupt, SnapshotCorrupt)):
        list(opened.entries())


# -- locks, checkpoints and the audit trail ------------------------------------------------


def test_a_lock_snapshot_supersedes_the_last_and_is_the_one_exported(db_session):
    setup = snapshot_trial(db_session)
    assert latest_snapshot(db_session, setup.study.id) is None
    first_lock = take(db_session, setup, kind="lock", description="Locked", lock_id=101)
    interim = take(db_session, setup)
    assert latest_snapshot(db_session, setup.study.id) == first_lock
    second_lock = take(db_session, setup, kind="lock", description="Locked again", lock_id=102)
    assert first_lock.status == SnapshotStatus.SUPERSEDED
    assert interim.status == SnapshotStatus.TAKEN
    assert latest_snapshot(db_session, setup.study.id) == second_lock


def test_a_snapshot_signs_the_study_chain_at_its_head(db_session):
    setup = snapshot_trial(db_session)
    snapshot = take(db_session, setup, kind="lock", secret_key=TEST_SECRET_KEY, lock_id=7)
    checkpoint = db_session.get(AuditCheckpoint, snapshot.checkpoint_id)
    assert checkpoint.trigger == CheckpointTrigger.LOCK
    assert (checkpoint.chain, checkpoint.sequence) == (
        snapshot.audit_chain,
        snapshot.audit_sequence,
    )
    assert checkpoint.head_hash == snapshot.audit_head_hash
    interim = take(db_session, setup, secret_key=TEST_SECRET_KEY)
    assert db_session.get(AuditCheckpoint, interim.checkpoint_id).trigger == (
        CheckpointTrigger.EXPORT
    )


def test_the_changes_are_the_audit_trail_up_to_the_snapshot(db_session):
    setup = snapshot_trial(db_session)
    values = {
        value.item_path: value
        for value in db_session.scalars(
            select(ItemValue).where(ItemValue.form_entry_id == setup.baseline.id)
        )
    }
    with change_reason(db_session, "Transcription error"):
        values["weight"].value = "72.0"
    with change_reason(db_session, "Entered on the wrong row"):
        db_session.delete(values["medications[2].drug"])
    initials = db_session.scalars(select(ItemValue).where(ItemValue.item_path == "initials")).one()
    initials.value = "ABC"
    db_session.flush()
    snapshot = take(db_session, setup)
    with change_reason(db_session, "After the snapshot"):
        values["weight"].value = "73.0"
    db_session.flush()

    changes = list(open_snapshot(db_session, snapshot, blinded=True).changes())
    assert [c.sequence for c in changes] == sorted(c.sequence for c in changes)
    assert all(c.sequence <= snapshot.audit_sequence for c in changes)
    assert not any(c.path == "initials" for c in changes)
    weight = [
        (c.action, c.old, c.new, c.reason)
        for c in changes
        if c.participant == setup.first.code and c.form == "vitals" and c.event == "baseline"
        if c.path == "weight"
    ]
    assert weight == [
        ("insert", None, "70.5", ""),
        ("update", "70.5", "72.0", "Transcription error"),
    ]
    removed = [c for c in changes if c.path == "medications[2].drug"]
    assert [(c.action, c.old, c.new) for c in removed] == [
        ("insert", None, "=HYPERLINK()"),
        ("remove", "=HYPERLINK()", None),
    ]
    unscheduled = [c for c in changes if c.event == "unscheduled"]
    assert {(c.instance, c.path, c.new) for c in unscheduled} == {(2, "weight", "71")}


def test_a_large_snapshot_is_read_in_batches(db_session, monkeypatch):
    """Many participants across several batches come out whole and in order."""
    from bhp_ctms.exports import snapshots

    monkeypatch.setattr(snapshots, "ENTRIES_PER_BATCH", 3)
    setup = snapshot_trial(db_session)
    made = [ParticipantFactory(site=setup.trial.site) for _ in range(7)]
    for number, participant in enumerate(made):
        form_entry(participant, setup.vitals, {"weight": str(60 + number)}, event="baseline")
        form_entry(participant, setup.vitals, {"weight": str(61 + number)}, event="week_2")
    snapshot = take(db_session, setup)
    monkeypatch.setattr(snapshots, "ENTRIES_PER_BATCH", 2_000)
    again = take(db_session, setup)
    assert snapshot.content_sha256 == again.content_sha256
    opened = open_snapshot(db_session, snapshot, blinded=True)
    keys = [e.participant for e in opened.entries()]
    assert keys == sorted(keys)
    assert snapshot.entry_count == 5 + 14
    assert snapshot.taken_at <= utcnow() + timedelta(seconds=1)
