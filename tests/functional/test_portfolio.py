"""The trials unit's portfolio: every study by research pillar and status, with its
recruitment against target; for roles held for all studies only."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import event

from bhp_ctms.participants.models import ParticipantStatus
from bhp_ctms.permissions import Role
from bhp_ctms.studies.models import ResearchPillar, StudyStatus
from tests.factories import (
    MembershipFactory,
    ParticipantFactory,
    SiteFactory,
    StudyFactory,
    UserFactory,
)
from tests.functional.helpers import login


def _portfolio_studies():
    hip = StudyFactory(
        code="HIP",
        title="Walking after hip replacement",
        pillar=ResearchPillar.CHRONIC_DISEASE,
        status=StudyStatus.RECRUITING,
        phase="III",
        target_sample_size=120,
        sponsor="University of Birmingham",
        organisations=["University of Birmingham", "University Hospitals Birmingham"],
        isrctn="ISRCTN12345678",
        iras="312456",
    )
    site = SiteFactory(study=hip, code="NTH")
    for number in range(5):
        ParticipantFactory(
            site=site,
            status=ParticipantStatus.RANDOMISED if number < 3 else ParticipantStatus.SCREENED,
            randomised_on=date(2026, 3, 2) if number < 3 else None,
        )
    StudyFactory(
        code="RARE",
        title="A rare paediatric sarcoma",
        pillar=ResearchPillar.CANCER,
        status=StudyStatus.SET_UP,
        rare_disease=True,
        target_sample_size=None,
        eudract="2024-500000-00-00",
    )
    StudyFactory(code="BREAST", pillar=ResearchPillar.CANCER, status=StudyStatus.RECRUITING)
    StudyFactory(code="LUNG", pillar=ResearchPillar.CANCER, status=StudyStatus.FOLLOW_UP)
    StudyFactory(code="BUMP", pillar=ResearchPillar.WOMENS_CHILDRENS, status=StudyStatus.LOCKED)
    StudyFactory(code="LOOSE", pillar=None, status=StudyStatus.RECRUITING)


def _text(element):
    return element.get_text(" ", strip=True)


def test_the_portfolio_groups_studies_by_pillar_with_recruitment_against_target(app, db_session):
    _portfolio_studies()
    admin = UserFactory(username="admin")
    MembershipFactory(user=admin, role=Role.CTU_ADMIN)
    login(app, "admin")
    page = app.get("/studies/").click("The trials unit's portfolio")
    assert page.request.path == "/portfolio"

    headings = [h2.get_text(strip=True) for h2 in page.html.find_all("h2")]
    assert headings[:4] == ["Cancer", "Chronic disease", "Women's & children's", "Not set"]
    assert "Health & wellbeing" not in headings

    cancer = page.html.find(attrs={"data-testid": "pillar-cancer"})
    # Within a pillar: by status (set-up first), then by code.
    assert [tr["data-testid"] for tr in cancer.tbody.find_all("tr")] == [
        "study-RARE",
        "study-BREAST",
        "study-LUNG",
    ]
    assert _text(page.html.find(attrs={"data-testid": "pillar-cancer-summary"})) == (
        "Set-up: 1; Recruiting: 1; Follow up: 1. Recruitment: 0 randomised, 0 registered."
    )
    rare = _text(cancer.find(attrs={"data-testid": "study-RARE"}))
    assert "Rare disease" in rare
    assert "EudraCT/CTIS 2024-500000-00-00" in rare
    assert "0 randomised (no target set)" in rare

    hip = _text(page.html.find(attrs={"data-testid": "study-HIP"}))
    for shown in (
        "Walking after hip replacement",
        "Phase III",
        "Recruiting",
        "Sponsor: University of Birmingham",
        "University Hospitals Birmingham",
        "ISRCTN ISRCTN12345678",
        "IRAS 312456",
        "3 randomised of 120 (2%)",
        "5 registered",
    ):
        assert shown in hip, shown
    assert "Rare disease" not in hip
    assert "LOOSE" in _text(page.html.find(attrs={"data-testid": "pillar-not_set"}))


def test_the_portfolio_reads_the_studies_in_two_queries(app, db_session, engine):
    _portfolio_studies()
    auditor = UserFactory(username="aud")
    MembershipFactory(user=auditor, role=Role.AUDITOR)
    login(app, "aud")

    def queries():
        statements = []

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            app.get("/portfolio")
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    few = queries()
    for number in range(10):
        study = StudyFactory(code=f"MORE{number}", pillar=ResearchPillar.HEALTH_WELLBEING)
        ParticipantFactory(site=SiteFactory(study=study))
    db_session.flush()
    assert queries() == few
    assert "MORE9" in app.get("/portfolio").text


def test_a_study_scoped_role_is_refused_the_portfolio(app, db_session):
    _portfolio_studies()
    study = StudyFactory(code="MINE")
    manager = UserFactory(username="dara")
    MembershipFactory(user=manager, role=Role.DATA_MANAGER, study_id=study.id)
    login(app, "dara")
    dashboard = app.get("/studies/")
    assert dashboard.html.find(attrs={"data-testid": "portfolio-link"}) is None
    page = app.get("/portfolio", status=403)
    assert "HIP" not in page.text


@pytest.mark.parametrize("role", [Role.SITE_COORDINATOR, Role.SITE_PI, Role.STATISTICIAN_UNBLINDED])
def test_roles_without_the_portfolio_are_refused_it_even_for_all_studies(app, db_session, role):
    _portfolio_studies()
    user = UserFactory(username="someone")
    MembershipFactory(user=user, role=role)
    login(app, "someone")
    assert app.get("/portfolio", status=403)
    assert "portfolio" not in app.get("/studies/").text
