"""Reading the audit trail: a study's trail, one record's history, the CSV export,
and the system trail (events of no study) for all-studies roles.

Every page reads through :mod:`bhp_ctms.audit.queries` (site-scoped, keyset
pages) and shows values through :mod:`bhp_ctms.audit.masking`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.response import Response
from pyramid.view import view_config, view_defaults
from sqlalchemy.orm import Session

from bhp_ctms.audit.links import audit_history_url
from bhp_ctms.audit.masking import blinded_fields, displayed_values, is_blinded
from bhp_ctms.audit.models import AuditEvent, canonical_json
from bhp_ctms.audit.queries import (
    FILTER_NAMES,
    AuditFilters,
    TrailScope,
    history_of,
    iter_events,
    page_of_events,
    parse_cursor,
    parse_filters,
)
from bhp_ctms.audit.services import record_event
from bhp_ctms.permissions import Permissions, Role
from bhp_ctms.sites.services import SiteScope, visible_sites
from bhp_ctms.studies.resources import StudyResource
from bhp_ctms.studies.services import study_access

# The system trail has no sites, participants or forms to filter by.
SYSTEM_FILTER_NAMES = tuple(
    name for name in FILTER_NAMES if name not in {"site_id", "participant_id", "form"}
)
CSV_COLUMNS = (
    "event id",
    "occurred at (UTC)",
    "actor id",
    "actor name",
    "actor role",
    "client address",
    "request id",
    "action",
    "entity type",
    "entity id",
    "site id",
    "participant id",
    "form",
    "field",
    "old value",
    "new value",
    "reason",
    "chain",
    "sequence",
    "event hash",
)
# A spreadsheet runs a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A byte order mark, so that spreadsheet programs read the file as UTF-8.
UTF8_BOM = "\ufeff"


def utc_time_text(moment: datetime) -> str:
    """A time as people read it, unambiguously: ``12 Mar 2025 14:03:07 UTC``."""
    moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%b %Y %H:%M:%S} UTC"


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def value_text(value: Any) -> str:
    """A value recorded as JSON, as people read it."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, str):
        return value if value else "(empty)"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {value_text(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(value_text(item) for item in value)
    return str(value)


def role_text(actor_role: str) -> str:
    """The roles recorded with an event (``ctu_admin, monitor``), as their labels."""
    labels = []
    for name in filter(None, (part.strip() for part in actor_role.split(","))):
        try:
            labels.append(Role(name).label)
        except ValueError:
            labels.append(name)
    return ", ".join(labels)


def spreadsheet_safe(cell: Any) -> str:
    """A cell's text, with a quote in front of anything a spreadsheet would run as a
    formula (CSV injection)."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@dataclass(frozen=True)
class EventRow:
    """One event as a page shows it."""

    event: AuditEvent
    time: str
    time_iso: str
    role: str
    # Display text of the old and new values; ``old`` is None when there is no
    # "from" to show (a creation, or an event that is not a change of values).
    old: str | None
    new: str | None
    history_url: str | None


class EventRows:
    """Turns events into rows for one reader: masked if they are blinded."""

    def __init__(self, request: Any, study_id: int | None, study_code: str | None) -> None:
        self.request = request
        self.study_code = study_code
        self.blinded = is_blinded(request.memberships, study_id)
        self.fields = blinded_fields()

    @property
    def masking(self) -> bool:
        """Whether any value this reader could see would be masked."""
        return self.blinded and bool(self.fields)

    def rows(self, events: list[AuditEvent], field: str = "") -> list[EventRow]:
        return [self.row(event, field) for event in events]

    def row(self, event: AuditEvent, field: str = "") -> EventRow:
        old, new = displayed_values(event, self.blinded, self.fields)
        if field and not event.field and isinstance(old, dict):
            # A deletion in one value's history: that value, from the snapshot.
            old = old.get(field)
        is_change = event.old_value is not None or event.new_value is not None
        created = event.old_value is None and event.action.endswith(".created")
        return EventRow(
            event=event,
            time=utc_time_text(event.occurred_at),
            time_iso=iso_utc(event.occurred_at),
            role=role_text(event.actor_role),
            old=value_text(old) if is_change and not created else None,
            new=value_text(new) if is_change else None,
            history_url=self._history_url(event),
        )

    def _history_url(self, event: AuditEvent) -> str | None:
        if self.study_code is None or not (event.entity_type and event.entity_id):
            return None
        return audit_history_url(
            self.request, self.study_code, event.entity_type, event.entity_id, event.field
        )


def _page_of_trail(
    request: Any, scope: TrailScope, names: tuple[str, ...], rows: EventRows, route: str, **kw: Any
) -> dict[str, Any]:
    """One page of a trail with its filters form, its rows and its page links."""
    filters, errors = parse_filters(request.GET, names)
    found: dict[str, Any] = {
        "filters": filters,
        "values": {name: request.GET.get(name, "") for name in names},
        "errors": errors,
        "filter_names": names,
        "rows": None,
        "masking": rows.masking,
        "action_url": request.route_path(route, **kw),
    }
    if errors:
        return found
    page = page_of_events(
        request.db,
        scope,
        filters,
        before=parse_cursor(request.GET.get("before")),
        after=parse_cursor(request.GET.get("after")),
    )
    found["rows"] = rows.rows(page.events)
    params = filters.as_params()

    def link(**cursor: Any) -> str:
        return str(request.route_path(route, _query={**params, **cursor}, **kw))

    cursor_given = "before" in request.GET or "after" in request.GET
    found["newer_url"] = link(after=page.newer) if page.newer is not None else None
    found["older_url"] = link(before=page.older) if page.older is not None else None
    found["newest_url"] = link() if cursor_given else None
    return found


@view_defaults(request_method="GET")
class StudyAuditTrailViews:
    """A study's audit trail, one record's history and the trail's CSV export.

    Site staff see only their own sites' events; blinded readers see allocation
    values masked.
    """

    def __init__(self, context: StudyResource, request: Any) -> None:
        self.request = request
        self.study = context.study
        self.sites = SiteScope.for_memberships(self.study.id, request.memberships)
        self.scope = TrailScope.of_study(self.sites)

    def _page(self) -> dict[str, Any]:
        access = study_access(self.request, self.study.id)
        sites = visible_sites(self.request.db, self.sites)
        return {
            "study": self.study,
            "current_roles": access.role_labels if access else "",
            "all_sites": self.sites.all_sites,
            "sites": sites,
            "site_codes": {site.id: site.code for site in sites},
        }

    @view_config(
        route_name="audit_trail", renderer="audit/trail.html", permission=Permissions.AUDIT_VIEW
    )
    def trail(self) -> dict[str, Any]:
        rows = EventRows(self.request, self.study.id, self.study.code)
        found = _page_of_trail(
            self.request, self.scope, FILTER_NAMES, rows, "audit_trail", code=self.study.code
        )
        export_url = None
        if self.request.has_permission(Permissions.AUDIT_EXPORT, self.request.context):
            export_url = self.request.route_path(
                "audit_export", code=self.study.code, _query=found["filters"].as_params()
            )
        return {**self._page(), **found, "export_url": export_url}

    @view_config(
        route_name="audit_history",
        renderer="audit/history.html",
        permission=Permissions.AUDIT_VIEW,
    )
    def history(self) -> dict[str, Any]:
        entity_type = self.request.GET.get("entity_type", "").strip()
        entity_id = self.request.GET.get("entity_id", "").strip()
        field = self.request.GET.get("field", "").strip()
        page = {
            **self._page(),
            "entity_type": entity_type,
            "entity_id": entity_id,
            "field": field,
            "trail_url": self.request.route_path("audit_trail", code=self.study.code),
        }
        if not entity_type or not entity_id:
            self.request.response.status_int = 400
            return {**page, "rows": None, "later_url": None, "first_url": None}
        after = parse_cursor(self.request.GET.get("after"))
        events, later = history_of(
            self.request.db, self.scope, entity_type, entity_id, field, after=after
        )
        rows = EventRows(self.request, self.study.id, self.study.code)
        query = {"entity_type": entity_type, "entity_id": entity_id}
        if field:
            query["field"] = field

        def link(**cursor: Any) -> str:
            return str(
                self.request.route_path(
                    "audit_history", code=self.study.code, _query={**query, **cursor}
                )
            )

        return {
            **page,
            "rows": rows.rows(events, field),
            "later_url": link(after=later) if later is not None else None,
            "first_url": link() if after is not None else None,
            "masking": rows.masking,
        }

    @view_config(route_name="audit_export", permission=Permissions.AUDIT_EXPORT)
    def export(self) -> Response:
        """The filtered trail as CSV, newest first, streamed in batches.

        The export is itself recorded in the trail; it holds the events before that
        record, read after this request's transaction has committed.
        """
        filters, errors = parse_filters(self.request.GET)
        if errors:
            return HTTPSeeOther(
                self.request.route_path(
                    "audit_trail", code=self.study.code, _query=self.request.GET
                )
            )
        exported = record_event(
            self.request.db,
            self.request.audit_actor,
            "audit.exported",
            study_id=self.study.id,
            details={"filters": filters.as_params(), "format": "csv"},
        )
        make_session = self.request.registry["sqlalchemy.sessionmaker"]
        response = Response(
            content_type="text/csv",
            charset="utf-8",
            app_iter=csv_chunks(
                make_session,
                self.scope,
                filters,
                before=exported.id,
                blinded=is_blinded(self.request.memberships, self.study.id),
            ),
        )
        response.content_disposition = (
            f'attachment; filename="{export_file_name(self.study.code, exported.occurred_at)}"'
        )
        return response


def export_file_name(study_code: str, moment: datetime) -> str:
    code = re.sub(r"[^A-Za-z0-9_-]+", "-", study_code) or "study"
    return f"audit-trail-{code}-{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}.csv"


def csv_chunks(
    make_session: Callable[[], Session],
    scope: TrailScope,
    filters: AuditFilters,
    *,
    before: int,
    blinded: bool,
) -> Iterator[bytes]:
    """The export's bytes: the header, then one chunk per batch of events.

    It runs after the request has ended, so it reads through a session of its own,
    closed when the last chunk is sent or the client goes away.
    """
    yield (UTF8_BOM + _csv_text([CSV_COLUMNS])).encode("utf-8")
    fields = blinded_fields()
    with make_session() as db:
        for batch in iter_events(db, scope, filters, before=before):
            lines = [_csv_cells(event, blinded, fields) for event in batch]
            yield _csv_text(lines).encode("utf-8")


def csv_value(value: Any) -> str:
    """A recorded value in a CSV cell: text as itself, nothing as an empty cell, and
    anything else (numbers, true/false, a deletion's snapshot) as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else canonical_json(value)


def _csv_cells(event: AuditEvent, blinded: bool, fields: frozenset[tuple[str, str]]) -> list[Any]:
    old, new = displayed_values(event, blinded, fields)
    return [
        event.id,
        iso_utc(event.occurred_at),
        event.actor_id,
        event.actor_name,
        event.actor_role,
        event.client_addr,
        event.request_id,
        event.action,
        event.entity_type,
        event.entity_id,
        event.site_id,
        event.participant_id,
        event.form,
        event.field,
        csv_value(old),
        csv_value(new),
        event.reason,
        event.chain,
        event.sequence,
        event.event_hash,
    ]


def _csv_text(lines: list[Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for line in lines:
        writer.writerow([spreadsheet_safe(cell) for cell in line])
    return buffer.getvalue()


@view_defaults(route_name="audit_system", renderer="audit/trail.html")
class SystemAuditTrailViews:
    """Events of no study (accounts, log-ins, all-studies roles), for all-studies roles."""

    def __init__(self, request: Any) -> None:
        self.request = request

    @view_config(request_method="GET", permission=Permissions.AUDIT_VIEW)
    def trail(self) -> dict[str, Any]:
        rows = EventRows(self.request, None, None)
        found = _page_of_trail(
            self.request, TrailScope.system(), SYSTEM_FILTER_NAMES, rows, "audit_system"
        )
        return {
            **found,
            "study": None,
            "current_roles": "",
            "sites": [],
            "site_codes": {},
            "export_url": None,
        }
