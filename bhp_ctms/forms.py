"""The base form and validators shared by every domain's forms."""

from __future__ import annotations

from datetime import date
from typing import Any

import wtforms
from wtforms import Field
from wtforms.utils import unset_value
from wtforms.validators import StopValidation


class Form(wtforms.Form):
    """A WTForms form that knows how to feed the accessible error summary.

    Services a form validates against are passed as keyword arguments and kept on
    the form, so ``validate_<field>`` methods can use them.
    """

    def __init__(self, formdata: Any = None, **kwargs: Any) -> None:
        self.services = {
            name: kwargs.pop(name) for name in list(kwargs) if name.endswith("_service")
        }
        super().__init__(formdata, **kwargs)
        self.form_errors_extra: list[str] = []

    def add_form_error(self, message: str) -> None:
        """An error about the form as a whole, not one field."""
        self.form_errors_extra.append(message)

    @property
    def error_summary(self) -> list[tuple[str, str]]:
        """(anchor, message) pairs in page order, for the error summary's links."""
        summary = [("", message) for message in self.form_errors_extra]
        for field in self:
            for message in field.errors:
                summary.append((f"#{field.id}", message))
        return summary


def strip_whitespace(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


DATE_PARTS = ("day", "month", "year")


class DateInputField(Field):
    """A date typed into the design system's three boxes: day, month and year.

    The boxes are posted as ``<name>-day``, ``<name>-month`` and ``<name>-year``; a
    script may post ``<name>`` as an ISO date (``2025-03-12``) instead. What was
    typed is kept in :attr:`parts`, so a form shown again shows it unchanged.
    """

    data: date | None

    def __init__(self, label: str | None = None, validators: Any = None, **kwargs: Any) -> None:
        super().__init__(label, validators, **kwargs)
        # The error summary's link moves focus to the first box.
        self.id = f"{self.name}-day"
        self.parts: dict[str, str] = dict.fromkeys(DATE_PARTS, "")
        self.parts_in_error: frozenset[str] = frozenset()

    def process(self, formdata: Any, data: Any = unset_value, extra_filters: Any = None) -> None:
        super().process(formdata, data, extra_filters)
        if formdata is None or self.data is not None or self.process_errors:
            return
        self.parts = {
            part: (formdata.getlist(f"{self.name}-{part}") or [""])[0].strip()
            for part in DATE_PARTS
        }
        try:
            self.data = self._date_from_parts()
        except ValueError as error:
            self.process_errors.append(error.args[0])

    def process_data(self, value: Any) -> None:
        self.data = value
        if isinstance(value, date):
            self.parts = {"day": str(value.day), "month": str(value.month), "year": str(value.year)}

    def process_formdata(self, valuelist: list[Any]) -> None:
        """An ISO date posted under the field's own name."""
        iso = str(valuelist[0]).strip() if valuelist else ""
        self.data = None
        if not iso:
            return
        try:
            self.process_data(date.fromisoformat(iso))
        except ValueError:
            self.parts_in_error = frozenset(DATE_PARTS)
            raise ValueError(
                f"{self.label.text} must be a real date, like 12 3 2025 or 2025-03-12"
            ) from None

    def pre_validate(self, form: Any) -> None:
        if self.process_errors:
            # The reason the date could not be read is the message; no "enter a date" on top.
            raise StopValidation()

    def _date_from_parts(self) -> date | None:
        label = self.label.text
        missing = [part for part in DATE_PARTS if not self.parts[part]]
        if len(missing) == len(DATE_PARTS):
            return None
        if missing:
            self.parts_in_error = frozenset(missing)
            raise ValueError(f"{label} must include a {' and a '.join(missing)}")
        self.parts_in_error = frozenset(DATE_PARTS)
        if not all(self.parts[part].isdigit() for part in DATE_PARTS):
            raise ValueError(f"{label} must be in numbers, like 12 3 2025")
        if len(self.parts["year"]) != 4:
            raise ValueError(f"{label}: the year must have 4 numbers, like 2025")
        try:
            found = date(int(self.parts["year"]), int(self.parts["month"]), int(self.parts["day"]))
        except ValueError:
            raise ValueError(f"{label} must be a real date, like 12 3 2025") from None
        self.parts_in_error = frozenset()
        return found


def show_reason_required(request: Any, form: Any, field: str, error: Exception) -> None:
    """A change that needed a reason for change was refused (``ReasonRequired``) and
    nothing was written. The session still holds the change, which any later query
    would try to flush again: drop it, then show the message on the reason field. The
    transaction is already doomed."""
    request.db.rollback()
    form[field].errors = [*form[field].errors, str(error)]
    request.response.status_int = 400


def attach_error(form: Any, message: str, field: str | None = None) -> None:
    """Show a service's refusal on the field it names, or above the form when it names
    none (or a field the form does not have)."""
    if field and field in form:
        form[field].errors = [*form[field].errors, message]
    else:
        form.add_form_error(message)
