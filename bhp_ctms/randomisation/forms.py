"""The randomisation pages' forms. The services check what only they can (the password,
the list's rows); these forms check that each field was given."""

from __future__ import annotations

from typing import Any

from wtforms import FileField, IntegerField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, ValidationError

from bhp_ctms.accounts.forms import Reauthenticating, reauthentication_fields
from bhp_ctms.forms import Form, strip_whitespace

REASON_LENGTH = 2000


class RandomiseForm(Form):
    """Randomising asks only for the coordinator's confirmation (the button)."""


class UnblindForm(Reauthenticating):
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
    password, code = reauthentication_fields(
        "unblind", "The password you log in with: it confirms it is you who asks"
    )


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
