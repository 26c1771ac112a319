"""Acceptance 2: random tamperings of the audit table, and direct edits of data in the
database around the application, are every one found by the verification that
``ctms audit verify`` runs, which names the first bad event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from bhp_ctms.audit.capture import change_reason
from bhp_ctms.audit.chain import HASHED_FIELDS, hash_values
from bhp_ctms.audit.checkpoints import write_periodic_checkpoints
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.verify import verify_audit_trail
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site, SiteStatus
from tests.conftest import TEST_SECRET_KEY
from tests.factories import MembershipFactory, SiteFactory, StudyFactory, UserFactory

EDITABLE = (
    "action",
    "actor_id",
    "actor_name",
    "actor_role",
    "client_addr",
    "request_id",
    "entity_id",
    "field",
    "old_value",
    "new_value",
    "reason",
    "details",
    "previous_hash",
    "event_hash",
)


@dataclass
class Trail:
    chains: dict[str, list[tuple[int, int]]]  # chain -> [(event id, sequence)] in order
    site_ids: list[int]


def _allow_tampering(db) -> None:
    """What an attacker with the database owner's rights would do first."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        db.execute(text("ALTER TABLE audit_checkpoints DISABLE TRIGGER USER"))
    else:
        for table in ("audit_events", "audit_checkpoints"):
            db.execute(text(f"DROP TRIGGER {table}_no_update"))
            db.execute(text(f"DROP TRIGGER {table}_no_delete"))


@pytest.fixture
def trail(db_session) -> Trail:
    study = StudyFactory()
    sites = [SiteFactory(study=study, name=f"Site {n}") for n in range(3)]
    users = [UserFactory() for _ in range(2)]
    for user, site in zip(users, sites, strict=False):
        MembershipFactory(user=user, study_id=study.id, site_id=site.id)
    MembershipFactory(user=users[0], study_id=study.id, role=Role.MONITOR)
    sites[0].name = "Renamed"
    sites[1].recruitment_target = 75
    db_session.flush()
    with change_reason(db_session, "closing"):
        sites[2].status = SiteStatus.CLOSED
    write_periodic_checkpoints(db_session, TEST_SECRET_KEY)
    assert verify_audit_trail(db_session, TEST_SECRET_KEY).ok
    _allow_tampering(db_session)
    rows = db_session.execute(
        select(AuditEvent.chain, AuditEvent.id, AuditEvent.sequence).order_by(
            AuditEvent.chain, AuditEvent.sequence
        )
    )
    chains: dict[str, list[tuple[int, int]]] = {}
    for chain, event_id, sequence in rows:
        chains.setdefault(chain, []).append((event_id, sequence))
    return Trail(chains, [site.id for site in sites])


def _chain_problem_event(report, chain):
    (result,) = [result for result in report.chains if result.chain == chain]
    assert result.problem is not None, f"{chain} was not reported"
    return getattr(result.problem, "event_id", None)


def _edit(db, draw, trail):
    chain = draw(st.sampled_from(sorted(trail.chains)))
    event_id, _ = draw(st.sampled_from(trail.chains[chain]))
    name = draw(st.sampled_from(EDITABLE))
    current = db.execute(
        text(f"SELECT {name} FROM audit_events WHERE id = :id"), {"id": event_id}
    ).scalar()
    if name == "actor_id":
        value = (current or 0) + draw(st.integers(1, 1000))
    elif name in ("previous_hash", "event_hash"):
        value = draw(st.text("0123456789abcdef", min_size=64, max_size=64).filter(current.__ne__))
    else:
        value = draw(st.text(min_size=1, max_size=20).filter(lambda v: v != current))
        value = value.replace("\x00", "")
        if not value or value == current:
            value = f"{current}!"
    db.execute(
        text(f"UPDATE audit_events SET {name} = :value WHERE id = :id"),
        {"value": value, "id": event_id},
    )
    return chain, event_id


def _change_time(db, draw, trail):
    chain = draw(st.sampled_from(sorted(trail.chains)))
    event_id, _ = draw(st.sampled_from(trail.chains[chain]))
    event = db.get(AuditEvent, event_id)
    shift = timedelta(seconds=draw(st.integers(1, 10**7)) * draw(st.sampled_from([-1, 1])))
    db.execute(
        text("UPDATE audit_events SET occurred_at = :moment WHERE id = :id"),
        {"moment": _stored_time(db, event.occurred_at + shift), "id": event_id},
    )
    db.expunge(event)
    return chain, event_id


def _stored_time(db, moment):
    if db.get_bind().dialect.name == "sqlite":
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment


def _delete(db, draw, trail):
    chain = draw(st.sampled_from(sorted(trail.chains)))
    events = trail.chains[chain]
    index = draw(st.integers(0, len(events) - 1))
    db.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": events[index][0]})
    following = events[index + 1][0] if index + 1 < len(events) else None
    return chain, following


def _swap(db, draw, trail):
    chain = draw(st.sampled_from([c for c in sorted(trail.chains) if len(trail.chains[c]) > 1]))
    events = trail.chains[chain]
    first = draw(st.integers(0, len(events) - 2))
    second = draw(st.integers(first + 1, len(events) - 1))
    (a, sequence_a), (b, sequence_b) = events[first], events[second]
    for event_id, sequence in ((a, -1), (b, -2), (a, sequence_b), (b, sequence_a)):
        db.execute(
            text("UPDATE audit_events SET sequence = :sequence WHERE id = :id"),
            {"sequence": sequence, "id": event_id},
        )
    return chain, b


def _recompute(db, draw, trail):
    """Edit an event, then re-hash the rest of its chain: only a signed checkpoint can tell."""
    chain = draw(st.sampled_from(sorted(trail.chains)))
    events = trail.chains[chain]
    index = draw(st.integers(0, len(events) - 1))
    previous = None
    for event_id, _ in events[index:]:
        event = db.get(AuditEvent, event_id)
        values = {name: getattr(event, name) for name in HASHED_FIELDS if name != "details"}
        values["details_json"] = event.details_json
        if event_id == events[index][0]:
            values["new_value"] = '"forged"'
        if previous is not None:
            values["previous_hash"] = previous
        previous = hash_values(values)
        db.execute(
            text(
                "UPDATE audit_events SET new_value = :new_value, previous_hash = :previous_hash, "
                "event_hash = :event_hash WHERE id = :id"
            ),
            {
                "new_value": values["new_value"],
                "previous_hash": values["previous_hash"],
                "event_hash": previous,
                "id": event_id,
            },
        )
        db.expunge(event)
    return chain, None


def _edit_data(db, draw, trail):
    """A value changed in the database around the application."""
    site_id = draw(st.sampled_from(trail.site_ids))
    column, value = draw(
        st.sampled_from(
            [
                ("name", "Edited at the SQL prompt"),
                ("principal_investigator", "Dr Nobody"),
                ("recruitment_target", 999),
                ("status", "suspended"),
                ("code", "ZZ"),
            ]
        )
    )
    db.execute(
        text(f"UPDATE sites SET {column} = :value WHERE id = :id"), {"value": value, "id": site_id}
    )
    return "replay", ("site", str(site_id), column)


def _insert_or_delete_data(db, draw, trail):
    if draw(st.booleans()):
        site = db.get(Site, trail.site_ids[0])
        db.execute(
            text(
                "INSERT INTO sites (study_id, code, name, principal_investigator, status, "
                "created_at) VALUES (:study, 'ROGUE', 'Rogue', '', 'open', :now)"
            ),
            {"study": site.study_id, "now": _stored_time(db, site.created_at)},
        )
        rogue = db.scalar(text("SELECT id FROM sites WHERE code = 'ROGUE'"))
        return "replay", ("site", str(rogue), "")
    site_id = trail.site_ids[2]
    db.execute(text("DELETE FROM memberships WHERE site_id = :id"), {"id": site_id})
    db.execute(text("DELETE FROM sites WHERE id = :id"), {"id": site_id})
    return "replay", ("site", str(site_id), "")


TAMPERINGS = [_edit, _change_time, _delete, _swap, _recompute, _edit_data, _insert_or_delete_data]


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(data=st.data())
def test_every_tampering_is_detected_and_the_first_bad_event_named(db_session, trail, data):
    tampering = data.draw(st.sampled_from(TAMPERINGS))
    savepoint = db_session.begin_nested()
    try:
        chain, expected = tampering(db_session, data.draw, trail)
        db_session.expire_all()
        report = verify_audit_trail(db_session, TEST_SECRET_KEY)
        assert not report.ok, f"{tampering.__name__} went unnoticed"
        if chain == "replay":
            entity_type, entity_id, field = expected
            assert any(
                (p.entity_type, p.entity_id) == (entity_type, entity_id)
                and (not field or p.field == field)
                for p in report.replay_problems
            ), report.problems
        elif expected is not None:
            assert _chain_problem_event(report, chain) == expected, report.problems
        else:
            _chain_problem_event(report, chain)
    finally:
        savepoint.rollback()
        db_session.expire_all()
