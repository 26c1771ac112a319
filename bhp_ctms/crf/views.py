"""The data entry page: one CRF of one participant at one event (instance).

Thin: the view reads the posted form with the form version's WTForms class, calls
:func:`bhp_ctms.crf.entry.save_entry`, and renders the page again (every typed
value kept, each problem beside its item), a conflict page, or redirects back to the
saved form.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from pyramid.csrf import get_csrf_token
from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.view import view_config, view_defaults
from sqlalchemy import func, select

from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.crf.builder import (
    MISSING_SUFFIX,
    REASON_SUFFIX,
    EntryForm,
    entry_form_class,
    form_data,
)
from bhp_ctms.crf.definition.model import MISSING_LABELS, FormDefinition, Item
from bhp_ctms.crf.entry import (
    SaveResult,
    Submission,
    context_values,
    find_entry,
    form_definition,
    form_version_for,
    save_entry,
    stored_values,
)
from bhp_ctms.crf.evaluation import evaluate_entry, item_label, item_path, split_path
from bhp_ctms.crf.expressions import compiled
from bhp_ctms.crf.models import (
    REASON_NEEDED_STATUSES,
    FormEntry,
    FormStatus,
    FormVersion,
    Query,
    QueryStatus,
)
from bhp_ctms.crf.values import display_value
from bhp_ctms.db import utc_today
from bhp_ctms.locks.state import active_locks, lock_covering, locked_data
from bhp_ctms.participants.models import Visit
from bhp_ctms.permissions import Permissions
from bhp_ctms.studies.services import protocol_definition, study_access


@functools.lru_cache(maxsize=4096)
def expression_json(text: str) -> str:
    """An expression's syntax tree for the page's script ("" when there is none)."""
    return json.dumps(compiled(text).to_json(), separators=(",", ":")) if text else ""


@view_defaults(route_name="crf_form", renderer="crf/form.html")
class FormEntryViews:
    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        self.study = context.study
        self.site = context.site
        self.participant = context.participant
        db = request.db
        study_definition = protocol_definition(self.participant.protocol_version)
        try:
            self.event = study_definition.event(request.matchdict["event"])
        except KeyError:
            raise HTTPNotFound() from None
        raw = request.matchdict["instance"]
        if not (raw.isdigit() and len(raw) <= 4 and int(raw) >= 1):
            raise HTTPNotFound()
        self.instance = int(raw)
        if self.event.scheduled and self.instance != 1:
            raise HTTPNotFound()
        self.form_code = request.matchdict["form"]
        if self.form_code not in self.event.forms:
            raise HTTPNotFound()
        self.entry: FormEntry | None = find_entry(
            db, self.participant, self.event.code, self.instance, self.form_code
        )
        version: FormVersion | None = (
            self.entry.form_version
            if self.entry is not None
            else form_version_for(db, self.participant, self.form_code)
        )
        if version is None:
            raise HTTPNotFound()
        self.version = version
        self.definition: FormDefinition = form_definition(version)
        self.form_class = entry_form_class(self.definition, f"{version.id}:{version.sha256}")
        # The lock over this form (the participant's, their site's, the study's, or the
        # form's own), if any: the page shows it, and nothing on it can be saved.
        self.lock = lock_covering(db, self.participant, self.entry.form_key if self.entry else "")

    # -- pages ---------------------------------------------------------------------

    @property
    def editable(self) -> bool:
        return (
            bool(self.request.has_permission(Permissions.CRF_ENTER))
            and self.lock is None
            and (self.entry is None or self.entry.status != FormStatus.LOCKED)
        )

    def stored_form(self) -> EntryForm:
        values, missing = stored_values(self.entry)
        version = self.entry.version if self.entry is not None else None
        data = form_data(self.definition, values, missing, version)
        form = self.form_class(data=data)
        self._ensure_rows(form)
        return form

    def _ensure_rows(self, form: EntryForm) -> None:
        """A group with no rows shows one empty row to start typing in."""
        for group in self.definition.groups:
            field_list = form[group.code]
            wanted = max(group.min_rows, 1) if self.editable else 0
            while len(field_list.entries) < wanted:
                field_list.append_entry()
        form.number_new_rows()

    def page(self, form: EntryForm, **values: Any) -> dict[str, Any]:
        db = self.request.db
        stored, stored_missing = stored_values(self.entry)
        context = context_values(
            db, self.participant, self.event.code, self.instance, self.definition
        )
        evaluation = values.pop("evaluation", None) or evaluate_entry(
            self.definition, stored, stored_missing, context=context
        )
        extras = self._entry_extras()
        page: dict[str, Any] = {
            "study": self.study,
            "site": self.site,
            "participant": self.participant,
            "access": study_access(self.request, self.study.id),
            "event": self.event,
            "instance": self.instance,
            "definition": self.definition,
            "form_version": self.version,
            "entry": self.entry,
            "lock": self.lock,
            # A locked form shows as such, whatever its stage before the lock.
            "status": FormStatus.LOCKED if self.lock else self.entry.status if self.entry else None,
            "can_lock": self.entry is not None
            and self.lock is None
            and bool(self.request.has_permission(Permissions.DATA_LOCK)),
            "form": form,
            "editable": self.editable,
            "evaluation": evaluation,
            "stored": stored,
            "stored_missing": stored_missing,
            "context_json": json.dumps(context, separators=(",", ":")),
            "today": utc_today().isoformat(),
            # Asked once, not once an item; locked data take no new query or SDV mark.
            "can_raise": self.lock is None
            and bool(self.request.has_permission(Permissions.QUERIES_RAISE)),
            "can_audit": bool(self.request.has_permission(Permissions.AUDIT_VIEW)),
            "can_verify": self.lock is None
            and bool(self.request.has_permission(Permissions.SDV_PERFORM)),
            "raise_url": self._entry_path("crf_query_new"),
            "sdv_url": self._entry_path("crf_sdv"),
            "history_url": self.request.route_path("audit_history", code=self.study.code),
            "csrf_token": get_csrf_token(self.request),
            "expression_json": expression_json,
            "item_path": item_path,
            "display_value": display_value,
            "missing_labels": MISSING_LABELS,
            "missing_suffix": MISSING_SUFFIX,
            "reason_suffix": REASON_SUFFIX,
            "asks_reasons": self.entry is not None and self.entry.status in REASON_NEEDED_STATUSES,
            "reasons_needed": values.pop("reasons_needed", []),
            "errors": values.pop("errors", {}),
            "form_errors": values.pop("form_errors", []),
            "value_ids": {row.item_path: row.id for row in self.entry.values}
            if self.entry is not None
            else {},
            **extras,
            **values,
        }
        # The item macros take the whole page's values as one argument.
        page["page"] = page
        return page

    def _entry_path(self, route: str) -> str:
        if self.entry is None:
            return ""
        return str(self.request.route_path(route, code=self.study.code, entry=self.entry.id))

    def _entry_extras(self) -> dict[str, Any]:
        """Queries, SDV marks and signatures of the entry, for its page."""
        from bhp_ctms.crf.queries import queries_by_item
        from bhp_ctms.crf.signatures import entry_signatures, signature_states
        from bhp_ctms.crf.verification import current_verifications

        db = self.request.db
        if self.entry is None:
            return {"item_queries": {}, "verifications": {}, "signatures": []}
        return {
            "item_queries": queries_by_item(db, self.entry),
            "verifications": current_verifications(db, self.entry),
            "signatures": signature_states(db, entry_signatures(db, self.entry)),
        }

    @view_config(request_method="GET", permission=Permissions.CRF_VIEW)
    def show(self) -> dict[str, Any]:
        return self.page(self.stored_form())

    @view_config(request_method="POST", permission=Permissions.CRF_ENTER)
    def save(self) -> Any:
        if self.lock is not None:
            raise locked_data(self.lock, self.participant.code)
        if not self.editable:
            raise HTTPNotFound()
        form = self.form_class(self.request.POST)
        form.number_new_rows()
        action = self.request.POST.get("action", "save")
        if action.startswith("add_row:"):
            group = action.removeprefix("add_row:")
            if group in {g.code for g in self.definition.groups}:
                form[group].append_entry()
                form.number_new_rows()
            return self.page(form)
        read = form.read()
        if read.problems:
            return self.invalid(form, errors=read.problems)
        version_text = (form.version.data or "").strip()
        submission = Submission(
            values=read.values,
            missing=read.missing,
            reasons=read.reasons,
            base_version=int(version_text) if version_text.isdigit() else None,
            mark_complete=action == "complete",
        )
        result = save_entry(
            self.request.db,
            self.participant,
            self.event.code,
            self.instance,
            self.form_code,
            submission,
        )
        if result.conflict:
            return self.conflict(form, result, read.values, read.missing)
        if not result.saved:
            return self.refused(form, result)
        return self.saved(result)

    def invalid(self, form: EntryForm, **values: Any) -> dict[str, Any]:
        self.request.response.status_int = 400
        return self.page(form, **values)

    def refused(self, form: EntryForm, result: SaveResult) -> dict[str, Any]:
        errors: dict[str, str] = {}
        form_errors: list[str] = []
        evaluation = result.evaluation
        assert evaluation is not None
        for failure in evaluation.hard_failures:
            errors.setdefault(failure.item_path, failure.message)
        for path in evaluation.missing_required:
            item = self._item(path)
            ask = "or say why it is missing" if item and item.missing_codes else ""
            errors.setdefault(path, f"Answer {self._label(path)} {ask}".strip())
        for group_code in evaluation.short_groups:
            group = next(g for g in self.definition.groups if g.code == group_code)
            form_errors.append(f"{group.label} needs at least {group.min_rows} rows")
        for path in result.reasons_needed:
            errors.setdefault(path, f"Give a reason for changing {self._label(path)}")
        return self.invalid(
            form,
            errors=errors,
            form_errors=form_errors,
            reasons_needed=result.reasons_needed,
        )

    def conflict(
        self,
        form: EntryForm,
        result: SaveResult,
        mine: dict[str, str],
        mine_missing: dict[str, str],
    ) -> dict[str, Any]:
        self.request.response.status_int = 409
        paths = sorted({*mine, *mine_missing, *result.theirs, *result.theirs_missing})
        rows = []
        for path in paths:
            item = self._item(path)
            if item is None or not item.entered:
                continue
            own = mine.get(path) or ""
            theirs = result.theirs.get(path) or ""
            own_missing = mine_missing.get(path, "")
            theirs_missing = result.theirs_missing.get(path, "")
            rows.append(
                {
                    "path": path,
                    "label": self._label(path),
                    "mine": display_value(item, own) or MISSING_LABELS.get(own_missing, ""),
                    "theirs": display_value(item, theirs) or MISSING_LABELS.get(theirs_missing, ""),
                    "differs": (own, own_missing) != (theirs, theirs_missing),
                }
            )
        resubmit = [
            (key, value)
            for key, value in self.request.POST.items()
            if key not in ("version", "csrf_token", "action")
        ]
        self.request.override_renderer = "crf/conflict.html"
        return {
            **self.page(self.stored_form()),
            "rows": rows,
            "resubmit": resubmit,
            "current_version": result.entry.version if result.entry else "",
            "saved_by": self._last_saved_by(result.entry),
        }

    def _last_saved_by(self, entry: FormEntry | None) -> str:
        if entry is None:
            return ""
        name = self.request.db.scalars(
            select(AuditEvent.actor_name)
            .where(AuditEvent.participant_id == entry.participant_id)
            .where(AuditEvent.form == entry.form_key)
            .order_by(AuditEvent.id.desc())
            .limit(1)
        ).first()
        return name or ""

    def saved(self, result: SaveResult) -> HTTPSeeOther:
        entry = result.entry
        assert entry is not None and result.evaluation is not None
        message = f"{self.definition.title} has been saved"
        if entry.status != FormStatus.IN_PROGRESS:
            message += f" ({entry.status.label.lower()})"
        message += "."
        queries = len(result.evaluation.soft_failures)
        if queries:
            plural = "query is" if queries == 1 else "queries are"
            message += f" {queries} {plural} open on values outside their usual range."
        self.request.session.flash(message, "success")
        return HTTPSeeOther(self.request.path)

    def _item(self, path: str) -> Item | None:
        _, _, code = split_path(path)
        try:
            return self.definition.item(code)
        except KeyError:
            return None

    def _label(self, path: str) -> str:
        return item_label(self.definition, path)


@view_defaults(route_name="crf_casebook", renderer="crf/casebook.html")
class CasebookViews:
    """A participant's casebook: every form of every event, with its status and open
    queries, each a link to its page."""

    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        self.study = context.study
        self.site = context.site
        self.participant = context.participant

    @view_config(request_method="GET", permission=Permissions.CRF_VIEW)
    def show(self) -> dict[str, Any]:

        db = self.request.db
        definition = protocol_definition(self.participant.protocol_version)
        entries = {
            (entry.event_code, entry.event_instance, entry.form_code): entry
            for entry in db.scalars(
                select(FormEntry).where(FormEntry.participant_id == self.participant.id)
            )
        }
        open_queries = dict(
            db.execute(
                select(Query.form_entry_id, func.count())
                .join(FormEntry, Query.form_entry_id == FormEntry.id)
                .where(
                    FormEntry.participant_id == self.participant.id,
                    Query.status != QueryStatus.CLOSED,
                )
                .group_by(Query.form_entry_id)
            ).all()
        )
        instances: dict[str, list[int]] = {}
        for event_code, instance in db.execute(
            select(Visit.event_code, Visit.instance).where(
                Visit.participant_id == self.participant.id
            )
        ).all():
            instances.setdefault(event_code, []).append(instance)
        for event_code, instance, _form in entries:
            instances.setdefault(event_code, []).append(instance)
        locks = active_locks(db, self.study.id)
        sections = []
        for event in definition.events:
            numbers = sorted(set(instances.get(event.code, []))) if event.repeating else [1]
            for instance in numbers:
                forms = []
                for form_code in event.forms:
                    entry = entries.get((event.code, instance, form_code))
                    locked = entry is not None and locks.of_participant(
                        self.participant, entry.form_key
                    )
                    forms.append(
                        {
                            "code": form_code,
                            "entry": entry,
                            "status": FormStatus.LOCKED if locked else entry and entry.status,
                            "open_queries": open_queries.get(entry.id, 0) if entry else 0,
                            "url": self.request.route_path(
                                "crf_form",
                                code=self.study.code,
                                participant=self.participant.code,
                                event=event.code,
                                instance=instance,
                                form=form_code,
                            ),
                        }
                    )
                sections.append({"event": event, "instance": instance, "forms": forms})
        return {
            "study": self.study,
            "site": self.site,
            "participant": self.participant,
            "access": study_access(self.request, self.study.id),
            "lock": locks.of_participant(self.participant),
            "sections": sections,
            "titles": self._titles(definition.forms),
        }

    def _titles(self, forms: Any) -> dict[str, str]:
        rows = self.request.db.execute(
            select(FormVersion.form_code, FormVersion.title, FormVersion.sha256).where(
                FormVersion.study_id == self.study.id
            )
        ).all()
        wanted = {(form.code, form.sha256) for form in forms}
        return {code: title for code, title, sha256 in rows if (code, sha256) in wanted}
