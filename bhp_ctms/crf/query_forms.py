"""Forms of the query pages: raising a query, and each action in its thread.

The forms of one query page share the page, so each has its own prefix (its fields'
ids and names start ``answer-``, ``close-``...) and posts its own ``action``.
"""

from __future__ import annotations

from typing import Any

from wtforms import SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from bhp_ctms.crf.models import QueryOrigin, QueryStatus
from bhp_ctms.crf.queries import MAXIMUM_TEXT_LENGTH
from bhp_ctms.forms import Form, strip_whitespace


def _text(label: str, hint: str = "", *, required: str = "") -> TextAreaField:
    validators: list[Any] = [
        Length(
            max=MAXIMUM_TEXT_LENGTH,
            message=f"{label} must be {MAXIMUM_TEXT_LENGTH:,} characters or fewer",
        )
    ]
    validators.insert(0, DataRequired(message=required) if required else Optional())
    return TextAreaField(label, description=hint, filters=[strip_whitespace], validators=validators)


class RaiseQueryForm(Form):
    text = _text(
        "Your question",
        "Say what looks wrong and what the site should check. The site sees this text.",
        required="Enter your question",
    )


class AnswerForm(Form):
    text = _text(
        "Your answer",
        "Say what you checked and what you found. If the value was wrong, correct it on the "
        "form as well.",
        required="Enter your answer",
    )


class CloseForm(Form):
    text = _text("Note (optional)", "For example, why the answer settles the query.")


class ReopenForm(Form):
    text = _text(
        "Why are you re-opening the query?",
        "The site sees this text.",
        required="Enter why the query is re-opened",
    )


class CommentForm(Form):
    text = _text(
        "Note",
        "A note in the thread that leaves the query open, for example that the source "
        "document is being looked for.",
        required="Enter your note",
    )


# The forms of a query page by the action each posts, in the order they are shown.
ACTION_FORMS: dict[str, type[Form]] = {
    "answer": AnswerForm,
    "comment": CommentForm,
    "close": CloseForm,
    "reopen": ReopenForm,
}

STATUS_FILTERS = [
    SelectChoice("", "Open or answered"),
    SelectChoice(QueryStatus.OPEN.value, "Open"),
    SelectChoice(QueryStatus.ANSWERED.value, "Answered"),
    SelectChoice(QueryStatus.CLOSED.value, "Closed"),
]
ORIGIN_FILTERS = [
    SelectChoice("", "Any"),
    SelectChoice(QueryOrigin.SYSTEM.value, "Edit checks"),
    SelectChoice(QueryOrigin.MANUAL.value, "People"),
]


class WorklistFilterForm(Form):
    """The worklist's filters, read from the query string."""

    status = SelectField("Status", choices=STATUS_FILTERS, default="", validate_choice=False)
    origin = SelectField("Raised by", choices=ORIGIN_FILTERS, default="", validate_choice=False)

    def validate_status(self, field: SelectField) -> None:
        if field.data and field.data not in {status.value for status in QueryStatus}:
            raise ValidationError("Choose a status from the list")

    def validate_origin(self, field: SelectField) -> None:
        if field.data and field.data not in {origin.value for origin in QueryOrigin}:
            raise ValidationError("Choose who raised the queries from the list")

    @property
    def statuses(self) -> list[QueryStatus]:
        """The statuses to list: the one chosen, else those still waiting for someone."""
        if self.status.data and not self.status.errors:
            return [QueryStatus(self.status.data)]
        return [QueryStatus.OPEN, QueryStatus.ANSWERED]

    @property
    def query_origin(self) -> QueryOrigin | None:
        if self.origin.data and not self.origin.errors:
            return QueryOrigin(self.origin.data)
        return None

    @property
    def is_filtered(self) -> bool:
        return bool(self.status.data or self.origin.data)
