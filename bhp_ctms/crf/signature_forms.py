"""The form a site PI signs with: what their signature means, and their password (and
TOTP code) again. The service checks the password and code; this form only that each
was given."""

from __future__ import annotations

from wtforms import HiddenField, RadioField
from wtforms.fields.choices import SelectChoice

from bhp_ctms.accounts.forms import Reauthenticating, reauthentication_fields
from bhp_ctms.crf.models import SignatureMeaning


class SignForm(Reauthenticating):
    """Signing a form entry or a casebook. ``shown_sha256`` carries the hash of the
    content the page showed, so a change made while the signer read it is caught."""

    meaning = RadioField(
        "What your signature means",
        choices=[SelectChoice(meaning.value, meaning.label) for meaning in SignatureMeaning],
        invalid_choice_message="Choose what your signature means",
    )
    password, code = reauthentication_fields(
        "sign", "Your electronic signature: the password you log in with"
    )
    shown_sha256 = HiddenField()

    @property
    def chosen_meaning(self) -> SignatureMeaning:
        return SignatureMeaning(self.meaning.data)
