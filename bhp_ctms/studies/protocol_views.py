"""A study's protocol: its versions, each version's schedule and criteria, and what
changes between two versions (with the existing entries each change would affect)."""

from __future__ import annotations

import dataclasses
from datetime import date
from enum import StrEnum
from typing import Any

from pyramid.httpexceptions import HTTPNotFound
from pyramid.view import view_config
from wtforms import SelectField
from wtforms.validators import ValidationError

from bhp_ctms.db import utc_today
from bhp_ctms.forms import Form
from bhp_ctms.participants.migration import ChangeImpact, amendment_impact, participants_on_versions
from bhp_ctms.permissions import Permissions
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.diff import DefinitionChange
from bhp_ctms.studies.loading import protocol_changes
from bhp_ctms.studies.models import ProtocolVersion, Study
from bhp_ctms.studies.services import (
    current_protocol_version,
    protocol_definition,
    protocol_versions,
    study_access,
)

# The areas of a definition, in the order their changes are shown, with headings.
AREAS = (
    ("study", "Study"),
    ("arm", "Arms"),
    ("event", "Events"),
    ("form", "Forms"),
    ("criterion", "Eligibility criteria"),
    ("consent", "Consent documents"),
    ("randomisation", "Randomisation"),
)


class VersionState(StrEnum):
    IN_EFFECT = "in_effect"
    FUTURE = "future"
    SUPERSEDED = "superseded"

    @property
    def label(self) -> str:
        return {"in_effect": "In effect now", "future": "Future", "superseded": "Superseded"}[
            self.value
        ]


def version_state(
    version: ProtocolVersion, current: ProtocolVersion | None, today: date
) -> VersionState:
    """Whether a version is the one in effect, one still to take effect, or superseded."""
    if current is not None and version.id == current.id:
        return VersionState.IN_EFFECT
    if version.effective_on > today:
        return VersionState.FUTURE
    return VersionState.SUPERSEDED


class ProtocolViews:
    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        self.study: Study = context.study
        self.versions = protocol_versions(request.db, self.study.id)
        self.scope = SiteScope.for_memberships(self.study.id, request.memberships)
        self.today = utc_today()
        self.current = current_protocol_version(request.db, self.study.id, self.today)

    @property
    def unblinded(self) -> bool:
        """Whether the user holds an unblinded role in the study."""
        access = study_access(self.request, self.study.id)
        return access is not None and any(not role.is_blinded for role in access.roles)

    def page(self, **values: Any) -> dict[str, Any]:
        return {
            "study": self.study,
            "access": study_access(self.request, self.study.id),
            "versions": self.versions,
            "all_sites": self.scope.all_sites,
            **values,
        }

    def state(self, version: ProtocolVersion) -> VersionState:
        return version_state(version, self.current, self.today)


@view_config(
    route_name="protocol_versions",
    renderer="studies/protocol_versions.html",
    request_method="GET",
    permission=Permissions.STUDIES_VIEW,
)
class ProtocolVersionsView(ProtocolViews):
    def __call__(self) -> dict[str, Any]:
        counts = participants_on_versions(self.request.db, self.scope)
        rows = [
            {
                "version": version,
                "state": self.state(version),
                "participants": counts.get(version.id, 0),
            }
            for version in self.versions
        ]
        return self.page(rows=rows)


@view_config(
    route_name="protocol_version",
    renderer="studies/protocol_version.html",
    request_method="GET",
    permission=Permissions.STUDIES_VIEW,
)
class ProtocolVersionView(ProtocolViews):
    def __call__(self) -> dict[str, Any]:
        raw = self.request.matchdict["version"]
        version = next((version for version in self.versions if str(version.number) == raw), None)
        if version is None:
            raise HTTPNotFound()
        definition = protocol_definition(version)
        counts = participants_on_versions(self.request.db, self.scope)
        return self.page(
            version=version,
            definition=definition,
            state=self.state(version),
            participants=counts.get(version.id, 0),
            scheduled=[event for event in definition.events if event.scheduled],
            repeating=[event for event in definition.events if event.repeating],
            inclusion=[c for c in definition.criteria if c.kind == "inclusion"],
            exclusion=[c for c in definition.criteria if c.kind == "exclusion"],
        )


class CompareVersionsForm(Form):
    """The two versions compared: ``?from=N&to=M`` (version numbers)."""

    from_version = SelectField("Compare version", name="from", validate_choice=False)
    to_version = SelectField("with version", name="to", validate_choice=False)

    def __init__(self, formdata: Any = None, *, versions: list[ProtocolVersion], **kwargs: Any):
        super().__init__(formdata, **kwargs)
        self.by_number = {str(version.number): version for version in versions}
        choices = [
            (str(version.number), f"{version.label} (version {version.number})")
            for version in versions
        ]
        self.from_version.choices = choices
        self.to_version.choices = choices

    def _version(self, field: Any, which: str) -> None:
        if not field.data:
            raise ValidationError(f"Choose the version to compare {which}")
        if field.data not in self.by_number:
            numbers = ", ".join(self.by_number)
            raise ValidationError(
                f"There is no protocol version {field.data} of this study to compare {which}:"
                f" choose one of {numbers}"
            )

    def validate_from_version(self, field: Any) -> None:
        self._version(field, "from")

    def validate_to_version(self, field: Any) -> None:
        self._version(field, "to")
        if field.data == self.from_version.data:
            raise ValidationError("Choose two different versions to compare")

    @property
    def old(self) -> ProtocolVersion:
        return self.by_number[self.from_version.data]

    @property
    def new(self) -> ProtocolVersion:
        return self.by_number[self.to_version.data]


# Any method: a POST is answered like a GET, rather than left to match the version
# route (``/protocol/diff/``) through the not-found view's added slash.
@view_config(
    route_name="protocol_diff",
    renderer="studies/protocol_diff.html",
    permission=Permissions.STUDIES_VIEW,
)
class ProtocolDiffView(ProtocolViews):
    def __call__(self) -> dict[str, Any]:
        if len(self.versions) < 2:
            return self.page(form=None, groups=[])
        params = self.request.GET.copy()
        params.setdefault("from", str(self.versions[-2].number))
        params.setdefault("to", str(self.versions[-1].number))
        form = CompareVersionsForm(params, versions=self.versions)
        if not form.validate():
            self.request.response.status_int = 400
            return self.page(form=form, groups=[])
        old, new = form.old, form.new
        changes = protocol_changes(protocol_definition(old), protocol_definition(new))
        if not self.unblinded:
            changes = [concealed(change) for change in changes]
        impacts = amendment_impact(self.request.db, self.scope, old, changes)
        on_old = participants_on_versions(self.request.db, self.scope).get(old.id, 0)
        return self.page(
            form=form,
            old=old,
            new=new,
            groups=_grouped(impacts),
            changed=bool(changes),
            participants_on_old=on_old,
        )


def concealed(change: DefinitionChange) -> DefinitionChange:
    """A change as a blinded role may see it: which randomisation setting changed, but
    not its values (block sizes would let a site predict allocations)."""
    if change.area != "randomisation":
        return change
    return dataclasses.replace(
        change,
        description=f"Randomisation setting {change.code} {change.kind} "
        "(its values are shown to unblinded roles only)",
    )


def _grouped(impacts: list[ChangeImpact]) -> list[tuple[str, list[ChangeImpact]]]:
    """The changes by area, in the order areas are shown; empty areas left out."""
    return [
        (heading, in_area)
        for area, heading in AREAS
        if (in_area := [impact for impact in impacts if impact.change.area == area])
    ]
