"""The form a site PI signs with: what their signature means, and their password (and
TOTP code) again. The service checks the password and code; this form only that each
was given."""

from __future__ import annotations

from typing import Any

from wtforms import HiddenField, PasswordField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, ValidationError

from bhp_ctms.crf.models import SignatureMeaning
from bhp_ctms.forms import Form, strip_whitespace


class SignForm(Form):
    """Signing a form entry or a casebook. ``shown_sha256`` carries the hash of the
    content the page showed, so a change made while the signer read it is caught."""

    meaning = RadioField(
        "What your signature means",
        choices=[SelectChoice(meaning.value, meaning.label) for meaning in SignatureMeaning],
        invalid_choice_message="Choose what your signature means",
    )
    password = PasswordField(
        "Your password",
        description="Your electronic signature: the password you log in with",
        validators=[InputRequired(message="Enter your password to sign")],
    )
    code = StringField(
        "Security code",
        description="The 6-digit code your authenticator app shows now",
        filters=[strip_whitespace],
        validators=[Length(max=10, message="The security code is 6 digits")],
    )
    shown_sha256 = HiddenField()

    def __init__(self, formdata: Any = None, *, second_factor: bool, **kwargs: Any) -> None:
        super().__init__(formdata, **kwargs)
        self.second_factor = second_factor
        if not second_factor:
            del self.code

    def validate_code(self, field: StringField) -> None:
        if self.second_factor and not field.data:
            raise ValidationError("Enter the security code from your authenticator app")

    @property
    def chosen_meaning(self) -> SignatureMeaning:
        return SignatureMeaning(self.meaning.data)

    def forget_secrets(self) -> None:
        """A password or code is never sent back to the browser."""
        self.password.data = ""
        if self.second_factor:
            self.code.data = ""
