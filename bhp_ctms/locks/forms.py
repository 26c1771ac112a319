"""The lock and unlock forms: a reason, and the data manager's e-signature (password,
and security code for a user with a second factor). The service checks the password;
these forms check that each field was given."""

from __future__ import annotations

from wtforms import TextAreaField
from wtforms.validators import InputRequired, Length

from bhp_ctms.accounts.forms import Reauthenticating, reauthentication_fields
from bhp_ctms.forms import strip_whitespace

REASON_LENGTH = 2000


class LockForm(Reauthenticating):
    reason = TextAreaField(
        "Why are these data locked?",
        description=(
            "For example: database lock for the final analysis, or all queries resolved and "
            "the casebook signed. It is kept in the audit trail."
        ),
        filters=[strip_whitespace],
        validators=[
            InputRequired(message="Enter why these data are locked"),
            Length(max=REASON_LENGTH, message=f"Enter at most {REASON_LENGTH} characters"),
        ],
    )
    password, code = reauthentication_fields(
        "lock", "The password you log in with: it signs the lock as yours"
    )


class UnlockForm(Reauthenticating):
    reason = TextAreaField(
        "Why must these data be unlocked?",
        description=(
            "For example: a query raised after the lock showed a transcription error. It is "
            "kept in the audit trail, and the data can change again once unlocked."
        ),
        filters=[strip_whitespace],
        validators=[
            InputRequired(message="Enter why these data must be unlocked"),
            Length(max=REASON_LENGTH, message=f"Enter at most {REASON_LENGTH} characters"),
        ],
    )
    password, code = reauthentication_fields(
        "unlock", "The password you log in with: it signs the unlock as yours"
    )
