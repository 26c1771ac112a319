"""The open queries of each participant on the site's participant grid, and of the
site on its dashboard, linked to the site's queries: counted over open and answered
queries (not closed ones), kept to the site, read in one grouped query whatever the
number of participants, and shown only to those who may read the CRFs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import event

from bhp_ctms.audit.services import AuditActor
from bhp_ctms.crf.models import FormVersion, Query
from bhp_ctms.crf.queries import answer_query, close_query, raise_query
from bhp_ctms.participants.models import Participant
from bhp_ctms.permissions import Role
from tests.factories import ParticipantFactory
from tests.factories.crf import form_entry, store_form_version
from tests.functional.helpers import login
from tests.functional.test_participant_registration import STUDY, demo_trial, shown, staff

GRID = f"{STUDY}/sites/NTH/grid"
DASHBOARD = f"{STUDY}/sites/NTH/dashboard"
QUERIES = f"{STUDY}/sites/NTH/queries"
MONITOR = AuditActor(user_id=None, name="Mo Monitor")
COORDINATOR = AuditActor(user_id=None, name="Cora North")


@dataclass(frozen=True)
class Counted:
    busy: Participant  # NTH: one open and one answered query, and one closed
    settled: Participant  # NTH: its only query is closed
    fresh: Participant  # NTH: no form entered yet
    far: Participant  # CHH: one open query
    far_query: Query
    version: FormVersion


@pytest.fixture
def counted(db_session) -> Counted:
    trial = demo_trial()
    staff("cora_north", Role.SITE_COORDINATOR, trial.site)
    staff("dara_manager", Role.DATA_MANAGER, study=trial.study)
    staff("adam_admin", Role.CTU_ADMIN, study=trial.study)
    version = store_form_version(trial.study.id)
    busy, settled, fresh = (ParticipantFactory(site=trial.site) for _ in range(3))
    far = ParticipantFactory(site=trial.other_site)
    busy_entry = form_entry(busy, version, {"weight": "35", "sbp": "120", "dbp": "80"})
    raise_query(db_session, MONITOR, busy_entry, "weight", "Is 35 kg right?")
    answered = raise_query(db_session, MONITOR, busy_entry, "sbp", "Sitting or lying?")
    answer_query(db_session, COORDINATOR, answered, "Sitting")
    closed = raise_query(db_session, MONITOR, busy_entry, "dbp", "Checked?")
    close_query(db_session, MONITOR, closed, "Seen on the source")
    settled_entry = form_entry(settled, version, {"weight": "70"})
    close_query(
        db_session, MONITOR, raise_query(db_session, MONITOR, settled_entry, "weight", "Scales?")
    )
    far_query = raise_query(
        db_session, MONITOR, form_entry(far, version, {"weight": "80"}), "weight", "Far?"
    )
    return Counted(busy, settled, fresh, far, far_query, version)


def counts_on_grid(page) -> dict[str, tuple[str, str | None]]:
    """{study ID: (what the open-queries cell says, where it links)} of the grid."""
    table = page.html.find(attrs={"data-testid": "grid"})
    found = {}
    for row in table.tbody.find_all("tr"):
        cell = row.find("td", attrs={"data-count": "open-queries"})
        link = cell.find("a")
        found[row.th.get_text(strip=True)] = (
            cell.get_text(" ", strip=True),
            link["href"] if link is not None else None,
        )
    return found


def test_the_grid_shows_each_participants_open_queries_linked_to_the_sites_queries(app, counted):
    login(app, "cora_north")

    page = app.get(GRID)

    heading = page.html.find(attrs={"data-testid": "grid"}).thead.find_all("th")
    assert [th.get_text(strip=True) for th in heading[:3]] == [
        "Study ID",
        "Status",
        "Open queries",
    ]
    assert counts_on_grid(page) == {
        counted.busy.code: ("2 open queries", QUERIES),
        counted.settled.code: ("0 open queries", None),
        counted.fresh.code: ("0 open queries", None),
    }
    assert shown(page, "count-key-open-queries").startswith(
        "Open queries : Queries on participants' forms that are not yet closed"
    )
    # The number leads to the site's queries, where the two waiting are listed.
    queries = app.get(counts_on_grid(page)[counted.busy.code][1])
    listed = queries.html.find(attrs={"data-testid": "queries"}).tbody.find_all("tr")
    assert len(listed) == 2
    assert {row.find(attrs={"data-testid": "participant"}).text for row in listed} == {
        counted.busy.code
    }


def test_the_site_dashboard_totals_the_open_queries_of_the_site_only(app, db_session, counted):
    login(app, "dara_manager")

    north = app.get(DASHBOARD)
    children = app.get(f"{STUDY}/sites/CHH/dashboard")

    assert shown(north, "count-open-queries") == "2 open queries at this site"
    assert north.html.find(attrs={"data-testid": "count-open-queries"}).a["href"] == QUERIES
    assert shown(children, "count-open-queries") == "1 open query at this site"

    close_query(db_session, MONITOR, counted.far_query, "Resolved by phone")
    db_session.flush()
    quiet = app.get(f"{STUDY}/sites/CHH/dashboard")
    assert shown(quiet, "count-open-queries") == "No open query at this site."
    assert quiet.html.find(attrs={"data-testid": "count-open-queries"}).a is None


def test_who_may_not_read_the_forms_sees_no_counts(app, counted):
    login(app, "adam_admin")

    grid = app.get(GRID)
    dashboard = app.get(DASHBOARD)

    assert grid.html.find(attrs={"data-count": "open-queries"}) is None
    assert grid.html.find(attrs={"data-testid": "count-key-open-queries"}) is None
    assert counted.busy.code in grid.text
    assert dashboard.html.find(attrs={"data-testid": "count-open-queries"}) is None
    assert "open quer" not in dashboard.text.lower()


def test_the_counts_take_one_query_whatever_the_number_of_participants(
    app, db_session, engine, counted
):
    login(app, "cora_north")

    def statements_of(path):
        statements = []

        def record(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        try:
            page = app.get(path)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        return page, statements

    _, few = statements_of(GRID)
    for _ in range(15):
        extra = ParticipantFactory(site=counted.busy.site)
        entry = form_entry(extra, counted.version, {"weight": "30"})
        raise_query(db_session, MONITOR, entry, "weight", "Is 30 kg right?")
    db_session.flush()
    page, many = statements_of(GRID)

    assert len(counts_on_grid(page)) == 18
    assert sum(text == ("1 open query", QUERIES) for text in counts_on_grid(page).values()) == 15
    assert len(many) == len(few)
    assert sum("FROM queries" in statement for statement in many) == 1
    _, dashboard = statements_of(DASHBOARD)
    assert sum("FROM queries" in statement for statement in dashboard) == 1
