"""Log-in and account security forms."""

from __future__ import annotations

from typing import Any

from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, ValidationError

from bhp_ctms.accounts.services import password_problems
from bhp_ctms.forms import Form, strip_whitespace


class LoginForm(Form):
    username = StringField(
        "User name",
        filters=[strip_whitespace],
        validators=[DataRequired(message="Enter your user name"), Length(max=64)],
    )
    password = PasswordField("Password", validators=[InputRequired(message="Enter your password")])


class SecondFactorForm(Form):
    code = StringField(
        "Security code",
        filters=[strip_whitespace],
        validators=[DataRequired(message="Enter the 6-digit code from your authenticator app")],
    )

    def validate_code(self, field: Any) -> None:
        digits = (field.data or "").replace(" ", "")
        if not (digits.isdigit() and len(digits) == 6):
            raise ValidationError("Enter the 6 digits shown in your authenticator app")


class DisableSecondFactorForm(SecondFactorForm):
    password = PasswordField(
        "Your password", validators=[InputRequired(message="Enter your password")]
    )


class ChangePasswordForm(Form):
    current_password = PasswordField(
        "Current password", validators=[InputRequired(message="Enter your current password")]
    )
    new_password = PasswordField(
        "New password",
        description="At least 12 characters. A phrase of unrelated words is easy to "
        "remember and hard to guess.",
        validators=[InputRequired(message="Enter a new password")],
    )
    confirm_password = PasswordField(
        "Confirm new password",
        validators=[
            InputRequired(message="Enter the new password again"),
            EqualTo("new_password", message="The two new passwords are not the same"),
        ],
    )

    def __init__(self, formdata: Any = None, *, user: Any, **kwargs: Any) -> None:
        super().__init__(formdata, **kwargs)
        self.user = user

    def validate_new_password(self, field: Any) -> None:
        problems = password_problems(
            field.data or "", username=self.user.username, full_name=self.user.full_name
        )
        if problems:
            raise ValidationError(problems[0])
