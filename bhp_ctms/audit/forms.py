"""The audit trail's forms: recording a signed review."""

from __future__ import annotations

from typing import Any

from wtforms import BooleanField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, ValidationError

from bhp_ctms.audit.reviews import SIGNATURE_MEANING
from bhp_ctms.forms import DateInputField, Form, strip_whitespace
from bhp_ctms.sites.models import Site


class ReviewForm(Form):
    site_id = SelectField("Site", choices=[])
    participant_id = StringField(
        "Participant ID (optional)",
        description="To review only one participant's events",
        filters=[strip_whitespace],
    )
    form_key = StringField(
        "Form (optional)",
        description="A CRF's key, such as vital_signs, to review only that form's events",
        filters=[strip_whitespace],
        validators=[Length(max=64, message="A form key has at most 64 characters")],
    )
    period_start = DateInputField(
        "Start of the period",
        description="For example, 1 3 2025",
        validators=[DataRequired(message="Enter the start of the period you reviewed")],
    )
    period_end = DateInputField(
        "End of the period",
        description="Events up to the end of this day (UTC) are included",
        validators=[DataRequired(message="Enter the end of the period you reviewed")],
    )
    findings = TextAreaField(
        "Findings",
        description="What you checked and what you found, including any queries raised",
        validators=[DataRequired(message="Enter your findings")],
    )
    password = PasswordField(
        "Your password",
        description="Your electronic signature: the password you log in with",
        validators=[InputRequired(message="Enter your password to sign the review")],
    )
    confirm = BooleanField(
        SIGNATURE_MEANING,
        validators=[DataRequired(message="Confirm that you sign off these findings")],
    )

    def __init__(self, formdata: Any = None, *, sites: list[Site], all_sites: bool) -> None:
        super().__init__(formdata)
        choices = [("", "All sites")] if all_sites else []
        choices += [(str(site.id), f"{site.code} \N{EN DASH} {site.name}") for site in sites]
        self.site_id.choices = choices

    def validate_participant_id(self, field: Any) -> None:
        # An ID beyond nine digits would not fit the database's integer column.
        if field.data and not (field.data.isdigit() and len(field.data) <= 9):
            raise ValidationError("Enter the participant ID as a number, like 12")

    def validate_period_end(self, field: Any) -> None:
        start = self.period_start.data
        if start is not None and field.data is not None and field.data < start:
            raise ValidationError("The end of the period must be the same as or after its start")
