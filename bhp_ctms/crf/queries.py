"""Queries (discrepancy notes) on CRF items: raising, answering, closing and re-opening
them, the system queries that soft edit checks raise and close by themselves, and a
site's worklist of the queries still waiting for someone.

A query moves open -> answered (the site replies) -> closed (a monitor or data manager
accepts the reply), or back to open when the reply does not settle it; a closed query
can be re-opened. Every action adds a :class:`QueryMessage` to the thread and changes
the :class:`Query` row, both captured by the audit trail. Who may do what is the
views' business (the permissions); what may happen to a query in which state is
decided here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from bhp_ctms.audit.capture import acting_as
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.crf.definition.model import (
    FormDefinition,
)
from bhp_ctms.crf.entry import form_definition
from bhp_ctms.crf.evaluation import CheckFailure, item_at, item_label
from bhp_ctms.crf.models import (
    FormEntry,
    FormStatus,
    FormVersion,
    ItemValue,
    Query,
    QueryAction,
    QueryMessage,
    QueryOrigin,
    QueryStatus,
)
from bhp_ctms.db import utc_today, utcnow
from bhp_ctms.locks.state import refuse_if_locked
from bhp_ctms.participants.models import Participant
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.models import ProtocolVersion
from bhp_ctms.studies.services import protocol_definition

SYSTEM_AUTHOR = "System"
SYSTEM_CLOSING_TEXT = "Closed by the system: the data now pass this check"
# The statuses of a query that still waits for someone.
OUTSTANDING = frozenset({QueryStatus.OPEN, QueryStatus.ANSWERED})
MAXIMUM_TEXT_LENGTH = 2000


class QueryError(ValueError):
    """An action on a query that cannot be taken; ``field`` names the value at fault
    (None: the action as a whole)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


# -- form definitions and items ----------------------------------------------------------


def _definition_by_id(db: Session, version_id: int) -> FormDefinition:
    version = db.get(FormVersion, version_id)
    if version is None:
        raise LookupError(f"form version {version_id} does not exist")
    return form_definition(version)


def stored_value(entry: FormEntry, item_path: str) -> ItemValue | None:
    return next((value for value in entry.values if value.item_path == item_path), None)


def value_text(stored: ItemValue | None) -> str:
    """What a query records as the value when raised: the canonical text, or the
    missing-data code given instead of it."""
    if stored is None:
        return ""
    return stored.missing_code or stored.value or ""


# -- reading queries ---------------------------------------------------------------------


def queries_by_item(db: Session, entry: FormEntry) -> dict[str, list[Query]]:
    """The queries of a form entry by item path; on each item the ones not yet closed
    come first, then the closed ones, each in the order they were raised."""
    queries = db.scalars(
        select(Query)
        .where(Query.form_entry_id == entry.id)
        .options(selectinload(Query.messages))
        .order_by(Query.raised_at, Query.id)
    )
    found: dict[str, list[Query]] = {}
    for query in queries:
        found.setdefault(query.item_path, []).append(query)
    for item_queries in found.values():
        item_queries.sort(key=lambda query: query.status == QueryStatus.CLOSED)
    return found


def open_query_counts(db: Session, participants: Select[int]) -> dict[int, int]:
    """How many queries (open or answered) wait on the forms of each participant whose
    id the select ``participants`` gives (kept to the user's sites by the caller): one
    grouped query with ``participants`` as its subquery, whatever their number, rather
    than thousands of ids sent as parameters. Participants with none are left out."""
    statement = (
        select(FormEntry.participant_id, func.count(Query.id))
        .join(FormEntry, Query.form_entry_id == FormEntry.id)
        .where(FormEntry.participant_id.in_(participants), Query.status.in_(OUTSTANDING))
        .group_by(FormEntry.participant_id)
    )
    return {participant_id: count for participant_id, count in db.execute(statement)}


# -- a person's actions --------------------------------------------------------------------


def _refuse_when_locked(db: Session, entry: FormEntry) -> None:
    """A lock over the form (or its participant, site or study) freezes its queries:
    refused (:class:`~bhp_ctms.locks.state.DataLocked`) before anything changes, as the
    lock guard would refuse it at the flush."""
    if entry.status == FormStatus.LOCKED:
        raise QueryError(f"Form {entry.form_key} is locked: its queries can no longer change.")
    refuse_if_locked(db, entry.participant, entry.form_key)


def _required_text(text: str, what: str) -> str:
    text = text.strip()
    if not text:
        raise QueryError(f"Enter {what}", "text")
    if len(text) > MAXIMUM_TEXT_LENGTH:
        raise QueryError(f"The text must be {MAXIMUM_TEXT_LENGTH:,} characters or fewer", "text")
    return text


def _add_message(
    db: Session,
    query: Query,
    action: QueryAction,
    text: str,
    author_id: int | None,
    author_name: str,
) -> QueryMessage:
    message = QueryMessage(
        query=query,
        action=action,
        text=text,
        author_id=author_id,
        author_name=author_name,
        written_at=utcnow(),
    )
    db.add(message)
    return message


def raise_query(
    db: Session, actor: AuditActor, entry: FormEntry, item_path: str, text: str
) -> Query:
    """A monitor's or data manager's question about one item of a form entry. The
    item's value now is kept beside the question."""
    _refuse_when_locked(db, entry)
    text = _required_text(text, "your question")
    definition = form_definition(entry.form_version)
    try:
        found = item_at(definition, item_path)
    except KeyError:
        raise QueryError(f"Form {entry.form_key} has no item {item_path}", "item") from None
    if found.row is not None and not any(
        value.item_path.startswith(item_path.split(".")[0] + ".") for value in entry.values
    ):
        raise QueryError(f"Form {entry.form_key} has no row {found.row} of that table", "item")
    now = utcnow()
    query = Query(
        entry=entry,
        item_path=item_path,
        origin=QueryOrigin.MANUAL,
        check="",
        status=QueryStatus.OPEN,
        text=text,
        value_when_raised=value_text(stored_value(entry, item_path)),
        raised_by_id=actor.user_id,
        raised_at=now,
    )
    with acting_as(db, actor):
        db.add(query)
        _add_message(db, query, QueryAction.RAISED, text, actor.user_id, actor.name)
    return query


def answer_query(db: Session, actor: AuditActor, query: Query, text: str) -> QueryMessage:
    """The site's answer to an open query."""
    _refuse_when_locked(db, query.entry)
    if query.status != QueryStatus.OPEN:
        raise QueryError(
            f"This query is {query.status.label.lower()}: only an open query can be answered."
        )
    text = _required_text(text, "your answer")
    with acting_as(db, actor):
        query.status = QueryStatus.ANSWERED
        message = _add_message(db, query, QueryAction.ANSWERED, text, actor.user_id, actor.name)
    return message


def close_query(db: Session, actor: AuditActor, query: Query, text: str = "") -> QueryMessage:
    """Close an open or answered query: the answer (or the data) settle it. The note
    is optional."""
    _refuse_when_locked(db, query.entry)
    if query.status not in OUTSTANDING:
        raise QueryError("This query is already closed.")
    text = text.strip()
    if len(text) > MAXIMUM_TEXT_LENGTH:
        raise QueryError(f"The text must be {MAXIMUM_TEXT_LENGTH:,} characters or fewer", "text")
    with acting_as(db, actor):
        query.status = QueryStatus.CLOSED
        query.closed_at = utcnow()
        message = _add_message(db, query, QueryAction.CLOSED, text, actor.user_id, actor.name)
    return message


def reopen_query(db: Session, actor: AuditActor, query: Query, text: str) -> QueryMessage:
    """Send an answered or closed query back to the site, saying why."""
    _refuse_when_locked(db, query.entry)
    if query.status == QueryStatus.OPEN:
        raise QueryError("This query is already open.")
    text = _required_text(text, "why the query is re-opened")
    with acting_as(db, actor):
        query.status = QueryStatus.OPEN
        query.closed_at = None
        message = _add_message(db, query, QueryAction.REOPENED, text, actor.user_id, actor.name)
    return message


def comment_on_query(db: Session, actor: AuditActor, query: Query, text: str) -> QueryMessage:
    """A note in a query's thread that leaves its status as it is (the site is still
    looking for the source document, say)."""
    _refuse_when_locked(db, query.entry)
    if query.status == QueryStatus.CLOSED:
        raise QueryError("This query is closed: re-open it to continue the thread.")
    text = _required_text(text, "your note")
    with acting_as(db, actor):
        message = _add_message(db, query, QueryAction.COMMENTED, text, actor.user_id, actor.name)
    return message


# -- system queries ------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    raised: int
    closed: int


def _closed_by_a_person(query: Query) -> bool:
    closings = [message for message in query.messages if message.action == QueryAction.CLOSED]
    return (
        query.status == QueryStatus.CLOSED and bool(closings) and closings[-1].author_id is not None
    )


def system_queries_of(db: Session, entry_ids: Sequence[int]) -> dict[int, list[Query]]:
    """The system queries of some form entries, with their threads, by entry id, each
    entry's in the order they were raised."""
    found: dict[int, list[Query]] = {entry_id: [] for entry_id in entry_ids}
    if not entry_ids:
        return found
    queries = db.scalars(
        select(Query)
        .where(Query.form_entry_id.in_(entry_ids), Query.origin == QueryOrigin.SYSTEM)
        .options(selectinload(Query.messages))
        .order_by(Query.id)
    )
    for query in queries:
        found[query.form_entry_id].append(query)
    return found


def synchronise_system_queries(
    db: Session,
    entry: FormEntry,
    failures: Sequence[CheckFailure],
    existing: Sequence[Query],
) -> SyncResult:
    """:func:`sync_system_queries` given the entry's system queries (``existing``, in
    the order raised); says how many it raised and closed."""
    by_check: dict[tuple[str, str], list[Query]] = {}
    for query in existing:
        by_check.setdefault((query.item_path, query.check), []).append(query)
    failing: dict[tuple[str, str], CheckFailure] = {}
    for failure in failures:
        failing.setdefault((failure.item_path, failure.check), failure)

    raised = closed = 0
    now = utcnow()
    for key, failure in failing.items():
        queries = by_check.get(key, [])
        if any(query.status in OUTSTANDING for query in queries):
            continue
        latest = queries[-1] if queries else None
        # A person closed the last one, accepting this very value: asking again about
        # the same value would undo their decision at every save.
        if (
            latest is not None
            and _closed_by_a_person(latest)
            and latest.value_when_raised == failure.value
        ):
            continue
        query = Query(
            entry=entry,
            item_path=failure.item_path,
            origin=QueryOrigin.SYSTEM,
            check=failure.check,
            status=QueryStatus.OPEN,
            text=failure.message,
            value_when_raised=failure.value,
            raised_by_id=None,
            raised_at=now,
        )
        db.add(query)
        _add_message(db, query, QueryAction.RAISED, failure.message, None, SYSTEM_AUTHOR)
        raised += 1

    for key, queries in by_check.items():
        if key in failing:
            continue
        for query in queries:
            if query.status in OUTSTANDING:
                query.status = QueryStatus.CLOSED
                query.closed_at = now
                _add_message(
                    db, query, QueryAction.CLOSED, SYSTEM_CLOSING_TEXT, None, SYSTEM_AUTHOR
                )
                closed += 1
    return SyncResult(raised, closed)


def sync_system_queries(db: Session, entry: FormEntry, failures: Sequence[CheckFailure]) -> None:
    """Bring a form entry's system queries in line with its soft failures now.

    ``failures`` is the complete list of the entry's current soft failures. Each
    (item, check) failing gets exactly one open system query, however often this is
    called: none is raised while one is open or answered, nor when a person closed the
    last one for the same value (they accepted it). Each open or answered system query
    whose (item, check) no longer fails is closed by the system. Manual queries are
    never touched. The changes are attributed to the session's actor.
    """
    if entry.id is None:
        db.flush()
    existing = system_queries_of(db, [entry.id])[entry.id]
    synchronise_system_queries(db, entry, failures, existing)
    db.flush()


# -- a site's worklist -----------------------------------------------------------------------


@dataclass(frozen=True)
class AgeBand:
    """How long queries have waited: ``lowest`` to ``highest`` days (None: no upper
    limit)."""

    code: str
    label: str
    lowest: int
    highest: int | None

    def holds(self, days: int) -> bool:
        return days >= self.lowest and (self.highest is None or days <= self.highest)


AGE_BANDS = (
    AgeBand("0-7", "0 to 7 days", 0, 7),
    AgeBand("8-14", "8 to 14 days", 8, 14),
    AgeBand("15-30", "15 to 30 days", 15, 30),
    AgeBand("over-30", "Over 30 days", 31, None),
)


def age_band(days: int) -> AgeBand:
    return next(band for band in AGE_BANDS if band.holds(days))


def days_open(query_raised_at: datetime, closed_at: datetime | None, today: date) -> int:
    """Whole days (UTC) from raising a query to closing it, or to today."""
    end = closed_at.date() if closed_at is not None else today
    return max((end - query_raised_at.date()).days, 0)


@dataclass(frozen=True)
class QueryRow:
    """One query in a site's worklist."""

    query_id: int
    participant_code: str
    event_code: str
    event_instance: int
    event_name: str
    form_code: str
    form_title: str
    item_path: str
    item_label: str
    text: str
    origin: QueryOrigin
    status: QueryStatus
    raised_at: datetime
    days_open: int
    age_band: AgeBand


@dataclass(frozen=True)
class QueryWorklist:
    rows: list[QueryRow]
    # How many rows fall in each age band, in AGE_BANDS order.
    by_age: list[tuple[AgeBand, int]]


def _event_name(db: Session, versions: dict[int, Any], version_id: int, event_code: str) -> str:
    if version_id not in versions:
        version = db.get(ProtocolVersion, version_id)
        versions[version_id] = protocol_definition(version) if version is not None else None
    definition = versions[version_id]
    if definition is None:
        return event_code
    try:
        return str(definition.event(event_code).name)
    except KeyError:
        return event_code


def site_query_worklist(
    db: Session,
    scope: SiteScope,
    site: Site,
    *,
    statuses: Iterable[QueryStatus] = OUTSTANDING,
    origin: QueryOrigin | None = None,
    today: date | None = None,
) -> QueryWorklist:
    """The queries on the forms of a site's participants, oldest first, with how long
    each has been open; only within ``scope`` (a site outside it gives no rows)."""
    today = today or utc_today()
    statement = (
        select(
            Query,
            FormEntry.event_code,
            FormEntry.event_instance,
            FormEntry.form_code,
            FormVersion.id,
            FormVersion.title,
            Participant.code,
            Participant.protocol_version_id,
        )
        .join(FormEntry, Query.form_entry_id == FormEntry.id)
        .join(FormVersion, FormEntry.form_version_id == FormVersion.id)
        .join(Participant, FormEntry.participant_id == Participant.id)
        .where(
            Participant.study_id == scope.study_id,
            Participant.site_id == site.id,
            Query.status.in_(list(statuses)),
        )
        .order_by(Query.raised_at, Query.id)
    )
    if origin is not None:
        statement = statement.where(Query.origin == origin)
    protocol_versions: dict[int, Any] = {}
    rows = []
    for (
        query,
        event_code,
        event_instance,
        form_code,
        version_id,
        title,
        participant_code,
        protocol_version_id,
    ) in db.execute(scope.apply(statement, Participant.site_id)):
        days = days_open(query.raised_at, query.closed_at, today)
        rows.append(
            QueryRow(
                query_id=query.id,
                participant_code=participant_code,
                event_code=event_code,
                event_instance=event_instance,
                event_name=_event_name(db, protocol_versions, protocol_version_id, event_code),
                form_code=form_code,
                form_title=title,
                item_path=query.item_path,
                item_label=item_label(_definition_by_id(db, version_id), query.item_path),
                text=query.text,
                origin=query.origin,
                status=query.status,
                raised_at=query.raised_at,
                days_open=days,
                age_band=age_band(days),
            )
        )
    counted = Counter(row.age_band.code for row in rows)
    return QueryWorklist(rows, [(band, counted[band.code]) for band in AGE_BANDS])
