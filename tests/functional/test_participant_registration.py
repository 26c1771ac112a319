"""Registering (screening) participants: at open sites of recruiting studies, by site
staff only, with study IDs from the study's pattern that are unique and gap-free per
site, even with fifty people registering at once, on SQLite and PostgreSQL.

The helpers at the top set up the demo study and are shared by the other participant
tests.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bhp_ctms.accounts.models import User
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.participants.models import Participant, ParticipantSequence, ParticipantStatus
from bhp_ctms.participants.services import ParticipantError, ParticipantService
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site, SiteStatus
from bhp_ctms.studies.models import ProtocolVersion, Study, StudyStatus
from tests.concurrency import committed_engine, retried
from tests.conftest import make_settings
from tests.databases import BACKENDS
from tests.factories import (
    MembershipFactory,
    ProtocolVersionFactory,
    SiteFactory,
    StudyFactory,
    UserFactory,
    definition_sha256,
    demo_definition,
)
from tests.functional.helpers import csrf_token, form_posting_to, login

STUDY = "/studies/DEMO"
REGISTER = f"{STUDY}/sites/NTH/register"
SETTINGS = make_settings("sqlite://")


# -- shared set-up ----------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    study: Study
    site: Site
    other_site: Site
    version: ProtocolVersion


def demo_trial(*, children: bool = False, site_status: SiteStatus = SiteStatus.OPEN) -> Trial:
    """The demo study (forms/demo) with its two sites, NTH and CHH."""
    study = StudyFactory(code="DEMO", title="Daily walking after hip replacement")
    site = SiteFactory(study=study, code="NTH", name="Northern General Hospital")
    site.status = site_status
    other = SiteFactory(study=study, code="CHH", name="Children's Hospital")
    definition = demo_definition()
    if children:
        definition["children"] = True
        definition["consent"]["child_information_sheet"] = "1.2"
        definition["consent"]["assent_form"] = "1.1"
    version = ProtocolVersionFactory(
        study=study, definition=definition, definition_sha256=definition_sha256(definition)
    )
    return Trial(study, site, other, version)


def staff(username: str, role: Role, site: Site | None = None, study: Study | None = None) -> User:
    """A user holding ``role`` at one site, or study-wide when no site is given."""
    user = UserFactory(username=username, full_name=username.replace("_", " ").title())
    if site is not None:
        MembershipFactory(user=user, role=role, study_id=site.study_id, site_id=site.id)
    else:
        MembershipFactory(user=user, role=role, study_id=study.id if study else None)
    return user


def actor(user: User) -> AuditActor:
    return AuditActor(user_id=user.id, name=user.full_name)


def service(db_session: Session, today: date | None = None) -> ParticipantService:
    return ParticipantService(db_session, SETTINGS, (lambda: today) if today else None)


def register(db_session: Session, trial: Trial, user: User, **values) -> Participant:
    values.setdefault("registered_on", date(2026, 2, 2))
    values.setdefault("is_child", False)
    return service(db_session).register(actor(user), trial.site, **values)


def audit_events(db_session: Session, entity_type: str, entity_id: int) -> list[AuditEvent]:
    return list(
        db_session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == entity_type, AuditEvent.entity_id == str(entity_id))
            .order_by(AuditEvent.id)
        )
    )


def error_next_to(page, field_id: str) -> str:
    """The error message shown beside a field (the design system's ``<id>-error``)."""
    element = page.html.find(id=f"{field_id}-error")
    return element.get_text(" ", strip=True) if element is not None else ""


def error_summary(page) -> str:
    summary = page.html.find(attrs={"data-testid": "error-summary"})
    return summary.get_text(" ", strip=True) if summary is not None else ""


def flash(page) -> str:
    return " ".join(
        banner.get_text(" ", strip=True)
        for banner in page.html.find_all(attrs={"data-testid": "flash"})
    )


def shown(page, testid: str) -> str:
    element = page.html.find(attrs={"data-testid": testid})
    return element.get_text(" ", strip=True) if element is not None else ""


def fill_date(form, name: str, value: date) -> None:
    form[f"{name}-day"] = str(value.day)
    form[f"{name}-month"] = str(value.month)
    form[f"{name}-year"] = str(value.year)


# -- registering through the page ----------------------------------------------------------


def test_a_coordinator_registers_participants_with_consecutive_study_ids(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    login(app, "cora")

    form = form_posting_to(app.get(REGISTER), REGISTER)
    assert form["registered_on-year"].value == str(date.today().year)
    fill_date(form, "registered_on", date(2026, 2, 2))
    response = form.submit()

    assert response.status_int == 303
    assert response.location.endswith(f"{STUDY}/participants/DEMO-NTH-0001/")
    page = response.follow()
    assert "Participant DEMO-NTH-0001 has been registered." in flash(page)
    assert "Screened since 2 Feb 2026" in shown(page, "participant-status")
    assert shown(page, "participant-registered_on") == "2 Feb 2026"
    assert shown(page, "participant-protocol_version_id") == "1.0"

    second = form_posting_to(app.get(REGISTER), REGISTER).submit()
    assert second.location.endswith("/participants/DEMO-NTH-0002/")

    participant = db_session.scalars(select(Participant).where(Participant.sequence == 1)).one()
    assert (participant.code, participant.status, participant.protocol_version_id) == (
        "DEMO-NTH-0001",
        ParticipantStatus.SCREENED,
        trial.version.id,
    )
    events = audit_events(db_session, "participant", participant.id)
    assert {event.action for event in events} == {"participant.created"}
    by_field = {event.field: event for event in events}
    assert len(by_field) == len(events), "one event per value"
    assert by_field["code"].new_value == '"DEMO-NTH-0001"'
    assert by_field["status"].new_value == '"screened"'
    assert by_field["registered_on"].new_value == '"2026-02-02"'
    assert {event.actor_name for event in events} == {"Cora"}
    assert {event.actor_id for event in events} == {cora.id}
    assert {event.site_id for event in events} == {trial.site.id}


@pytest.mark.parametrize(
    "site_status", [SiteStatus.SUSPENDED, SiteStatus.PENDING, SiteStatus.CLOSED]
)
def test_only_open_sites_recruit(app, db_session, site_status):
    trial = demo_trial(site_status=site_status)
    staff("cora", Role.SITE_COORDINATOR, trial.site)
    login(app, "cora")
    page = app.get(REGISTER)
    message = f"Site NTH is {site_status.label.lower()}: only open sites can recruit"
    assert message in shown(page, "registration-problem")
    assert not [form for form in page.forms.values() if form.action == REGISTER]

    refused = app.post(
        REGISTER,
        {"csrf_token": csrf_token(app), "registered_on": "2026-02-02"},
        expect_errors=True,
    )
    assert refused.status_int == 400
    assert message in error_summary(refused)
    assert db_session.scalar(select(func.count(Participant.id))) == 0


@pytest.mark.parametrize(
    ("role", "at_site"),
    [
        (Role.DATA_MANAGER, False),
        (Role.MONITOR, False),
        (Role.CTU_ADMIN, False),
        # Site roles held study-wide do not make someone staff of this site.
        (Role.SITE_COORDINATOR, False),
        (Role.SITE_COORDINATOR, "other"),
    ],
)
def test_only_the_sites_own_staff_register(app, db_session, role, at_site):
    trial = demo_trial()
    user = staff(
        "someone",
        role,
        site=trial.other_site if at_site == "other" else None,
        study=trial.study,
    )
    login(app, user.username)
    # Staff of another site do not see this site at all (404); others may see it but
    # not register there (403).
    refused = 404 if at_site == "other" else 403
    assert app.get(REGISTER, expect_errors=True).status_int == refused
    response = app.post(
        REGISTER,
        {"csrf_token": csrf_token(app), "registered_on": "2026-02-02"},
        expect_errors=True,
    )
    assert response.status_int == refused
    assert db_session.scalar(select(func.count(Participant.id))) == 0


# -- the rules, through the service -----------------------------------------------------------


def test_the_study_id_follows_the_studys_pattern(db_session):
    trial = demo_trial()
    trial.study.participant_id_pattern = "{site}/{seq:03d}/{study}"
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    first = register(db_session, trial, cora)
    second = register(db_session, trial, cora)
    other = service(db_session).register(
        actor(cora), trial.other_site, registered_on=date(2026, 2, 2), is_child=False
    )
    assert [first.code, second.code, other.code] == ["NTH/001/DEMO", "NTH/002/DEMO", "CHH/001/DEMO"]
    assert [first.sequence, second.sequence, other.sequence] == [1, 2, 1]


@pytest.mark.parametrize(
    ("study_status", "message"),
    [
        (StudyStatus.SET_UP, "Study DEMO is set-up: participants can be registered only while"),
        (StudyStatus.CLOSED_TO_RECRUITMENT, "Study DEMO is closed to recruitment: participants"),
        (StudyStatus.FOLLOW_UP, "Study DEMO is follow up: participants can be registered only"),
    ],
)
def test_only_recruiting_studies_register(db_session, study_status, message):
    trial = demo_trial()
    trial.study.status = study_status
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    with pytest.raises(ParticipantError, match=message):
        register(db_session, trial, cora)


def test_a_study_without_a_protocol_version_in_effect_registers_nobody(db_session):
    trial = demo_trial()
    trial.version.effective_on = date(2099, 1, 1)
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    with pytest.raises(ParticipantError, match="has no protocol version in effect yet"):
        register(db_session, trial, cora)


def test_the_registration_date_cannot_be_in_the_future(db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    with pytest.raises(ParticipantError, match="cannot be in the future") as refused:
        service(db_session, today=date(2026, 3, 1)).register(
            actor(cora), trial.site, registered_on=date(2026, 3, 2), is_child=False
        )
    assert refused.value.field == "registered_on"


def test_a_rolled_back_registration_gives_its_number_back(db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    register(db_session, trial, cora)
    nested = db_session.begin_nested()
    assert register(db_session, trial, cora).code == "DEMO-NTH-0002"
    nested.rollback()
    assert register(db_session, trial, cora).code == "DEMO-NTH-0002"
    assert db_session.get(ParticipantSequence, trial.site.id).last_sequence == 2


# -- fifty at once ------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def committed_database(request, tmp_path):
    """A database of its own (an SQLite file, or PostgreSQL) where writers really commit."""
    with committed_engine(request.param, tmp_path, "ctms_registration") as engine:
        yield engine


def _committed_trial(engine) -> int:
    """The demo study with an open site, committed; returns the site's id."""
    with Session(engine) as session, session.begin():
        study = Study(
            code="DEMO",
            title="Daily walking after hip replacement",
            status=StudyStatus.RECRUITING,
        )
        site = Site(study=study, code="NTH", name="Northern General Hospital")
        site.status = SiteStatus.OPEN
        definition = demo_definition()
        version = ProtocolVersion(
            study=study,
            number=1,
            label="1.0",
            effective_on=date(2026, 1, 5),
            definition=definition,
            definition_sha256=definition_sha256(definition),
        )
        session.add_all([study, site, version])
        session.flush()
        return site.id


def test_fifty_concurrent_registrations_get_fifty_consecutive_study_ids(committed_database):
    site_id = _committed_trial(committed_database)
    registrar = AuditActor(user_id=None, name="concurrency test")
    start = threading.Barrier(50)
    errors: list[BaseException] = []
    attempts: list[int] = []

    def register_one(session: Session) -> None:
        site = session.get_one(Site, site_id)
        ParticipantService(session, SETTINGS).register(
            registrar, site, registered_on=date(2026, 2, 2), is_child=False
        )

    def run() -> None:
        try:
            start.wait()
            attempts.append(retried(committed_database, register_one)[1])
        except BaseException as error:  # reported below, with the thread's own failure
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    with Session(committed_database) as session:
        codes = session.scalars(select(Participant.code).order_by(Participant.sequence)).all()
        assert codes == [f"DEMO-NTH-{n:04d}" for n in range(1, 51)]
        assert session.get_one(ParticipantSequence, site_id).last_sequence == 50
        created = session.scalar(
            select(func.count(AuditEvent.id)).where(
                AuditEvent.action == "participant.created", AuditEvent.field == "code"
            )
        )
        assert created == 50
