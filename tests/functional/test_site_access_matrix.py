"""The matrix of routes, roles and sites: no page or action shows or changes another site's
data.

Every role is granted at site A only, and every route is walked, by GET and POST,
with site B's objects in its placeholders: each answer is a 404 that names nothing
of site B. Pages that take no site object (lists, dashboards, the audit
trail) are read too, and must not mention site B's participants either. The routes
come from the running application, so a route added later is walked as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest
from sqlalchemy import func, select

from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.crf.models import FormStatus, Query, QueryOrigin
from bhp_ctms.participants.models import (
    ConsentGivenBy,
    ConsentKind,
    ConsentRecord,
    EligibilityAssessment,
    EligibilityOutcome,
    ParticipantStatus,
    Visit,
    VisitStatus,
)
from bhp_ctms.permissions import Role
from tests.factories import (
    MembershipFactory,
    ParticipantFactory,
    SiteFactory,
    StudyFactory,
    UserFactory,
)
from tests.factories.crf import form_entry, store_form_version
from tests.functional.helpers import csrf_token, login
from tests.functional.test_route_security import PUBLIC_ROUTES, route_views

# Names of site B's things that must never reach a user of site A.
SITE_B_NAME = "Bravo Infirmary"


@dataclass(frozen=True)
class TwoSites:
    study_code: str
    site_a: object
    site_b: object
    participant_a: str
    participant_b: str
    placeholders_b: dict[str, str]


def _participant_with_records(site, user):
    participant = ParticipantFactory(site=site, status=ParticipantStatus.CONSENTED)
    consent = ConsentRecord(
        participant=participant,
        protocol_version_id=participant.protocol_version_id,
        kind=ConsentKind.CONSENT,
        given_by=ConsentGivenBy.PARTICIPANT,
        information_sheet_version="1.0",
        form_version="1.0",
        consented_on=date(2026, 2, 3),
        taken_by="Nurse Example",
    )
    assessment = EligibilityAssessment(
        participant=participant,
        protocol_version_id=participant.protocol_version_id,
        answers={},
        outcome=EligibilityOutcome.ELIGIBLE,
        assessed_on=date(2026, 2, 3),
        assessed_by_id=user.id,
    )
    visit = Visit(
        participant=participant,
        event_code="screening",
        instance=1,
        protocol_version_id=participant.protocol_version_id,
        status=VisitStatus.DONE,
        visit_on=date(2026, 2, 3),
    )
    session = ParticipantFactory._meta.sqlalchemy_session
    session.add_all([consent, assessment, visit])
    session.flush()
    return participant, assessment


@pytest.fixture
def two_sites(db_session):
    study = StudyFactory(code="MTX")
    site_a = SiteFactory(study=study, code="AAA", name="Alpha General")
    site_b = SiteFactory(study=study, code="BBB", name=SITE_B_NAME)
    staff_b = UserFactory(username="bravo_staff")
    membership_b = MembershipFactory(
        user=staff_b, role=Role.SITE_COORDINATOR, study_id=study.id, site_id=site_b.id
    )
    participant_a, _ = _participant_with_records(site_a, staff_b)
    participant_b, assessment_b = _participant_with_records(site_b, staff_b)
    entry_b = form_entry(
        participant_b, store_form_version(study.id), {"weight": "70"}, status=FormStatus.COMPLETE
    )
    query_b = Query(
        entry=entry_b, item_path="weight", origin=QueryOrigin.MANUAL, text="Please check."
    )
    db_session.add(query_b)
    db_session.flush()
    return TwoSites(
        study_code=study.code,
        site_a=site_a,
        site_b=site_b,
        participant_a=participant_a.code,
        participant_b=participant_b.code,
        placeholders_b={
            "{code}": study.code,
            "{site}": site_b.code,
            "{participant}": participant_b.code,
            "{assessment}": str(assessment_b.id),
            "{membership}": str(membership_b.id),
            "{event}": "screening",
            "{instance}": "1",
            "{version}": "1",
            "{form}": "vitals",
            "{entry}": str(entry_b.id),
            "{query}": str(query_b.id),
        },
    )


def _path(pattern: str, placeholders: dict[str, str]) -> str:
    path = pattern
    for placeholder, value in placeholders.items():
        path = path.replace(placeholder, value)
    assert "{" not in path, f"add a value for the placeholders of {pattern}"
    return path if path.startswith("/") else "/" + path


def _names_site_b(text: str, sites: TwoSites) -> bool:
    return sites.participant_b in text or SITE_B_NAME in text


@pytest.mark.parametrize("role", list(Role))
def test_a_role_at_site_a_reaches_nothing_of_site_b(app, db_session, two_sites, role):
    user = UserFactory(username=f"alpha_{role.value}")
    MembershipFactory(
        user=user, role=role, study_id=two_sites.site_a.study_id, site_id=two_sites.site_a.id
    )
    events_before = db_session.scalar(select(func.max(AuditEvent.id))) or 0
    login(app, user.username)
    token = csrf_token(app)
    walked = 0
    for view in route_views(app.app.registry):
        if view.route_name in PUBLIC_ROUTES | {"__static/", "logout"}:
            continue
        path = _path(view.pattern, two_sites.placeholders_b)
        takes_site_object = any(
            name in view.pattern
            for name in ("{site}", "{participant}", "{membership}", "{entry}", "{query}")
        )
        for method in view.methods:
            if method == "GET":
                response = app.get(path, expect_errors=True)
            else:
                response = app.post(path, {"csrf_token": token}, expect_errors=True)
            walked += 1
            where = f"{role.value} {method} {path}"
            if takes_site_object:
                # Not even a 403: another site's objects are not there for them.
                assert response.status_int == 404, f"{where}: {response.status}"
            else:
                assert response.status_int < 500, f"{where}: {response.status}"
            body = response.text if response.content_type == "text/html" else ""
            if response.status_int in (301, 302, 303):
                body = ""
            assert not _names_site_b(body, two_sites), f"{where} shows site B's data"
    assert walked > 40
    # Nothing of site B was changed along the way: no new audit event names site B.
    new_events = db_session.scalars(
        select(AuditEvent).where(
            AuditEvent.id > events_before, AuditEvent.site_id == two_sites.site_b.id
        )
    ).all()
    assert new_events == []


@pytest.mark.parametrize(
    "role", [Role.DATA_MANAGER, Role.MONITOR, Role.AUDITOR, Role.SITE_COORDINATOR]
)
def test_a_study_wide_role_sees_both_sites(app, db_session, two_sites, role):
    user = UserFactory(username=f"wide_{role.value}")
    MembershipFactory(user=user, role=role, study_id=two_sites.site_a.study_id)
    login(app, user.username)
    participants = app.get(f"/studies/{two_sites.study_code}/participants/")
    assert two_sites.participant_a in participants.text
    assert two_sites.participant_b in participants.text
    page = app.get(f"/studies/{two_sites.study_code}/participants/{two_sites.participant_b}/")
    assert page.status_int == 200


def test_site_a_lists_and_dashboards_hold_only_site_a(app, db_session, two_sites):
    user = UserFactory(username="alpha_coordinator")
    MembershipFactory(
        user=user,
        role=Role.SITE_COORDINATOR,
        study_id=two_sites.site_a.study_id,
        site_id=two_sites.site_a.id,
    )
    login(app, "alpha_coordinator")
    code = two_sites.study_code
    pages = [
        f"/studies/{code}/participants/",
        f"/studies/{code}/participants/?q=BBB",
        f"/studies/{code}/screening-log",
        f"/studies/{code}/dashboard",
        f"/studies/{code}/sites/AAA/grid",
        f"/studies/{code}/sites/AAA/dashboard",
        f"/studies/{code}/",
        f"/studies/{code}/sites/",
        f"/studies/{code}/audit/",
        "/studies/",
    ]
    for path in pages:
        response = app.get(path)
        assert not _names_site_b(response.text, two_sites), path
    assert two_sites.participant_a in app.get(f"/studies/{code}/participants/").text
