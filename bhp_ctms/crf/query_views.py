"""The query pages: raising a query on an item, a query with its thread and the actions
the user may take on it, a site's query worklist, and the study's data-quality runs.

Thin: each view reads a form, calls :mod:`bhp_ctms.crf.queries` (or asks for a run),
and renders or redirects. The context factories have already made a form entry, a
query or a site outside the user's scope a 404.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound, HTTPSeeOther
from pyramid.view import view_config, view_defaults
from sqlalchemy import func, select

from bhp_ctms.audit.links import audit_history_url
from bhp_ctms.crf.entry import form_definition
from bhp_ctms.crf.evaluation import ItemAt, item_at
from bhp_ctms.crf.models import (
    FormEntry,
    Query,
    QueryAction,
    QueryOrigin,
    QueryStatus,
)
from bhp_ctms.crf.queries import (
    OUTSTANDING,
    QueryError,
    answer_query,
    close_query,
    comment_on_query,
    queries_by_item,
    raise_query,
    reopen_query,
    site_query_worklist,
    stored_value,
)
from bhp_ctms.crf.query_forms import ACTION_FORMS, RaiseQueryForm, WorklistFilterForm
from bhp_ctms.crf.tasks import (
    DataQualityRun,
    RunTrigger,
    enqueue_data_quality_run,
    recent_runs,
)
from bhp_ctms.db import utc_today, utcnow
from bhp_ctms.forms import Form, attach_error
from bhp_ctms.locks.state import lock_covering, locked_data
from bhp_ctms.participants.models import Participant
from bhp_ctms.permissions import Permissions
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.services import study_access

ACTION_LABELS = {
    QueryAction.RAISED: "Raised",
    QueryAction.ANSWERED: "Answered",
    QueryAction.CLOSED: "Closed",
    QueryAction.REOPENED: "Re-opened",
    QueryAction.COMMENTED: "Note",
}
# What each action on a query page says once done.
DONE = {
    "answer": "Your answer has been sent.",
    "comment": "Your note has been added.",
    "close": "The query has been closed.",
    "reopen": "The query has been re-opened.",
}
# How a soft range's system query names its check: ``soft_range:<item>``.
SOFT_RANGE = "soft_range:"
# Seconds between reloads of the data-quality page while a run is queued or running.
REFRESH_SECONDS = 5
# A run still unfinished after this long is taken to be lost; a new one may start.
RUN_GIVEN_UP_AFTER = timedelta(hours=1)


def form_page_url(request: Any, study_code: str, participant_code: str, entry: Any) -> str:
    """The data entry page of a form entry (or a worklist row naming one)."""
    return str(
        request.route_path(
            "crf_form",
            code=study_code,
            participant=participant_code,
            event=entry.event_code,
            instance=entry.event_instance,
            form=entry.form_code,
        )
    )


class _EntryPage:
    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        self.study = context.study
        self.site = context.site
        self.participant: Participant = context.participant
        self.entry: FormEntry = context.entry
        # A lock over the form: its page says so, and any post is refused before anything.
        self.lock = lock_covering(request.db, self.participant, self.entry.form_key)
        if self.lock is not None and request.method == "POST":
            raise locked_data(self.lock, self.participant.code)

    def page(self, **values: Any) -> dict[str, Any]:
        return {
            "lock": self.lock,
            "study": self.study,
            "site": self.site,
            "participant": self.participant,
            "entry": self.entry,
            "form_title": self.entry.form_version.title,
            "form_url": form_page_url(
                self.request, self.study.code, self.participant.code, self.entry
            ),
            "access": study_access(self.request, self.study.id),
            **values,
        }

    def item(self, item_path: str) -> ItemAt | None:
        try:
            return item_at(form_definition(self.entry.form_version), item_path)
        except KeyError:
            return None

    def current_value(self, found: ItemAt | None, item_path: str) -> str:
        stored = stored_value(self.entry, item_path)
        if stored is None:
            return ""
        if found is None:
            return stored.missing_code or stored.value or ""
        return found.show(stored.value, stored.missing_code)


@view_defaults(
    route_name="crf_query_new",
    renderer="crf/query_new.html",
    permission=Permissions.QUERIES_RAISE,
)
class RaiseQueryViews(_EntryPage):
    """A monitor's or data manager's question about one item (``?item=<item path>``)."""

    def __init__(self, context: Any, request: Any) -> None:
        super().__init__(context, request)
        self.item_path = str(request.params.get("item", "")).strip()
        found = self.item(self.item_path)
        if found is None:
            raise HTTPNotFound()
        self.found = found

    def page(self, **values: Any) -> dict[str, Any]:
        return super().page(
            item_path=self.item_path,
            item_label=self.found.label,
            current_value=self.current_value(self.found, self.item_path),
            earlier=queries_by_item(self.request.db, self.entry).get(self.item_path, []),
            locked=self.lock is not None,
            **values,
        )

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(form=RaiseQueryForm())

    @view_config(request_method="POST")
    def raise_query(self) -> Any:
        form = RaiseQueryForm(self.request.POST)
        if form.validate():
            try:
                raise_query(
                    self.request.db,
                    self.request.audit_actor,
                    self.entry,
                    self.item_path,
                    form.text.data or "",
                )
            except QueryError as error:
                attach_error(form, error.message, error.field)
            else:
                self.request.session.flash(
                    f"Your query on {self.found.label} has been raised.", "success"
                )
                return HTTPSeeOther(
                    form_page_url(self.request, self.study.code, self.participant.code, self.entry)
                )
        self.request.response.status_int = 400
        return self.page(form=form)


@view_defaults(route_name="crf_query", renderer="crf/query.html")
class QueryViews(_EntryPage):
    """One query: the item it is about, its thread, and the actions the user may take."""

    def __init__(self, context: Any, request: Any) -> None:
        super().__init__(context, request)
        self.query: Query = context.query

    def actions(self) -> list[str]:
        """The actions the user may take on the query now, in page order."""
        if self.lock is not None:
            return []
        allowed = self.request.has_permission
        status = self.query.status
        found = []
        if allowed(Permissions.QUERIES_ANSWER):
            if status == QueryStatus.OPEN:
                found.append("answer")
            if status in OUTSTANDING:
                found.append("comment")
        if allowed(Permissions.QUERIES_CLOSE):
            if status in OUTSTANDING:
                found.append("close")
            if status != QueryStatus.OPEN:
                found.append("reopen")
        return found

    def show_page(self, posted: tuple[str, Form] | None = None) -> dict[str, Any]:
        found = self.item(self.query.item_path)
        forms = {
            action: ACTION_FORMS[action](prefix=action)
            for action in self.actions()
            if posted is None or action != posted[0]
        }
        if posted is not None:
            forms[posted[0]] = posted[1]
        ordered = [(action, forms[action]) for action in ACTION_FORMS if action in forms]
        error_form = posted[1] if posted is not None else None
        return self.page(
            query=self.query,
            item_label=found.label if found is not None else self.query.item_path,
            current_value=self.current_value(found, self.query.item_path),
            value_when_raised=(
                found.show(self.query.value_when_raised)
                if found is not None
                else self.query.value_when_raised
            ),
            check_label=self.check_label(),
            messages=self.query.messages,
            action_labels=ACTION_LABELS,
            forms=ordered,
            error_form=error_form,
            locked=self.lock is not None,
            history_url=(
                audit_history_url(self.request, self.study.code, "query", self.query.id)
                if self.request.has_permission(Permissions.AUDIT_VIEW)
                else ""
            ),
            worklist_url=self.request.route_path(
                "crf_site_queries", code=self.study.code, site=self.site.code
            ),
        )

    def check_label(self) -> str:
        """What raised a system query, as a person reads it."""
        check = self.query.check
        if check.startswith(SOFT_RANGE):
            found = self.item(self.query.item_path)
            label = found.label if found is not None else check.removeprefix(SOFT_RANGE)
            return f"The usual range of {label} (an edit check)"
        return f"The edit check {check}"

    @view_config(request_method="GET", permission=Permissions.CRF_VIEW)
    def show(self) -> dict[str, Any]:
        return self.show_page()

    def act(self, action: str, service: Any) -> Any:
        form = ACTION_FORMS[action](self.request.POST, prefix=action)
        if form.validate():
            try:
                service(
                    self.request.db, self.request.audit_actor, self.query, form["text"].data or ""
                )
            except QueryError as error:
                attach_error(form, error.message, error.field)
            else:
                self.request.session.flash(DONE[action], "success")
                return HTTPSeeOther(
                    self.request.route_path("crf_query", code=self.study.code, query=self.query.id)
                )
        self.request.response.status_int = 400
        return self.show_page((action, form))

    @view_config(
        request_method="POST", request_param="action=answer", permission=Permissions.QUERIES_ANSWER
    )
    def answer(self) -> Any:
        return self.act("answer", answer_query)

    @view_config(
        request_method="POST", request_param="action=comment", permission=Permissions.QUERIES_ANSWER
    )
    def comment(self) -> Any:
        return self.act("comment", comment_on_query)

    @view_config(
        request_method="POST", request_param="action=close", permission=Permissions.QUERIES_CLOSE
    )
    def close(self) -> Any:
        return self.act("close", close_query)

    @view_config(
        request_method="POST", request_param="action=reopen", permission=Permissions.QUERIES_CLOSE
    )
    def reopen(self) -> Any:
        return self.act("reopen", reopen_query)

    @view_config(request_method="POST", permission=Permissions.CRF_VIEW)
    def unknown_action(self) -> Any:
        """A post naming no action this page has (each action is its own view, with its
        own permission)."""
        raise HTTPBadRequest("Choose one of the actions on the query's page.")


@view_defaults(
    route_name="crf_site_queries",
    renderer="crf/site_queries.html",
    permission=Permissions.CRF_VIEW,
)
class SiteQueryViews:
    """A site's query worklist, oldest first, with how long each query has waited."""

    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        self.study = context.study
        self.site = context.site

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        form = WorklistFilterForm(self.request.GET)
        if not form.validate():
            self.request.response.status_int = 400
        scope = SiteScope.for_memberships(self.study.id, self.request.memberships)
        worklist = site_query_worklist(
            self.request.db,
            scope,
            self.site,
            statuses=form.statuses,
            origin=form.query_origin,
            today=utc_today(),
        )
        return {
            "study": self.study,
            "site": self.site,
            "access": study_access(self.request, self.study.id),
            "form": form,
            "worklist": worklist,
            "form_url": lambda row: form_page_url(
                self.request, self.study.code, row.participant_code, row
            ),
        }


@view_defaults(
    route_name="crf_recheck", renderer="crf/recheck.html", permission=Permissions.CRF_RECHECK
)
class DataQualityViews:
    """The study's data-quality runs, and asking for a new one."""

    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        self.study = context.study

    def query_counts(self) -> dict[tuple[QueryOrigin, QueryStatus], int]:
        scope = SiteScope.for_memberships(self.study.id, self.request.memberships)
        statement = (
            select(Query.origin, Query.status, func.count(Query.id))
            .join(FormEntry, Query.form_entry_id == FormEntry.id)
            .join(Participant, FormEntry.participant_id == Participant.id)
            .where(Participant.study_id == self.study.id)
            .group_by(Query.origin, Query.status)
        )
        return {
            (origin, status): count
            for origin, status, count in self.request.db.execute(
                scope.apply(statement, Participant.site_id)
            )
        }

    @staticmethod
    def in_progress(runs: list[DataQualityRun]) -> bool:
        """Whether a run is queued or running (one unfinished for long is taken to be
        lost)."""
        cutoff = utcnow() - RUN_GIVEN_UP_AFTER
        return any(run.pending and run.requested_at >= cutoff for run in runs)

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        runs = recent_runs(self.request.db, self.study.id)
        pending = self.in_progress(runs)
        if pending:
            # The HTTP form of a meta refresh: the policy allows no inline script.
            self.request.response.headers["Refresh"] = str(REFRESH_SECONDS)
        return {
            "study": self.study,
            "access": study_access(self.request, self.study.id),
            "runs": runs,
            "pending": pending,
            "refresh_seconds": REFRESH_SECONDS,
            "counts": self.query_counts(),
            "origins": list(QueryOrigin),
            "statuses": list(QueryStatus),
        }

    @view_config(request_method="POST")
    def start(self) -> HTTPSeeOther:
        if self.in_progress(recent_runs(self.request.db, self.study.id)):
            self.request.session.flash(
                "A data-quality run is already in progress: this page shows its result when "
                "it finishes."
            )
        else:
            enqueue_data_quality_run(self.request, self.study.id, trigger=RunTrigger.REQUESTED)
            self.request.session.flash(
                "The data-quality run has started. This page shows its result when it finishes.",
                "success",
            )
        return HTTPSeeOther(self.request.route_path("crf_recheck", code=self.study.code))
