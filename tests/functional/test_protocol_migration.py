"""Moving a participant to a newer protocol version: a dry run first, a move refused
when it would drop a recorded visit, and an applied move audited with its reason."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.participants.migration import MigrationError, apply_migration, plan_migration
from bhp_ctms.participants.models import (
    ConsentGivenBy,
    ConsentKind,
    ConsentRecord,
    EligibilityAssessment,
    EligibilityOutcome,
    Participant,
    Visit,
)
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.loading import load_study
from tests.factories import MembershipFactory, ParticipantFactory, UserFactory
from tests.functional.helpers import form_posting_to, login
from tests.functional.test_study_loading import (
    DEMO_FOLDER,
    LOADER,
    amended_folder,
    record_visit,
)

REASON = "Amendment 2.0 approved by the REC on 20 May 2026"


def _demo_with_amendment(db_session, tmp_path):
    """DEMO at 1.0 and 2.0 (week 26 removed, at most two adverse events) and a
    participant at NTH on 1.0 with consent, eligibility and three visits."""
    first = load_study(db_session, LOADER, DEMO_FOLDER).version
    site = db_session.scalars(select(Site).where(Site.code == "NTH")).one()
    participant = ParticipantFactory(site=site, randomised_on=date(2026, 2, 9))
    manager = UserFactory(username="datamanager", full_name="Dara Manager")
    MembershipFactory(user=manager, role=Role.DATA_MANAGER, study_id=site.study_id)
    db_session.add_all(
        [
            ConsentRecord(
                participant=participant,
                protocol_version_id=first.id,
                kind=ConsentKind.CONSENT,
                given_by=ConsentGivenBy.PARTICIPANT,
                information_sheet_version="2.1",
                form_version="2.0",
                consented_on=date(2026, 2, 2),
                taken_by="Nurse Example",
            ),
            EligibilityAssessment(
                participant=participant,
                protocol_version_id=first.id,
                answers={},
                outcome=EligibilityOutcome.ELIGIBLE,
                assessed_on=date(2026, 2, 3),
                assessed_by_id=manager.id,
            ),
        ]
    )
    record_visit(participant, "screening", first, date(2026, 1, 27))
    record_visit(participant, "baseline", first, date(2026, 2, 9))
    record_visit(participant, "adverse_event", first, date(2026, 2, 12))
    second = load_study(db_session, LOADER, amended_folder(tmp_path)).version
    return participant, first, second


def _versions_of(db_session, participant):
    db_session.expire_all()
    visits = db_session.scalars(
        select(Visit).where(Visit.participant_id == participant.id).order_by(Visit.id)
    )
    return (
        db_session.get(Participant, participant.id).protocol_version_id,
        [visit.protocol_version_id for visit in visits],
    )


def test_the_dry_run_lists_each_visit_that_moves_and_changes_nothing(db_session, tmp_path):
    participant, first, second = _demo_with_amendment(db_session, tmp_path)

    plan = plan_migration(db_session, participant, second)

    assert plan.blocked == []
    assert [move.description for move in plan.moves] == [
        "Screening recorded on 27 Jan 2026",
        "Baseline (randomisation) recorded on 9 Feb 2026",
        "Adverse event 1 recorded on 12 Feb 2026",
    ]
    assert _versions_of(db_session, participant) == (first.id, [first.id] * 3)


def test_a_visit_without_an_event_in_the_new_version_blocks_the_move(db_session, tmp_path):
    participant, first, second = _demo_with_amendment(db_session, tmp_path)
    record_visit(participant, "week_26", first, date(2026, 3, 3))
    record_visit(participant, "adverse_event", first, date(2026, 3, 5), instance=2)
    record_visit(participant, "adverse_event", first, date(2026, 3, 9), instance=3)

    plan = plan_migration(db_session, participant, second)

    assert plan.blocked == [
        "Week 26 visit (end of study) recorded on 3 Mar 2026 has no event in protocol"
        " version 2.0: moving would drop it",
        "Adverse event 3 recorded on 9 Mar 2026 is beyond the 2 allowed for Adverse event"
        " in protocol version 2.0: moving would drop it",
    ]
    with pytest.raises(MigrationError, match=r"cannot be moved to protocol version 2\.0"):
        apply_migration(LOADER, db_session, participant, second, REASON)
    assert _versions_of(db_session, participant) == (first.id, [first.id] * 6)


def test_a_move_back_to_an_older_version_is_refused(db_session, tmp_path):
    participant, first, second = _demo_with_amendment(db_session, tmp_path)
    apply_migration(LOADER, db_session, participant, second, REASON)

    with pytest.raises(MigrationError, match=r"version 1\.0 is older"):
        plan_migration(db_session, participant, first)
    with pytest.raises(MigrationError, match=r"already on protocol version 2\.0"):
        plan_migration(db_session, participant, second)


def test_the_move_is_audited_with_its_reason_and_keeps_consent_and_eligibility(
    db_session, tmp_path
):
    participant, first, second = _demo_with_amendment(db_session, tmp_path)

    with pytest.raises(MigrationError, match="Give a reason"):
        apply_migration(LOADER, db_session, participant, second, "  ")
    plan = apply_migration(LOADER, db_session, participant, second, REASON)

    assert len(plan.moves) == 3
    assert _versions_of(db_session, participant) == (second.id, [second.id] * 3)
    assert participant.protocol_version.label == "2.0"
    # Consent and eligibility record what happened under the version they were made on.
    assert {consent.protocol_version_id for consent in participant.consents} == {first.id}
    assert {a.protocol_version_id for a in participant.eligibility_assessments} == {first.id}
    events = db_session.scalars(
        select(AuditEvent).where(
            AuditEvent.participant_id == participant.id, AuditEvent.action.like("%.updated")
        )
    ).all()
    assert sorted((event.action, event.field) for event in events) == [
        ("participant.updated", "protocol_version_id"),
        *[("visit.updated", "protocol_version_id")] * 3,
    ]
    assert {event.reason for event in events} == {REASON}
    assert {(event.old_value, event.new_value) for event in events} == {
        (str(first.id), str(second.id))
    }


def test_a_data_manager_reviews_the_plan_then_moves_the_participant(app, db_session, tmp_path):
    participant, first, second = _demo_with_amendment(db_session, tmp_path)
    login(app, "datamanager")
    path = f"/studies/DEMO/participants/{participant.code}/protocol"

    # The participant's page offers the move once a newer version is in effect.
    participant_page = app.get(f"/studies/DEMO/participants/{participant.code}/")
    page = participant_page.click(description="Move to protocol version 2.0")
    assert page.request.path == path

    assert page.html.find("h1").get_text(strip=True) == (
        f"Move {participant.code} to protocol version 2.0"
    )
    moves = page.html.find(attrs={"data-testid": "moves"}).get_text(" ", strip=True)
    assert "Baseline (randomisation) recorded on 9 Feb 2026 (now on version 1.0)" in moves
    form = form_posting_to(page, path)

    missing = form.submit(status=400)
    assert "Enter a reason for moving the participant" in missing.text
    assert _versions_of(db_session, participant)[0] == first.id

    form = form_posting_to(missing, path)
    form["reason"] = REASON
    moved = form.submit(status=303)

    assert moved.location.endswith(f"/studies/DEMO/participants/{participant.code}/")
    assert _versions_of(db_session, participant) == (second.id, [second.id] * 3)
    reasons = set(
        db_session.scalars(
            select(AuditEvent.reason).where(
                AuditEvent.participant_id == participant.id,
                AuditEvent.action.in_(["participant.updated", "visit.updated"]),
            )
        )
    )
    assert reasons == {REASON}
    actors = set(
        db_session.scalars(
            select(AuditEvent.actor_name).where(AuditEvent.action == "participant.updated")
        )
    )
    assert actors == {"Dara Manager"}


def test_a_blocked_plan_shows_why_and_offers_no_move(app, db_session, tmp_path):
    participant, first, _ = _demo_with_amendment(db_session, tmp_path)
    record_visit(participant, "week_26", first, date(2026, 3, 3))
    login(app, "datamanager")
    path = f"/studies/DEMO/participants/{participant.code}/protocol"

    page = app.get(path)

    blocked = page.html.find(attrs={"data-testid": "blocked"}).get_text(" ", strip=True)
    assert "Week 26 visit (end of study) recorded on 3 Mar 2026 has no event" in blocked
    assert not any(form.action == path for form in page.forms.values())
    refused = app.post(path, {"to": "2", "reason": REASON, "csrf_token": _csrf(page)}, status=400)
    assert "moving would drop it" in refused.text
    assert _versions_of(db_session, participant)[0] == first.id

    unknown = app.get(f"{path}?to=7", status=400)
    assert "There is no protocol version 7 of DEMO" in unknown.text


def test_moving_participants_needs_the_protocol_migrate_permission(app, db_session, tmp_path):
    participant, first, _ = _demo_with_amendment(db_session, tmp_path)
    coordinator = UserFactory(username="coordinator")
    MembershipFactory(
        user=coordinator,
        role=Role.SITE_COORDINATOR,
        study_id=participant.study_id,
        site_id=participant.site_id,
    )
    login(app, "coordinator")
    path = f"/studies/DEMO/participants/{participant.code}/protocol"

    app.get(path, status=403)
    app.post(
        path, {"to": "2", "reason": REASON, "csrf_token": _csrf(app.get("/account"))}, status=403
    )

    assert _versions_of(db_session, participant)[0] == first.id


def _csrf(page):
    return page.html.find("input", {"name": "csrf_token"})["value"]
