"""A participant's pages: registration, their record, and recording their consent,
eligibility, status, visits and direct identifiers.

Thin: each view parses a form, calls :class:`ParticipantService`, and renders or
redirects. A refusal is shown beside the value it names, with everything typed kept.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.view import view_config, view_defaults

from bhp_ctms.audit.capture import ReasonRequired
from bhp_ctms.audit.links import audit_history_url, value_history_links
from bhp_ctms.forms import attach_error, show_reason_required
from bhp_ctms.locks.state import lock_covering, locked_data, site_lock
from bhp_ctms.participants.eligibility import latest_assessment
from bhp_ctms.participants.forms import (
    ConfirmEligibilityForm,
    ConsentForm,
    IdentifiersForm,
    RegisterForm,
    StatusForm,
    VisitForm,
    eligibility_form,
)
from bhp_ctms.participants.identifiers import format_nhs_number
from bhp_ctms.participants.models import (
    CHANGE_NEEDS_REASON,
    ConsentKind,
    EligibilityAssessment,
    Participant,
    ParticipantStatus,
)
from bhp_ctms.participants.panels import shown_panels
from bhp_ctms.participants.schedule import participant_schedule
from bhp_ctms.participants.services import ParticipantError, ParticipantService
from bhp_ctms.participants.status import manual_transitions
from bhp_ctms.participants.visits import repeating_visits
from bhp_ctms.permissions import Permissions
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.models import ProtocolVersion, Study
from bhp_ctms.studies.services import current_protocol_version, protocol_definition, study_access

# The values of a participant shown on their page, each with a link to its history.
PARTICIPANT_FIELDS = (
    ("code", "Study ID"),
    ("status", "Status"),
    ("registered_on", "Registered"),
    ("randomised_on", "Randomised"),
    ("is_child", "Under 16 at registration"),
    ("protocol_version_id", "Protocol version"),
)


# Statuses whose participation has ended: changing them needs a reason for change.
class _Views:
    def __init__(self, context: Any, request: Any) -> None:
        self.context = context
        self.request = request
        self.study: Study = context.study
        self.site: Site = context.site
        self.service = ParticipantService(request.db, request.registry.settings["bhp_ctms"])

    def page(self, **values: Any) -> dict[str, Any]:
        return {
            "study": self.study,
            "site": self.site,
            "access": study_access(self.request, self.study.id),
            **values,
        }

    def invalid(self, **values: Any) -> dict[str, Any]:
        self.request.response.status_int = 400
        return self.page(**values)

    def to_participant(self, participant: Participant, message: str) -> HTTPSeeOther:
        self.request.session.flash(message, "success")
        return HTTPSeeOther(
            self.request.route_path(
                "participant", code=self.study.code, participant=participant.code
            )
        )

    @property
    def can_see_identifiers(self) -> bool:
        return bool(self.request.has_permission(Permissions.IDENTIFIERS_VIEW))


# -- registration ----------------------------------------------------------------------


@view_defaults(
    route_name="participant_register",
    renderer="participants/register.html",
    permission=Permissions.PARTICIPANTS_REGISTER,
)
class RegisterViews(_Views):
    def form(self, formdata: Any = None) -> RegisterForm:
        version = current_protocol_version(self.request.db, self.study.id, self.service.today())
        children = version is not None and protocol_definition(version).children
        if formdata is None:
            return RegisterForm(recruits_children=children, registered_on=self.service.today())
        return RegisterForm(formdata, recruits_children=children)

    def page(self, **values: Any) -> dict[str, Any]:
        return super().page(
            problem=self.service.registration_problem(self.site),
            with_identifiers=self.can_see_identifiers,
            lock=site_lock(self.request.db, self.study.id, self.site.id),
            **values,
        )

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(form=self.form())

    @view_config(request_method="POST")
    def register(self) -> Any:
        lock = site_lock(self.request.db, self.study.id, self.site.id)
        if lock is not None:
            raise locked_data(lock)
        form = self.form(self.request.POST)
        if not form.validate() or form.registered_on.data is None:
            return self.invalid(form=form)
        identifiers = form.identifiers() if self.can_see_identifiers else None
        try:
            participant = self.service.register(
                self.request.audit_actor,
                self.site,
                registered_on=form.registered_on.data,
                is_child=form.child,
                identifiers=identifiers,
                confirm_not_duplicate=bool(form.confirm_not_duplicate.data),
            )
        except ParticipantError as error:
            attach_error(form, error.message, error.field)
            return self.invalid(form=form)
        return self.to_participant(
            participant, f"Participant {participant.code} has been registered."
        )


# -- one participant ----------------------------------------------------------------------


class _ParticipantViews(_Views):
    def __init__(self, context: Any, request: Any) -> None:
        super().__init__(context, request)
        self.participant: Participant = context.participant
        # A lock over the participant: each page shows it with no form, and any post is
        # refused before anything is read from it.
        self.lock = lock_covering(request.db, self.participant)
        if self.lock is not None and request.method == "POST":
            raise locked_data(self.lock, self.participant.code)

    def page(self, **values: Any) -> dict[str, Any]:
        return super().page(participant=self.participant, lock=self.lock, **values)

    @property
    def participant_url(self) -> str:
        return str(
            self.request.route_path(
                "participant", code=self.study.code, participant=self.participant.code
            )
        )


@view_config(
    route_name="participant",
    renderer="participants/participant.html",
    request_method="GET",
    permission=Permissions.PARTICIPANTS_VIEW,
)
class ParticipantPageView(_ParticipantViews):
    def newer_protocol_version(self, today: date) -> ProtocolVersion | None:
        """The version in effect, when it is newer than the participant's and the user
        may move participants to it."""
        if self.lock is not None or not self.request.has_permission(Permissions.PROTOCOL_MIGRATE):
            return None
        current = current_protocol_version(self.request.db, self.study.id, today)
        if current is None or current.number <= self.participant.protocol_version.number:
            return None
        return current

    def __call__(self) -> dict[str, Any]:
        participant = self.participant
        definition = self.service.definition_of(participant)
        today = self.service.today()
        assessment = latest_assessment(participant)
        can_see_identifiers = self.can_see_identifiers
        identifiers = self.service.read_identifiers(participant) if can_see_identifiers else None
        auditor = bool(self.request.has_permission(Permissions.AUDIT_VIEW))
        return self.page(
            fields=PARTICIPANT_FIELDS,
            history=value_history_links(
                self.request,
                self.study.code,
                "participant",
                participant.id,
                dict(PARTICIPANT_FIELDS),
            ),
            entity_history=(
                (
                    lambda kind, entity_id: audit_history_url(
                        self.request, self.study.code, kind, entity_id
                    )
                )
                if auditor
                else None
            ),
            definition=definition,
            consent=self.service.consent_status(
                participant, today, with_birthday=can_see_identifiers
            ),
            consents=sorted(participant.consents, key=lambda c: (c.consented_on, c.id)),
            assessment=assessment,
            criteria=definition.criteria,
            people=self.service.user_names(
                [assessment.assessed_by_id, assessment.confirmed_by_id] if assessment else []
            ),
            schedule=participant_schedule(definition, participant, participant.visits, today),
            repeating=repeating_visits(definition, participant),
            # Locked data show no edit links at all.
            can_edit=self.lock is None
            and bool(self.request.has_permission(Permissions.PARTICIPANTS_EDIT)),
            can_confirm=self.lock is None
            and bool(self.request.has_permission(Permissions.ELIGIBILITY_CONFIRM)),
            can_change_status=bool(manual_transitions(participant)),
            can_see_identifiers=can_see_identifiers,
            newer_version=self.newer_protocol_version(today),
            identifiers=identifiers,
            panels=shown_panels(self.request, self.context),
            nhs_number=format_nhs_number(identifiers.nhs_number)
            if identifiers and identifiers.nhs_number
            else "",
        )


# -- consent ---------------------------------------------------------------------------------


@view_defaults(
    route_name="participant_consent",
    renderer="participants/consent.html",
    permission=Permissions.PARTICIPANTS_EDIT,
)
class ConsentViews(_ParticipantViews):
    def form(self, formdata: Any = None) -> ConsentForm:
        is_child = self.participant.is_child
        if formdata is not None:
            return ConsentForm(formdata, is_child=is_child)
        # The versions in use today are what is normally signed.
        version = (
            current_protocol_version(self.request.db, self.study.id, self.service.today())
            or self.participant.protocol_version
        )
        documents = protocol_definition(version).consent
        assent = is_child and self.request.GET.get("kind") == ConsentKind.ASSENT.value
        return ConsentForm(
            is_child=is_child,
            kind=ConsentKind.ASSENT.value if assent else ConsentKind.CONSENT.value,
            given_by="participant" if assent or not is_child else None,
            information_sheet_version=(
                documents.child_information_sheet if assent else documents.information_sheet
            ),
            form_version=documents.assent_form if assent else documents.consent_form,
            taken_by=self.request.identity.full_name,
        )

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(form=self.form())

    @view_config(request_method="POST")
    def record(self) -> Any:
        form = self.form(self.request.POST)
        if not form.validate():
            return self.invalid(form=form)
        try:
            record = self.service.record_consent(
                self.request.audit_actor,
                self.participant,
                kind=form.consent_kind,
                given_by=form.giver,
                information_sheet_version=form.information_sheet_version.data or "",
                form_version=form.form_version.data or "",
                consented_on=form.consented_on.data,
                taken_by=form.taken_by.data or "",
            )
        except ParticipantError as error:
            attach_error(form, error.message, error.field)
            return self.invalid(form=form)
        return self.to_participant(
            self.participant,
            f"{record.kind.label} has been recorded for participant {self.participant.code}.",
        )


# -- eligibility ----------------------------------------------------------------------------


@view_defaults(
    route_name="participant_eligibility",
    renderer="participants/eligibility.html",
    permission=Permissions.PARTICIPANTS_EDIT,
)
class EligibilityViews(_ParticipantViews):
    def form(self, formdata: Any = None) -> Any:
        version = self.participant.protocol_version
        definition = protocol_definition(version)
        return eligibility_form(definition, version.definition_sha256, formdata)

    def page(self, **values: Any) -> dict[str, Any]:
        status = self.participant.status
        problem = None
        if status != ParticipantStatus.CONSENTED:
            problem = (
                "Eligibility is assessed once the participant has consented, until the PI "
                f"confirms it: this participant is {status.label.lower()}."
            )
        return super().page(problem=problem, **values)

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(form=self.form())

    @view_config(request_method="POST")
    def assess(self) -> Any:
        form = self.form(self.request.POST)
        if not form.validate():
            return self.invalid(form=form)
        try:
            assessment = self.service.assess_eligibility(
                self.request.audit_actor,
                self.participant,
                form.answers(),
                form.assessed_on.data,
                self.request.identity.id,
            )
        except ParticipantError as error:
            attach_error(form, error.message, form.field_of(error.field or ""))
            return self.invalid(form=form)
        return self.to_participant(
            self.participant,
            f"Eligibility of participant {self.participant.code} has been assessed: "
            f"{assessment.outcome.label.lower()}. The PI (or a delegate) now confirms it.",
        )


@view_defaults(
    route_name="participant_eligibility_confirm",
    renderer="participants/confirm_eligibility.html",
    permission=Permissions.ELIGIBILITY_CONFIRM,
)
class ConfirmEligibilityViews(_ParticipantViews):
    def __init__(self, context: Any, request: Any) -> None:
        super().__init__(context, request)
        self.assessment = self._assessment()

    def _assessment(self) -> EligibilityAssessment:
        raw = self.request.matchdict["assessment"]
        for assessment in self.participant.eligibility_assessments:
            if raw.isdigit() and assessment.id == int(raw):
                return assessment
        raise HTTPNotFound()

    def page(self, **values: Any) -> dict[str, Any]:
        assessment = self.assessment
        return super().page(
            assessment=assessment,
            criteria=self.service.definition_of(self.participant).criteria,
            people=self.service.user_names([assessment.assessed_by_id, assessment.confirmed_by_id]),
            latest=latest_assessment(self.participant) is assessment,
            **values,
        )

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(form=ConfirmEligibilityForm())

    @view_config(request_method="POST")
    def confirm(self) -> Any:
        form = ConfirmEligibilityForm(self.request.POST)
        if form.validate():
            try:
                self.service.confirm_eligibility(
                    self.request.audit_actor,
                    self.participant,
                    self.assessment,
                    self.request.identity,
                    form.password.data or "",
                )
            except ParticipantError as error:
                attach_error(form, error.message, error.field)
            else:
                return self.to_participant(
                    self.participant,
                    f"Eligibility of participant {self.participant.code} has been confirmed: "
                    f"{self.participant.status.label.lower()}.",
                )
        # A password is never sent back to the browser.
        form.password.data = ""
        return self.invalid(form=form)


# -- status -----------------------------------------------------------------------------------


@view_defaults(
    route_name="participant_status",
    renderer="participants/status.html",
    permission=Permissions.PARTICIPANTS_EDIT,
)
class StatusViews(_ParticipantViews):
    def form(self, formdata: Any = None) -> StatusForm:
        return StatusForm(formdata, offered=manual_transitions(self.participant))

    def page(self, **values: Any) -> dict[str, Any]:
        return super().page(
            needs_reason=self.participant.status in CHANGE_NEEDS_REASON,
            statuses=ParticipantStatus,
            **values,
        )

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(form=self.form())

    @view_config(request_method="POST")
    def change(self) -> Any:
        form = self.form(self.request.POST)
        if not form.validate():
            return self.invalid(form=form)
        try:
            self.service.change_status(
                self.request.audit_actor,
                self.participant,
                form.new_status,
                on=form.status_on.data,
                details=form.details.data or "",
                withdrawal_type=form.withdrawal,
                exclusion_reason=form.exclusion,
                reason_for_change=form.reason_for_change.data or "",
            )
        except ParticipantError as error:
            attach_error(form, error.message, error.field)
            return self.invalid(form=form)
        except ReasonRequired as error:
            show_reason_required(self.request, form, "reason_for_change", error)
            return self.page(form=form)
        return self.to_participant(
            self.participant,
            f"Participant {self.participant.code} is now {form.new_status.label.lower()}.",
        )


# -- visits -------------------------------------------------------------------------------------


@view_defaults(
    route_name="participant_visit",
    renderer="participants/visit.html",
    permission=Permissions.PARTICIPANTS_EDIT,
)
class VisitViews(_ParticipantViews):
    def __init__(self, context: Any, request: Any) -> None:
        super().__init__(context, request)
        definition = self.service.definition_of(self.participant)
        raw = request.matchdict["instance"]
        try:
            self.event = definition.event(request.matchdict["event"])
        except KeyError:
            raise HTTPNotFound() from None
        if not (raw.isdigit() and len(raw) <= 4 and int(raw) >= 1):
            raise HTTPNotFound()
        self.instance = int(raw)
        if self.event.scheduled and self.instance != 1:
            raise HTTPNotFound()
        self.visit = self.service.visit(self.participant, self.event.code, self.instance)

    def page(self, **values: Any) -> dict[str, Any]:
        return super().page(event=self.event, instance=self.instance, visit=self.visit, **values)

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        visit = self.visit
        if visit is None:
            return self.page(form=VisitForm())
        form = VisitForm(
            status=visit.status.value,
            visit_on=visit.visit_on,
            not_done_reason=visit.not_done_reason,
        )
        return self.page(form=form)

    @view_config(request_method="POST")
    def record(self) -> Any:
        form = VisitForm(self.request.POST)
        if not form.validate():
            return self.invalid(form=form)
        changing = self.visit is not None
        try:
            self.service.record_visit(
                self.request.audit_actor,
                self.participant,
                self.event.code,
                self.instance,
                status=form.visit_status,
                visit_on=form.visit_on.data,
                not_done_reason=form.not_done_reason.data or "",
                reason_for_change=form.reason_for_change.data or "",
            )
        except ParticipantError as error:
            attach_error(form, error.message, error.field)
            return self.invalid(form=form)
        except ReasonRequired as error:
            show_reason_required(self.request, form, "reason_for_change", error)
            return self.page(form=form)
        name = self.event.name + (f" {self.instance}" if self.event.repeating else "")
        verb = "changed" if changing else "recorded"
        return self.to_participant(
            self.participant, f"{name} has been {verb} for participant {self.participant.code}."
        )


# -- identifiers ------------------------------------------------------------------------------


@view_defaults(
    route_name="participant_identifiers",
    renderer="participants/identifiers.html",
    permission=Permissions.IDENTIFIERS_VIEW,
)
class IdentifierViews(_ParticipantViews):
    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        held = self.service.read_identifiers(self.participant)
        if held is None:
            return self.page(form=IdentifiersForm())
        form = IdentifiersForm(
            full_name=held.full_name,
            date_of_birth=held.date_of_birth,
            nhs_number=format_nhs_number(held.nhs_number) if held.nhs_number else "",
        )
        return self.page(form=form)

    @view_config(request_method="POST")
    def save(self) -> Any:
        form = IdentifiersForm(self.request.POST)
        if not form.validate():
            return self.invalid(form=form)
        try:
            changed = self.service.set_identifiers(
                self.request.audit_actor,
                self.participant,
                form.identifiers(),
                confirm_not_duplicate=bool(form.confirm_not_duplicate.data),
            )
        except ParticipantError as error:
            attach_error(form, error.message, error.field)
            return self.invalid(form=form)
        if not changed:
            return self.to_participant(
                self.participant,
                f"The identifiers of participant {self.participant.code} were not changed: "
                "no value was different.",
            )
        return self.to_participant(
            self.participant,
            f"The identifiers of participant {self.participant.code} have been saved.",
        )
