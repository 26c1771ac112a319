"""Automatic capture: every change to audited data becomes audit events, one per changed
value, with old and new values, the actor and the reason; a change that needs a reason
and has none is refused with nothing written; bulk writes around the trail are refused."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, update

from bhp_ctms.audit.capture import AuditError, ReasonRequired, acting_as, change_reason
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site, SiteStatus
from tests.factories import MembershipFactory, SiteFactory, UserFactory

MONITOR = AuditActor(
    user_id=7, name="Mo Nitor", client_addr="10.0.0.9", request_id="r-1", roles=((None, "monitor"),)
)


def _events(db_session, **where):
    statement = select(AuditEvent).order_by(AuditEvent.id)
    for name, value in where.items():
        statement = statement.where(getattr(AuditEvent, name) == value)
    return db_session.scalars(statement).all()


def _count(db_session) -> int:
    return db_session.scalar(select(func.count(AuditEvent.id)))


def test_creating_a_row_records_each_value_it_was_given(db_session):
    site = SiteFactory(code="NTH", name="North", recruitment_target=40)
    created = _events(db_session, action="site.created", entity_id=str(site.id))
    values = {event.field: event.new for event in created}
    assert values["code"] == "NTH" and values["name"] == "North"
    assert values["recruitment_target"] == 40 and values["status"] == "open"
    assert "activated_on" not in values  # no value, no event
    assert all(event.old_value is None for event in created)
    assert {event.study_id for event in created} == {site.study_id}
    assert {event.site_id for event in created} == {site.id}


def test_an_update_records_one_event_per_changed_value_with_old_and_new(db_session):
    site = SiteFactory(name="North", recruitment_target=40)
    before = _count(db_session)
    with acting_as(db_session, MONITOR):
        site.name = "North General"
        site.recruitment_target = 45
        site.code = site.code  # unchanged: no event
    changed = _events(db_session, action="site.updated")
    assert _count(db_session) - before == 2
    assert {(e.field, e.old, e.new) for e in changed} == {
        ("name", "North", "North General"),
        ("recruitment_target", 40, 45),
    }
    event = changed[0]
    assert (event.actor_id, event.actor_name, event.actor_role) == (7, "Mo Nitor", "monitor")
    assert (event.client_addr, event.request_id) == ("10.0.0.9", "r-1")
    assert event.occurred_at.tzinfo is not None


def test_secrets_are_recorded_as_digests_only(db_session):
    user = UserFactory()
    created = _events(db_session, action="user.created", field="password_hash")
    assert created[0].new.startswith("sha256:")
    assert user.password_hash not in created[0].new_value


def test_a_change_to_completed_data_without_a_reason_is_refused_and_writes_nothing(db_session):
    site = SiteFactory(name="North", status=SiteStatus.CLOSED)
    before = _count(db_session)
    with (
        pytest.raises(ReasonRequired, match=r"reason for change is required: site .* is closed"),
        db_session.begin_nested(),
    ):
        site.name = "Reopened North"
        db_session.flush()
    assert _count(db_session) == before
    assert db_session.get(Site, site.id).name == "North"


def test_the_same_change_with_a_reason_is_saved_with_its_reason(db_session):
    site = SiteFactory(status=SiteStatus.CLOSED)
    with change_reason(db_session, "Closed in error; the site still recruits"):
        site.status = SiteStatus.OPEN
    (event,) = _events(db_session, action="site.updated")
    assert event.reason == "Closed in error; the site still recruits"
    assert (event.old, event.new) == ("closed", "open")


def test_a_deletion_needs_a_reason_and_keeps_the_deleted_values(db_session):
    membership = MembershipFactory(role=Role.MONITOR)
    with pytest.raises(ReasonRequired, match="deleting membership"), db_session.begin_nested():
        db_session.delete(membership)
        db_session.flush()
    with change_reason(db_session, "left the study"):
        db_session.delete(membership)
    (event,) = _events(db_session, action="membership.deleted")
    assert event.reason == "left the study" and event.new_value is None
    assert event.old["role"] == "monitor" and event.subject_user_id == membership.user_id


@pytest.mark.parametrize(
    "statement",
    [update(Site).values(name="everywhere"), delete(Site)],
    ids=["update", "delete"],
)
def test_bulk_writes_to_audited_tables_are_refused(db_session, statement):
    SiteFactory()
    with pytest.raises(AuditError, match="bypass the audit trail"):
        db_session.execute(statement)
