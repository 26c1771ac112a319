"""A study's sites as a CTU admin manages them and as site staff see them: adding,
changing, closing and deleting sites, granting and revoking staff, and the audit
trail each change leaves (one event per changed value, with its reason)."""

from __future__ import annotations

from datetime import date

from pyramid.interfaces import IRoutesMapper
from sqlalchemy import func, select

from bhp_ctms.accounts.models import Membership
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.db import utcnow
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site, SiteStatus
from tests.factories import MembershipFactory, SiteFactory, StudyFactory, UserFactory
from tests.functional.helpers import csrf_token, form_posting_to, login

SITES = "/studies/TRIAL/sites/"


def _admin_with_study(db_session):
    study = StudyFactory(code="TRIAL")
    admin = UserFactory(username="admin", full_name="Ada Admin")
    MembershipFactory(user=admin, role=Role.CTU_ADMIN)
    return study


def _logged_in_admin(app, db_session):
    study = _admin_with_study(db_session)
    login(app, "admin")
    return study


def _event_count(db_session):
    return db_session.scalar(select(func.count(AuditEvent.id)))


def _events(db_session, entity_type, entity_id, since=0):
    return db_session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.entity_type == entity_type,
            AuditEvent.entity_id == str(entity_id),
            AuditEvent.id > since,
        )
        .order_by(AuditEvent.id)
    ).all()


def _last_event_id(db_session):
    return db_session.scalar(select(func.max(AuditEvent.id))) or 0


def _reloaded(db_session, site):
    db_session.expire_all()
    return db_session.get(Site, site.id)


def _error_next_to(page, field_id):
    """The error message shown beside a field (the design system's ``<id>-error``)."""
    element = page.html.find(id=f"{field_id}-error")
    return element.get_text(" ", strip=True) if element is not None else ""


def _error_summary(page):
    summary = page.html.find(attrs={"data-testid": "error-summary"})
    return summary.get_text(" ", strip=True) if summary is not None else ""


def _flash(page):
    return " ".join(
        banner.get_text(" ", strip=True)
        for banner in page.html.find_all(attrs={"data-testid": "flash"})
    )


def _history_links(page):
    return [link for link in page.html.find_all("a") if link.get_text().startswith("History")]


def _edit_form(app, site_code):
    page = app.get(f"{SITES}{site_code}/edit")
    return form_posting_to(page, f"{SITES}{site_code}/edit")


# -- adding a site -----------------------------------------------------------------


def test_ctu_admin_adds_a_site_that_starts_pending(app, db_session):
    study = _logged_in_admin(app, db_session)
    listing = app.get(SITES)
    assert "This study has no sites yet" in listing.text
    new_page = listing.click("Add a site")

    form = form_posting_to(new_page, f"{SITES}new")
    form["code"] = "NTH"
    form["name"] = "Northern General Hospital"
    form["principal_investigator"] = "Dr Priya Investigator"
    form["recruitment_target"] = "60"
    form["activated_on-day"] = "3"
    form["activated_on-month"] = "2"
    form["activated_on-year"] = "2025"
    response = form.submit()

    assert response.status_int == 303
    assert response.location.endswith(f"{SITES}NTH/")
    page = response.follow()
    assert "Site NTH \N{EN DASH} Northern General Hospital has been added" in _flash(page)
    details = page.html.find(attrs={"data-testid": "site-details"}).get_text(" ", strip=True)
    for shown in (
        "Northern General Hospital",
        "Dr Priya Investigator",
        "Pending",
        "60",
        "3 Feb 2025",
    ):
        assert shown in details

    site = db_session.scalars(select(Site).where(Site.code == "NTH")).one()
    assert (site.study_id, site.status, site.activated_on) == (
        study.id,
        SiteStatus.PENDING,
        date(2025, 2, 3),
    )
    events = _events(db_session, "site", site.id)
    assert {e.action for e in events} == {"site.created"}
    by_field = {e.field: e for e in events}
    assert len(by_field) == len(events), "one event per value"
    assert by_field["name"].old_value is None
    assert by_field["name"].new_value == '"Northern General Hospital"'
    assert by_field["status"].new_value == '"pending"'
    assert by_field["activated_on"].new_value == '"2025-02-03"'
    assert by_field["name"].actor_name == "Ada Admin"

    listing = app.get(SITES)
    row = listing.html.find(attrs={"data-testid": "sites"}).get_text(" ", strip=True)
    for shown in ("NTH", "Northern General Hospital", "Dr Priya Investigator", "Pending", "60"):
        assert shown in row
    assert "3 Feb 2025" in row


def test_activation_date_may_be_given_as_an_iso_date(app, db_session):
    _logged_in_admin(app, db_session)
    response = app.post(
        f"{SITES}new",
        {
            "csrf_token": csrf_token(app, f"{SITES}new"),
            "code": "CHH",
            "name": "Children's Hospital",
            "activated_on": "2025-03-12",
        },
    )
    assert response.status_int == 303
    site = db_session.scalars(select(Site).where(Site.code == "CHH")).one()
    assert site.activated_on == date(2025, 3, 12)
    assert site.recruitment_target is None


def test_new_site_errors_name_their_fields_and_keep_what_was_typed(app, db_session):
    study = _logged_in_admin(app, db_session)
    SiteFactory(study=study, code="NTH")
    before = _event_count(db_session)
    form = form_posting_to(app.get(f"{SITES}new"), f"{SITES}new")
    form["code"] = "NTH"
    form["name"] = "Another Northern Hospital"
    form["recruitment_target"] = "6o"
    form["activated_on-day"] = "31"
    form["activated_on-month"] = "2"
    form["activated_on-year"] = "2025"
    page = form.submit(expect_errors=True)

    assert page.status_int == 400
    assert page.html.title.text.startswith("Error:")
    assert "Site code NTH is already used in this study" in _error_next_to(page, "code")
    assert "Recruitment target must be a whole number" in _error_next_to(page, "recruitment_target")
    assert "Activation date must be a real date" in _error_next_to(page, "activated_on")
    summary = _error_summary(page)
    assert "Site code NTH is already used" in summary and "Recruitment target" in summary
    form = form_posting_to(page, f"{SITES}new")
    assert form["code"].value == "NTH"
    assert form["name"].value == "Another Northern Hospital"
    assert form["recruitment_target"].value == "6o"
    assert (form["activated_on-day"].value, form["activated_on-year"].value) == ("31", "2025")
    assert _event_count(db_session) == before


def test_missing_values_are_named(app, db_session):
    _logged_in_admin(app, db_session)
    form = form_posting_to(app.get(f"{SITES}new"), f"{SITES}new")
    form["recruitment_target"] = "0"
    form["activated_on-month"] = "4"
    page = form.submit(expect_errors=True)
    assert page.status_int == 400
    assert "Enter a site code" in _error_next_to(page, "code")
    assert "Enter the site name" in _error_next_to(page, "name")
    assert "Recruitment target must be from 1" in _error_next_to(page, "recruitment_target")
    assert "Activation date must include a day and a year" in _error_next_to(page, "activated_on")


# -- changing a site ---------------------------------------------------------------


def test_each_changed_value_is_one_audit_event(app, db_session):
    study = _logged_in_admin(app, db_session)
    site = SiteFactory(study=study, code="NTH", name="Old name", recruitment_target=50)
    since = _last_event_id(db_session)
    form = _edit_form(app, "NTH")
    assert form["name"].value == "Old name"
    assert form["status"].value == "open"
    form["name"] = "New name"
    form["recruitment_target"] = "70"
    response = form.submit()

    assert response.status_int == 303
    assert "Site NTH has been updated" in _flash(response.follow())
    assert _reloaded(db_session, site).name == "New name"
    events = _events(db_session, "site", site.id, since)
    assert [(e.action, e.field, e.old_value, e.new_value) for e in events] == [
        ("site.updated", "name", '"Old name"', '"New name"'),
        ("site.updated", "recruitment_target", "50", "70"),
    ]
    assert {e.actor_name for e in events} == {"Ada Admin"}


def test_saving_without_changes_writes_nothing(app, db_session):
    study = _logged_in_admin(app, db_session)
    SiteFactory(study=study, code="NTH")
    before = _event_count(db_session)
    response = _edit_form(app, "NTH").submit()
    assert "Site NTH was not changed" in _flash(response.follow())
    assert _event_count(db_session) == before


def test_opening_a_pending_site_sets_todays_activation_date(app, db_session):
    study = _logged_in_admin(app, db_session)
    site = SiteFactory(study=study, code="NTH", status=SiteStatus.PENDING)
    since = _last_event_id(db_session)
    form = _edit_form(app, "NTH")
    form["status"] = "open"
    assert form.submit().status_int == 303

    site = _reloaded(db_session, site)
    assert site.status == SiteStatus.OPEN
    assert site.activated_on == utcnow().date()
    changes = {
        e.field: (e.old_value, e.new_value) for e in _events(db_session, "site", site.id, since)
    }
    assert changes == {
        "status": ('"pending"', '"open"'),
        "activated_on": ("null", f'"{utcnow().date().isoformat()}"'),
    }


def test_a_status_change_that_is_not_allowed_is_named_on_the_status_field(app, db_session):
    study = _logged_in_admin(app, db_session)
    site = SiteFactory(study=study, code="NTH", status=SiteStatus.PENDING, name="Kept")
    before = _event_count(db_session)
    form = _edit_form(app, "NTH")
    offered = [value for value, _selected, _text in form["status"].options]
    assert offered == ["pending", "open", "closed"]
    page = app.post(
        f"{SITES}NTH/edit",
        {"csrf_token": csrf_token(app), "name": "Typed name", "status": "suspended"},
        expect_errors=True,
    )

    assert page.status_int == 400
    assert "Status cannot change from pending to suspended" in _error_next_to(page, "status")
    assert form_posting_to(page, f"{SITES}NTH/edit")["name"].value == "Typed name"
    assert _reloaded(db_session, site).status == SiteStatus.PENDING
    assert _event_count(db_session) == before


def test_closed_site_change_without_a_reason_is_refused_and_nothing_is_written(app, db_session):
    study = _logged_in_admin(app, db_session)
    site = SiteFactory(study=study, code="NTH", name="Old name", status=SiteStatus.CLOSED)
    before = _event_count(db_session)
    page = app.get(f"{SITES}NTH/edit")
    assert "This site is closed" in page.text
    form = form_posting_to(page, f"{SITES}NTH/edit")
    form["name"] = "New name"
    form["recruitment_target"] = "75"
    page = form.submit(expect_errors=True)

    assert page.status_int == 400
    message = "A reason for change is required: site NTH is closed"
    assert message in _error_next_to(page, "reason")
    assert message in _error_summary(page)
    assert "nothing has been saved" in _error_next_to(page, "reason")
    form = form_posting_to(page, f"{SITES}NTH/edit")
    assert (form["name"].value, form["recruitment_target"].value) == ("New name", "75")
    # The layout's study switcher queried the database after the refusal.
    assert page.html.find(id="study-switcher") is not None
    site = _reloaded(db_session, site)
    assert (site.name, site.recruitment_target) == ("Old name", 50)
    assert _event_count(db_session) == before
    # The next request works normally.
    assert app.get(f"{SITES}NTH/").status_int == 200


def test_closed_site_change_with_a_reason_is_saved_and_its_events_carry_the_reason(app, db_session):
    study = _logged_in_admin(app, db_session)
    site = SiteFactory(
        study=study, code="NTH", status=SiteStatus.CLOSED, activated_on=date(2024, 1, 15)
    )
    since = _last_event_id(db_session)
    form = _edit_form(app, "NTH")
    form["status"] = "open"
    form["name"] = "Northern General (reopened)"
    form["reason"] = "Sponsor approved reopening for the extension phase"
    assert form.submit().status_int == 303

    site = _reloaded(db_session, site)
    assert (site.status, site.activated_on) == (SiteStatus.OPEN, date(2024, 1, 15))
    events = _events(db_session, "site", site.id, since)
    assert sorted(e.field for e in events) == ["name", "status"]
    assert {e.reason for e in events} == {"Sponsor approved reopening for the extension phase"}


# -- deleting a site ---------------------------------------------------------------


def test_ctu_admin_deletes_a_pending_site_with_a_reason(app, db_session):
    study = _logged_in_admin(app, db_session)
    site = SiteFactory(study=study, code="OLD", name="Never opened", status=SiteStatus.PENDING)
    site_id = site.id
    before = _event_count(db_session)
    page = app.get(f"{SITES}OLD/").click("Delete site")
    form = form_posting_to(page, f"{SITES}OLD/delete")
    page = form.submit(expect_errors=True)

    assert page.status_int == 400
    assert "Enter a reason for deleting the site" in _error_next_to(page, "reason")
    assert _reloaded(db_session, site) is not None
    assert _event_count(db_session) == before

    form = form_posting_to(page, f"{SITES}OLD/delete")
    form["reason"] = "Created by mistake"
    response = form.submit()
    assert response.status_int == 303
    assert response.location.endswith(SITES)
    assert "Site OLD \N{EN DASH} Never opened has been deleted" in _flash(response.follow())
    db_session.expire_all()
    assert db_session.get(Site, site_id) is None
    [event] = _events(db_session, "site", site_id, since=0)[-1:]
    assert event.action == "site.deleted"
    assert event.reason == "Created by mistake"
    assert event.old["code"] == "OLD" and event.new_value is None


def test_only_a_pending_site_without_staff_can_be_deleted(app, db_session):
    study = _logged_in_admin(app, db_session)
    open_site = SiteFactory(study=study, code="OPN", status=SiteStatus.OPEN)
    staffed = SiteFactory(study=study, code="STF", status=SiteStatus.PENDING)
    MembershipFactory(role=Role.SITE_COORDINATOR, study_id=study.id, site_id=staffed.id)

    page = app.get(f"{SITES}OPN/delete")
    assert "cannot be deleted because it is open" in page.text
    assert "Delete site" not in app.get(f"{SITES}OPN/").text
    page = app.post(
        f"{SITES}OPN/delete",
        {"csrf_token": csrf_token(app), "reason": "Tidying up"},
        expect_errors=True,
    )
    assert page.status_int == 400
    assert "only a pending site can be deleted" in _error_summary(page)

    page = app.post(
        f"{SITES}STF/delete",
        {"csrf_token": csrf_token(app), "reason": "Tidying up"},
        expect_errors=True,
    )
    assert page.status_int == 400
    assert "staff have roles at it: revoke their roles first" in _error_summary(page)
    assert _reloaded(db_session, open_site) is not None
    assert _reloaded(db_session, staffed) is not None


# -- staff -------------------------------------------------------------------------


def test_ctu_admin_grants_and_revokes_a_role_with_a_reason(app, db_session):
    study = _logged_in_admin(app, db_session)
    site = SiteFactory(study=study, code="NTH")
    cora = UserFactory(username="cora", full_name="Cora Coordinator")
    page = app.get(f"{SITES}NTH/")
    assert "Nobody has a role at this site yet" in page.text

    form = form_posting_to(page, f"{SITES}NTH/staff")
    form["username"] = "cora"
    form["role"] = "site_coordinator"
    response = form.submit()
    assert response.status_int == 303
    page = response.follow()
    assert "Cora Coordinator is now Site coordinator at site NTH" in _flash(page)
    staff = page.html.find(attrs={"data-testid": "staff"}).get_text(" ", strip=True)
    assert "Cora Coordinator" in staff and "cora" in staff and "Site coordinator" in staff
    membership = db_session.scalars(select(Membership).where(Membership.user_id == cora.id)).one()
    assert (membership.study_id, membership.site_id) == (study.id, site.id)
    membership_id = membership.id
    granted = _events(db_session, "membership", membership_id)
    assert {e.action for e in granted} == {"membership.created"}
    assert {e.field: e.new_value for e in granted}["role"] == '"site_coordinator"'

    revoke_page = page.click(href=f"/staff/{membership_id}/revoke")
    assert "Revoke Cora Coordinator\N{RIGHT SINGLE QUOTATION MARK}s role" in revoke_page.text
    revoke_url = f"{SITES}NTH/staff/{membership_id}/revoke"
    refused = form_posting_to(revoke_page, revoke_url).submit(expect_errors=True)
    assert refused.status_int == 400
    assert "Enter a reason for revoking the role" in _error_next_to(refused, "reason")
    db_session.expire_all()
    assert db_session.get(Membership, membership_id) is not None

    form = form_posting_to(refused, revoke_url)
    form["reason"] = "Left the research team"
    response = form.submit()
    assert response.status_int == 303
    page = response.follow()
    assert "Cora Coordinator is no longer Site coordinator at site NTH" in _flash(page)
    assert "Nobody has a role at this site yet" in page.text
    db_session.expire_all()
    assert db_session.get(Membership, membership_id) is None
    [revoked] = _events(db_session, "membership", membership_id)[len(granted) :]
    assert (revoked.action, revoked.reason) == ("membership.deleted", "Left the research team")


def test_granting_to_an_unknown_user_names_the_user_name_field(app, db_session):
    study = _logged_in_admin(app, db_session)
    SiteFactory(study=study, code="NTH")
    before = _event_count(db_session)
    form = form_posting_to(app.get(f"{SITES}NTH/"), f"{SITES}NTH/staff")
    form["username"] = "nobody"
    form["role"] = "site_pi"
    page = form.submit(expect_errors=True)

    assert page.status_int == 400
    assert "No user is called 'nobody'" in _error_next_to(page, "username")
    form = form_posting_to(page, f"{SITES}NTH/staff")
    assert (form["username"].value, form["role"].value) == ("nobody", "site_pi")
    assert _event_count(db_session) == before


def test_a_disabled_account_cannot_be_given_a_role(app, db_session):
    study = _logged_in_admin(app, db_session)
    SiteFactory(study=study, code="NTH")
    UserFactory(username="gone", is_active=False)
    page = app.post(
        f"{SITES}NTH/staff",
        {"csrf_token": csrf_token(app), "username": "gone", "role": "site_coordinator"},
        expect_errors=True,
    )
    assert page.status_int == 400
    assert "The account 'gone' is disabled" in _error_next_to(page, "username")
    assert db_session.scalars(select(Membership).where(Membership.site_id.is_not(None))).all() == []


def test_a_role_already_held_is_named_on_the_role_field(app, db_session):
    study = _logged_in_admin(app, db_session)
    site = SiteFactory(study=study, code="NTH")
    cora = UserFactory(username="cora", full_name="Cora Coordinator")
    MembershipFactory(user=cora, role=Role.SITE_PI, study_id=study.id, site_id=site.id)
    form = form_posting_to(app.get(f"{SITES}NTH/"), f"{SITES}NTH/staff")
    form["username"] = "cora"
    form["role"] = "site_pi"
    page = form.submit(expect_errors=True)
    assert page.status_int == 400
    assert "Cora Coordinator already has the role Site PI at site NTH" in _error_next_to(
        page, "role"
    )


def test_a_membership_of_another_site_cannot_be_revoked_through_this_one(app, db_session):
    study = _logged_in_admin(app, db_session)
    SiteFactory(study=study, code="AAA")
    other = SiteFactory(study=study, code="BBB")
    membership = MembershipFactory(study_id=study.id, site_id=other.id)
    assert app.get(f"{SITES}AAA/staff/{membership.id}/revoke", status=404)
    assert app.get(f"{SITES}AAA/staff/not-a-number/revoke", status=404)
    assert app.get(f"{SITES}BBB/staff/{membership.id}/revoke").status_int == 200


# -- site staff --------------------------------------------------------------------


def test_site_coordinator_sees_only_their_site_and_cannot_manage(app, db_session):
    study = StudyFactory(code="TRIAL")
    own = SiteFactory(study=study, code="AAA", name="Site Alpha")
    other = SiteFactory(study=study, code="BBB", name="Site Beta")
    cora = UserFactory(username="cora", full_name="Cora Coordinator")
    membership = MembershipFactory(
        user=cora, role=Role.SITE_COORDINATOR, study_id=study.id, site_id=own.id
    )
    login(app, "cora")

    listing = app.get(SITES)
    assert "Your sites" in listing.text
    assert "Site Alpha" in listing.text and "Site Beta" not in listing.text
    assert "Add a site" not in listing.text
    page = app.get(f"{SITES}AAA/")
    assert "Cora Coordinator" in page.html.find(attrs={"data-testid": "staff"}).text
    assert "Revoke" not in page.text and "Give role" not in page.text
    assert "Change site details" not in page.text
    # Another site is not there for them at all: a 404, as for any object of it.
    assert app.get(f"{SITES}BBB/", status=404)

    token = csrf_token(app)
    for path in (f"{SITES}new", f"{SITES}AAA/edit", f"{SITES}AAA/delete"):
        assert app.get(path, status=403)
        assert app.post(path, {"csrf_token": token, "name": "X", "reason": "X"}, status=403)
    assert app.post(
        f"{SITES}AAA/staff",
        {"csrf_token": token, "username": "cora", "role": "site_pi"},
        status=403,
    )
    revoke = f"{SITES}AAA/staff/{membership.id}/revoke"
    assert app.get(revoke, status=403)
    assert app.post(revoke, {"csrf_token": token, "reason": "X"}, status=403)
    db_session.expire_all()
    assert db_session.get(Membership, membership.id) is not None
    assert db_session.get(Site, other.id).name == "Site Beta"


def test_unknown_study_or_site_is_not_found(app, db_session):
    _logged_in_admin(app, db_session)
    assert app.get("/studies/NOPE/sites/", status=404)
    assert app.get(f"{SITES}NOPE/", status=404)
    assert app.get(f"{SITES}NOPE/edit", status=404)


def test_value_history_links_are_shown_to_audit_readers_only(app, db_session):
    study = StudyFactory(code="TRIAL")
    site = SiteFactory(study=study, code="AAA")
    MembershipFactory(
        user=UserFactory(username="cora"),
        role=Role.SITE_COORDINATOR,
        study_id=study.id,
        site_id=site.id,
    )
    MembershipFactory(
        user=UserFactory(username="sam"), role=Role.STATISTICIAN_BLINDED, study_id=study.id
    )
    # The audit pages may not be installed; the site page works either way.
    installed = app.app.registry.getUtility(IRoutesMapper).get_route("audit_history") is not None

    login(app, "cora")
    links = _history_links(app.get(f"{SITES}AAA/"))
    if installed:
        hrefs = [link["href"] for link in links]
        assert len(hrefs) == 6
        assert f"entity_type=site&entity_id={site.id}&field=name" in " ".join(hrefs)
    else:
        assert links == []

    app.post("/logout", {"csrf_token": csrf_token(app)})
    login(app, "sam")
    assert _history_links(app.get(f"{SITES}AAA/")) == []
