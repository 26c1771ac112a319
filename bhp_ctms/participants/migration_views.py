"""Moving one participant to a newer protocol version: the dry run, then the move."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config, view_defaults
from wtforms import HiddenField, TextAreaField
from wtforms.validators import DataRequired, Length

from bhp_ctms.audit.capture import ReasonRequired
from bhp_ctms.forms import Form, show_reason_required, strip_whitespace
from bhp_ctms.locks.state import lock_covering, locked_data
from bhp_ctms.participants.migration import (
    MigrationError,
    MigrationPlan,
    apply_migration,
    plan_migration,
)
from bhp_ctms.participants.models import Participant
from bhp_ctms.permissions import Permissions
from bhp_ctms.studies.models import ProtocolVersion
from bhp_ctms.studies.services import protocol_versions, study_access

MAXIMUM_REASON_LENGTH = 2000


class MigrationForm(Form):
    to = HiddenField()
    reason = TextAreaField(
        "Reason for moving the participant",
        description="Kept in the audit trail with every value changed, for example the"
        " ethics approval of the amendment.",
        filters=[strip_whitespace],
        validators=[
            DataRequired(message="Enter a reason for moving the participant"),
            Length(
                max=MAXIMUM_REASON_LENGTH,
                message=f"Reason must be {MAXIMUM_REASON_LENGTH:,} characters or fewer",
            ),
        ],
    )


@view_defaults(
    route_name="participant_protocol",
    renderer="participants/protocol.html",
    permission=Permissions.PROTOCOL_MIGRATE,
)
class ParticipantProtocolViews:
    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        self.study = context.study
        self.site = context.site
        self.participant: Participant = context.participant
        self.versions = protocol_versions(request.db, self.study.id)
        self.current = next(
            version
            for version in self.versions
            if version.id == self.participant.protocol_version_id
        )
        # A locked participant stays on their version: the page says so, a post is refused.
        self.lock = lock_covering(request.db, self.participant)
        if self.lock is not None and request.method == "POST":
            raise locked_data(self.lock, self.participant.code)

    def page(self, form: MigrationForm, **values: Any) -> dict[str, Any]:
        return {
            "study": self.study,
            "access": study_access(self.request, self.study.id),
            "site": self.site,
            "participant": self.participant,
            "current": self.current,
            "newer": [v for v in self.versions if v.number > self.current.number],
            "form": form,
            "lock": self.lock,
            "target": None,
            "plan": None,
            "refusal": "",
            **values,
        }

    def refused(self, form: MigrationForm, **values: Any) -> dict[str, Any]:
        self.request.response.status_int = 400
        return self.page(form, **values)

    def target(self, raw: str | None) -> ProtocolVersion:
        """The version asked for (``to``: its number), or the latest; MigrationError if none."""
        if not raw:
            return self.versions[-1]
        found = next((v for v in self.versions if str(v.number) == raw.strip()), None)
        if found is None:
            numbers = ", ".join(str(v.number) for v in self.versions)
            raise MigrationError(
                f"There is no protocol version {raw} of {self.study.code}: choose one of {numbers}"
            )
        return found

    def plan(
        self, form: MigrationForm, raw: str | None
    ) -> tuple[MigrationPlan | None, dict[str, Any]]:
        """The plan towards the version asked for, or the page explaining why there is none."""
        try:
            target = self.target(raw)
        except MigrationError as error:
            return None, self.refused(form, refusal=str(error))
        form.to.data = str(target.number)
        try:
            plan = plan_migration(self.request.db, self.participant, target)
        except MigrationError as error:
            return None, self.page(form, target=target, refusal=str(error))
        return plan, self.page(form, target=target, plan=plan)

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        form = MigrationForm()
        return self.plan(form, self.request.GET.get("to"))[1]

    @view_config(request_method="POST")
    def apply(self) -> Any:
        form = MigrationForm(self.request.POST)
        plan, page = self.plan(form, form.to.data)
        if plan is None or not plan.can_apply:
            self.request.response.status_int = 400
            return page
        if not form.validate():
            self.request.response.status_int = 400
            return page
        try:
            apply_migration(
                self.request.audit_actor,
                self.request.db,
                self.participant,
                plan.target,
                form.reason.data,
            )
        except MigrationError as error:
            form.reason.errors = [*form.reason.errors, str(error)]
            return self.refused(form, target=plan.target, plan=plan)
        except ReasonRequired as error:
            show_reason_required(self.request, form, "reason", error)
            return self.refused(form, target=plan.target, plan=plan)
        moved = len(plan.moves)
        self.request.session.flash(
            f"{self.participant.code} has been moved to protocol version {plan.target.label}"
            f" ({moved} recorded visit{'' if moved == 1 else 's'} moved).",
            "success",
        )
        return HTTPSeeOther(
            self.request.route_path(
                "participant", code=self.study.code, participant=self.participant.code
            )
        )
