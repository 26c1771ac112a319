"""Electronic signatures: what a signature binds (the content hash), re-authentication
at signing (password, TOTP, failed attempts counting towards the lock-out), and
invalidation when signed data change.

The helpers at the top make a small vitals form and its entries directly (rows, not
the data entry page); the SDV tests and the functional tests of signing and SDV use
them too.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
import time_machine
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bhp_ctms.accounts.models import LoginAttempt, LoginOutcome, User
from bhp_ctms.accounts.services import AccountService, LoginStatus
from bhp_ctms.audit.capture import acting_as, change_reason
from bhp_ctms.audit.models import AuditEvent, canonical_json
from bhp_ctms.crf.definition.model import (
    YES_NO_CHOICES,
    Choice,
    FormDefinition,
    Item,
    ItemGroup,
)
from bhp_ctms.crf.models import (
    FormEntry,
    FormStatus,
    FormVersion,
    ItemValue,
    Signature,
    SignatureMeaning,
)
from bhp_ctms.crf.signatures import (
    BAD_CODE,
    BAD_PASSWORD,
    CHANGED_WHILE_READING,
    NOT_A_SIGNER,
    Reauthentication,
    SignatureRefused,
    casebook_content_sha256,
    entry_content_sha256,
    entry_signatures,
    invalidate_signatures,
    shown_values,
    sign_casebook,
    sign_entry,
    signature_states,
    verify_signature,
)
from bhp_ctms.crf.verification import supersede_verifications, verify_form
from bhp_ctms.participants.models import Participant
from bhp_ctms.permissions import Role
from tests.conftest import make_settings
from tests.factories import PASSWORD, ParticipantFactory
from tests.functional.test_participant_registration import Trial, actor, demo_trial, staff

SETTINGS = make_settings("sqlite://", lockout_threshold=3)
# Lock-out as configured by default (ten failures), for tests that fail on purpose.
LENIENT = make_settings("sqlite://")

# -- shared test data: a small vitals form and entries of it ------------------------------


def vitals_definition() -> FormDefinition:
    """Vital signs: a few items of different types and a repeating group."""
    return FormDefinition(
        code="vitals",
        title="Vital signs",
        version="1.0",
        description="",
        entries=(
            Item(code="weight", label="Weight", type="decimal", precision=1, units="kg"),
            Item(code="height", label="Height", type="integer", units="cm"),
            Item(
                code="smoker",
                label="Current smoker",
                type="yes_no",
                choices=tuple(Choice(code, label) for code, label in YES_NO_CHOICES),
            ),
            Item(code="note", label="Note", type="text", missing_codes=("not_done",)),
            ItemGroup(
                code="readings",
                label="Blood pressure readings",
                items=(Item(code="sbp", label="Systolic", type="integer", units="mmHg"),),
            ),
        ),
    )


VITALS = {"weight": "72.5", "height": "180", "smoker": "0", "readings[1].sbp": "120"}


def form_version(
    db: Session, study_id: int, definition: FormDefinition | None = None
) -> FormVersion:
    """The study's version of the vitals form, made once."""
    definition = definition or vitals_definition()
    stored = definition.to_json()
    sha256 = hashlib.sha256(canonical_json(stored).encode()).hexdigest()
    version = db.scalars(
        select(FormVersion).where(FormVersion.study_id == study_id, FormVersion.sha256 == sha256)
    ).first()
    if version is None:
        version = FormVersion(
            study_id=study_id,
            form_code=definition.code,
            number=1,
            label=definition.version,
            title=definition.title,
            definition=stored,
            sha256=sha256,
        )
        db.add(version)
        db.flush()
    return version


def form_entry(
    db: Session,
    participant: Participant,
    *,
    by: User,
    event: str = "baseline",
    instance: int = 1,
    values: dict[str, str] | None = None,
    missing: dict[str, str] | None = None,
    status: FormStatus = FormStatus.COMPLETE,
) -> FormEntry:
    """A vitals entry with these values, entered by ``by`` and then marked ``status``."""
    with acting_as(db, actor(by)):
        entry = FormEntry(
            participant=participant,
            event_code=event,
            event_instance=instance,
            form_code="vitals",
            form_version=form_version(db, participant.study_id),
            status=FormStatus.IN_PROGRESS,
        )
        db.add(entry)
        for path, value in (VITALS if values is None else values).items():
            db.add(ItemValue(entry=entry, item_path=path, value=value))
        for path, code in (missing or {}).items():
            db.add(ItemValue(entry=entry, item_path=path, missing_code=code))
        db.flush()
        entry.status = status
    return entry


def change_value(
    db: Session, entry: FormEntry, path: str, value: str | None, *, by: User
) -> set[str]:
    """Change one item of a complete form with a reason, then tell SDV and signatures,
    as the save service does; the changed paths."""
    with acting_as(db, actor(by)), change_reason(db, "Transcription error"):
        row = next((row for row in entry.values if row.item_path == path), None)
        if row is None:
            db.add(ItemValue(entry=entry, item_path=path, value=value))
        else:
            row.value = value
    with acting_as(db, actor(by)):
        supersede_verifications(db, entry, {path})
        invalidate_signatures(db, entry, {path})
    return {path}


def signed(
    db: Session, entry: FormEntry, pi: User, meaning: SignatureMeaning = SignatureMeaning.REVIEWED
) -> Signature:
    return sign_entry(
        db,
        SETTINGS,
        actor(pi),
        pi,
        entry,
        meaning=meaning,
        proof=Reauthentication(PASSWORD),
        shown_sha256=entry_content_sha256(entry),
    )


def _people(trial: Trial) -> tuple[User, User]:
    return (
        staff("cora", Role.SITE_COORDINATOR, trial.site),
        staff("priya", Role.SITE_PI, trial.site),
    )


def _signature_count(db: Session) -> int:
    return db.scalar(select(func.count(Signature.id))) or 0


# -- what a signature binds ----------------------------------------------------------------


def test_the_content_hash_covers_values_missing_codes_and_the_form_version(db_session):
    trial = demo_trial()
    cora, _ = _people(trial)
    participant = ParticipantFactory(site=trial.site)
    entry = form_entry(db_session, participant, by=cora)
    before = entry_content_sha256(entry)
    assert len(before) == 64

    # A blank row is the same content as no row.
    with acting_as(db_session, actor(cora)), change_reason(db_session, "Not asked"):
        db_session.add(ItemValue(entry=entry, item_path="note", value=None))
    assert entry_content_sha256(entry) == before

    with acting_as(db_session, actor(cora)), change_reason(db_session, "Not done"):
        entry.values[-1].missing_code = "ND"
    with_missing = entry_content_sha256(entry)
    assert with_missing != before

    change_value(db_session, entry, "weight", "75.0", by=cora)
    assert entry_content_sha256(entry) not in (before, with_missing)

    # Another participant's entry with the same values hashes the same (the signature
    # row names the entry it binds); another version of the form does not.
    other = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora)
    assert entry_content_sha256(other) == before
    other.form_version.sha256 = "0" * 64
    assert entry_content_sha256(other) != before


def test_a_casebook_hash_changes_with_any_form_and_with_a_new_form(db_session):
    trial = demo_trial()
    cora, _ = _people(trial)
    participant = ParticipantFactory(site=trial.site)
    baseline = form_entry(db_session, participant, by=cora)
    form_entry(db_session, participant, by=cora, event="week_2")
    first = casebook_content_sha256(db_session, participant)
    change_value(db_session, baseline, "height", "181", by=cora)
    second = casebook_content_sha256(db_session, participant)
    assert second != first
    form_entry(db_session, participant, by=cora, event="week_6", status=FormStatus.IN_PROGRESS)
    assert casebook_content_sha256(db_session, participant) not in (first, second)


def test_what_is_signed_is_shown_item_by_item(db_session):
    trial = demo_trial()
    cora, _ = _people(trial)
    entry = form_entry(
        db_session, ParticipantFactory(site=trial.site), by=cora, missing={"note": "ND"}
    )
    shown = {value.path: value for value in shown_values(entry)}
    assert list(shown) == ["weight", "height", "smoker", "note", "readings[1].sbp"]
    assert shown["weight"].text == "72.5 kg"
    assert shown["smoker"].text == "No"
    assert shown["note"].text == "Not done"
    assert (shown["readings[1].sbp"].group, shown["readings[1].sbp"].row) == (
        "Blood pressure readings",
        1,
    )


# -- signing and re-authentication -----------------------------------------------------------


def test_the_pi_signs_a_complete_form_with_their_password(db_session):
    trial = demo_trial()
    cora, priya = _people(trial)
    entry = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora)
    moment = datetime(2026, 3, 12, 9, 30, tzinfo=UTC)
    with time_machine.travel(moment, tick=False):
        signature = signed(db_session, entry, priya, SignatureMeaning.RESPONSIBLE)

    assert (signature.signer_name, signature.signer_role) == ("Priya", "Site PI")
    assert signature.meaning == SignatureMeaning.RESPONSIBLE
    assert signature.signed_at == moment
    assert signature.content_sha256 == entry_content_sha256(entry)
    assert entry.status == FormStatus.SIGNED
    assert verify_signature(db_session, signature)
    [state] = signature_states(db_session, entry_signatures(db_session, entry))
    assert state.valid
    created = db_session.scalars(
        select(AuditEvent).where(
            AuditEvent.entity_type == "signature", AuditEvent.action == "signature.created"
        )
    ).all()
    assert {event.actor_name for event in created} == {"Priya"}
    assert {event.form for event in created} == {"baseline/vitals"}


def test_a_wrong_password_signs_nothing_and_counts_as_a_failed_log_in(db_session):
    trial = demo_trial()
    cora, priya = _people(trial)
    entry = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora)
    with pytest.raises(SignatureRefused) as refusal:
        sign_entry(
            db_session,
            SETTINGS,
            actor(priya),
            priya,
            entry,
            meaning=SignatureMeaning.REVIEWED,
            proof=Reauthentication("not my password"),
            shown_sha256=entry_content_sha256(entry),
        )
    assert (refusal.value.message, refusal.value.field) == (BAD_PASSWORD, "password")
    assert _signature_count(db_session) == 0
    assert entry.status == FormStatus.COMPLETE
    attempts = db_session.scalars(select(LoginAttempt).where(LoginAttempt.user_id == priya.id))
    assert [attempt.outcome for attempt in attempts] == [LoginOutcome.BAD_PASSWORD]
    refused = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "signature.refused")
    ).one()
    assert refused.participant_id == entry.participant_id
    assert '"bad_password"' in refused.details_json


def test_repeated_wrong_passwords_lock_the_account_as_at_log_in(db_session):
    trial = demo_trial()
    cora, priya = _people(trial)
    entry = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora)

    def attempt(password: str) -> SignatureRefused:
        with pytest.raises(SignatureRefused) as refusal:
            sign_entry(
                db_session,
                SETTINGS,
                actor(priya),
                priya,
                entry,
                meaning=SignatureMeaning.REVIEWED,
                proof=Reauthentication(password),
                shown_sha256=entry_content_sha256(entry),
            )
        return refusal.value

    assert attempt("wrong one").message == BAD_PASSWORD
    assert attempt("wrong two").message == BAD_PASSWORD
    assert "Your account is locked after too many failed attempts" in attempt("wrong three").message
    # Locked: even the right password signs nothing, and log-in is refused too.
    assert "Your account is locked" in attempt(PASSWORD).message
    assert _signature_count(db_session) == 0
    login = AccountService(db_session, SETTINGS).authenticate("priya", PASSWORD, actor(priya))
    assert login.status is LoginStatus.LOCKED
    assert db_session.scalar(
        select(func.count(AuditEvent.id)).where(AuditEvent.action == "account.locked")
    )


def _with_second_factor(db: Session, user: User) -> pyotp.TOTP:
    secret = pyotp.random_base32()
    user.totp_secret_encrypted = AccountService(db, SETTINGS).encrypt_totp_secret(secret)
    db.flush()
    return pyotp.TOTP(secret)


def test_a_pi_with_a_second_factor_also_gives_a_fresh_code(db_session):
    trial = demo_trial()
    cora, priya = _people(trial)
    totp = _with_second_factor(db_session, priya)
    entry = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora)
    now = datetime(2026, 3, 12, 9, 30, 10, tzinfo=UTC)

    def sign(code: str) -> Signature:
        return sign_entry(
            db_session,
            LENIENT,
            actor(priya),
            priya,
            entry,
            meaning=SignatureMeaning.APPROVED,
            proof=Reauthentication(PASSWORD, code),
            shown_sha256=entry_content_sha256(entry),
        )

    accepted_now = {totp.at(now + timedelta(seconds=30 * step)) for step in (-1, 0, 1)}
    wrong = next(code for code in ("000000", "111111", "222222") if code not in accepted_now)
    with time_machine.travel(now, tick=False):
        for code in ("", wrong):
            with pytest.raises(SignatureRefused) as refusal:
                sign(code)
            assert (refusal.value.message, refusal.value.field) == (BAD_CODE, "code")
        assert _signature_count(db_session) == 0
        signature = sign(totp.at(now))
    assert signature.valid and entry.status == FormStatus.SIGNED
    outcomes = db_session.scalars(
        select(LoginAttempt.outcome).where(LoginAttempt.user_id == priya.id)
    ).all()
    assert outcomes == [LoginOutcome.BAD_SECOND_FACTOR, LoginOutcome.BAD_SECOND_FACTOR]

    # The same code cannot sign again: it has been used.
    later = time_machine.travel(now + timedelta(seconds=5), tick=False)
    with later, pytest.raises(SignatureRefused, match="already been used"):
        sign_entry(
            db_session,
            LENIENT,
            actor(priya),
            priya,
            entry,
            meaning=SignatureMeaning.RESPONSIBLE,
            proof=Reauthentication(PASSWORD, totp.at(now)),
            shown_sha256=entry_content_sha256(entry),
        )


def test_a_form_changed_while_the_pi_read_it_is_not_signed(db_session):
    trial = demo_trial()
    cora, priya = _people(trial)
    entry = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora)
    shown = entry_content_sha256(entry)
    change_value(db_session, entry, "weight", "73.5", by=cora)
    with pytest.raises(SignatureRefused, match="changed while you were reading it"):
        sign_entry(
            db_session,
            SETTINGS,
            actor(priya),
            priya,
            entry,
            meaning=SignatureMeaning.REVIEWED,
            proof=Reauthentication(PASSWORD),
            shown_sha256=shown,
        )
    assert CHANGED_WHILE_READING.startswith("The form changed while you were reading it")
    assert _signature_count(db_session) == 0


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (FormStatus.IN_PROGRESS, "This form is still in progress"),
        (FormStatus.LOCKED, "This form is locked"),
    ],
)
def test_only_complete_forms_are_signed(db_session, status, message):
    trial = demo_trial()
    cora, priya = _people(trial)
    entry = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora, status=status)
    with pytest.raises(SignatureRefused, match=message):
        signed(db_session, entry, priya)
    assert _signature_count(db_session) == 0


def test_only_the_sites_pi_signs(db_session):
    trial = demo_trial()
    cora, _ = _people(trial)
    other_pi = staff("otto", Role.SITE_PI, trial.other_site)
    entry = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora)
    for someone in (cora, other_pi):
        with pytest.raises(SignatureRefused) as refusal:
            signed(db_session, entry, someone)
        assert refusal.value.message == NOT_A_SIGNER
    assert _signature_count(db_session) == 0


def test_the_same_meaning_is_not_signed_twice(db_session):
    trial = demo_trial()
    cora, priya = _people(trial)
    entry = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora)
    signed(db_session, entry, priya, SignatureMeaning.REVIEWED)
    with pytest.raises(SignatureRefused, match="You signed this form with this meaning"):
        signed(db_session, entry, priya, SignatureMeaning.REVIEWED)
    signed(db_session, entry, priya, SignatureMeaning.APPROVED)
    assert _signature_count(db_session) == 2


# -- changes after signing -------------------------------------------------------------------


def test_a_change_invalidates_the_forms_signature_naming_the_items(db_session):
    trial = demo_trial()
    cora, priya = _people(trial)
    cora.full_name = "Cora Jones"
    entry = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora)
    signature = signed(db_session, entry, priya)
    with (
        time_machine.travel(datetime(2026, 3, 14, 11, 0, tzinfo=UTC), tick=False),
        acting_as(db_session, actor(cora)),
        change_reason(db_session, "Re-weighed"),
    ):
        entry.values[0].value = "74.0"
        entry.values[1].value = "182"
        invalidate_signatures(db_session, entry, {"height", "weight"})

    assert signature.invalidated_at == datetime(2026, 3, 14, 11, 0, tzinfo=UTC)
    assert signature.invalidated_reason == "Weight, Height changed on 14 Mar 2026 by Cora Jones"
    assert entry.status == FormStatus.COMPLETE
    assert not verify_signature(db_session, signature)
    [state] = signature_states(db_session, entry_signatures(db_session, entry))
    assert not state.valid
    assert state.problem == (
        "Invalidated on 14 Mar 2026, 11:00 UTC because Weight, Height changed on "
        "14 Mar 2026 by Cora Jones"
    )


def test_a_change_that_went_around_the_hook_still_shows_the_signature_invalid(db_session):
    trial = demo_trial()
    cora, priya = _people(trial)
    entry = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora)
    signature = signed(db_session, entry, priya)
    with acting_as(db_session, actor(cora)), change_reason(db_session, "Fixed directly"):
        entry.values[0].value = "80.0"
    assert signature.valid  # never invalidated ...
    [state] = signature_states(db_session, entry_signatures(db_session, entry))
    assert not state.valid  # ... yet shown invalid: the content no longer hashes the same
    assert "no longer what was signed" in state.problem


def test_a_change_to_an_unsigned_form_changes_nothing(db_session):
    trial = demo_trial()
    cora, _ = _people(trial)
    entry = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora)
    change_value(db_session, entry, "weight", "70.0", by=cora)
    assert entry.status == FormStatus.COMPLETE
    invalidate_signatures(db_session, entry, set())
    assert entry.status == FormStatus.COMPLETE


def test_a_signed_and_sdvd_form_goes_back_to_complete_when_changed(db_session):
    trial = demo_trial()
    cora, priya = _people(trial)
    monitor = staff("mo", Role.MONITOR, study=trial.study)
    entry = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora)
    verify_form(db_session, actor(monitor), monitor, entry)
    signed(db_session, entry, priya)
    assert entry.status == FormStatus.SIGNED
    change_value(db_session, entry, "smoker", "1", by=cora)
    assert entry.status == FormStatus.COMPLETE


# -- casebooks -----------------------------------------------------------------------------------


def _casebook(db: Session, trial: Trial, cora: User) -> tuple[Participant, list[FormEntry]]:
    participant = ParticipantFactory(site=trial.site)
    entries = [
        form_entry(db, participant, by=cora, event=event)
        for event in ("baseline", "week_2", "week_6")
    ]
    return participant, entries


def _sign_casebook(db: Session, participant: Participant, pi: User) -> Signature:
    return sign_casebook(
        db,
        SETTINGS,
        actor(pi),
        pi,
        participant,
        meaning=SignatureMeaning.RESPONSIBLE,
        proof=Reauthentication(PASSWORD),
        shown_sha256=casebook_content_sha256(db, participant),
    )


def test_a_casebook_is_refused_while_a_form_is_in_progress_naming_it(db_session):
    trial = demo_trial()
    cora, priya = _people(trial)
    participant, _ = _casebook(db_session, trial, cora)
    form_entry(db_session, participant, by=cora, event="week_12", status=FormStatus.IN_PROGRESS)
    with pytest.raises(SignatureRefused) as refusal:
        _sign_casebook(db_session, participant, priya)
    assert "cannot be signed while forms are in progress" in refusal.value.message
    assert "Vital signs at Week 12 visit" in refusal.value.message
    assert "Week 2" not in refusal.value.message
    assert _signature_count(db_session) == 0


def test_a_signed_casebook_is_invalidated_by_a_change_to_any_of_its_forms(db_session):
    trial = demo_trial()
    cora, priya = _people(trial)
    monitor = staff("mo", Role.MONITOR, study=trial.study)
    participant, (baseline, week_2, week_6) = _casebook(db_session, trial, cora)
    verify_form(db_session, actor(monitor), monitor, week_6)
    own = signed(db_session, baseline, priya)
    casebook = _sign_casebook(db_session, participant, priya)
    assert casebook.form_entry_id is None
    assert (casebook.signer_role, casebook.meaning) == ("Site PI", SignatureMeaning.RESPONSIBLE)
    assert {entry.status for entry in (baseline, week_2, week_6)} == {FormStatus.SIGNED}

    change_value(db_session, week_2, "height", "179", by=cora)

    assert not casebook.valid
    assert casebook.invalidated_reason.startswith(
        "Height on Vital signs at Week 2 visit changed on "
    )
    assert week_2.status == FormStatus.COMPLETE
    # The baseline form keeps its own valid signature; week 6 is SDV'd again.
    assert own.valid and baseline.status == FormStatus.SIGNED
    assert week_6.status == FormStatus.VERIFIED
    states = signature_states(db_session, entry_signatures(db_session, baseline))
    assert [(state.signature.id, state.valid) for state in states] == [
        (casebook.id, False),
        (own.id, True),
    ]
