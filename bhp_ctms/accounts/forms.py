"""Log-in and account security forms."""

from __future__ import annotations

from typing import Any

from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, ValidationError

from bhp_ctms.accounts.services import Reauthentication, password_problems
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


def reauthentication_fields(doing: str, hint: str) -> tuple[Any, Any]:
    """The password and security-code fields of a form that asks a user to prove
    again it is them before ``doing`` something serious ("sign", "unblind"), the
    password field with ``hint``. Declared in the form's own body (``password, code =
    reauthentication_fields(...)``), so they keep their place among its fields and in
    its error summary."""
    password = PasswordField(
        "Your password",
        description=hint,
        validators=[InputRequired(message=f"Enter your password to {doing}")],
    )
    code = StringField(
        "Security code",
        description="The 6-digit code your authenticator app shows now",
        filters=[strip_whitespace],
        validators=[Length(max=10, message="The security code is 6 digits")],
    )
    return password, code


class Reauthenticating(Form):
    """The behaviour of a form with :func:`reauthentication_fields`: the code field
    only for a user with a second factor, and secrets never sent back."""

    password: PasswordField
    code: StringField

    def __init__(self, formdata: Any = None, *, second_factor: bool, **kwargs: Any) -> None:
        super().__init__(formdata, **kwargs)
        self.second_factor = second_factor
        if not second_factor:
            del self.code

    def validate_code(self, field: StringField) -> None:
        if self.second_factor and not field.data:
            raise ValidationError("Enter the security code from your authenticator app")

    def proof(self) -> Reauthentication:
        """What the user typed, for :meth:`AccountService.reauthenticate`."""
        code = (self.code.data or "") if self.second_factor else ""
        return Reauthentication(password=self.password.data or "", code=code)

    def forget_secrets(self) -> None:
        """A password or code is never sent back to the browser."""
        self.password.data = ""
        if self.second_factor:
            self.code.data = ""
