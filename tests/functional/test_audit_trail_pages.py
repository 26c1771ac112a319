"""The audit trail's pages: a study's trail, a value's history, the CSV export and
the system trail, as monitors, site staff, blinded statisticians and admins see them."""

from __future__ import annotations

import csv
import io
import re
import types
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from webob import Request
from webtest import TestApp

from bhp_ctms.accounts.models import User
from bhp_ctms.audit.capture import acting_as, change_reason
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.permissions import Role
from tests.factories import MembershipFactory, SiteFactory, StudyFactory, UserFactory
from tests.functional.helpers import form_posting_to, login

UTC_TIME = re.compile(r"^\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} UTC$")


@pytest.fixture
def study(db_session):
    """A study with two sites, and one user for each role these pages care about."""
    study = StudyFactory(code="AUD", title="Audit trail study")
    north = SiteFactory(study=study, code="NTH", name="Northern General")
    south = SiteFactory(study=study, code="STH", name="Southern General")
    for username, role, site in [
        ("monitor", Role.MONITOR, None),
        ("coordinator", Role.SITE_COORDINATOR, north),
        ("statistician", Role.STATISTICIAN_BLINDED, None),
    ]:
        MembershipFactory(
            user=UserFactory(username=username),
            role=role,
            study_id=study.id,
            site_id=site.id if site else None,
        )
    MembershipFactory(user=UserFactory(username="admin"), role=Role.CTU_ADMIN)
    return types.SimpleNamespace(study=study, north=north, south=south)


EDITOR = AuditActor(
    user_id=4242,
    name="Edith Editor",
    client_addr="198.51.100.7",
    request_id="req-edit-1",
    roles=((None, "data_manager"),),
)


def rename(db_session, site, name, reason="", actor=EDITOR):
    with acting_as(db_session, actor), change_reason(db_session, reason):
        site.name = name


def event_rows(page):
    return page.html.select("table[data-testid=events] tbody tr")


def event_ids(page):
    return [int(row["data-event-id"]) for row in event_rows(page)]


def cell_texts(row):
    return [" ".join(cell.get_text(" ", strip=True).split()) for cell in row.find_all("td")]


def visible_event_ids(db_session, study_id, **where):
    statement = select(AuditEvent.id).where(AuditEvent.study_id == study_id)
    for name, value in where.items():
        statement = statement.where(getattr(AuditEvent, name) == value)
    return sorted(db_session.scalars(statement), reverse=True)


def test_monitor_sees_who_changed_what_when_and_why(app, db_session, study):
    rename(db_session, study.north, "Northern General Hospital", "Name on the site agreement")
    login(app, "monitor")

    page = app.get("/studies/AUD/audit/")

    assert page.html.find("table", {"data-testid": "events"}).find("caption").text
    assert all(th["scope"] == "col" for th in page.html.select("table thead th"))
    newest = event_rows(page)[0]
    time, who, action, record, field, values, reason, address, request_id = cell_texts(newest)
    assert UTC_TIME.match(time.removeprefix("Time ")), time
    assert "Edith Editor" in who and "Data manager" in who
    assert action.endswith("site.updated")
    assert f"site {study.north.id}" in record and "Site NTH" in record
    assert field.startswith("Field name History")
    assert newest.find(attrs={"data-testid": "old-value"}).text == "Northern General"
    assert newest.find(attrs={"data-testid": "new-value"}).text == "Northern General Hospital"
    assert values.endswith("Northern General → changed to Northern General Hospital")
    assert reason.endswith("Name on the site agreement")
    assert address.endswith("198.51.100.7") and request_id.endswith("req-edit-1")

    # A creation has only a new value; a value that was empty shows as "(none)".
    created = page.html.find("tr", {"data-event-id": str(_first_event(db_session, "site.created"))})
    assert created.find(attrs={"data-testid": "old-value"}) is None
    assert created.find(attrs={"data-testid": "new-value"}) is not None
    study.south.recruitment_target = None
    db_session.flush()
    page = app.get("/studies/AUD/audit/", {"field": "recruitment_target"})
    assert event_rows(page)[0].find(attrs={"data-testid": "new-value"}).text == "(none)"


def _first_event(db_session, action):
    return db_session.scalars(
        select(AuditEvent.id).where(AuditEvent.action == action).order_by(AuditEvent.id)
    ).first()


def test_filters_narrow_the_trail_and_keep_their_values(app, db_session, study):
    rename(db_session, study.north, "North One", "first")
    rename(db_session, study.south, "South One", "second")
    someone_else = AuditActor(user_id=77, name="Oscar Other")
    rename(db_session, study.south, "South Two", "third", actor=someone_else)
    login(app, "monitor")
    today = datetime.now(UTC).date()

    def ids(**params):
        return event_ids(app.get("/studies/AUD/audit/", params))

    updates = visible_event_ids(db_session, study.study.id, action="site.updated")
    assert ids(action="site.updated") == updates
    assert len(updates) == 3
    south = visible_event_ids(db_session, study.study.id, site_id=study.south.id)
    assert ids(site_id=str(study.south.id)) == south
    assert ids(entity_type="site", entity_id=str(study.south.id)) == south
    assert len(ids(action="site.updated", site_id=str(study.south.id))) == 2
    assert len(ids(actor="oscar")) == 1
    assert len(ids(actor="77")) == 1
    assert len(ids(actor="edith", field="name")) == 2
    assert ids(field="name", date_from=today.isoformat(), date_to=today.isoformat()) == ids(
        field="name"
    )
    assert ids(date_to=(today - timedelta(days=1)).isoformat()) == []
    assert ids(date_from=(today + timedelta(days=1)).isoformat()) == []

    page = app.get("/studies/AUD/audit/", {"action": "site.updated", "actor": "edi"})
    form = form_posting_to(page, "/studies/AUD/audit/")
    assert form["action"].value == "site.updated" and form["actor"].value == "edi"
    assert "No events match these filters" in app.get("/studies/AUD/audit/?action=nothing").text

    wrong = app.get("/studies/AUD/audit/", {"date_from": "12/03/2025", "field": "name"})
    summary = wrong.html.find(attrs={"data-testid": "error-summary"})
    assert "Enter a real date" in summary.text
    assert wrong.html.find("input", {"name": "date_from"})["value"] == "12/03/2025"
    assert wrong.html.find("title").text.startswith("Error:")
    assert event_rows(wrong) == []


def test_keyset_pages_walk_every_event_once_in_both_directions(app, db_session, study):
    for n in range(110):
        rename(db_session, study.north, f"Northern General {n}")
    expected = visible_event_ids(db_session, study.study.id)
    assert len(expected) > 100
    login(app, "monitor")

    seen, pages = [], []
    page = app.get("/studies/AUD/audit/")
    while True:
        pages.append(event_ids(page))
        seen.extend(pages[-1])
        older = page.html.find("a", rel="next")
        if older is None:
            break
        assert "before=" in older["href"] and "offset" not in older["href"]
        page = app.get(older["href"])
    assert seen == expected
    assert [len(ids) for ids in pages[:-1]] == [50] * (len(pages) - 1)
    assert "Newer" not in app.get("/studies/AUD/audit/").text

    # Back again through the "Newer" links: the same pages, in reverse.
    back = []
    while True:
        newer = page.html.find("a", rel="prev")
        if newer is None:
            break
        page = app.get(newer["href"])
        back.append(event_ids(page))
    assert back[::-1] == pages[:-1]

    # Filters carry through the page links.
    filtered = app.get("/studies/AUD/audit/", {"field": "name"})
    assert "field=name" in filtered.html.find("a", rel="next")["href"]


def test_site_staff_see_only_their_sites_events_never_study_level_ones(app, db_session, study):
    rename(db_session, study.north, "North renamed")
    rename(db_session, study.south, "South renamed")
    with acting_as(db_session, EDITOR):
        study.study.title = "A retitled study"
    login(app, "coordinator")

    page = app.get("/studies/AUD/audit/")
    shown = event_ids(page)
    assert shown == visible_event_ids(db_session, study.study.id, site_id=study.north.id)
    table = page.html.find("table", {"data-testid": "events"}).text
    assert "North renamed" in table
    assert "South renamed" not in table and "A retitled study" not in table
    assert "You see the events of your own sites only" in page.text
    assert event_ids(app.get("/studies/AUD/audit/", {"site_id": str(study.south.id)})) == []
    assert event_ids(app.get("/studies/AUD/audit/", {"action": "study.updated"})) == []
    history = app.get(
        "/studies/AUD/audit/history",
        {"entity_type": "site", "entity_id": str(study.south.id), "field": "name"},
    )
    assert "South renamed" not in history.text and "There are no changes to show" in history.text
    # Site staff may read the trail but not export it.
    assert app.get("/studies/AUD/audit/export.csv", expect_errors=True).status_int == 403
    assert "Download these events" not in page.text


def test_blinded_statistician_cannot_read_the_audit_trail(app, db_session, study):
    login(app, "statistician")
    for path in (
        "/studies/AUD/audit/",
        f"/studies/AUD/audit/history?entity_type=site&entity_id={study.north.id}",
        "/studies/AUD/audit/export.csv",
        "/audit/system/",
    ):
        assert app.get(path, expect_errors=True).status_int == 403, path


def _export(app, query=""):
    """Call the export directly, to see its body as the server hands it over."""
    request = Request.blank(
        "/studies/AUD/audit/export.csv" + query,
        environ={"REMOTE_ADDR": "192.0.2.10"},
        headers={"Cookie": "; ".join(f"{k}={v}" for k, v in app.cookies.items())},
    )
    status, headers, app_iter = request.call_application(app.app)
    return status, dict(headers), app_iter


def test_csv_export_is_formula_safe_streamed_and_recorded(app, db_session, study):
    rename(db_session, study.north, '=HYPERLINK("http://evil.example","Click")', "-1 typo")
    rename(db_session, study.south, "South", actor=AuditActor(user_id=9, name="@Mallory"))
    login(app, "monitor")

    status, headers, app_iter = _export(app, "?entity_type=site")
    assert status.startswith("200")
    # Streamed: a lazy iterator handing over the header before reading any event.
    assert isinstance(app_iter, types.GeneratorType)
    chunks = []
    try:
        chunks.extend(app_iter)
    finally:
        app_iter.close()
    assert len(chunks) >= 2
    assert headers["Content-Type"].startswith("text/csv")
    assert re.fullmatch(
        r'attachment; filename="audit-trail-AUD-\d{8}T\d{6}Z\.csv"',
        headers["Content-Disposition"],
    )

    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["event id", "occurred at (UTC)", "actor id"]
    assert header[-3:] == ["chain", "sequence", "event hash"]
    column = {name: header.index(name) for name in header}
    assert [int(row[0]) for row in body] == visible_event_ids(
        db_session, study.study.id, entity_type="site"
    )
    name_change = next(row for row in body if row[column["reason"]] == "'-1 typo")
    assert name_change[column["new value"]].startswith("'=HYPERLINK(")
    assert name_change[column["old value"]] == "Northern General"
    assert name_change[column["occurred at (UTC)"]].endswith("Z")
    assert any(row[column["actor name"]] == "'@Mallory" for row in body)
    for row in body:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell

    exported = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "audit.exported")
    ).one()
    assert exported.study_id == study.study.id
    assert exported.details == {"filters": {"entity_type": "site"}, "format": "csv"}
    monitor = db_session.scalars(select(User).where(User.username == "monitor")).one()
    assert (exported.actor_id, exported.actor_name) == (monitor.id, monitor.full_name)
    assert all(int(row[0]) < exported.id for row in body)


def test_export_through_the_page_link_keeps_the_filters(app, db_session, study):
    login(app, "monitor")
    page = app.get("/studies/AUD/audit/", {"action": "site.created"})
    export = app.get(page.html.find("a", {"data-testid": "export"})["href"])
    body = list(csv.reader(io.StringIO(export.body.decode("utf-8-sig"))))[1:]
    assert body and all(row[7] == "site.created" for row in body)


def test_value_history_shows_one_values_changes_oldest_first(app, db_session, study):
    for name in ("First name", "Second name", "Third name"):
        rename(db_session, study.north, name, f"to {name}")
    study.north.recruitment_target = 75
    db_session.flush()
    login(app, "monitor")

    trail = app.get("/studies/AUD/audit/", {"field": "name", "site_id": str(study.north.id)})
    link = event_rows(trail)[0].find("a", href=re.compile("/audit/history"))
    history = app.get(link["href"])

    assert history.html.find("h1").text == f"History of name of site {study.north.id}"
    rows = history.html.select("table[data-testid=history] tbody tr")
    values = [
        (
            old.text if (old := row.find(attrs={"data-testid": "old-value"})) else None,
            row.find(attrs={"data-testid": "new-value"}).text,
        )
        for row in rows
    ]
    assert values == [
        (None, "Northern General"),
        ("Northern General", "First name"),
        ("First name", "Second name"),
        ("Second name", "Third name"),
    ]
    table = history.html.find("table", {"data-testid": "history"}).text
    assert "to Second name" in table and "recruitment_target" not in table

    record = app.get(
        "/studies/AUD/audit/history", {"entity_type": "site", "entity_id": str(study.north.id)}
    )
    assert "recruitment_target" in record.text and "Third name" in record.text

    # A value's history ends with its record's deletion, showing the value it had.
    south_id = study.south.id
    with change_reason(db_session, "Site withdrew before opening"):
        db_session.delete(study.south)
    deleted = app.get(
        "/studies/AUD/audit/history",
        {"entity_type": "site", "entity_id": str(south_id), "field": "name"},
    )
    last = deleted.html.select("table[data-testid=history] tbody tr")[-1]
    assert "site.deleted" in last.text and "Site withdrew before opening" in last.text
    assert last.find(attrs={"data-testid": "old-value"}).text == "Southern General"
    assert last.find(attrs={"data-testid": "new-value"}).text == "(none)"

    missing = app.get("/studies/AUD/audit/history", expect_errors=True)
    assert missing.status_int == 400 and "Say which record" in missing.text


def test_system_trail_is_for_all_studies_roles_only(app, db_session, study):
    login(app, "monitor")
    assert app.get("/audit/system/", expect_errors=True).status_int == 403

    admin = TestApp(app.app, extra_environ={"REMOTE_ADDR": "192.0.2.10"})
    login(admin, "admin")
    page = admin.get("/audit/system/")
    assert page.html.find("h1").text == "System audit trail"
    actions = {cell_texts(row)[2].removeprefix("Action ") for row in event_rows(page)}
    assert "user.created" in actions
    assert not actions & {"site.created", "site.updated"}
    system_ids = set(event_ids(page))
    study_ids = set(visible_event_ids(db_session, study.study.id))
    assert not system_ids & study_ids
    # Study-only filters do not apply here; the others do.
    assert page.html.find("select", {"name": "site_id"}) is None
    only_users = admin.get("/audit/system/", {"entity_type": "user", "action": "user.created"})
    assert {cell_texts(row)[2] for row in event_rows(only_users)} == {"Action user.created"}


@pytest.mark.parametrize(
    ("username", "links"),
    [
        ("monitor", ["Audit trail", "Audit reviews", "Audit verification"]),
        ("coordinator", ["Audit trail", "Audit reviews"]),
        ("statistician", []),
    ],
)
def test_the_study_page_leads_each_role_to_the_audit_pages_it_may_open(
    app, db_session, study, username, links
):
    login(app, username)
    page = app.get("/studies/AUD/")
    assert page.html.title.get_text(strip=True) == "AUD \u2013 BHP CTMS"
    found = page.html.find(attrs={"data-testid": "audit-links"})
    anchors = found.find_all("a") if found else []
    assert [anchor.get_text(strip=True) for anchor in anchors] == links
    for anchor in anchors:
        assert app.get(anchor["href"]).status_int == 200
    sites = page.html.find("a", string=lambda text: text and "sites" in text.lower())
    assert app.get(sites["href"]).status_int == 200
