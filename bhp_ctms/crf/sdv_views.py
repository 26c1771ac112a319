"""Source data verification pages: a form's SDV page (mark items or the whole form),
each site's SDV worklist, and the study's SDV plan.

Thin: each view reads its form, calls :mod:`bhp_ctms.crf.verification`, and renders
or redirects. A refusal is shown above the form, and nothing is marked.
"""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config, view_defaults

from bhp_ctms.crf.models import FormEntry, FormStatus
from bhp_ctms.crf.sdv_forms import SdvPlanForm, VerifyForm
from bhp_ctms.crf.signatures import describe_entry, item_label, shown_values
from bhp_ctms.crf.verification import (
    WHOLE_FORM,
    VerificationRefused,
    current_verifications,
    describe_plan,
    latest_verifications,
    plan_selection,
    set_plan,
    site_sdv_worklist,
    study_plan,
    verification_problem,
    verified_at_text,
    verify_form,
    verify_item,
)
from bhp_ctms.locks.state import lock_covering, locked_data
from bhp_ctms.permissions import Permissions
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.services import study_access


def form_page_path(request: Any, study_code: str, entry: FormEntry) -> str:
    """The data entry page of a form entry."""
    return str(
        request.route_path(
            "crf_form",
            code=study_code,
            participant=entry.participant.code,
            event=entry.event_code,
            instance=entry.event_instance,
            form=entry.form_code,
        )
    )


def _local_path(candidate: str | None) -> str | None:
    """Only ever go back to a path on this site (no open redirects)."""
    if candidate and candidate.startswith("/") and not candidate.startswith(("//", "/\\")):
        return candidate
    return None


@view_defaults(
    route_name="crf_sdv", renderer="crf/sdv_form.html", permission=Permissions.SDV_PERFORM
)
class VerifyViews:
    """A form's SDV page: each item with its value and SDV state, and the whole form."""

    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        self.study = context.study
        self.site = context.site
        self.participant = context.participant
        self.entry: FormEntry = context.entry
        # A locked form takes no SDV mark: its page says so, and a post is refused.
        self.lock = lock_covering(request.db, self.participant, self.entry.form_key)

    def page(self, form: VerifyForm) -> dict[str, Any]:
        db = self.request.db
        current = current_verifications(db, self.entry)
        latest = latest_verifications(db, self.entry)
        return {
            "study": self.study,
            "site": self.site,
            "participant": self.participant,
            "access": study_access(self.request, self.study.id),
            "entry": self.entry,
            "title": describe_entry(self.entry),
            "values": shown_values(self.entry),
            "current": current,
            "changed_since": {
                path: mark
                for path, mark in latest.items()
                if path not in current and mark.superseded_at is not None
            },
            "whole_form": current.get(WHOLE_FORM),
            "lock": self.lock,
            "status": FormStatus.LOCKED if self.lock else self.entry.status,
            # A locked form's banner says why nothing can be marked.
            "problem": f"{self.lock.what} is locked"
            if self.lock
            else verification_problem(self.entry),
            "can_see_identifiers": bool(self.request.has_permission(Permissions.IDENTIFIERS_VIEW)),
            "verified_at_text": verified_at_text,
            "form_path": form_page_path(self.request, self.study.code, self.entry),
            "form": form,
        }

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(VerifyForm())

    @view_config(request_method="POST")
    def verify(self) -> Any:
        if self.lock is not None:
            raise locked_data(self.lock, self.participant.code)
        form = VerifyForm(self.request.POST)
        form.validate()
        path = form.item.data or WHOLE_FORM
        db = self.request.db
        actor = self.request.audit_actor
        monitor = self.request.identity
        try:
            if path == WHOLE_FORM:
                verify_form(db, actor, monitor, self.entry)
                message = f"{describe_entry(self.entry)} has been verified against source."
            else:
                verify_item(db, actor, monitor, self.entry, path)
                message = f"{item_label(self.entry, path)} has been verified against source."
        except VerificationRefused as refusal:
            form.add_form_error(refusal.message)
            self.request.response.status_int = 400
            return self.page(form)
        self.request.session.flash(message, "success")
        # Back where the mark was made: the SDV page says so; the form page by default.
        back = _local_path(self.request.POST.get("next"))
        return HTTPSeeOther(back or form_page_path(self.request, self.study.code, self.entry))


@view_defaults(
    route_name="crf_site_sdv", renderer="crf/site_sdv.html", permission=Permissions.SDV_PERFORM
)
class SiteSdvViews:
    """A site's SDV worklist: the sampled participants' complete forms not yet verified."""

    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        self.study = context.study
        self.site = context.site

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        scope = SiteScope.for_memberships(self.study.id, self.request.memberships)
        worklist = site_sdv_worklist(self.request.db, self.site, scope)
        return {
            "study": self.study,
            "site": self.site,
            "access": study_access(self.request, self.study.id),
            "worklist": worklist,
            "plan_text": describe_plan(worklist.plan),
            "describe_entry": describe_entry,
        }


@view_defaults(
    route_name="crf_sdv_plan", renderer="crf/sdv_plan.html", permission=Permissions.SDV_PLAN
)
class SdvPlanViews:
    """The study's SDV sample, and how many participants it selects at each site."""

    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        self.study = context.study

    def page(self, form: SdvPlanForm) -> dict[str, Any]:
        db = self.request.db
        plan = study_plan(db, self.study.id)
        scope = SiteScope.for_memberships(self.study.id, self.request.memberships)
        return {
            "study": self.study,
            "access": study_access(self.request, self.study.id),
            "plan_text": describe_plan(plan),
            "selections": plan_selection(db, plan, scope),
            "form": form,
        }

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(SdvPlanForm.for_plan(study_plan(self.request.db, self.study.id)))

    @view_config(request_method="POST")
    def save(self) -> Any:
        form = SdvPlanForm(self.request.POST)
        if not form.validate():
            self.request.response.status_int = 400
            return self.page(form)
        plan = set_plan(
            self.request.db,
            self.request.audit_actor,
            self.study,
            form.chosen_method,
            count=form.chosen_count,
            percentage=form.chosen_percentage,
        )
        self.request.session.flash(f"The SDV plan has been saved. {describe_plan(plan)}", "success")
        return HTTPSeeOther(self.request.route_path("crf_sdv_plan", code=self.study.code))
