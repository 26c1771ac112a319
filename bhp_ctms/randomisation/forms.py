"""The randomisation pages' forms. The services check what only they can (the password,
the list's rows); these forms check that each field was given."""

from __future__ import annotations

from typing import Any

from wtforms import FileField, IntegerField, PasswordField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, ValidationError

from bhp_ctms.forms import Form, strip_whitespace

REASON_LENGTH = 2000


class RandomiseForm(Form):
    """Randomising asks only for the coordinator's confirmation (the button)."""


class UnblindForm(Form):
    reason = TextAreaField(
        "Why must the participant's arm be known now?",
        description=(
            "For example, the treatment of a serious adverse event depends on it. The trials "
            "unit is told, with this reason."
        ),
        filters=[strip_whitespace],
        validators=[
            InputRequired(message="Enter why the participant's arm must be known"),
            Length(max=REASON_LENGTH, message=f"Enter at most {REASON_LENGTH} characters"),
        ],
    )
    password = PasswordField(
        "Your password",
        description="The password you log in with: it confirms it is you who asks",
        validators=[InputRequired(message="Enter your password to unblind")],
    )
    code = StringField(
        "Security code",
        description="The 6-digit code your authenticator app shows now",
        filters=[strip_whitespace],
        validators=[Length(max=10, message="The security code is 6 digits")],
    )

    def __init__(self, formdata: Any = None, *, second_factor: bool, **kwargs: Any) -> None:
        super().__init__(formdata, **kwargs)
        self.second_factor = second_factor
        if not second_factor:
            del self.code

    def validate_code(self, field: StringField) -> None:
        if self.second_factor and not field.data:
            raise ValidationError("Enter the security code from your authenticator app")

    def forget_secrets(self) -> None:
        """A password or code is never sent back to the browser."""
        self.password.data = ""
        if self.second_factor:
            self.code.data = ""


class InvalidateForm(Form):
    reason = TextAreaField(
        "Why was this randomisation done in error?",
        description="For example, the participant was randomised before their consent was "
        "recorded. The list position stays used.",
        filters=[strip_whitespace],
        validators=[
            InputRequired(message="Enter why the randomisation was done in error"),
            Length(max=REASON_LENGTH, message=f"Enter at most {REASON_LENGTH} characters"),
        ],
    )


class GenerateListForm(Form):
    seed = StringField(
        "Seed",
        description="Any text or number you keep: the same seed always gives the same list",
        filters=[strip_whitespace],
        validators=[
            InputRequired(message="Enter the seed the list is generated from"),
            Length(max=200, message="Enter at most 200 characters"),
        ],
    )
    per_stratum = IntegerField(
        "Allocations in each stratum",
        description="Permuted blocks complete their last block, so a stratum may get a few more",
        validators=[
            InputRequired(message="Enter how many allocations each stratum needs"),
            NumberRange(min=1, max=10_000, message="Enter a number from 1 to 10,000"),
        ],
    )

    def __init__(self, formdata: Any = None, *, needs_size: bool = True, **kwargs: Any) -> None:
        super().__init__(formdata, **kwargs)
        if not needs_size:
            del self.per_stratum


class UploadListForm(Form):
    file = FileField(
        "Allocation list (CSV)",
        description="Columns stratum, sequence, arm and kit_code, with a header row",
    )

    def validate_file(self, field: FileField) -> None:
        if not getattr(field.data, "file", None):
            raise ValidationError("Choose the CSV file of the allocation list")
