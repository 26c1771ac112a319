"""The protocol pages: a study's versions, each version's schedule and criteria, and
the changes between two versions with the existing entries each would affect,
counted only at the viewer's sites."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.loading import load_study
from tests.factories import MembershipFactory, ParticipantFactory, UserFactory
from tests.functional.helpers import login
from tests.functional.test_study_loading import (
    DEMO_FOLDER,
    LOADER,
    amended_folder,
    record_visit,
)

PROTOCOL = "/studies/DEMO/protocol/"


def _demo_with_amendment(db_session, tmp_path):
    """DEMO at versions 1.0 and 2.0; three participants on 1.0 (one at NTH, two at CHH)
    with visits at week 26 (removed by 2.0) and week 12 (its window changed)."""
    first = load_study(db_session, LOADER, DEMO_FOLDER).version
    sites = {site.code: site for site in db_session.scalars(select(Site))}
    at_nth = ParticipantFactory(site=sites["NTH"])
    at_chh = ParticipantFactory(site=sites["CHH"])
    ParticipantFactory(site=sites["CHH"])
    record_visit(at_nth, "week_26", first, date(2026, 3, 3))
    record_visit(at_chh, "week_26", first, date(2026, 3, 4))
    record_visit(at_chh, "week_12", first, date(2026, 2, 20))
    load_study(db_session, LOADER, amended_folder(tmp_path))
    study = first.study
    manager = UserFactory(username="datamanager", full_name="Dara Manager")
    MembershipFactory(user=manager, role=Role.DATA_MANAGER, study_id=study.id)
    coordinator = UserFactory(username="coordinator", full_name="Cora Coordinator")
    MembershipFactory(
        user=coordinator,
        role=Role.SITE_COORDINATOR,
        study_id=study.id,
        site_id=sites["NTH"].id,
    )
    return study


def _rows(page, testid):
    table = page.html.find(attrs={"data-testid": testid})
    return [
        [cell.get_text(" ", strip=True) for cell in row.find_all("td")]
        for row in table.find("tbody").find_all("tr")
    ]


def _text(page, testid):
    return page.html.find(attrs={"data-testid": testid}).get_text(" ", strip=True)


def _affected(page):
    """Each change on the comparison page with the entries it would affect."""
    return {
        row.find("td").get_text(" ", strip=True).removeprefix("Change "): row.find(
            attrs={"data-testid": "affected"}
        )
        .get_text(" ", strip=True)
        .removeprefix("Existing entries affected ")
        for row in page.html.find_all(attrs={"data-testid": "change"})
    }


def test_a_data_manager_sees_every_version_and_its_state(app, db_session, tmp_path):
    _demo_with_amendment(db_session, tmp_path)
    future = date.today() + timedelta(days=60)
    load_study(
        db_session,
        LOADER,
        amended_folder(
            tmp_path,
            ('protocol_version: "2.0"', 'protocol_version: "3.0"'),
            ("effective_on: 2026-06-01", f"effective_on: {future.isoformat()}"),
            ("target_sample_size: 150", "target_sample_size: 160"),
            ("by a week 24 phone call", "by a week 24 phone call; target 160"),
            name="third",
        ),
    )
    login(app, "datamanager")

    page = app.get(PROTOCOL)

    rows = _rows(page, "protocol-versions")
    assert [row[0] for row in rows] == [
        "Version 1.0 (number 1)",
        "Version 2.0 (number 2)",
        "Version 3.0 (number 3)",
    ]
    assert [row[1] for row in rows] == [
        "Effective from 5 Jan 2026",
        "Effective from 1 Jun 2026",
        f"Effective from {future.day} {future:%b %Y}",
    ]
    assert [row[2] for row in rows] == ["State Superseded", "State In effect now", "State Future"]
    assert rows[0][3] == "Summary of changes First version"
    assert "Week 26 visit replaced by a week 24 phone call" in rows[1][3]
    assert [row[4] for row in rows] == ["Participants 3", "Participants 0", "Participants 0"]
    assert page.click(description=r"^1\.0$").request.path == f"{PROTOCOL}1/"


def test_a_coordinator_counts_only_their_own_sites_participants(app, db_session, tmp_path):
    _demo_with_amendment(db_session, tmp_path)
    login(app, "coordinator")

    page = app.get(PROTOCOL)

    assert "Participants at your sites" in page.text
    assert [row[4] for row in _rows(page, "protocol-versions")] == [
        "Participants 1",
        "Participants 0",
    ]


def test_a_version_page_shows_its_schedule_criteria_and_documents(app, db_session, tmp_path):
    _demo_with_amendment(db_session, tmp_path)
    login(app, "coordinator")

    first = app.get(f"{PROTOCOL}1/")

    assert first.html.find("h1").get_text(strip=True) == "Protocol version 1.0"
    assert _text(first, "version-state") == "Superseded"
    assert _text(first, "version-participants") == "1"
    schedule = _rows(first, "schedule")
    assert len(schedule) == 6
    assert schedule[5] == [
        "Event Week 26 visit (end of study)",
        "Day 182",
        "Window 14 days before, 14 days after",
        "Forms vitals, hip_score, end_of_study",
    ]
    assert schedule[1][2] == "Window On the day"
    assert _rows(first, "repeating-events")[0] == [
        "Event Adverse event",
        "How often As often as needed",
        "Forms ae",
    ]
    # Arms are part of the protocol, not an allocation: blinded roles see them too.
    assert [row[0] for row in _rows(first, "arms")] == ["Daily walking programme", "Usual care"]
    assert "Aged 18 years or over." in _text(first, "criteria")
    assert "Taking part in another interventional trial." in _text(first, "criteria")
    documents = _text(first, "consent-documents")
    assert "Participant information sheet Version 2.1" in documents
    assert "Consent form Version 2.0" in documents
    study = _text(first, "study-details")
    assert "ISRCTN12345678" in study and "312456" in study and "Double blind" in study

    second = app.get(f"{PROTOCOL}2/")
    assert _text(second, "version-state") == "In effect now"
    assert _rows(second, "schedule")[5][0] == "Event Week 24 phone call (end of study)"
    assert _rows(second, "repeating-events")[0][1] == "How often Up to 2 times"


def test_the_comparison_counts_affected_entries_at_the_viewers_sites(app, db_session, tmp_path):
    _demo_with_amendment(db_session, tmp_path)
    login(app, "datamanager")

    everywhere = app.get(f"{PROTOCOL}diff")

    assert everywhere.html.find("h1").get_text(strip=True) == "Changes from version 1.0 to 2.0"
    assert "Existing entries: recorded visits on version 1.0." in _text(everywhere, "entries-note")
    affected = _affected(everywhere)
    assert affected["Event Week 26 visit (end of study) (week_26) removed"] == (
        "2 recorded visits of 2 participants"
    )
    assert affected["Week 12 visit: window after changed from 7 to 10 days"] == (
        "1 recorded visit of 1 participant"
    )
    assert affected["Target sample size changed from 120 to 150"] == "None"
    headings = [h2.get_text(strip=True) for h2 in everywhere.html.find_all("h2")]
    assert headings[:2] == ["Study", "Events"]

    app.reset()
    login(app, "coordinator")
    at_nth = app.get(f"{PROTOCOL}diff?from=1&to=2")

    assert "on version 1.0 at your sites" in _text(at_nth, "entries-note")
    affected = _affected(at_nth)
    assert affected["Event Week 26 visit (end of study) (week_26) removed"] == (
        "1 recorded visit of 1 participant"
    )
    assert affected["Week 12 visit: window after changed from 7 to 10 days"] == "None"


def test_only_unblinded_roles_see_the_values_of_changed_randomisation_settings(
    app, db_session, tmp_path
):
    first = load_study(db_session, LOADER, DEMO_FOLDER).version
    load_study(
        db_session,
        LOADER,
        amended_folder(tmp_path, ("block_sizes: [4, 6]", "block_sizes: [2, 4, 6]")),
    )
    for username, role in (
        ("datamanager", Role.DATA_MANAGER),
        ("unblinded", Role.STATISTICIAN_UNBLINDED),
    ):
        user = UserFactory(username=username)
        MembershipFactory(user=user, role=role, study_id=first.study_id)

    login(app, "datamanager")
    concealed = _text(app.get(f"{PROTOCOL}diff"), "changes-randomisation")
    assert "Randomisation setting block_sizes changed" in concealed
    assert "shown to unblinded roles only" in concealed
    assert "[2, 4, 6]" not in concealed and "[4, 6]" not in concealed

    app.reset()
    login(app, "unblinded")
    shown = _text(app.get(f"{PROTOCOL}diff"), "changes-randomisation")
    assert "[2, 4, 6]" in shown


def test_a_bad_version_number_is_explained_not_an_error(app, db_session, tmp_path):
    _demo_with_amendment(db_session, tmp_path)
    login(app, "datamanager")

    missing = app.get(f"{PROTOCOL}diff?from=9&to=2", status=400)
    assert "There is no protocol version 9 of this study to compare from" in missing.text
    assert missing.html.find(attrs={"data-testid": "error-summary"}) is not None

    garbled = app.get(f"{PROTOCOL}diff?from=1&to=two", status=400)
    assert "There is no protocol version two of this study to compare to" in garbled.text

    same = app.get(f"{PROTOCOL}diff?from=2&to=2", status=400)
    assert "Choose two different versions to compare" in same.text

    app.get(f"{PROTOCOL}9/", status=404)
    app.get(f"{PROTOCOL}first/", status=404)


def test_a_study_with_one_version_has_nothing_to_compare(app, db_session):
    study = load_study(db_session, LOADER, DEMO_FOLDER).study
    MembershipFactory(
        user=UserFactory(username="datamanager"), role=Role.DATA_MANAGER, study_id=study.id
    )
    login(app, "datamanager")

    page = app.get(f"{PROTOCOL}diff")

    assert "Only one protocol version of DEMO is loaded" in _text(page, "nothing-to-compare")
