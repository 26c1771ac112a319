"""The randomisation pages: randomising from the participant's page, emergency
unblinding, marking an allocation invalid, and the unblinded statistician's list and
allocation report.

A blinded reader never sees an arm: every page here that could show one asks
:func:`~bhp_ctms.randomisation.schemes.sees_arms` first, and the statistician's pages
need permissions only unblinded roles hold.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.response import Response
from pyramid.view import view_config, view_defaults
from sqlalchemy import select

from bhp_ctms.accounts.models import User
from bhp_ctms.audit.services import record_event
from bhp_ctms.audit.views.trail import spreadsheet_safe
from bhp_ctms.forms import attach_error
from bhp_ctms.locks.state import lock_covering, locked_data
from bhp_ctms.mail.tasks import send_email
from bhp_ctms.participants.models import Participant
from bhp_ctms.permissions import Permissions
from bhp_ctms.randomisation import allocation_lists
from bhp_ctms.randomisation.allocation_lists import ListRefused
from bhp_ctms.randomisation.forms import (
    GenerateListForm,
    InvalidateForm,
    RandomiseForm,
    UnblindForm,
    UploadListForm,
)
from bhp_ctms.randomisation.methods.lists import write_list_csv
from bhp_ctms.randomisation.models import Allocation
from bhp_ctms.randomisation.schemes import arm_name, sees_arms, study_scheme
from bhp_ctms.randomisation.services import (
    RandomisationRefused,
    RandomisationService,
    UnblindingRefused,
    active_list,
    allocation_of,
)
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.models import Blinding
from bhp_ctms.studies.services import protocol_definition, study_access


def _has(request: Any, permission: Permissions) -> bool:
    return bool(request.has_permission(permission))


def participant_panel(request: Any, context: Any) -> dict[str, Any] | None:
    """The participant page's Randomisation section; none for a study that does not
    randomise."""
    participant = context.participant
    definition = protocol_definition(participant.protocol_version)
    if definition.randomisation is None:
        return None
    study = context.study
    allocation = allocation_of(request.db, participant.id)
    shows_arm = sees_arms(study, request.memberships)
    # Locked data are neither randomised nor marked invalid; emergency unblinding stays.
    locked = lock_covering(request.db, participant) is not None
    shown_arm = ""
    if allocation is not None and shows_arm:
        shown_arm = arm_name(definition, allocation.arm_code)
    return {
        "allocation": allocation,
        "allocated_by": allocation.allocated_by.full_name
        if allocation is not None and allocation.allocated_by
        else "",
        "arm_name": shown_arm,
        "blinded_study": study.blinding != Blinding.OPEN,
        "can_randomise": allocation is None and not locked and _has(request, Permissions.RANDOMISE),
        "can_unblind": allocation is not None
        and study.blinding != Blinding.OPEN
        and not shows_arm
        and _has(request, Permissions.UNBLIND),
        "can_invalidate": allocation is not None
        and allocation.valid
        and not locked
        and _has(request, Permissions.ALLOCATION_INVALIDATE),
    }


class _ParticipantPage:
    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        self.study = context.study
        self.site = context.site
        self.participant: Participant = context.participant
        self.settings = request.registry.settings["bhp_ctms"]
        self.service = RandomisationService(request.db, self.settings)
        self.lock = lock_covering(request.db, self.participant)

    def refuse_when_locked(self) -> None:
        """Randomising and marking invalid change locked data: refused before anything."""
        if self.lock is not None:
            raise locked_data(self.lock, self.participant.code)

    def common(self, **values: Any) -> dict[str, Any]:
        return {
            "study": self.study,
            "site": self.site,
            "participant": self.participant,
            "lock": self.lock,
            "access": study_access(self.request, self.study.id),
            **values,
        }

    def arm_of(self, allocation: Allocation) -> str:
        """The allocation's arm by name, from the participant's protocol (no query)."""
        return arm_name(protocol_definition(self.participant.protocol_version), allocation.arm_code)

    def to_participant(self, message: str) -> HTTPSeeOther:
        self.request.session.flash(message, "success")
        return HTTPSeeOther(
            self.request.route_path(
                "participant", code=self.study.code, participant=self.participant.code
            )
        )


@view_defaults(
    route_name="randomise",
    renderer="randomisation/randomise.html",
    permission=Permissions.RANDOMISE,
)
class RandomiseViews(_ParticipantPage):
    def page(self, form: RandomiseForm, refusals: list[str] | None = None) -> dict[str, Any]:
        bound = study_scheme(self.request.db, self.study)
        readiness = self.service.readiness(self.participant, bound)
        return self.common(
            form=form,
            refusals=readiness.refusals if refusals is None else refusals,
            levels=bound.describe_levels(readiness.levels) if bound else "",
            scheme=bound,
        )

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(RandomiseForm())

    @view_config(request_method="POST")
    def randomise(self) -> Any:
        self.refuse_when_locked()
        form = RandomiseForm(self.request.POST)
        try:
            allocation = self.service.randomise(self.request.audit_actor, self.participant)
        except RandomisationRefused as refusal:
            self.request.response.status_code = 409
            return self.page(form, refusal.reasons)
        message = f"Participant {self.participant.code} is randomised"
        if allocation.kit_code:
            message += f": kit number {allocation.kit_code}"
        if sees_arms(self.study, self.request.memberships):
            arm = self.arm_of(allocation)
            message += f" ({'allocated to ' if allocation.kit_code else ': '}{arm})"
        return self.to_participant(message)


@view_defaults(
    route_name="unblind",
    renderer="randomisation/unblind.html",
    permission=Permissions.UNBLIND,
)
class UnblindViews(_ParticipantPage):
    def form(self, formdata: Any = None) -> UnblindForm:
        return UnblindForm(formdata, second_factor=self.request.identity.has_totp)

    def page(self, form: UnblindForm, **values: Any) -> dict[str, Any]:
        allocation = allocation_of(self.request.db, self.participant.id)
        return self.common(
            form=form,
            allocation=allocation,
            blinded_study=self.study.blinding != Blinding.OPEN,
            **{"arm_name": "", **values},
        )

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(self.form())

    @view_config(request_method="POST")
    def unblind(self) -> dict[str, Any]:
        form = self.form(self.request.POST)
        allocation = allocation_of(self.request.db, self.participant.id)
        if allocation is None or self.study.blinding == Blinding.OPEN or not form.validate():
            form.forget_secrets()
            self.request.response.status_code = 400 if allocation else 409
            return self.page(form)
        user: User = self.request.identity
        access = study_access(self.request, self.study.id)
        try:
            email = self.service.unblind(
                self.request.audit_actor,
                user,
                allocation,
                role_label=access.role_labels if access else "",
                reason=form.reason.data or "",
                proof=form.proof(),
            )
        except UnblindingRefused as refusal:
            attach_error(form, refusal.message, refusal.field)
            form.forget_secrets()
            self.request.response.status_code = 400
            return self.page(form)
        self.request.enqueue(send_email, email.id)
        # Shown in this response only, to the person who asked.
        self.request.response.headers["Cache-Control"] = "no-store"
        return self.page(
            self.form(),
            arm_name=self.arm_of(allocation),
            notified=self.settings.ctu_email,
        )


@view_defaults(
    route_name="allocation_invalidate",
    renderer="randomisation/invalidate.html",
    permission=Permissions.ALLOCATION_INVALIDATE,
)
class InvalidateViews(_ParticipantPage):
    def page(self, form: InvalidateForm) -> dict[str, Any]:
        return self.common(
            form=form, allocation=allocation_of(self.request.db, self.participant.id)
        )

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(InvalidateForm())

    @view_config(request_method="POST")
    def invalidate(self) -> Any:
        self.refuse_when_locked()
        form = InvalidateForm(self.request.POST)
        allocation = allocation_of(self.request.db, self.participant.id)
        if allocation is None or not allocation.valid or not form.validate():
            self.request.response.status_code = 400
            return self.page(form)
        self.service.invalidate(self.request.audit_actor, allocation, form.reason.data or "")
        return self.to_participant(
            f"The randomisation of participant {self.participant.code} is marked invalid; its "
            "list position stays used"
        )


# -- the unblinded statistician's pages ---------------------------------------------------


@view_defaults(
    route_name="randomisation",
    renderer="randomisation/lists.html",
    permission=Permissions.RANDOMISATION_LISTS,
)
class ListViews:
    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        self.study = context.study
        self.bound = study_scheme(request.db, self.study)

    def page(
        self,
        generate: GenerateListForm | None = None,
        upload: UploadListForm | None = None,
        problems: list[Any] | None = None,
    ) -> dict[str, Any]:
        db = self.request.db
        current = active_list(db, self.study.id)
        bound = self.bound
        needs_size = bound is not None and bound.list_based
        return {
            "study": self.study,
            "access": study_access(self.request, self.study.id),
            "scheme": bound,
            "current": current,
            "verified": allocation_lists.verify(db, current) if current else None,
            "uses": allocation_lists.stratum_use(db, bound, current) if current and bound else [],
            "replace_problem": allocation_lists.replace_problem(db, bound, current)
            if bound
            else None,
            "generate": generate or GenerateListForm(needs_size=needs_size),
            "upload": upload or UploadListForm(),
            "problems": problems or [],
        }

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page()

    @view_config(request_method="POST")
    def post(self) -> Any:
        # One POST view for both forms, so that a request without a CSRF token is
        # refused as such whatever it asks for.
        if self.request.POST.get("action") == "upload":
            return self.upload()
        return self.generate()

    def generate(self) -> Any:
        bound = self.bound
        form = GenerateListForm(
            self.request.POST, needs_size=bound is not None and bound.list_based
        )
        if bound is None or not form.validate():
            self.request.response.status_code = 400
            return self.page(generate=form)
        per_stratum = form.per_stratum.data if bound.list_based else 0
        try:
            made = allocation_lists.generate(
                self.request.db,
                self.request.audit_actor,
                bound,
                active_list(self.request.db, self.study.id),
                seed=form.seed.data or "",
                per_stratum=per_stratum or 0,
            )
        except ListRefused as refusal:
            attach_error(form, refusal.message, refusal.field)
            self.request.response.status_code = 400
            return self.page(generate=form)
        return self._done(
            f"The allocation list is generated: {made.entry_count} positions"
            if bound.list_based
            else "The minimisation seed is recorded"
        )

    def upload(self) -> Any:
        form = UploadListForm(self.request.POST)
        bound = self.bound
        if bound is None or not form.validate():
            self.request.response.status_code = 400
            return self.page(upload=form)
        upload = form.file.data
        try:
            made = allocation_lists.upload(
                self.request.db,
                self.request.audit_actor,
                bound,
                active_list(self.request.db, self.study.id),
                filename=getattr(upload, "filename", "") or "",
                content=upload.file.read(),
            )
        except ListRefused as refusal:
            attach_error(form, refusal.message, refusal.field)
            self.request.response.status_code = 400
            return self.page(upload=form, problems=refusal.problems)
        return self._done(f"The allocation list is uploaded: {made.entry_count} positions")

    def _done(self, message: str) -> HTTPSeeOther:
        self.request.session.flash(message, "success")
        return HTTPSeeOther(self.request.route_path("randomisation", code=self.study.code))


@view_config(route_name="randomisation_list", permission=Permissions.RANDOMISATION_LISTS)
def download_list(context: Any, request: Any) -> Response:
    """The current list as CSV; the download is recorded in the audit trail."""
    study = context.study
    current = active_list(request.db, study.id)
    if current is None:
        request.session.flash("There is no allocation list to download yet", "success")
        return HTTPSeeOther(request.route_path("randomisation", code=study.code))
    record_event(
        request.db,
        request.audit_actor,
        "allocation_list.downloaded",
        entity_type="allocation_list",
        entity_id=current.id,
        study_id=study.id,
        details={"entries": current.entry_count},
    )
    body = write_list_csv(allocation_lists.stored_rows(request.db, current))
    response = Response(body=body.encode("utf-8"), content_type="text/csv", charset="utf-8")
    response.content_disposition = f'attachment; filename="{study.code}-allocation-list.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _allocations(request: Any, study_id: int) -> list[tuple[Allocation, str, str]]:
    rows = request.db.execute(
        select(Allocation, Participant.code, Site.code)
        .join(Participant, Participant.id == Allocation.participant_id)
        .join(Site, Site.id == Allocation.site_id)
        .where(Allocation.study_id == study_id)
        .order_by(Allocation.allocated_at, Allocation.id)
    ).all()
    return [(row[0], row[1], row[2]) for row in rows]


@view_config(
    route_name="randomisation_allocations",
    renderer="randomisation/allocations.html",
    permission=Permissions.RANDOMISATION_REPORT,
)
def allocation_report(context: Any, request: Any) -> dict[str, Any]:
    study = context.study
    bound = study_scheme(request.db, study)
    allocations = _allocations(request, study.id)
    arms = list(bound.scheme.arm_codes) if bound else []
    by_site: dict[str, dict[str, int]] = {}
    for allocation, _, site_code in allocations:
        if allocation.valid:
            counts = by_site.setdefault(site_code, dict.fromkeys(arms, 0))
            counts[allocation.arm_code] = counts.get(allocation.arm_code, 0) + 1
    return {
        "study": study,
        "access": study_access(request, study.id),
        "scheme": bound,
        "allocations": allocations,
        "arms": arms,
        "by_site": sorted(by_site.items()),
        "totals": {arm: sum(counts.get(arm, 0) for counts in by_site.values()) for arm in arms},
        "invalid": sum(1 for allocation, _, _ in allocations if not allocation.valid),
    }


ALLOCATION_COLUMNS = (
    "participant",
    "site",
    "stratum",
    "sequence",
    "arm",
    "kit_code",
    "allocated_at_utc",
    "allocated_by",
    "valid",
    "invalid_reason",
    "scores",
)


@view_config(
    route_name="randomisation_allocations_csv", permission=Permissions.RANDOMISATION_REPORT
)
def allocation_report_csv(context: Any, request: Any) -> Response:
    """Every allocation, unblinded, as CSV for the statistician; the download is audited."""
    study = context.study
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(ALLOCATION_COLUMNS)
    allocations = _allocations(request, study.id)
    for allocation, participant_code, site_code in allocations:
        row = [
            participant_code,
            site_code,
            allocation.stratum,
            allocation.sequence,
            allocation.arm_code,
            allocation.kit_code or "",
            allocation.allocated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            allocation.allocated_by.full_name if allocation.allocated_by else "",
            "yes" if allocation.valid else "no",
            allocation.invalid_reason,
            "" if allocation.scores is None else _scores_text(allocation.scores),
        ]
        writer.writerow([spreadsheet_safe(cell) for cell in row])
    record_event(
        request.db,
        request.audit_actor,
        "allocation_report.downloaded",
        entity_type="study",
        entity_id=study.id,
        study_id=study.id,
        details={"allocations": len(allocations)},
    )
    response = Response(body=out.getvalue().encode("utf-8"), content_type="text/csv")
    response.charset = "utf-8"
    response.content_disposition = f'attachment; filename="{study.code}-allocations.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _scores_text(scores: dict[str, Any]) -> str:
    totals = scores.get("totals") or {}
    parts = [f"{arm}={value}" for arm, value in sorted(totals.items())]
    chosen = scores.get("chosen_by")
    return "; ".join(parts) + (f" ({chosen})" if chosen else "")
