"""Forms for adding, changing and removing sites, and granting and revoking their staff.

Fields are made by small functions so each form declares them in the order of its
page: WTForms lists errors in declaration order, and the error summary follows it.
"""

from __future__ import annotations

from typing import Any

from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

from bhp_ctms.forms import DateInputField, Form, strip_whitespace
from bhp_ctms.permissions import SITE_ROLES, Role
from bhp_ctms.sites.models import SiteStatus
from bhp_ctms.sites.services import SiteDetails, status_change_problem

MAXIMUM_RECRUITMENT_TARGET = 100_000
MAXIMUM_REASON_LENGTH = 2000


def _site_code() -> StringField:
    return StringField(
        "Site code",
        description="A short code, unique in this study, for example NTH. "
        "It cannot be changed later.",
        filters=[strip_whitespace],
        validators=[
            DataRequired(message="Enter a site code"),
            Length(max=32, message="Site code must be 32 characters or fewer"),
            Regexp(
                r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
                message="Site code must be letters, digits, dashes or underscores, "
                "starting with a letter or digit",
            ),
        ],
    )


def _site_name() -> StringField:
    return StringField(
        "Site name",
        filters=[strip_whitespace],
        validators=[
            DataRequired(message="Enter the site name"),
            Length(max=200, message="Site name must be 200 characters or fewer"),
        ],
    )


def _principal_investigator() -> StringField:
    return StringField(
        "Principal investigator (PI)",
        description="The PI's full name. Leave empty if not known yet.",
        filters=[strip_whitespace],
        validators=[
            Length(max=200, message="Principal investigator must be 200 characters or fewer")
        ],
    )


def _recruitment_target() -> IntegerField:
    return IntegerField(
        "Recruitment target",
        description="How many participants the site aims to recruit. Leave empty if not set.",
        invalid_value_message="Recruitment target must be a whole number, like 60",
        validators=[
            Optional(),
            NumberRange(
                min=1,
                max=MAXIMUM_RECRUITMENT_TARGET,
                message=f"Recruitment target must be from 1 to {MAXIMUM_RECRUITMENT_TARGET:,}",
            ),
        ],
    )


def _activation_date() -> DateInputField:
    return DateInputField(
        "Activation date",
        description="The date the site opened to recruitment, for example 12 3 2025. "
        "Leave it empty until then: opening the site sets today's date.",
    )


def _reason(label: str, hint: str, required_message: str = "") -> TextAreaField:
    validators: list[Any] = [
        Length(
            max=MAXIMUM_REASON_LENGTH,
            message=f"{label} must be {MAXIMUM_REASON_LENGTH:,} characters or fewer",
        )
    ]
    if required_message:
        validators.insert(0, DataRequired(message=required_message))
    return TextAreaField(label, description=hint, filters=[strip_whitespace], validators=validators)


class SiteDetailsMixin:
    name: Any
    principal_investigator: Any
    recruitment_target: Any
    activated_on: Any

    def details(self) -> SiteDetails:
        return SiteDetails(
            name=self.name.data,
            principal_investigator=self.principal_investigator.data or "",
            recruitment_target=self.recruitment_target.data,
            activated_on=self.activated_on.data,
        )


class NewSiteForm(SiteDetailsMixin, Form):
    code = _site_code()
    name = _site_name()
    principal_investigator = _principal_investigator()
    recruitment_target = _recruitment_target()
    activated_on = _activation_date()

    def __init__(self, formdata: Any = None, *, study_id: int, **kwargs: Any) -> None:
        super().__init__(formdata, **kwargs)
        self.study_id = study_id

    def validate_code(self, field: Any) -> None:
        problem = self.services["site_service"].code_problem(self.study_id, field.data)
        if problem:
            raise ValidationError(problem)


class EditSiteForm(SiteDetailsMixin, Form):
    name = _site_name()
    principal_investigator = _principal_investigator()
    status = SelectField(
        "Status",
        choices=[SelectChoice(status.value, status.label) for status in SiteStatus],
        validate_choice=False,
    )
    recruitment_target = _recruitment_target()
    activated_on = _activation_date()
    reason = _reason(
        "Reason for change",
        "Kept in the audit trail with the change. Required when the site is closed.",
    )

    def __init__(self, formdata: Any = None, *, current_status: SiteStatus, **kwargs: Any) -> None:
        super().__init__(formdata, **kwargs)
        self.current_status = current_status
        # Only the statuses the site can go to are offered.
        self.status.choices = [
            SelectChoice(status.value, status.label)
            for status in SiteStatus
            if status_change_problem(current_status, status) is None
        ]

    @property
    def new_status(self) -> SiteStatus:
        return SiteStatus(self.status.data)

    def validate_status(self, field: Any) -> None:
        if field.data not in {status.value for status in SiteStatus}:
            raise ValidationError("Choose the site's status from the list")
        problem = status_change_problem(self.current_status, SiteStatus(field.data))
        if problem:
            raise ValidationError(problem)


class DeleteSiteForm(Form):
    reason = _reason(
        "Reason for deleting the site",
        "Kept in the audit trail.",
        required_message="Enter a reason for deleting the site",
    )


def role_choices() -> list[SelectChoice]:
    """Site roles first, then the other roles a person can hold at one site.

    CTU admin is not offered: it is held for all studies, and held at a site it would
    let its holder manage every site of the study.
    """
    site_roles = [role for role in Role if role in SITE_ROLES]
    others = [role for role in Role if role not in SITE_ROLES and role is not Role.CTU_ADMIN]
    return [SelectChoice(role.value, role.label) for role in site_roles + others]


class GrantRoleForm(Form):
    username = StringField(
        "User name",
        description="The user name they log in with.",
        filters=[strip_whitespace],
        validators=[
            DataRequired(message="Enter the user name of the person to give a role"),
            Length(max=64, message="User name must be 64 characters or fewer"),
        ],
    )
    role = SelectField("Role", choices=role_choices(), validate_choice=False)

    @property
    def new_role(self) -> Role:
        return Role(self.role.data)

    def validate_role(self, field: Any) -> None:
        if field.data not in {choice.value for choice in role_choices()}:
            raise ValidationError("Choose a role from the list")


class RevokeRoleForm(Form):
    reason = _reason(
        "Reason for revoking the role",
        "Kept in the audit trail.",
        required_message="Enter a reason for revoking the role",
    )
