"""Randomising through the pages: the unblinded statistician makes the list, a
coordinator randomises an eligible participant and sees the kit number (never the arm
in a blinded study), refusals say every reason, and the statistician's report shows
the arms."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.mail.models import OutboundEmail
from bhp_ctms.participants.models import ParticipantStatus
from bhp_ctms.permissions import Role
from bhp_ctms.randomisation.models import Allocation, AllocationList, ListEntry, Unblinding
from bhp_ctms.randomisation.services import RandomisationRefused, RandomisationService
from bhp_ctms.studies.models import Blinding
from tests.factories import PASSWORD
from tests.factories.randomisation import (
    SETTINGS,
    actor_of,
    eligible_participant,
    generated_list,
    with_randomisation,
)
from tests.functional.helpers import csrf_token, form_posting_to, login
from tests.functional.test_participant_registration import (
    STUDY,
    demo_trial,
    flash,
    shown,
    staff,
)

ARM_TEXTS = ("walking", "usual_care", "Daily walking programme", "Usual care")
LISTS = f"{STUDY}/randomisation"
REPORT = f"{STUDY}/randomisation/allocations"


def login_as(app, username: str) -> None:
    app.reset()
    login(app, username)


def participant_path(code: str) -> str:
    return f"{STUDY}/participants/{code}/"


def randomise_path(code: str) -> str:
    return f"{STUDY}/participants/{code}/randomise"


def allocations(db_session) -> list[Allocation]:
    return list(db_session.scalars(select(Allocation).order_by(Allocation.id)))


@pytest.fixture
def people():
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    priya = staff("priya", Role.SITE_PI, trial.site)
    una = staff("una", Role.STATISTICIAN_UNBLINDED, study=trial.study)
    sam = staff("sam", Role.STATISTICIAN_BLINDED, study=trial.study)
    dara = staff("dara", Role.DATA_MANAGER, study=trial.study)
    return trial, cora, priya, una, sam, dara


def test_statistician_generates_the_list_and_a_coordinator_randomises(app, db_session, people):
    trial, cora, priya, _, _, _ = people
    participant = eligible_participant(db_session, trial.site, cora, priya)

    login_as(app, "una")
    page = app.get(LISTS)
    assert "no-list" in page.text
    # The demo protocol requires a list generated here: no upload form at all.
    assert "seed-required" in page.text
    assert not any("file" in form.fields for form in page.forms.values())
    form = form_posting_to(page, LISTS)
    form["seed"] = "walk-2026"
    form["per_stratum"] = "10"
    page = form.submit().follow()
    assert "The allocation list is generated" in flash(page)
    # Two strata (NTH, CHH), blocks of 4 and 6 completed: at least 10 each.
    assert int(shown(page, "entry-count")) >= 20
    assert shown(page, "list-verified") == "Matches the stored list"
    assert shown(page, "seed") == "walk-2026"

    login_as(app, "cora")
    page = app.get(participant_path(participant.code))
    assert shown(page, "not-randomised") == "Not randomised."
    page = app.get(randomise_path(participant.code))
    assert "refusals" not in page.text
    page = form_posting_to(page, randomise_path(participant.code)).submit().follow()
    allocation = allocations(db_session)[0]
    assert allocation.kit_code
    assert f"kit number {allocation.kit_code}" in flash(page)
    assert shown(page, "kit-code") == allocation.kit_code
    assert shown(page, "randomisation-number") == "1"
    for text in ARM_TEXTS[2:]:
        assert text not in flash(page)
    assert 'data-testid="arm"' not in page.text
    db_session.refresh(participant)
    assert participant.status == ParticipantStatus.RANDOMISED
    assert participant.randomised_on is not None

    # The unblinded statistician's report shows the arm.
    login_as(app, "una")
    report = app.get(REPORT)
    row = shown(report, f"allocation-{participant.code}")
    assert allocation.kit_code in row
    assert any(name in row for name in ("Daily walking programme", "Usual care"))


def test_a_participant_not_ready_is_refused_with_every_reason(app, db_session, people):
    trial, cora, priya, una, _, _ = people
    generated_list(db_session, trial.study, una)
    unconfirmed = eligible_participant(db_session, trial.site, cora, priya, confirmed=False)
    login_as(app, "cora")
    page = app.get(randomise_path(unconfirmed.code))
    reasons = [li.get_text(" ", strip=True) for li in page.html.select('[data-testid="refusal"]')]
    assert reasons == [
        "The participant is consented: only an eligible participant can be randomised",
        "Eligibility has not been confirmed by the PI",
    ]
    assert "randomise-form" not in page.text
    # A request sent anyway is refused too, and allocates nothing.
    response = app.post(
        randomise_path(unconfirmed.code),
        {"csrf_token": csrf_token(app, randomise_path(unconfirmed.code))},
        status=409,
    )
    assert "Eligibility has not been confirmed by the PI" in response.text
    assert allocations(db_session) == []


def test_without_a_list_nobody_is_randomised(db_session, people):
    trial, cora, priya, _, _, _ = people
    participant = eligible_participant(db_session, trial.site, cora, priya)
    with pytest.raises(RandomisationRefused) as refusal:
        RandomisationService(db_session, SETTINGS).randomise(actor_of(cora), participant)
    assert refusal.value.reasons == [
        "The study has no allocation list yet: the trial statistician must generate or upload "
        "one before anyone is randomised"
    ]


def test_a_participant_is_randomised_once_and_positions_follow_on(db_session, people):
    trial, cora, priya, una, _, _ = people
    made = generated_list(db_session, trial.study, una)
    service = RandomisationService(db_session, SETTINGS)
    first = eligible_participant(db_session, trial.site, cora, priya)
    second = eligible_participant(db_session, trial.site, cora, priya)
    one = service.randomise(actor_of(cora), first)
    with pytest.raises(RandomisationRefused) as refusal:
        service.randomise(actor_of(cora), first)
    assert refusal.value.reasons[0].startswith(
        f"Participant {first.code} was already randomised on"
    )
    two = service.randomise(actor_of(cora), second)
    assert (one.stratum, one.sequence, two.sequence) == ("site=NTH", 1, 2)
    listed = db_session.scalars(
        select(ListEntry)
        .where(ListEntry.list_id == made.id, ListEntry.stratum == "site=NTH")
        .order_by(ListEntry.sequence)
        .limit(2)
    ).all()
    assert [(a.arm_code, a.kit_code) for a in (one, two)] == [
        (entry.arm_code, entry.kit_code) for entry in listed
    ]
    created = db_session.scalar(
        select(func.count(AuditEvent.id)).where(
            AuditEvent.action == "allocation.created", AuditEvent.field == "arm_code"
        )
    )
    assert created == 2


def test_the_blinded_statistician_sees_no_list_and_no_report(app, db_session, people):
    trial, _, _, una, _, _ = people
    generated_list(db_session, trial.study, una)
    login_as(app, "sam")
    app.get(LISTS, status=403)
    app.get(REPORT, status=403)
    app.get(f"{LISTS}/list.csv", status=403)
    page = app.get(STUDY)
    assert "randomisation-links" not in page.text


def test_in_an_open_label_study_the_coordinator_sees_the_arm(app, db_session, people):
    trial, cora, priya, una, _, _ = people
    trial.study.blinding = Blinding.OPEN
    generated_list(db_session, trial.study, una)
    participant = eligible_participant(db_session, trial.site, cora, priya)
    login_as(app, "cora")
    page = (
        form_posting_to(app.get(randomise_path(participant.code)), randomise_path(participant.code))
        .submit()
        .follow()
    )
    arm = shown(page, "arm")
    assert arm in ("Daily walking programme", "Usual care")
    assert arm in flash(page)


def test_minimisation_records_every_allocations_scores(app, db_session, people):
    trial, cora, priya, una, _, _ = people
    with_randomisation(
        trial.study,
        {
            "method": "minimisation",
            "factors": [{"code": "site", "weight": 1}],
            "preferred_p": 1,
        },
    )
    service = RandomisationService(db_session, SETTINGS)
    participant = eligible_participant(db_session, trial.site, cora, priya)
    with pytest.raises(RandomisationRefused) as refusal:
        service.randomise(actor_of(cora), participant)
    assert "minimisation seed" in refusal.value.reasons[0]
    made = generated_list(db_session, trial.study, una, seed="minimise-me")
    assert made.entry_count == 0
    first = service.randomise(actor_of(cora), participant)
    second = service.randomise(
        actor_of(cora), eligible_participant(db_session, trial.site, cora, priya)
    )
    assert first.scores is not None and second.scores is not None
    # With p = 1 the second participant at the same site goes to the other arm.
    assert second.arm_code != first.arm_code
    assert second.scores["chosen_by"] == "preferred"
    assert (first.sequence, second.sequence) == (1, 2)
    login_as(app, "una")
    report = app.get(REPORT)
    assert "(preferred)" in shown(report, f"allocation-{second.participant.code}")


def test_a_list_is_not_replaced_once_used(db_session, people):
    trial, cora, priya, una, _, _ = people
    generated_list(db_session, trial.study, una, seed="first")
    again = generated_list(db_session, trial.study, una, seed="second")
    assert db_session.scalar(select(func.count(AllocationList.id))) == 2
    assert again.active
    RandomisationService(db_session, SETTINGS).randomise(
        actor_of(cora), eligible_participant(db_session, trial.site, cora, priya)
    )
    from bhp_ctms.randomisation.allocation_lists import ListRefused

    with pytest.raises(ListRefused) as refusal:
        generated_list(db_session, trial.study, una, seed="third")
    assert refusal.value.message == (
        "1 participants have been allocated from the current list: it can no longer be replaced"
    )


# -- emergency unblinding -------------------------------------------------------------------


def unblind_path(code: str) -> str:
    return f"{STUDY}/participants/{code}/unblind"


def test_emergency_unblinding_needs_a_reason_and_the_password_and_tells_the_ctu(
    app, db_session, people
):
    trial, cora, priya, una, _, _ = people
    generated_list(db_session, trial.study, una)
    participant = eligible_participant(db_session, trial.site, cora, priya)
    allocation = RandomisationService(db_session, SETTINGS).randomise(actor_of(cora), participant)
    arm_name = {"walking": "Daily walking programme", "usual_care": "Usual care"}[
        allocation.arm_code
    ]

    # The coordinator has no unblinding; the PI has, at their own site.
    login_as(app, "cora")
    assert "unblind-link" not in app.get(participant_path(participant.code)).text
    app.get(unblind_path(participant.code), status=403)
    login_as(app, "priya")
    page = app.get(participant_path(participant.code))
    assert "unblind-link" in page.text
    assert arm_name not in page.text

    page = app.get(unblind_path(participant.code))
    form = form_posting_to(page, unblind_path(participant.code))
    form["password"] = "not my password"
    page = form.submit(status=400)
    assert "Enter why the participant" in page.text
    form = form_posting_to(page, unblind_path(participant.code))
    assert form["password"].value == ""
    form["reason"] = "Anaphylaxis: treatment depends on the arm"
    form["password"] = "not my password"
    page = form.submit(status=400)
    assert "Your password is not right: nothing was unblinded" in page.text
    assert arm_name not in page.text
    form = form_posting_to(page, unblind_path(participant.code))
    assert form["reason"].value == "Anaphylaxis: treatment depends on the arm"
    refused = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "unblinding.refused")
    ).one()
    assert refused.participant_id == participant.id

    form["password"] = PASSWORD
    page = form.submit()
    assert shown(page, "unblinded-arm") == arm_name
    assert page.headers["Cache-Control"] == "no-store"
    unblinding = db_session.scalars(select(Unblinding)).one()
    assert (unblinding.user_id, unblinding.reason) == (
        priya.id,
        "Anaphylaxis: treatment depends on the arm",
    )
    created = db_session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "unblinding.created", AuditEvent.field == "reason"
        )
    ).one()
    assert created.participant_id == participant.id
    email = db_session.scalars(select(OutboundEmail)).one()
    assert email.kind == "unblinding"
    assert email.recipients == [SETTINGS.ctu_email]
    assert participant.code in email.subject
    assert "Anaphylaxis" in email.body
    for text in ARM_TEXTS:
        assert text not in email.body

    # Afterwards the PI's pages are blinded again: the arm was shown once.
    assert arm_name not in app.get(participant_path(participant.code)).text


def test_the_outbox_delivers_each_message_once(db_session):
    from bhp_ctms.mail.services import LogMailer, deliver, queue_email

    class Recording(LogMailer):
        def __init__(self) -> None:
            self.sent: list[str] = []

        def deliver(self, sender, to, subject, body) -> None:
            self.sent.append(subject)

    mailer = Recording()
    email = queue_email(
        db_session, SETTINGS, kind="test", to=["ctu@example.org"], subject="Hello", body="Body"
    )
    assert deliver(db_session, mailer, email)
    assert deliver(db_session, mailer, email)
    assert mailer.sent == ["Hello"]
    assert email.sent_at is not None and email.attempts == 1


# -- randomisation done in error --------------------------------------------------------------


def test_a_data_manager_marks_a_randomisation_invalid_without_freeing_its_position(
    app, db_session, people
):
    trial, cora, priya, una, _, _ = people
    generated_list(db_session, trial.study, una)
    service = RandomisationService(db_session, SETTINGS)
    first = eligible_participant(db_session, trial.site, cora, priya)
    allocation = service.randomise(actor_of(cora), first)

    login_as(app, "dara")
    path = f"{STUDY}/participants/{first.code}/allocation/invalidate"
    page = app.get(participant_path(first.code))
    assert "invalidate-link" in page.text
    page = form_posting_to(app.get(path), path).submit(status=400)
    assert "Enter why the randomisation was done in error" in page.text
    form = form_posting_to(page, path)
    form["reason"] = "Randomised before consent was recorded"
    page = form.submit().follow()
    assert "marked invalid" in flash(page)
    assert "Randomised before consent was recorded" in shown(page, "allocation-invalid")
    db_session.refresh(allocation)
    assert not allocation.valid
    reasons = db_session.scalars(
        select(AuditEvent.reason).where(
            AuditEvent.action == "allocation.updated", AuditEvent.field == "invalid_reason"
        )
    ).all()
    assert reasons == ["Randomised before consent was recorded"]

    # The position stays used: the next participant takes the next one.
    second = service.randomise(
        actor_of(cora), eligible_participant(db_session, trial.site, cora, priya)
    )
    assert second.sequence == 2
    # And the coordinator cannot mark it invalid.
    login_as(app, "cora")
    app.get(path, status=403)


# -- uploading a list ----------------------------------------------------------------------------


def test_an_uploaded_list_is_checked_row_by_row_and_stored_only_when_valid(app, db_session, people):
    with_randomisation(
        people[0].study,
        {"method": "permuted_blocks", "block_sizes": [2, 4], "stratify_by": ["site"]},
    )
    login_as(app, "una")
    bad = (
        "stratum,sequence,arm,kit_code\n"
        "site=NTH,1,walking,K001\n"
        "site=NTH,2,placebo,K002\n"
        "site=XYZ,1,walking,K003\n"
        "site=NTH,2,usual_care,K001\n"
    )
    form = next(f for f in app.get(LISTS).forms.values() if "file" in f.fields)
    form["file"] = ("list.csv", bad.encode("utf-8"))
    page = form.submit(status=400)
    problems = [
        row.get_text(" ", strip=True) for row in page.html.select('[data-testid="list-problem"]')
    ]
    assert len(problems) >= 4
    assert any(problem.startswith("3 ") and "placebo" in problem for problem in problems)
    assert any(problem.startswith("4 ") and "site=XYZ" in problem for problem in problems)
    assert db_session.scalar(select(func.count(AllocationList.id))) == 0

    good = "\ufeffstratum,sequence,arm,kit_code\r\n" + "".join(
        f"site={site},{n},{'walking' if n % 2 else 'usual_care'},{site}{n:03d}\r\n"
        for site in ("NTH", "CHH")
        for n in range(1, 5)
    )
    form = next(f for f in app.get(LISTS).forms.values() if "file" in f.fields)
    form["file"] = ("list.csv", good.encode("utf-8"))
    page = form.submit().follow()
    assert "The allocation list is uploaded: 8 positions" in flash(page)
    assert shown(page, "list-verified") == "Matches the stored list"
    download = app.get(f"{LISTS}/list.csv")
    assert download.content_type == "text/csv"
    assert "site=NTH,1,walking,NTH001" in download.text
    assert db_session.scalars(
        select(AuditEvent.action).where(AuditEvent.action == "allocation_list.downloaded")
    ).all() == ["allocation_list.downloaded"]


def test_a_study_check_reports_a_bad_randomisation_setting_at_its_line(tmp_path):
    import shutil
    from pathlib import Path

    from bhp_ctms.studies.definition import check_study

    folder = tmp_path / "study"
    shutil.copytree(Path(__file__).resolve().parents[2] / "forms" / "demo", folder)
    study = folder / "study.yaml"
    text = study.read_text()
    text = text.replace(
        "  block_sizes: [4, 6]\n  stratify_by: [site]",
        "  block_sizes: [4, 6]\n  stratify_by: [site, sex]\n  factors:\n"
        "    - code: sex\n      item: screening/demographics.sexx",
    )
    study.write_text(text)
    problems = [str(problem) for problem in check_study(folder)]
    line = text.splitlines().index("      item: screening/demographics.sexx") + 1
    assert problems == [
        f"{study}:{line}:13: randomisation.factors[0].item: form 'demographics' has no item 'sexx'"
    ]
