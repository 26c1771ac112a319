"""Reading the audit trail: filtered, site-scoped and keyset-paginated.

The audit trail page, a record's history, the CSV export (and a JSON API later)
all read events through these functions, so they filter and scope alike. Pages are
cut by event id (keyset pagination: ``id < before`` newest first, or ``id > after``
oldest first), never by OFFSET, so a page costs the same at the millionth event as
at the first, and events written meanwhile neither repeat nor skip a row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select
from sqlalchemy.orm import Session

from bhp_ctms.audit.models import AuditEvent

if TYPE_CHECKING:
    from bhp_ctms.sites.services import SiteScope

PAGE_SIZE = 50
EXPORT_BATCH_SIZE = 1000
# The widest id the databases' integer columns hold; larger cursors are refused.
MAX_ID = 2**31 - 1
# Text filters are compared with columns of at most this many characters.
MAX_TEXT_LENGTH = 200


@dataclass(frozen=True)
class AuditFilters:
    """What to narrow the trail to; empty values do not narrow it.

    ``actor`` is a user id (all digits) or part of the actor's name, in any case.
    Dates are whole UTC days, both ends included.
    """

    site_id: int | None = None
    participant_id: int | None = None
    form: str = ""
    field: str = ""
    actor: str = ""
    action: str = ""
    entity_type: str = ""
    entity_id: str = ""
    date_from: date | None = None
    date_to: date | None = None

    def as_params(self) -> dict[str, str]:
        """The filters as query parameters (only those set), for links and the record."""
        params = {}
        for name in FILTER_NAMES:
            value = getattr(self, name)
            if value is not None and value != "":
                params[name] = value.isoformat() if isinstance(value, date) else str(value)
        return params

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.site_id is not None:
            found.append(AuditEvent.site_id == self.site_id)
        if self.participant_id is not None:
            found.append(AuditEvent.participant_id == self.participant_id)
        for name in ("form", "field", "action", "entity_type", "entity_id"):
            value = getattr(self, name)
            if value:
                found.append(getattr(AuditEvent, name) == value)
        if self.actor.isdigit():
            found.append(AuditEvent.actor_id == int(self.actor))
        elif self.actor:
            found.append(AuditEvent.actor_name.icontains(self.actor, autoescape=True))
        if self.date_from is not None:
            found.append(AuditEvent.occurred_at >= start_of_day(self.date_from))
        if self.date_to is not None:
            found.append(AuditEvent.occurred_at < start_of_day(self.date_to + timedelta(days=1)))
        return found


FILTER_NAMES = tuple(f.name for f in fields(AuditFilters))
_INTEGER_FILTERS = frozenset({"site_id", "participant_id"})
_DATE_FILTERS = frozenset({"date_from", "date_to"})


def start_of_day(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def parse_filters(
    params: Mapping[str, Any], names: tuple[str, ...] = FILTER_NAMES
) -> tuple[AuditFilters, dict[str, str]]:
    """Filters from query parameters, and an error message for each unusable one.

    Only ``names`` are read (the system trail has no sites, participants or forms).
    """
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in names:
        raw = params.get(name, "")
        text = raw.strip() if isinstance(raw, str) else ""
        if not text:
            continue
        if name in _INTEGER_FILTERS:
            if not text.isdigit() or int(text) > MAX_ID:
                errors[name] = "Enter a number, like 12"
                continue
            values[name] = int(text)
        elif name in _DATE_FILTERS:
            try:
                values[name] = date.fromisoformat(text)
            except ValueError:
                errors[name] = "Enter a real date, like 2025-03-12"
        elif len(text) > MAX_TEXT_LENGTH:
            errors[name] = f"Enter {MAX_TEXT_LENGTH} characters or fewer"
        else:
            values[name] = text
    start, end = values.get("date_from"), values.get("date_to")
    if start is not None and end is not None and end < start:
        errors["date_to"] = "The end date must be the same as or after the start date"
        del values["date_to"]
    return AuditFilters(**values), errors


def parse_cursor(value: Any) -> int | None:
    """An event id given as a page cursor, or None when there is none or it is not one."""
    if isinstance(value, str) and value.isdigit() and int(value) <= MAX_ID:
        return int(value)
    return None


@dataclass(frozen=True)
class TrailScope:
    """Which events a reader may see: one study's, within their sites, or the system's.

    Site staff see only events filed under their sites; a study's events with no
    site (the study's own settings, study-wide roles) are hidden from them.
    """

    study_id: int | None
    sites: SiteScope | None = None

    @classmethod
    def of_study(cls, sites: SiteScope) -> TrailScope:
        return cls(study_id=sites.study_id, sites=sites)

    @classmethod
    def system(cls) -> TrailScope:
        """Events of no study: accounts, log-ins, all-studies roles."""
        return cls(study_id=None)

    def __post_init__(self) -> None:
        if self.study_id is not None and self.sites is None:
            raise ValueError("a study's events are read through a site scope")

    def statement(self) -> Select[AuditEvent]:
        if self.study_id is None:
            return select(AuditEvent).where(AuditEvent.study_id.is_(None))
        assert self.sites is not None
        statement = select(AuditEvent).where(AuditEvent.study_id == self.study_id)
        return self.sites.apply(statement, AuditEvent.site_id)


def _filtered(scope: TrailScope, filters: AuditFilters) -> Select[AuditEvent]:
    return scope.statement().where(*filters.conditions())


def events_before(
    db: Session,
    scope: TrailScope,
    filters: AuditFilters,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> tuple[list[AuditEvent], int | None]:
    """Up to ``limit`` events with id below ``before`` (any id when None), newest first,
    and the cursor to pass as ``before`` for the next (older) ones: None when there are none.
    """
    statement = _filtered(scope, filters).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if before is not None:
        statement = statement.where(AuditEvent.id < before)
    events = list(db.scalars(statement))
    if len(events) > limit:
        return events[:limit], events[limit - 1].id
    return events, None


def events_after(
    db: Session,
    scope: TrailScope,
    filters: AuditFilters,
    after: int | None = None,
    limit: int = PAGE_SIZE,
    *,
    extra: ColumnElement[bool] | None = None,
) -> tuple[list[AuditEvent], int | None]:
    """Up to ``limit`` events with id above ``after``, oldest first, and the cursor to
    pass as ``after`` for the next (newer) ones: None when there are none."""
    statement = _filtered(scope, filters).order_by(AuditEvent.id).limit(limit + 1)
    if after is not None:
        statement = statement.where(AuditEvent.id > after)
    if extra is not None:
        statement = statement.where(extra)
    events = list(db.scalars(statement))
    if len(events) > limit:
        return events[:limit], events[limit - 1].id
    return events, None


@dataclass(frozen=True)
class EventPage:
    """One page of the trail, newest first, with the cursors of its neighbours.

    ``older`` is passed as ``before`` and ``newer`` as ``after``; None means there
    is nothing that way.
    """

    events: list[AuditEvent]
    older: int | None
    newer: int | None


def page_of_events(
    db: Session,
    scope: TrailScope,
    filters: AuditFilters,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = PAGE_SIZE,
) -> EventPage:
    """The page of events just older than ``before``, or just newer than ``after``
    (the newest page when neither is given), newest first."""
    if after is not None and before is None:
        ascending, more_newer = events_after(db, scope, filters, after, limit)
        events = ascending[::-1]
        newer = events[0].id if events and more_newer is not None else None
        older = (
            events[-1].id
            if events and _any(db, scope, filters, AuditEvent.id < events[-1].id)
            else None
        )
        return EventPage(events, older=older, newer=newer)
    events, older = events_before(db, scope, filters, before, limit)
    newer = (
        events[0].id if events and _any(db, scope, filters, AuditEvent.id > events[0].id) else None
    )
    return EventPage(events, older=older, newer=newer)


def _any(
    db: Session, scope: TrailScope, filters: AuditFilters, condition: ColumnElement[bool]
) -> bool:
    statement = _filtered(scope, filters).where(condition).with_only_columns(AuditEvent.id)
    return bool(db.scalar(select(exists(statement))))


def iter_events(
    db: Session,
    scope: TrailScope,
    filters: AuditFilters,
    *,
    before: int | None = None,
    batch_size: int = EXPORT_BATCH_SIZE,
) -> Iterator[list[AuditEvent]]:
    """Every matching event below ``before``, newest first, in batches read one at a
    time: the session keeps no strong reference to rows it has handed out, so memory
    stays flat however long the trail."""
    while True:
        events, before = events_before(db, scope, filters, before, batch_size)
        if events:
            yield events
        if before is None:
            return


def history_of(
    db: Session,
    scope: TrailScope,
    entity_type: str,
    entity_id: str,
    field: str = "",
    *,
    after: int | None = None,
    limit: int = PAGE_SIZE,
) -> tuple[list[AuditEvent], int | None]:
    """One record's events (or one value's: ``field``), oldest first, and the cursor to
    pass as ``after`` for later ones. A value's history ends with the record's
    deletion, whose snapshot holds the value as it was."""
    filters = AuditFilters(entity_type=entity_type, entity_id=entity_id)
    extra = None
    if field:
        extra = or_(
            AuditEvent.field == field,
            and_(AuditEvent.field == "", AuditEvent.action == f"{entity_type}.deleted"),
        )
    return events_after(db, scope, filters, after, limit, extra=extra)
