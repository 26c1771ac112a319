"""The worklists as site staff and the trials unit use them: the site's participant
grid (each visit's state, filters, a fixed number of queries), the site and study
dashboards, the participant list and its search, the screening log with its CONSORT
totals; and site scoping: a coordinator of site A sees none of site B's participants
anywhere, and site B's grid and dashboard are a 404 to them.

Dates are relative to today, as the pages compute the schedule on today's date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlalchemy import event, select

from bhp_ctms.db import utcnow
from bhp_ctms.participants.models import (
    ConsentGivenBy,
    ConsentKind,
    ConsentRecord,
    ExclusionReason,
    ParticipantStatus,
    Visit,
    VisitStatus,
    WithdrawalType,
)
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.models import Study
from bhp_ctms.templating import ukdate
from tests.factories import (
    MembershipFactory,
    ParticipantFactory,
    ProtocolVersionFactory,
    SiteFactory,
    StudyFactory,
    UserFactory,
)
from tests.functional.helpers import login

STUDY = "/studies/WLT"
GRID_A = f"{STUDY}/sites/AAA/grid"
GRID_B = f"{STUDY}/sites/BBB/grid"
SITE_B_NAME = "Bravo Infirmary"
S = ParticipantStatus


def days(number: int) -> date:
    """A day relative to today (negative: in the past)."""
    return utcnow().date() + timedelta(days=number)


@dataclass(frozen=True)
class Trial:
    late: str  # randomised 50 days ago: week 2 overdue, week 6 not done
    early: str  # randomised 10 days ago: screened out of window, week 2 opens tomorrow
    screened: str  # registered 3 days ago, not randomised
    withdrawn: str  # withdrew from follow-up
    declined: str  # not enrolled: declined
    site_b: tuple[str, ...]


def _visit(participant, event_code, visit_on, status=VisitStatus.DONE, reason=""):
    return Visit(
        participant=participant,
        event_code=event_code,
        instance=1,
        protocol_version_id=participant.protocol_version_id,
        status=status,
        visit_on=visit_on,
        not_done_reason=reason,
    )


def _consent(participant):
    return ConsentRecord(
        participant=participant,
        protocol_version_id=participant.protocol_version_id,
        kind=ConsentKind.CONSENT,
        given_by=ConsentGivenBy.PARTICIPANT,
        information_sheet_version="2.1",
        form_version="2.0",
        consented_on=participant.registered_on,
        taken_by="Nurse Example",
    )


def _participant(site, status, registered, randomised=None, **values):
    return ParticipantFactory(
        site=site,
        status=status,
        registered_on=days(registered),
        randomised_on=None if randomised is None else days(randomised),
        **values,
    )


@pytest.fixture
def trial(db_session) -> Trial:
    """Study WLT (the demo schedule: randomisation is day 0; week 2 is day 14 ± 3) with
    five participants at site AAA and three at site BBB."""
    study = StudyFactory(code="WLT", target_sample_size=100)
    ProtocolVersionFactory(study=study)
    site_a = SiteFactory(study=study, code="AAA", name="Alpha General", recruitment_target=10)
    site_b = SiteFactory(study=study, code="BBB", name=SITE_B_NAME, recruitment_target=20)
    late = _participant(site_a, S.RANDOMISED, -60, -50)
    early = _participant(site_a, S.RANDOMISED, -30, -10)
    screened = _participant(site_a, S.SCREENED, -3)
    withdrawn = _participant(
        site_a, S.WITHDRAWN, -120, -100, withdrawal_type=WithdrawalType.FOLLOW_UP
    )
    declined = _participant(
        site_a,
        S.NOT_ENROLLED,
        -40,
        exclusion_reason=ExclusionReason.DECLINED,
        status_details="Prefers not to travel to the clinic",
    )
    b_overdue = _participant(site_b, S.RANDOMISED, -60, -50)
    b_ineligible = _participant(site_b, S.INELIGIBLE, -20)
    b_not_eligible = _participant(
        site_b, S.NOT_ENROLLED, -15, exclusion_reason=ExclusionReason.NOT_ELIGIBLE
    )
    db_session.add_all(
        [
            _visit(late, "screening", days(-70)),
            _visit(late, "baseline", days(-50)),
            _visit(late, "week_6", None, VisitStatus.NOT_DONE, "In hospital"),
            # Screening was due no later than 24 days ago: 20 days ago is out of window.
            _visit(early, "screening", days(-20)),
            _visit(early, "baseline", days(-10)),
            _visit(withdrawn, "baseline", days(-100)),
            _consent(late),
            _consent(early),
            _consent(withdrawn),
            _consent(b_overdue),
        ]
    )
    db_session.flush()
    return Trial(
        late=late.code,
        early=early.code,
        screened=screened.code,
        withdrawn=withdrawn.code,
        declined=declined.code,
        site_b=(b_overdue.code, b_ineligible.code, b_not_eligible.code),
    )


def _site(db_session, code):
    return db_session.scalars(
        select(Site).join(Study).where(Study.code == "WLT", Site.code == code)
    ).one()


def _user(db_session, username, role, site=None):
    """A user with a role in study WLT: at one site, or (``site`` None) at all its sites."""
    study = db_session.scalars(select(Study).where(Study.code == "WLT")).one()
    site_id = None if site is None else _site(db_session, site).id
    user = UserFactory(username=username)
    MembershipFactory(user=user, role=role, study_id=study.id, site_id=site_id)
    return user


def _coordinator_of_a(app, db_session):
    _user(db_session, "cora", Role.SITE_COORDINATOR, site="AAA")
    login(app, "cora")


def _text(page, testid):
    element = page.html.find(attrs={"data-testid": testid})
    assert element is not None, f"no {testid} on {page.request.path}"
    return element.get_text(" ", strip=True)


def _grid(page):
    """{study ID: {column name: (class, label for screen readers)}} of the grid's
    visits (the status and the counts, such as open queries, left out)."""
    table = page.html.find(attrs={"data-testid": "grid"})
    if table is None:
        return {}
    columns = [
        th.get_text(strip=True) for th in table.thead.find_all("th") if not th.get("data-count")
    ][2:]
    rows = {}
    for tr in table.tbody.find_all("tr"):
        cells = [td for td in tr.find_all("td") if not td.get("data-count")][1:]
        rows[tr.th.get_text(strip=True)] = {
            column: (
                " ".join(cell["class"]),
                cell.find(class_="nhsuk-u-visually-hidden").get_text(strip=True),
            )
            for column, cell in zip(columns, cells, strict=True)
        }
    return rows


def _shows_site_b(text, trial):
    return SITE_B_NAME in text or any(code in text for code in trial.site_b)


# -- the participant grid ------------------------------------------------------------


def test_the_grid_shows_the_state_of_every_visit(app, db_session, trial):
    _coordinator_of_a(app, db_session)
    page = app.get(GRID_A)
    grid = _grid(page)
    assert list(grid) == [trial.late, trial.early, trial.screened, trial.withdrawn, trial.declined]

    late = grid[trial.late]
    assert late["Screening"] == ("app-visit--done", f"Done on {ukdate(days(-70))}")
    assert late["Baseline (randomisation)"] == ("app-visit--done", f"Done on {ukdate(days(-50))}")
    assert late["Week 2 visit"] == (
        "app-visit--overdue",
        f"Overdue: expected {ukdate(days(-36))}, window closed {ukdate(days(-33))}",
    )
    assert late["Week 6 visit"] == ("app-visit--not_done", "Not done: In hospital")
    assert late["Week 12 visit"] == (
        "app-visit--upcoming",
        f"Upcoming: expected {ukdate(days(34))}, window opens {ukdate(days(27))}",
    )

    early = grid[trial.early]
    assert early["Screening"][0] == "app-visit--done_out_of_window"
    assert early["Screening"][1].startswith(f"Done out of window on {ukdate(days(-20))}")
    assert early["Week 2 visit"][0] == "app-visit--upcoming"

    screened = grid[trial.screened]
    assert screened["Screening"] == ("app-visit--due", "Due now")
    assert screened["Week 2 visit"] == ("app-visit--awaiting_baseline", "Awaiting baseline")

    withdrawn = grid[trial.withdrawn]
    assert withdrawn["Baseline (randomisation)"][0] == "app-visit--done"
    assert withdrawn["Week 2 visit"] == ("app-visit--not_expected", "Not expected")

    # The short text each cell shows is explained by the key.
    row = page.html.find(attrs={"data-testid": "grid"}).tbody.find("tr")
    overdue_cell = row.find("td", class_="app-visit--overdue")
    assert overdue_cell.find(attrs={"aria-hidden": "true"}).get_text() == (
        f"OD {ukdate(days(-36))}"
    )
    legend = _text(page, "legend")
    for shown in ("OD", "Overdue", "DONE", "OOW", "Done out of window", "AB", "NE"):
        assert shown in legend
    assert not _shows_site_b(page.text, trial)


def test_the_grid_filters_by_status_and_to_overdue_visits(app, db_session, trial):
    _coordinator_of_a(app, db_session)
    randomised = app.get(GRID_A, {"status": "randomised"})
    assert list(_grid(randomised)) == [trial.late, trial.early]
    assert "2 of 2 participants matching the filters" in randomised.text

    overdue = app.get(GRID_A, {"overdue": "y"})
    assert list(_grid(overdue)) == [trial.late]
    assert "1 of 5 participants matching the filters" in overdue.text
    assert overdue.html.find("input", {"name": "overdue"}).has_attr("checked")

    nobody = app.get(GRID_A, {"status": "completed"})
    assert _grid(nobody) == {}
    assert "No participant of this site matches these filters" in nobody.text

    refused = app.get(GRID_A, {"status": "sleeping", "overdue": "y"}, status=400)
    assert "Choose a status from the list" in _text(refused, "error-summary")
    # The other filter still applies, and stays ticked.
    assert list(_grid(refused)) == [trial.late]
    assert refused.html.find("input", {"name": "overdue"}).has_attr("checked")


def test_the_grid_takes_the_same_queries_whatever_the_number_of_participants(
    app, db_session, engine, trial
):
    _coordinator_of_a(app, db_session)

    def queries_of_one_grid():
        statements = []

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            app.get(GRID_A)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return statements

    few = queries_of_one_grid()
    site_a = _site(db_session, "AAA")
    for number in range(20):
        extra = _participant(site_a, S.RANDOMISED, -40 - number, -30 - number)
        db_session.add(_visit(extra, "baseline", days(-30 - number)))
    db_session.flush()
    many = queries_of_one_grid()
    assert len(_grid(app.get(GRID_A))) == 25
    assert len(many) == len(few)
    # One query of visits, one of protocol versions and one of the participants' open
    # queries, not one per participant.
    assert sum("FROM visits" in statement for statement in many) == 1
    assert sum("FROM protocol_versions" in statement for statement in many) == 1
    assert sum("FROM queries" in statement for statement in many) == 1


# -- dashboards ----------------------------------------------------------------------


def test_the_site_dashboard_shows_recruitment_overdue_and_coming_visits(app, db_session, trial):
    _coordinator_of_a(app, db_session)
    page = app.get(f"{STUDY}/sites/AAA/dashboard")
    assert _text(page, "registered") == "5"
    assert _text(page, "consented") == "3"
    assert _text(page, "randomised") == "3 of a recruitment target of 10 (30%)"
    assert page.html.find("progress")["value"] == "3"
    by_status = _text(page, "by-status")
    assert "Randomised 2" in by_status and "Withdrawn 1" in by_status
    assert "Not enrolled 1" in by_status and "Screened 1" in by_status

    overdue = page.html.find(attrs={"data-testid": "overdue"})
    rows = [tr.get_text(" ", strip=True) for tr in overdue.tbody.find_all("tr")]
    assert rows == [
        f"Study ID {trial.late} Visit Week 2 visit Expected {ukdate(days(-36))} "
        f"Window closed {ukdate(days(-33))} Days overdue 33"
    ]
    link = overdue.tbody.find("a")
    assert link["href"] == f"{STUDY}/participants/{trial.late}/"

    due_soon = _text(page, "due-soon")
    # Week 2 of the participant randomised 10 days ago: its window opens tomorrow.
    assert f"{trial.early} Visit Week 2 visit Expected {ukdate(days(4))}" in due_soon
    assert f"{ukdate(days(1))} to {ukdate(days(7))}" in due_soon
    # Screening of the one screened 3 days ago: due now, with no date until randomised.
    assert f"{trial.screened} Visit Screening Expected Now" in due_soon
    assert trial.late not in due_soon
    # No form has been entered, so no query waits (tests/functional/test_open_query_counts.py).
    assert _text(page, "count-open-queries") == "No open query at this site."
    assert not _shows_site_b(page.text, trial)
    assert "Register a participant" in page.text


def test_the_study_dashboard_has_one_row_per_visible_site(app, db_session, trial):
    _user(db_session, "dara", Role.DATA_MANAGER)
    login(app, "dara")
    page = app.get(f"{STUDY}/dashboard")
    rows = page.html.find(attrs={"data-testid": "site-rows"}).tbody.find_all("tr")
    assert [row.get_text(" ", strip=True) for row in rows] == [
        "Site AAA \N{EN DASH} Alpha General Participant grid of AAA Status Open Target 10 "
        "Registered 5 Randomised 3 (30%) Overdue visits 1",
        f"Site BBB \N{EN DASH} {SITE_B_NAME} Participant grid of BBB Status Open Target 20 "
        "Registered 3 Randomised 1 (5%) Overdue visits 4",
    ]
    assert _text(page, "total-registered") == "8"
    assert _text(page, "total-randomised") == "4 of a target sample size of 100 (4%)"
    assert _text(page, "total-overdue") == "5"
    assert app.get(GRID_B).status_int == 200
    assert app.get(f"{STUDY}/sites/BBB/dashboard").status_int == 200


# -- the participant list and the screening log ---------------------------------------


def _listed(page):
    table = page.html.find(attrs={"data-testid": "participants"})
    if table is None:
        return []
    return [tr.find("a").get_text(strip=True) for tr in table.tbody.find_all("tr")]


def test_the_participant_list_searches_study_ids_and_filters_by_status(app, db_session, trial):
    _user(db_session, "monica", Role.MONITOR)
    login(app, "monica")
    everyone = app.get(f"{STUDY}/participants/")
    assert _listed(everyone) == sorted(
        [trial.late, trial.early, trial.screened, trial.withdrawn, trial.declined, *trial.site_b]
    )
    row = everyone.html.find(attrs={"data-testid": "participants"}).tbody.find("tr")
    assert row.get_text(" ", strip=True) == (
        f"Study ID {trial.late} Site AAA Status Randomised Registered {ukdate(days(-60))} "
        f"Randomised {ukdate(days(-50))}"
    )
    # Any part of the study ID, in any case.
    assert _listed(app.get(f"{STUDY}/participants/", {"q": "bbb"})) == sorted(trial.site_b)
    assert _listed(app.get(f"{STUDY}/participants/", {"q": trial.late.lower()})) == [trial.late]
    # "_" and "%" are matched as themselves, not as wildcards.
    nothing = app.get(f"{STUDY}/participants/", {"q": "WLT_AAA"})
    assert _listed(nothing) == []
    assert "No participant matches this search" in nothing.text
    assert _listed(app.get(f"{STUDY}/participants/", {"status": "not_enrolled"})) == [
        trial.declined,
        trial.site_b[2],
    ]
    both = app.get(f"{STUDY}/participants/", {"q": "AAA", "status": "randomised"})
    assert _listed(both) == [trial.late, trial.early]
    assert both.html.find("input", {"name": "q"})["value"] == "AAA"

    too_long = app.get(f"{STUDY}/participants/", {"q": "W" * 65}, status=400)
    assert "Study ID must be 64 characters or fewer" in _text(too_long, "error-summary")
    assert too_long.html.find("input", {"name": "q"})["value"] == "W" * 65


def test_the_screening_log_counts_by_exclusion_reason(app, db_session, trial):
    _user(db_session, "dara", Role.DATA_MANAGER)
    login(app, "dara")
    page = app.get(f"{STUDY}/screening-log")
    assert _text(page, "consort-screened") == "8"
    assert _text(page, "consort-not-enrolled") == "3"
    # An ineligible participant and one not enrolled as not eligible, both at site BBB.
    assert _text(page, "consort-not_eligible") == "2"
    assert _text(page, "consort-declined") == "1"
    assert _text(page, "consort-other") == "0"
    assert _text(page, "consort-in-screening") == "1"
    assert _text(page, "consort-eligible") == "4"
    assert _text(page, "consort-randomised") == "4"

    log = page.html.find(attrs={"data-testid": "screening-log"}).tbody.find_all("tr")
    # In order of registration: the one who withdrew was registered first.
    assert (
        log[0]
        .get_text(" ", strip=True)
        .startswith(
            f"Registered {ukdate(days(-120))} Study ID {trial.withdrawn} Site AAA Status Withdrawn"
        )
    )
    declined = next(tr for tr in log if trial.declined in tr.get_text())
    assert declined.get_text(" ", strip=True).endswith(
        "Reason not enrolled Declined to take part Prefers not to travel to the clinic"
    )


# -- site scoping ----------------------------------------------------------------------


def test_a_coordinator_of_site_a_sees_nothing_of_site_b(app, db_session, trial):
    _coordinator_of_a(app, db_session)
    own = [trial.late, trial.early, trial.screened, trial.withdrawn, trial.declined]

    listing = app.get(f"{STUDY}/participants/")
    assert _listed(listing) == sorted(own)
    assert "Participants of your sites" in listing.text
    for code in trial.site_b:
        assert _listed(app.get(f"{STUDY}/participants/", {"q": code})) == []
    assert _listed(app.get(f"{STUDY}/participants/", {"q": "BBB"})) == []

    log = app.get(f"{STUDY}/screening-log")
    assert _text(log, "consort-screened") == "5"
    assert _text(log, "consort-not_eligible") == "0"
    assert _text(log, "consort-declined") == "1"

    dashboard = app.get(f"{STUDY}/dashboard")
    rows = dashboard.html.find(attrs={"data-testid": "site-rows"}).tbody.find_all("tr")
    assert [row["data-testid"] for row in rows] == ["site-row-AAA"]
    assert _text(dashboard, "total-registered") == "5"
    assert _text(dashboard, "total-randomised") == (
        "3 (the study's target sample size, across all its sites, is 100)"
    )

    for page in (listing, log, dashboard, app.get(GRID_A), app.get(f"{STUDY}/sites/AAA/dashboard")):
        assert not _shows_site_b(page.text, trial), page.request.path
    assert app.get(GRID_B, status=404)
    assert app.get(f"{STUDY}/sites/BBB/dashboard", status=404)
    assert not _shows_site_b(app.get(GRID_B, status=404).text, trial)


def test_roles_without_participant_access_are_refused_the_worklists(app, db_session, trial):
    _user(db_session, "sam", Role.STATISTICIAN_BLINDED)
    login(app, "sam")
    for path in (
        f"{STUDY}/participants/",
        f"{STUDY}/screening-log",
        f"{STUDY}/dashboard",
        GRID_A,
        f"{STUDY}/sites/AAA/dashboard",
    ):
        assert app.get(path, status=403)
    study_page = app.get(f"{STUDY}/")
    assert study_page.html.find(attrs={"data-testid": "participant-links"}) is None
    assert "Protocol versions" in study_page.text


def test_the_study_and_site_pages_lead_to_the_worklists(app, db_session, trial):
    _coordinator_of_a(app, db_session)
    study_page = app.get(f"{STUDY}/")
    assert study_page.click("Screening log").request.path == f"{STUDY}/screening-log"
    assert study_page.click("Study dashboard").request.path == f"{STUDY}/dashboard"
    assert study_page.click("^Participants$").request.path == f"{STUDY}/participants/"
    assert study_page.click("Protocol versions").request.path == f"{STUDY}/protocol/"
    site_page = app.get(f"{STUDY}/sites/AAA/")
    links = site_page.html.find(attrs={"data-testid": "site-participant-links"})
    assert [a["href"] for a in links.find_all("a")] == [
        f"{STUDY}/sites/AAA/dashboard",
        f"{STUDY}/sites/AAA/grid",
        f"{STUDY}/sites/AAA/queries",
        f"{STUDY}/sites/AAA/register",
    ]
    assert site_page.click("Participant grid").status_int == 200
    assert site_page.click("Site dashboard").status_int == 200
