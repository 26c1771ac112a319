"""The worklists' pages: the participant list, the screening log, the study dashboard,
and each site's participant grid and dashboard (with the counts other domains keep
for each participant, such as open queries, that the user may see).

Filters come by GET, so a filtered list can be bookmarked and shared; a value that
cannot be used is shown beside its field (400), with everything typed kept. Their
forms are here, beside the only pages that use them.
"""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config, view_defaults
from wtforms import BooleanField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, ValidationError

from bhp_ctms.db import utc_today
from bhp_ctms.forms import Form, strip_whitespace
from bhp_ctms.participants.models import ParticipantStatus
from bhp_ctms.participants.schedule import VisitState
from bhp_ctms.participants.worklists import (
    CELL_ABBREVIATIONS,
    DUE_SOON_DAYS,
    NOT_IN_VERSION,
    ParticipantCounts,
    cell_class,
    participant_list,
    registered_counts,
    screening_log,
    site_dashboard,
    site_grid,
    study_dashboard,
)
from bhp_ctms.permissions import Permissions
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.models import Study
from bhp_ctms.studies.services import study_access

# Stands for a participant's study ID in a link made once for a whole page.
_PARTICIPANT = "__participant__"
_STATUSES = {status.value: status for status in ParticipantStatus}


def _status_choices() -> list[SelectChoice]:
    return [SelectChoice("", "All statuses")] + [
        SelectChoice(status.value, status.label) for status in ParticipantStatus
    ]


class _StatusFilterForm(Form):
    status = SelectField("Status", choices=_status_choices(), default="", validate_choice=False)

    def validate_status(self, field: SelectField) -> None:
        if field.data and field.data not in _STATUSES:
            raise ValidationError("Choose a status from the list")

    @property
    def chosen_status(self) -> ParticipantStatus | None:
        """The status to filter by, if one was chosen and it is valid."""
        if self.status.errors:
            return None
        return _STATUSES.get(self.status.data or "")


class ParticipantFilterForm(_StatusFilterForm):
    q = StringField(
        "Study ID",
        description="All or part of a study ID",
        filters=[strip_whitespace],
        validators=[Length(max=64, message="Study ID must be 64 characters or fewer")],
    )


class GridFilterForm(_StatusFilterForm):
    overdue = BooleanField("Only participants with an overdue visit")


def participant_link(request: Any, study: Study) -> str:
    """The address of a participant's page with :data:`_PARTICIPANT` in place of their
    study ID: made once, so a page listing thousands of participants stays fast."""
    return str(request.route_path("participant", code=study.code, participant=_PARTICIPANT))


class WorklistViews:
    """Pages of a study's participants: the user's scope decides which sites' rows."""

    def __init__(self, context: Any, request: Any) -> None:
        self.context = context
        self.request = request
        self.study: Study = context.study
        self.scope = SiteScope.for_memberships(self.study.id, request.memberships)
        self.today = utc_today()

    def page(self, **values: Any) -> dict[str, Any]:
        return {
            "study": self.study,
            "access": study_access(self.request, self.study.id),
            "all_sites": self.scope.all_sites,
            "participant_link": participant_link(self.request, self.study),
            "participant_placeholder": _PARTICIPANT,
            **values,
        }

    def filtered(self, form: Form, valid: bool, **values: Any) -> dict[str, Any]:
        """The page with its filters; a 400 status when one of them could not be used
        (the page then shows what the others select)."""
        if not valid:
            self.request.response.status_int = 400
        return self.page(form=form, **values)


class SiteWorklistViews(WorklistViews):
    """Pages of one site's participants. Their context factory
    (:func:`~bhp_ctms.sites.resources.SiteFactory`) has already made a
    site outside the user's scope a 404."""

    def __init__(self, context: Any, request: Any) -> None:
        super().__init__(context, request)
        self.site: Site = context.site

    def page(self, **values: Any) -> dict[str, Any]:
        return super().page(site=self.site, **values)

    def visible_counts(self) -> list[tuple[ParticipantCounts, str]]:
        """The counts other domains keep (open queries...) that the user may see at
        this site, each with the link to the site's page of them."""
        return [
            (
                counts,
                str(
                    self.request.route_path(
                        counts.route_name, code=self.study.code, site=self.site.code
                    )
                ),
            )
            for counts in registered_counts(self.request.registry)
            if self.request.has_permission(counts.permission)
        ]


@view_defaults(
    route_name="participants",
    renderer="participants/list.html",
    permission=Permissions.PARTICIPANTS_VIEW,
)
class ParticipantListViews(WorklistViews):
    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        form = ParticipantFilterForm(self.request.GET)
        valid = form.validate()
        listing = participant_list(
            self.request.db,
            self.scope,
            self.study,
            search="" if form.q.errors else (form.q.data or ""),
            status=form.chosen_status,
        )
        return self.filtered(
            form,
            valid,
            participants=listing,
            is_filtered=bool(form.q.data or form.status.data),
        )


@view_defaults(
    route_name="screening_log",
    renderer="participants/screening_log.html",
    permission=Permissions.PARTICIPANTS_VIEW,
)
class ScreeningLogViews(WorklistViews):
    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(log=screening_log(self.request.db, self.scope, self.study))


@view_defaults(
    route_name="study_dashboard",
    renderer="participants/study_dashboard.html",
    permission=Permissions.PARTICIPANTS_VIEW,
)
class StudyDashboardViews(WorklistViews):
    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(
            dashboard=study_dashboard(self.request.db, self.scope, self.study, self.today)
        )


@view_defaults(
    route_name="site_grid",
    renderer="participants/site_grid.html",
    permission=Permissions.PARTICIPANTS_VIEW,
)
class SiteGridViews(SiteWorklistViews):
    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        form = GridFilterForm(self.request.GET)
        valid = form.validate()
        grid = site_grid(
            self.request.db,
            self.scope,
            self.site,
            status=form.chosen_status,
            overdue_only=bool(form.overdue.data),
            today=self.today,
            counts=self.visible_counts(),
        )
        legend = [(state, CELL_ABBREVIATIONS[state], cell_class(state)) for state in VisitState]
        return self.filtered(
            form,
            valid,
            grid=grid,
            legend=legend,
            not_in_version=NOT_IN_VERSION,
            is_filtered=bool(form.status.data or form.overdue.data),
        )


@view_defaults(
    route_name="site_dashboard",
    renderer="participants/site_dashboard.html",
    permission=Permissions.PARTICIPANTS_VIEW,
)
class SiteDashboardViews(SiteWorklistViews):
    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(
            dashboard=site_dashboard(
                self.request.db, self.scope, self.site, self.today, self.visible_counts()
            ),
            due_soon_days=DUE_SOON_DAYS,
            can_register=self.request.has_permission(Permissions.PARTICIPANTS_REGISTER),
        )
