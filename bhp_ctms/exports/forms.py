"""The datasets page's forms: taking an interim snapshot, and exporting a snapshot."""

from __future__ import annotations

from typing import Any

from wtforms import BooleanField, SelectMultipleField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from bhp_ctms.exports.bundles import FORMAT_LABELS, FORMATS
from bhp_ctms.forms import Form, strip_whitespace

DESCRIPTION_LENGTH = 2000
TOO_LONG = f"Enter at most {DESCRIPTION_LENGTH} characters"


class InterimSnapshotForm(Form):
    description = TextAreaField(
        "What is the snapshot for?",
        description=(
            "For example: the data monitoring committee meeting of 12 Mar 2026. It is shown "
            "with the snapshot and in every bundle made from it."
        ),
        filters=[strip_whitespace],
        validators=[
            InputRequired(message="Enter what the interim snapshot is for"),
            Length(
                max=DESCRIPTION_LENGTH, message=f"Enter at most {DESCRIPTION_LENGTH} characters"
            ),
        ],
    )


class ExportForm(Form):
    """One snapshot's export form; its fields are prefixed with the snapshot's id, so
    that each snapshot on the page has its own."""

    formats = SelectMultipleField(
        "Formats",
        choices=[SelectChoice(name, FORMAT_LABELS[name]) for name in FORMATS],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        validators=[InputRequired(message="Choose at least one format")],
    )
    labels = BooleanField("CSV: a label column beside each coded value")
    audit_trail = BooleanField("ODM: the full audit trail of every value, and the signatures")
    unblinded = BooleanField(
        "Unblinded: include each participant's arm",
        description="Only for the unblinded statistician. Leave unticked for a blinded bundle.",
    )

    def __init__(self, formdata: Any = None, *, snapshot_id: int, sees_arms: bool, **kwargs: Any):
        super().__init__(formdata, prefix=f"snapshot-{snapshot_id}", **kwargs)
        self.snapshot_id = snapshot_id
        if not sees_arms:
            del self.unblinded
