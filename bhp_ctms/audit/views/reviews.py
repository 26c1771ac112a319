"""Reviewing and verifying a study's audit trail: the review log, recording a signed
review, and the verification runs with their "Verify now" button."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config, view_defaults
from sqlalchemy import select

from bhp_ctms.accounts.services import AccountService
from bhp_ctms.audit.forms import ReviewForm
from bhp_ctms.audit.models import AuditVerification, VerificationStatus
from bhp_ctms.audit.reviews import (
    ReviewError,
    record_review,
    reviews_for_study,
    unreviewed_scopes,
)
from bhp_ctms.audit.services import record_event
from bhp_ctms.audit.tasks import verify_audit_trail_task
from bhp_ctms.permissions import Permissions
from bhp_ctms.sites.services import SiteScope, visible_sites
from bhp_ctms.studies.resources import StudyResource
from bhp_ctms.studies.services import study_access

# How many verification runs the page lists, newest first.
RECENT_VERIFICATIONS = 20
# Seconds between reloads of the verification page while a run is queued or running.
REFRESH_SECONDS = 3
WRONG_PASSWORD = "Your password is not right"


def _access_labels(request: Any, study_id: int) -> str:
    access = study_access(request, study_id)
    return access.role_labels if access else ""


class _StudyAuditPage:
    def __init__(self, context: StudyResource, request: Any) -> None:
        self.request = request
        self.study = context.study
        self.sites = SiteScope.for_memberships(self.study.id, request.memberships)

    def _page(self) -> dict[str, Any]:
        return {"study": self.study, "current_roles": _access_labels(self.request, self.study.id)}


@view_defaults(request_method="GET")
class AuditReviewViews(_StudyAuditPage):
    """The review log of a study's audit trail and recording a signed review.

    Site staff see only their own sites' reviews and scopes.
    """

    @view_config(
        route_name="audit_reviews", renderer="audit/reviews.html", permission=Permissions.AUDIT_VIEW
    )
    def log(self) -> dict[str, Any]:
        db = self.request.db
        sites = visible_sites(db, self.sites)
        return {
            **self._page(),
            "reviews": reviews_for_study(db, self.study.id, self.sites),
            "unreviewed": unreviewed_scopes(db, self.study.id, self.sites),
            "site_names": {site.id: f"{site.code} \N{EN DASH} {site.name}" for site in sites},
            "all_sites": self.sites.all_sites,
            "can_review": bool(
                self.request.has_permission(Permissions.AUDIT_REVIEW, self.request.context)
            ),
        }

    def _form(self, formdata: Any = None) -> ReviewForm:
        return ReviewForm(
            formdata,
            sites=visible_sites(self.request.db, self.sites),
            all_sites=self.sites.all_sites,
        )

    @view_config(
        route_name="audit_review_new",
        renderer="audit/review_new.html",
        permission=Permissions.AUDIT_REVIEW,
    )
    def new(self) -> dict[str, Any]:
        return {**self._page(), "form": self._form()}

    @view_config(
        route_name="audit_review_new",
        renderer="audit/review_new.html",
        permission=Permissions.AUDIT_REVIEW,
        request_method="POST",
    )
    def record(self) -> Any:
        form = self._form(self.request.POST)
        valid = form.validate()
        user = self.request.identity
        accounts = AccountService(self.request.db, self.request.registry.settings["bhp_ctms"])
        # Re-authentication at signing: the signature is the reviewer's own.
        if form.password.data and not accounts.verify_password(user, form.password.data):
            form.password.errors = [*form.password.errors, WRONG_PASSWORD]
            valid = False
        if valid:
            try:
                review = record_review(
                    self.request.db,
                    self.request.audit_actor,
                    study_id=self.study.id,
                    sites=self.sites,
                    reviewer=user,
                    site_id=int(form.site_id.data) if form.site_id.data else None,
                    participant_id=int(form.participant_id.data)
                    if form.participant_id.data
                    else None,
                    form_key=form.form_key.data or "",
                    period_start=form.period_start.data,
                    period_end=form.period_end.data,
                    findings=form.findings.data or "",
                )
            except ReviewError as error:
                if error.field and error.field in form:
                    form[error.field].errors = [*form[error.field].errors, error.message]
                else:
                    form.add_form_error(error.message)
            else:
                self.request.session.flash(
                    f"Your review of {review.events_reviewed} audit events is recorded and signed.",
                    "success",
                )
                return HTTPSeeOther(self.request.route_path("audit_reviews", code=self.study.code))
        # A password is never sent back to the browser.
        form.password.data = ""
        return {**self._page(), "form": form}


@view_defaults(permission=Permissions.AUDIT_VERIFY)
class AuditVerificationViews(_StudyAuditPage):
    """Runs of the verification of a study's audit trail, requested here and run by a worker."""

    @view_config(
        route_name="audit_verification", renderer="audit/verification.html", request_method="GET"
    )
    def show(self) -> dict[str, Any]:
        runs = list(
            self.request.db.scalars(
                select(AuditVerification)
                .where(AuditVerification.study_id == self.study.id)
                .order_by(AuditVerification.requested_at.desc(), AuditVerification.id.desc())
                .limit(RECENT_VERIFICATIONS)
            )
        )
        pending = any(
            run.status in (VerificationStatus.QUEUED, VerificationStatus.RUNNING) for run in runs
        )
        if pending:
            # The HTTP form of a meta refresh: the policy allows no inline script.
            self.request.response.headers["Refresh"] = str(REFRESH_SECONDS)
        return {
            **self._page(),
            "runs": runs,
            "pending": pending,
            "refresh_seconds": REFRESH_SECONDS,
        }

    @view_config(route_name="audit_verification_run", request_method="POST")
    def run(self) -> HTTPSeeOther:
        user = self.request.identity
        verification = AuditVerification(
            study_id=self.study.id,
            requested_by_id=user.id,
            requested_by_name=user.full_name,
            status=VerificationStatus.QUEUED,
        )
        self.request.db.add(verification)
        self.request.db.flush()
        record_event(
            self.request.db,
            self.request.audit_actor,
            "audit.verification_requested",
            entity_type="audit_verification",
            entity_id=verification.id,
            study_id=self.study.id,
        )
        self.request.enqueue(verify_audit_trail_task, verification.id)
        self.request.session.flash(
            "The verification has started. This page shows its result when it finishes.",
            "success",
        )
        return HTTPSeeOther(self.request.route_path("audit_verification", code=self.study.code))
