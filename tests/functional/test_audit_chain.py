"""The audit trail's hash chains: intact when written through the application,
broken (and named) by any tampering, unforked by concurrent writers, and
append-only in the database itself."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bhp_ctms.audit.chain import GENESIS_HASH, chains, verify_chain
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor, record_event
from bhp_ctms.db import create_database_engine
from tests.databases import POSTGRESQL_URL, migrate, throwaway_database
from tests.factories import StudyFactory, UserFactory
from tests.functional.helpers import login, submit_login

ACTOR = AuditActor(user_id=None, name="test")


def _record_some(db_session, study_id=None, count=5):
    return [
        record_event(db_session, ACTOR, f"test.event{n}", study_id=study_id, details={"n": n})
        for n in range(count)
    ]


def _allow_tampering(db_session: Session) -> None:
    """What an attacker with the database owner's rights would do first."""
    if db_session.get_bind().dialect.name == "postgresql":
        db_session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
    else:
        db_session.execute(text("DROP TRIGGER audit_events_no_update"))
        db_session.execute(text("DROP TRIGGER audit_events_no_delete"))


def test_events_written_by_the_application_form_intact_chains(app, make_app, db_session):
    study = StudyFactory()
    UserFactory(username="cora")
    login(app, "cora")
    submit_login(make_app(), "nobody", "wrong password!")
    _record_some(db_session, study.id)
    found = chains(db_session)
    assert found == sorted({"system", f"study:{study.id}"})
    for chain in found:
        assert verify_chain(db_session, chain) is None
    first = db_session.scalars(
        select(AuditEvent).where(AuditEvent.chain == "system").order_by(AuditEvent.sequence)
    ).first()
    assert first.sequence == 1 and first.previous_hash == GENESIS_HASH


@pytest.mark.parametrize(
    ("tampering", "message"),
    [
        ("UPDATE audit_events SET actor_name = 'someone else' WHERE id = :third", "edited"),
        ("UPDATE audit_events SET details = '{\"n\": 99}' WHERE id = :third", "edited"),
        (
            "UPDATE audit_events SET occurred_at = occurred_at - INTERVAL '1 day' "
            "WHERE id = :third",
            "edited",
        ),
        ("DELETE FROM audit_events WHERE id = :third", "missing, repeated or out of order"),
        (
            "UPDATE audit_events SET sequence = CASE WHEN id = :third THEN -1 ELSE sequence END",
            "missing, repeated or out of order",
        ),
    ],
)
def test_tampering_is_detected_and_the_first_bad_event_named(db_session, tampering, message):
    events = _record_some(db_session, count=6)
    third = events[2].id
    _allow_tampering(db_session)
    if db_session.get_bind().dialect.name == "sqlite":
        tampering = tampering.replace(
            "occurred_at - INTERVAL '1 day'", "datetime(occurred_at, '-1 day')"
        )
    db_session.execute(text(tampering), {"third": third})
    db_session.expire_all()
    problem = verify_chain(db_session, "system")
    assert problem is not None
    assert message in problem.message
    assert problem.event_id in (third, events[3].id)


def test_swapping_two_events_is_detected(db_session):
    events = _record_some(db_session, count=4)
    _allow_tampering(db_session)
    first, second = events[1], events[2]
    db_session.execute(
        text(
            "UPDATE audit_events SET sequence = CASE id WHEN :a THEN -1 WHEN :b THEN -2 END "
            "WHERE id IN (:a, :b)"
        ),
        {"a": first.id, "b": second.id},
    )
    db_session.execute(
        text(
            "UPDATE audit_events SET sequence = CASE id WHEN :a THEN 3 WHEN :b THEN 2 END "
            "WHERE id IN (:a, :b)"
        ),
        {"a": first.id, "b": second.id},
    )
    db_session.expire_all()
    problem = verify_chain(db_session, "system")
    assert problem is not None and problem.sequence == 2


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"]
)
def test_the_database_refuses_to_change_audit_events(db_session, statement):
    _record_some(db_session, count=1)
    with pytest.raises(DBAPIError, match="append-only"), db_session.begin_nested():
        db_session.execute(text(statement))


POSTGRESQL_ONLY = ["postgresql"] if POSTGRESQL_URL else []


@pytest.fixture(params=POSTGRESQL_ONLY)
def committed_postgresql(request, tmp_path):
    """A PostgreSQL database of its own, where writers really commit."""
    with throwaway_database(request.param, tmp_path, "ctms_audit") as url:
        migrate(url)
        engine = create_database_engine(url, pool_size=10, max_overflow=50)
        yield engine
        engine.dispose()


def test_postgresql_refuses_truncate(committed_postgresql):
    with committed_postgresql.begin() as connection, pytest.raises(DBAPIError, match="append-only"):
        connection.execute(text("TRUNCATE audit_events"))


def test_fifty_concurrent_writers_leave_one_unforked_chain(committed_postgresql):
    study_id = 7
    start = threading.Barrier(50)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with Session(committed_postgresql) as session, session.begin():
                start.wait()
                record_event(session, ACTOR, "test.concurrent", study_id=study_id, details={"n": n})
        except BaseException as error:  # reported below, with the thread's own failure
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with Session(committed_postgresql) as session:
        sequences = session.scalars(
            select(AuditEvent.sequence).where(AuditEvent.chain == f"study:{study_id}")
        ).all()
        assert sorted(sequences) == list(range(1, 51))
        assert verify_chain(session, f"study:{study_id}") is None
