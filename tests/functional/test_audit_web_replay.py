"""Acceptance 1: over random sequences of creating, changing and deleting records through
the web pages, there is exactly one audit event per changed value, and replaying the
audit trail rebuilds exactly what the tables hold."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bhp_ctms.accounts.models import Membership
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.replay import live_state, replayed_state
from bhp_ctms.audit.verify import verify_audit_trail
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site, SiteStatus
from tests.conftest import TEST_SECRET_KEY
from tests.factories import MembershipFactory, StudyFactory, UserFactory
from tests.functional.helpers import login

NULL = "null"
CHANGE_SUFFIXES = (".created", ".updated", ".deleted")
TRANSITIONS = {
    "pending": ["open", "closed"],
    "open": ["suspended", "closed"],
    "suspended": ["open", "closed"],
    "closed": ["open"],
}
texts = (
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)
    .map(str.strip)
    .filter(bool)
)


def _change_events(db) -> int:
    return db.scalar(
        select(func.count(AuditEvent.id)).where(
            AuditEvent.action.like("%.created")
            | AuditEvent.action.like("%.updated")
            | AuditEvent.action.like("%.deleted")
        )
    )


def _changed_values(before: dict, after: dict) -> int:
    """How many values a change touched: each new value, each changed one, each deletion."""
    count = 0
    for key, values in after.items():
        if key not in before:
            count += sum(1 for value in values.values() if value != NULL)
        else:
            count += sum(1 for name, value in values.items() if before[key].get(name) != value)
    count += sum(1 for key in before if key not in after)
    return count


def _form_with(page, field):
    for form in page.forms.values():
        if field in form.fields:
            return form
    raise AssertionError(f"no form with a {field} field on {page.request.path}")


def _sites(db, study_id):
    return db.scalars(select(Site).where(Site.study_id == study_id).order_by(Site.id)).all()


def _create(app, db, study, draw, counter):
    page = app.get(f"/studies/{study.code}/sites/new")
    form = _form_with(page, "code")
    form["code"] = f"H{next(counter)}"
    form["name"] = draw(texts)
    form["principal_investigator"] = draw(st.one_of(st.just(""), texts))
    form["recruitment_target"] = str(draw(st.integers(1, 500)))
    form.submit()


def _edit(app, db, study, draw, counter):
    sites = _sites(db, study.id)
    if not sites:
        return
    site = draw(st.sampled_from(sites))
    page = app.get(f"/studies/{study.code}/sites/{site.code}/edit")
    form = _form_with(page, "reason")
    if draw(st.booleans()):
        form["name"] = draw(texts)
    if draw(st.booleans()):
        form["principal_investigator"] = draw(st.one_of(st.just(""), texts))
    if draw(st.booleans()):
        form["recruitment_target"] = str(draw(st.integers(1, 500)))
    if draw(st.booleans()):
        form["status"] = draw(st.sampled_from(TRANSITIONS[site.status.value]))
    # Sometimes no reason: a closed site then refuses the change and nothing is written.
    form["reason"] = draw(st.one_of(st.just(""), texts))
    form.submit(expect_errors=True)


def _delete(app, db, study, draw, counter):
    staffed = set(db.scalars(select(Membership.site_id).where(Membership.site_id.is_not(None))))
    pending = [
        site
        for site in _sites(db, study.id)
        if site.status == SiteStatus.PENDING and site.id not in staffed
    ]
    if not pending:
        return
    site = draw(st.sampled_from(pending))
    page = app.get(f"/studies/{study.code}/sites/{site.code}/delete")
    form = _form_with(page, "reason")
    form["reason"] = draw(texts)
    form.submit(expect_errors=True)


def _grant(app, db, study, draw, counter):
    sites = _sites(db, study.id)
    if not sites:
        return
    site = draw(st.sampled_from(sites))
    user = UserFactory()
    page = app.get(f"/studies/{study.code}/sites/{site.code}/")
    form = _form_with(page, "username")
    form["username"] = user.username
    form["role"] = draw(st.sampled_from([Role.SITE_COORDINATOR.value, Role.SITE_PI.value]))
    form.submit()


def _revoke(app, db, study, draw, counter):
    memberships = db.scalars(
        select(Membership).where(Membership.study_id == study.id, Membership.site_id.is_not(None))
    ).all()
    if not memberships:
        return
    membership = draw(st.sampled_from(memberships))
    site = db.get(Site, membership.site_id)
    page = app.get(f"/studies/{study.code}/sites/{site.code}/staff/{membership.id}/revoke")
    form = _form_with(page, "reason")
    form["reason"] = draw(texts)
    form.submit()


OPERATIONS = [_create, _edit, _delete, _grant, _revoke]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(data=st.data())
def test_one_event_per_changed_value_and_replay_rebuilds_the_tables(app, db_session, data):
    counter = iter(range(10**6))
    study = StudyFactory()
    admin = UserFactory()
    MembershipFactory(user=admin, role=Role.CTU_ADMIN)
    app.reset()
    login(app, admin.username)
    steps = data.draw(st.lists(st.sampled_from(OPERATIONS), min_size=1, max_size=12))
    for operation in steps:
        db_session.expire_all()
        before, events_before = live_state(db_session), _change_events(db_session)
        operation(app, db_session, study, data.draw, counter)
        db_session.expire_all()
        after = live_state(db_session)
        written = _change_events(db_session) - events_before
        assert written == _changed_values(before, after), operation.__name__
    db_session.expire_all()
    assert replayed_state(db_session) == live_state(db_session)
    assert verify_audit_trail(db_session, TEST_SECRET_KEY).ok
