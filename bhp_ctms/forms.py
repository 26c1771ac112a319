"""The base form and validators shared by every domain's forms."""

from __future__ import annotations

from typing import Any

import wtforms


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
