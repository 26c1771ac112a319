"""Queries through their pages: a monitor raises one, the site coordinator answers, the
monitor closes and re-opens it; who may do which; and a site's query worklist, kept to
the user's sites, oldest first, with how long each query has waited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy import select

from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.crf.evaluation import CheckFailure
from bhp_ctms.crf.models import FormEntry, Query, QueryAction, QueryOrigin, QueryStatus
from bhp_ctms.crf.queries import answer_query, close_query, raise_query, sync_system_queries
from bhp_ctms.permissions import Role
from tests.factories import ParticipantFactory
from tests.factories.crf import SOFT_WEIGHT, form_entry, store_form_version
from tests.functional.helpers import csrf_token, form_posting_to, login
from tests.functional.test_participant_registration import (
    STUDY,
    Trial,
    demo_trial,
    error_summary,
    flash,
    shown,
    staff,
)

FORM_PAGE = f"{STUDY}/participants/DEMO-NTH-0001/events/baseline/1/forms/vitals"
WORKLIST = f"{STUDY}/sites/NTH/queries"


@dataclass(frozen=True)
class QueryTrial:
    trial: Trial
    entry: FormEntry
    other_entry: FormEntry


@pytest.fixture
def setup(db_session) -> QueryTrial:
    """The demo study with a vitals form entered at each site, and its people: a
    monitor and a data manager for the study, a coordinator at each site, an auditor."""
    trial = demo_trial()
    staff("mo_monitor", Role.MONITOR, study=trial.study)
    staff("dara_manager", Role.DATA_MANAGER, study=trial.study)
    staff("cora_north", Role.SITE_COORDINATOR, trial.site)
    staff("chris_children", Role.SITE_COORDINATOR, trial.other_site)
    staff("aud_inspector", Role.AUDITOR)
    version = store_form_version(trial.study.id)
    north = ParticipantFactory(site=trial.site)
    children = ParticipantFactory(site=trial.other_site)
    entry = form_entry(north, version, {"weight": "35", "sbp": "120", "dbp": "80"})
    other = form_entry(children, version, {"weight": "80"})
    return QueryTrial(trial, entry, other)


def new_query_url(entry: FormEntry, item: str = "weight") -> str:
    return f"{STUDY}/entries/{entry.id}/queries/new?item={item}"


def query_url(query: Query | int) -> str:
    return f"{STUDY}/queries/{query if isinstance(query, int) else query.id}"


def switch_user(app, username: str) -> None:
    app.reset()
    login(app, username)


def only_query(db_session) -> Query:
    return db_session.scalars(select(Query)).one()


def thread(page) -> list[tuple[str, str, str]]:
    return [
        (
            message.find(attrs={"data-testid": "action"}).get_text(strip=True),
            message.find(attrs={"data-testid": "author"}).get_text(strip=True),
            message.find(attrs={"data-testid": "text"}).get_text(" ", strip=True)
            if message.find(attrs={"data-testid": "text"})
            else "",
        )
        for message in page.html.find_all(attrs={"data-testid": "message"})
    ]


def actions_offered(page) -> set[str]:
    return {
        section["data-testid"].removeprefix("action-")
        for section in page.html.find_all("section")
        if section.get("data-testid", "").startswith("action-")
    }


def act(app, query: Query, action: str, text: str, *, status: int = 303):
    page = app.get(query_url(query))
    form = next(
        form
        for form in page.forms.values()
        if "action" in form.fields and form["action"].value == action
    )
    form[f"{action}-text"] = text
    return form.submit(status=status)


def post_action(app, query: Query, action: str, text: str = "Something", **kwargs):
    return app.post(
        query_url(query),
        {"csrf_token": csrf_token(app), "action": action, f"{action}-text": text},
        **kwargs,
    )


# -- the journey -------------------------------------------------------------------------


def test_a_monitor_raises_a_query_the_site_answers_and_the_monitor_closes_and_reopens_it(
    app, db_session, setup
):
    entry = setup.entry
    login(app, "mo_monitor")
    page = app.get(new_query_url(entry))
    assert shown(page, "item-label") == "Weight"
    assert shown(page, "current-value") == "35 kg"
    form = form_posting_to(page, new_query_url(entry))
    form["text"] = "35 kg is below the usual range: please check the clinic notes."
    response = form.submit(status=303)
    assert response.location.endswith(FORM_PAGE)

    query = only_query(db_session)
    assert (query.item_path, query.origin, query.status, query.value_when_raised) == (
        "weight",
        QueryOrigin.MANUAL,
        QueryStatus.OPEN,
        "35",
    )

    # The coordinator sees the item, its value now and when raised, and the thread;
    # they may answer (or add a note), not close.
    switch_user(app, "cora_north")
    page = app.get(query_url(query))
    assert shown(page, "item-label") == "Weight"
    assert shown(page, "current-value") == "35 kg"
    assert shown(page, "value-when-raised") == "35 kg"
    assert shown(page, "status") == "Open"
    assert thread(page) == [
        (
            "Raised",
            "Mo Monitor",
            "35 kg is below the usual range: please check the clinic notes.",
        )
    ]
    written = page.html.find(attrs={"data-testid": "written-at"}).get_text(strip=True)
    assert written == f"{query.raised_at.day} {query.raised_at:%b %Y, %H:%M} UTC"
    assert actions_offered(page) == {"answer", "comment"}
    page = act(app, query, "answer", "The notes say 35 kg; she weighs very little.").follow()
    assert "Your answer has been sent." in flash(page)
    assert shown(page, "status") == "Answered"
    assert actions_offered(page) == {"comment"}

    # The monitor may close or re-open it, never answer.
    switch_user(app, "mo_monitor")
    page = app.get(query_url(query))
    assert actions_offered(page) == {"close", "reopen"}
    page = act(app, query, "close", "Confirmed with the notes.").follow()
    assert shown(page, "status") == "Closed"
    assert actions_offered(page) == {"reopen"}
    page = act(app, query, "reopen", "The notes were of another visit.").follow()
    assert shown(page, "status") == "Open"
    assert "The query has been re-opened." in flash(page)

    assert [(action, author) for action, author, _ in thread(page)] == [
        ("Raised", "Mo Monitor"),
        ("Answered", "Cora North"),
        ("Closed", "Mo Monitor"),
        ("Re-opened", "Mo Monitor"),
    ]
    db_session.refresh(query)
    assert [m.action for m in query.messages] == [
        QueryAction.RAISED,
        QueryAction.ANSWERED,
        QueryAction.CLOSED,
        QueryAction.REOPENED,
    ]
    events = db_session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.entity_type == "query",
            AuditEvent.entity_id == str(query.id),
            AuditEvent.field == "status",
        )
        .order_by(AuditEvent.id)
    ).all()
    assert [(e.actor_name, e.new) for e in events] == [
        ("Mo Monitor", "open"),
        ("Cora North", "answered"),
        ("Mo Monitor", "closed"),
        ("Mo Monitor", "open"),
    ]
    assert {e.participant_id for e in events} == {setup.entry.participant_id}


def test_an_edit_check_s_query_says_which_check_raised_it(app, db_session, setup):
    sync_system_queries(
        db_session,
        setup.entry,
        [
            CheckFailure("weight", "soft_range:weight", SOFT_WEIGHT, "35"),
            CheckFailure("dbp", "dbp_below_sbp", "Diastolic must be below systolic.", "80"),
        ],
    )
    weight, pressure = db_session.scalars(select(Query).order_by(Query.id)).all()
    login(app, "cora_north")

    page = app.get(query_url(weight))

    assert shown(page, "origin").startswith("The usual range of Weight (an edit check), ")
    assert shown(page, "value-when-raised") == "35 kg"
    assert thread(page) == [("Raised", "System", SOFT_WEIGHT)]
    assert actions_offered(page) == {"answer", "comment"}
    page = app.get(query_url(pressure))
    assert shown(page, "origin").startswith("The edit check dbp_below_sbp, ")
    assert shown(page, "item-label") == "Diastolic blood pressure"


def test_a_data_manager_raises_and_closes_queries_too(app, db_session, setup):
    login(app, "dara_manager")
    page = app.get(new_query_url(setup.entry, "sbp"))
    form = form_posting_to(page, page.request.path_qs)
    form["text"] = "Was this measured seated?"
    form.submit(status=303)
    query = only_query(db_session)
    act(app, query, "close", "")
    db_session.refresh(query)
    assert query.status == QueryStatus.CLOSED
    assert [(m.action, m.text) for m in query.messages][-1] == (QueryAction.CLOSED, "")


def test_a_question_and_an_answer_cannot_be_blank_and_what_was_typed_is_kept(
    app, db_session, setup
):
    login(app, "mo_monitor")
    page = app.get(new_query_url(setup.entry))
    form = form_posting_to(page, page.request.path_qs)
    form["text"] = "   "
    refused = form.submit(status=400)
    assert "Enter your question" in error_summary(refused)
    assert db_session.scalars(select(Query)).all() == []

    form = form_posting_to(refused, page.request.path_qs)
    form["text"] = "x" * 2001
    refused = form.submit(status=400)
    assert "2,000 characters or fewer" in error_summary(refused)
    assert refused.html.find("textarea", {"name": "text"}).get_text() == "x" * 2001

    query = raise_query(
        db_session, AuditActor(user_id=None, name="Mo Monitor"), setup.entry, "weight", "Why?"
    )
    switch_user(app, "cora_north")
    refused = act(app, query, "answer", "", status=400)
    assert "Enter your answer" in error_summary(refused)
    link = refused.html.find(attrs={"data-testid": "error-summary"}).find("a")
    assert link["href"] == "#answer-text"
    # The other forms are still there, empty.
    assert actions_offered(refused) == {"answer", "comment"}


def test_a_stale_page_cannot_answer_a_query_twice(app, db_session, setup):
    query = raise_query(
        db_session, AuditActor(user_id=None, name="Mo Monitor"), setup.entry, "weight", "Why?"
    )
    login(app, "cora_north")
    page = app.get(query_url(query))
    answer_query(db_session, AuditActor(user_id=None, name="Someone"), query, "Done")
    form = next(f for f in page.forms.values() if "action" in f.fields)
    form["answer-text"] = "Me too"
    refused = form.submit(status=400)
    assert "only an open query can be answered" in error_summary(refused)
    assert len(query.messages) == 2


def test_an_item_the_form_does_not_have_is_not_found(app, db_session, setup):
    login(app, "mo_monitor")
    app.get(new_query_url(setup.entry, "height"), status=404)
    app.get(new_query_url(setup.entry, "note"), status=404)
    app.get(f"{STUDY}/entries/{setup.entry.id}/queries/new", status=404)


# -- who may do what ------------------------------------------------------------------------


def test_a_coordinator_can_neither_raise_nor_close_a_query(app, db_session, setup):
    query = raise_query(
        db_session, AuditActor(user_id=None, name="Mo Monitor"), setup.entry, "weight", "Why?"
    )
    login(app, "cora_north")
    app.get(new_query_url(setup.entry), status=403)
    app.post(
        new_query_url(setup.entry),
        {"csrf_token": csrf_token(app), "item": "weight", "text": "Mine"},
        status=403,
    )
    post_action(app, query, "close", status=403)
    post_action(app, query, "reopen", status=403)
    assert len(db_session.scalars(select(Query)).all()) == 1
    assert query.status == QueryStatus.OPEN


def test_a_monitor_cannot_answer_a_query(app, db_session, setup):
    query = raise_query(
        db_session, AuditActor(user_id=None, name="Mo Monitor"), setup.entry, "weight", "Why?"
    )
    login(app, "mo_monitor")
    post_action(app, query, "answer", status=403)
    post_action(app, query, "comment", status=403)
    assert query.status == QueryStatus.OPEN and len(query.messages) == 1


def test_an_auditor_reads_a_query_and_may_take_no_action(app, db_session, setup):
    query = raise_query(
        db_session, AuditActor(user_id=None, name="Mo Monitor"), setup.entry, "weight", "Why?"
    )
    login(app, "aud_inspector")
    page = app.get(query_url(query))
    assert thread(page) == [("Raised", "Mo Monitor", "Why?")]
    assert actions_offered(page) == set()
    post_action(app, query, "answer", status=403)
    post_action(app, query, "close", status=403)


def test_a_post_naming_no_action_is_refused(app, db_session, setup):
    query = raise_query(
        db_session, AuditActor(user_id=None, name="Mo Monitor"), setup.entry, "weight", "Why?"
    )
    login(app, "mo_monitor")
    app.post(query_url(query), {"csrf_token": csrf_token(app), "action": "delete"}, status=400)
    app.post(query_url(query), {"action": "close", "close-text": "x"}, status=400)
    assert query.status == QueryStatus.OPEN


def test_another_site_s_queries_are_not_found(app, db_session, setup):
    query = raise_query(
        db_session, AuditActor(user_id=None, name="Mo Monitor"), setup.entry, "weight", "Why?"
    )
    login(app, "chris_children")
    app.get(query_url(query), status=404)
    post_action(app, query, "answer", status=404)
    app.get(WORKLIST, status=404)
    app.get(new_query_url(setup.entry), status=404)
    app.get(query_url(999999), status=404)
    assert query.status == QueryStatus.OPEN


def test_a_query_of_another_study_is_not_found_under_this_one(app, db_session, setup):
    other = ParticipantFactory()
    version = store_form_version(other.study_id)
    entry = form_entry(other, version, {"weight": "50"})
    query = raise_query(
        db_session, AuditActor(user_id=None, name="Mo Monitor"), entry, "weight", "Why?"
    )
    login(app, "mo_monitor")
    app.get(query_url(query), status=404)


# -- the site's worklist ------------------------------------------------------------------------


def _at(day: str):
    return time_machine.travel(datetime.fromisoformat(day).replace(tzinfo=UTC), tick=False)


def _rows(page) -> list[dict[str, str]]:
    table = page.html.find("table", {"data-testid": "queries"})
    if table is None:
        return []
    return [
        {
            name: row.find(attrs={"data-testid": name}).get_text(" ", strip=True)
            for name in ("participant", "event", "form", "item", "query", "age", "status")
        }
        for row in table.find("tbody").find_all("tr")
    ]


def _ageing(page) -> dict[str, str]:
    return {
        row["data-testid"].removeprefix("age-"): row.find("dd").get_text(strip=True)
        for row in page.html.find(attrs={"data-testid": "ageing"}).find_all("div")
    }


def test_the_worklist_lists_a_site_s_waiting_queries_oldest_first_with_their_age(
    app, db_session, setup
):
    monitor = AuditActor(user_id=None, name="Mo Monitor")
    site = AuditActor(user_id=None, name="Cora North")
    entry = setup.entry
    second = form_entry(
        ParticipantFactory(site=setup.trial.site),
        entry.form_version,
        {"weight": "70"},
        event="unscheduled",
        instance=2,
    )
    with _at("2026-01-01T09:00"):
        oldest = raise_query(db_session, monitor, entry, "sbp", "Seated?")
    with _at("2026-02-10T09:00"):
        sync_system_queries(
            db_session, entry, [CheckFailure("weight", "soft_range:weight", SOFT_WEIGHT, "35")]
        )
    with _at("2026-02-20T09:00"):
        answered = raise_query(db_session, monitor, second, "weight", "Which scales?")
        answer_query(db_session, site, answered, "The clinic's.")
    with _at("2026-03-01T09:00"):
        closed = raise_query(db_session, monitor, second, "dbp", "Blank?")
        close_query(db_session, monitor, closed)
        newest = raise_query(db_session, monitor, entry, "dbp", "Lying or seated?")
        # Another site's query never shows on this site's list.
        raise_query(db_session, monitor, setup.other_entry, "weight", "Elsewhere")

    with _at("2026-03-03T10:00"):
        login(app, "cora_north")
        page = app.get(WORKLIST)

    rows = _rows(page)
    assert [row["query"] for row in rows] == [
        "Seated?",
        SOFT_WEIGHT,
        "Which scales?",
        "Lying or seated?",
    ]
    assert [row["age"] for row in rows] == ["61", "21", "11", "2"]
    assert [row["status"] for row in rows] == ["Open", "Open", "Answered", "Open"]
    assert rows[0] == {
        "participant": "DEMO-NTH-0001",
        "event": "Baseline (randomisation)",
        "form": "Vital signs",
        "item": "Systolic blood pressure",
        "query": "Seated?",
        "age": "61",
        "status": "Open",
    }
    assert rows[2]["event"] == "Unscheduled visit 2"
    assert rows[2]["participant"] == "DEMO-NTH-0002"
    assert _ageing(page) == {"0-7": "1", "8-14": "1", "15-30": "1", "over-30": "1"}

    links = page.html.find("tr", {"data-testid": f"query-{oldest.id}"})
    assert links.find(attrs={"data-testid": "query"})["href"] == query_url(oldest)
    assert links.find(attrs={"data-testid": "form"})["href"] == FORM_PAGE
    assert links.find(attrs={"data-testid": "participant"})["href"] == (
        f"{STUDY}/participants/DEMO-NTH-0001/"
    )
    row = page.html.find("tr", {"data-testid": f"query-{answered.id}"})
    assert row.find(attrs={"data-testid": "form"})["href"] == (
        f"{STUDY}/participants/DEMO-NTH-0002/events/unscheduled/2/forms/vitals"
    )
    assert page.html.find("tr", {"data-testid": f"query-{newest.id}"}) is not None
    assert page.html.find("tr", {"data-testid": f"query-{closed.id}"}) is None


def test_the_worklist_filters_by_status_and_by_who_raised_the_query(app, db_session, setup):
    monitor = AuditActor(user_id=None, name="Mo Monitor")
    raise_query(db_session, monitor, setup.entry, "sbp", "Manual and open")
    answered = raise_query(db_session, monitor, setup.entry, "dbp", "Manual and answered")
    answer_query(db_session, monitor, answered, "Yes")
    closed = raise_query(db_session, monitor, setup.entry, "position", "Manual and closed")
    close_query(db_session, monitor, closed)
    sync_system_queries(
        db_session,
        setup.entry,
        [CheckFailure("weight", "soft_range:weight", SOFT_WEIGHT, "35")],
    )
    login(app, "mo_monitor")

    def listed(**filters) -> list[str]:
        return [row["query"] for row in _rows(app.get(WORKLIST, params=filters))]

    assert listed() == ["Manual and open", "Manual and answered", SOFT_WEIGHT]
    assert listed(status="answered") == ["Manual and answered"]
    assert listed(status="closed") == ["Manual and closed"]
    assert listed(origin="system") == [SOFT_WEIGHT]
    assert listed(origin="manual", status="open") == ["Manual and open"]

    refused = app.get(WORKLIST, params={"status": "lost"}, status=400)
    assert "Choose a status from the list" in error_summary(refused)
    assert [row["query"] for row in _rows(refused)] == listed()


def test_a_study_wide_monitor_sees_every_site_s_worklist_and_site_staff_only_theirs(
    app, db_session, setup
):
    monitor = AuditActor(user_id=None, name="Mo Monitor")
    raise_query(db_session, monitor, setup.entry, "weight", "North")
    raise_query(db_session, monitor, setup.other_entry, "weight", "Children")

    login(app, "mo_monitor")
    assert [row["query"] for row in _rows(app.get(WORKLIST))] == ["North"]
    assert [row["query"] for row in _rows(app.get(f"{STUDY}/sites/CHH/queries"))] == ["Children"]
    switch_user(app, "chris_children")
    assert [row["query"] for row in _rows(app.get(f"{STUDY}/sites/CHH/queries"))] == ["Children"]
    app.get(WORKLIST, status=404)
    switch_user(app, "cora_north")
    page = app.get(WORKLIST)
    assert [row["query"] for row in _rows(page)] == ["North"]
    assert "Children" not in page.text
