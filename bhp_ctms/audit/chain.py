"""The tamper-evident hash chains of the audit trail.

Events form one SHA-256 chain per study and one for system events. Each event's
hash covers the previous event's hash and a canonical encoding of the event, so
editing, deleting, inserting or reordering any event breaks every hash after it.
Appends to a chain are serialised (an advisory lock on PostgreSQL; SQLite has a
single writer, and a stale read there fails as "database is locked", which is
retried), and ``(chain, sequence)`` is unique as the last line of defence.

The canonical encoding is every hashed field, in :data:`HASHED_FIELDS` order, as
text: ``~`` for NULL, otherwise the text's length in characters, a colon and the
text. Timestamps are UTC ``YYYY-MM-DDTHH:MM:SS.ffffff``; JSON values are hashed as
the canonical JSON text that is stored. The same encoding is written once in Python
(used to seal, and to verify on SQLite) and once in SQL (to verify on PostgreSQL,
where the database hashes a million events a second); tests check they agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.orm import Session

from bhp_ctms.audit.models import AuditEvent

GENESIS_HASH = "0" * 64
SYSTEM_CHAIN = "system"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
# Fields covered by the hash, in order: everything but the id and the hash itself.
HASHED_FIELDS = (
    "chain",
    "sequence",
    "occurred_at",
    "action",
    "actor_id",
    "actor_name",
    "actor_role",
    "client_addr",
    "request_id",
    "entity_type",
    "entity_id",
    "study_id",
    "site_id",
    "subject_user_id",
    "participant_id",
    "form",
    "field",
    "old_value",
    "new_value",
    "reason",
    "details",
    "previous_hash",
)
_INTEGER_FIELDS = frozenset(
    {"sequence", "actor_id", "study_id", "site_id", "subject_user_id", "participant_id"}
)
_COLUMNS = AuditEvent.__table__.c
# The columns read to verify a chain, in HASHED_FIELDS order, then the id and the hash.
_VERIFY_COLUMNS = [_COLUMNS[name] for name in HASHED_FIELDS] + [_COLUMNS.id, _COLUMNS.event_hash]
# The hashed fields an appended row gives, by append_rows's keys: all but the chain and
# the sequence (the first two) and the previous hash (the last), which it fills in.
_GIVEN_KEYS = tuple("details_json" if name == "details" else name for name in HASHED_FIELDS[2:-1])
# The columns of a sealed row, in the order append_rows prepares them.
_APPENDED_COLUMNS = (*HASHED_FIELDS, "event_hash")
_COPY_STATEMENT = f"COPY audit_events ({', '.join(_APPENDED_COLUMNS)}) FROM STDIN"


def chain_of(study_id: int | None) -> str:
    return SYSTEM_CHAIN if study_id is None else f"study:{study_id}"


def time_text(moment: datetime | str) -> str:
    if isinstance(moment, str):  # SQLite hands back text when read without the ORM type
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def encode(values: Iterable[Any]) -> bytes:
    """The canonical encoding of an event's hashed fields, given in HASHED_FIELDS order."""
    parts = []
    for value in values:
        if value is None:
            parts.append("~")
        else:
            if isinstance(value, datetime):
                value = time_text(value)
            elif not isinstance(value, str):
                value = str(value)
            parts.append(f"{len(value)}:{value}")
    return "".join(parts).encode("utf-8")


def hash_values(values: Mapping[str, Any]) -> str:
    """The hash of an event given as a mapping of field name to stored value."""
    return hashlib.sha256(
        encode(values["details_json" if name == "details" else name] for name in HASHED_FIELDS)
    ).hexdigest()


def event_hash(event: AuditEvent) -> str:
    return hash_values(_event_values(event))


def _event_values(event: AuditEvent) -> dict[str, Any]:
    values = {name: getattr(event, name) for name in HASHED_FIELDS if name != "details"}
    values["details_json"] = event.details_json
    return values


def _dialect_name(connection: Connection | Session) -> str:
    if isinstance(connection, Connection):
        return connection.dialect.name
    return connection.get_bind().dialect.name


def _lock_chain(connection: Connection | Session, chain: str) -> None:
    if _dialect_name(connection) == "postgresql":
        # Held until the transaction ends: concurrent appends to one chain queue here.
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:chain))"), {"chain": chain})


def _locked_chain_head(connection: Connection | Session, chain: str) -> tuple[int, str]:
    """The chain's head, with the chain locked for appending until the transaction ends."""
    _lock_chain(connection, chain)
    return chain_head(connection, chain)


def seal(db: Session, event: AuditEvent) -> None:
    """Give a new event its place in its chain: sequence, previous hash and own hash."""
    event.chain = chain_of(event.study_id)
    sequence, previous = _locked_chain_head(db, event.chain)
    event.sequence = sequence + 1
    event.previous_hash = previous
    event.event_hash = event_hash(event)


def append_rows(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Seal and insert events given as column values (used inside a flush).

    Each row needs every hashed field but the chain, sequence and hashes, which are
    filled in here; ``details_json`` stands for the ``details`` column. PostgreSQL
    takes the rows through one ``COPY``: a form's hundreds of events go in two to three
    times faster than as one INSERT each.
    """
    if not rows:
        return
    heads: dict[str, tuple[int, str]] = {}
    # The rows of one flush share most of their values (the time, the actor, the
    # study, the form): each distinct one is encoded once.
    encoded: dict[tuple[type, Any], str] = {}
    prepared: list[tuple[Any, ...]] = []
    for row in rows:
        chain = chain_of(row["study_id"])
        head = heads.get(chain)
        if head is None:
            head = _locked_chain_head(connection, chain)
        sequence, previous = head[0] + 1, head[1]
        values = (chain, sequence, *[row[key] for key in _GIVEN_KEYS], previous)
        parts = []
        for value in values:
            part = encoded.get((type(value), value))
            if part is None:
                part = encoded[(type(value), value)] = _encoded(value)
            parts.append(part)
        digest = hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()
        heads[chain] = (sequence, digest)
        prepared.append((*values, digest))
    if connection.dialect.name == "postgresql":
        _copy_events(connection, prepared)
    else:
        inserted = [dict(zip(_APPENDED_COLUMNS, row, strict=True)) for row in prepared]
        connection.execute(insert(AuditEvent), inserted)


def _encoded(value: Any) -> str:
    """One field's part of :func:`encode` (which has it inline: verifying a chain
    encodes millions of events)."""
    if value is None:
        return "~"
    if isinstance(value, datetime):
        value = time_text(value)
    elif not isinstance(value, str):
        value = str(value)
    return f"{len(value)}:{value}"


def _copy_events(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert sealed events on PostgreSQL, in the transaction of ``connection``."""
    driver = connection.connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(_COPY_STATEMENT) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)


@dataclass(frozen=True)
class ChainProblem:
    """The first thing wrong with one chain."""

    chain: str
    event_id: int | None
    sequence: int
    message: str

    def __str__(self) -> str:
        where = f"event {self.event_id}" if self.event_id is not None else "after the last event"
        return f"chain {self.chain}: {where} (sequence {self.sequence}): {self.message}"


def chains(db: Session, study_id: int | None = None, *, all_chains: bool = True) -> list[str]:
    if not all_chains:
        return [chain_of(study_id)]
    return list(db.scalars(select(AuditEvent.chain).distinct().order_by(AuditEvent.chain)))


_SEQUENCE_MESSAGE = "expected sequence {}: an event is missing, repeated or out of order"
_LINK_MESSAGE = "its previous hash does not match the event before it"
_CONTENT_MESSAGE = "its contents do not match its hash (edited)"


def verify_chain(db: Session, chain: str, batch_size: int = 20_000) -> ChainProblem | None:
    """Check one chain from its first event to its last; the first problem, if any."""
    if db.get_bind().dialect.name == "postgresql":
        return _verify_chain_in_postgresql(db, chain)
    return verify_chain_in_python(db, chain, batch_size)


def verify_chain_in_python(
    db: Session, chain: str, batch_size: int = 20_000
) -> ChainProblem | None:
    expected_previous = GENESIS_HASH
    expected_sequence = 1
    sha256 = hashlib.sha256
    for row in _rows_of(db, chain, batch_size):
        *values, event_id, stored_hash = row
        sequence, previous = values[1], values[-1]
        if sequence != expected_sequence:
            message = _SEQUENCE_MESSAGE.format(expected_sequence)
            return ChainProblem(chain, event_id, sequence, message)
        if previous != expected_previous:
            return ChainProblem(chain, event_id, sequence, _LINK_MESSAGE)
        if sha256(encode(values)).hexdigest() != stored_hash:
            return ChainProblem(chain, event_id, sequence, _CONTENT_MESSAGE)
        expected_previous = stored_hash
        expected_sequence += 1
    return None


def _rows_of(db: Session, chain: str, batch_size: int) -> Iterator[tuple[Any, ...]]:
    statement = (
        select(*_VERIFY_COLUMNS)
        .where(_COLUMNS.chain == chain)
        .order_by(_COLUMNS.sequence, _COLUMNS.id)
        .execution_options(yield_per=batch_size)
    )
    for row in db.execute(statement):
        yield tuple(row)


def _sql_part(name: str) -> str:
    if name == "occurred_at":
        value = "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
    elif name in _INTEGER_FIELDS:
        value = f"{name}::text"
    else:
        value = name
    return f"coalesce(length({value})::text || ':' || {value}, '~')"


_POSTGRESQL_STRUCTURE = """
SELECT id, sequence, position, previous_hash, prior_hash FROM (
    SELECT id, sequence, previous_hash,
           lag(event_hash) OVER w AS prior_hash,
           row_number() OVER w AS position
    FROM audit_events WHERE chain = :chain
    WINDOW w AS (ORDER BY sequence, id)
) AS checked
WHERE sequence <> position OR previous_hash <> coalesce(prior_hash, :genesis)
ORDER BY position
LIMIT 1
"""

# Built from constants only (the field names above), never from input. An aggregate
# rather than ORDER BY ... LIMIT 1, so that PostgreSQL may hash in parallel workers.
_POSTGRESQL_CONTENT = f"""
SELECT min(sequence) FILTER (
    WHERE encode(sha256(convert_to({" || ".join(_sql_part(name) for name in HASHED_FIELDS)},
                                   'UTF8')), 'hex') <> event_hash
) FROM audit_events WHERE chain = :chain
"""  # noqa: S608


def _verify_chain_in_postgresql(db: Session, chain: str) -> ChainProblem | None:
    """The same checks as :func:`verify_chain_in_python`, with the hashing done in the database.

    Two queries: the structure (sequence numbers and links, in order) and the contents
    (every event's hash recomputed, in parallel where the server allows). Every event
    before the first structural problem sits at the position its sequence names, so a
    content problem with a lower sequence (from 1) is the first problem of the chain; at the
    same event, the structural problem is reported, as the Python path does.
    """
    db.execute(text("SET LOCAL jit = off"))  # compiling the expression costs more than it saves
    parameters = {"chain": chain, "genesis": GENESIS_HASH}
    structure = db.execute(text(_POSTGRESQL_STRUCTURE), parameters).first()
    edited = db.execute(text(_POSTGRESQL_CONTENT), parameters).scalar()
    # A sequence below 1 sorts first, so it is itself the first structural problem.
    if edited is not None and edited >= 1 and (structure is None or edited < structure.position):
        event_id = db.scalar(
            select(func.min(_COLUMNS.id)).where(
                _COLUMNS.chain == chain, _COLUMNS.sequence == edited
            )
        )
        return ChainProblem(chain, event_id, edited, _CONTENT_MESSAGE)
    if structure is None:
        return None
    if structure.sequence != structure.position:
        message = _SEQUENCE_MESSAGE.format(structure.position)
        return ChainProblem(chain, structure.id, structure.sequence, message)
    return ChainProblem(chain, structure.id, structure.sequence, _LINK_MESSAGE)


def count_events(db: Session, chain: str) -> int:
    return int(db.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.chain == chain)) or 0)


def chain_head(db: Connection | Session, chain: str) -> tuple[int, str]:
    """The last event's sequence and hash (0 and the genesis hash for an empty chain)."""
    last = db.execute(
        select(_COLUMNS.sequence, _COLUMNS.event_hash)
        .where(_COLUMNS.chain == chain)
        .order_by(_COLUMNS.sequence.desc())
        .limit(1)
    ).first()
    return (0, GENESIS_HASH) if last is None else (last.sequence, last.event_hash)
