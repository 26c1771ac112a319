"""REDCap's text validation types, each as the item type (and pattern) it becomes.

Patterns are matched against the whole value, so they carry no anchors; they are
written to mean the same to Python's ``re`` and to a browser's ``pattern`` attribute
(no inline flags; a hyphen inside brackets is escaped).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal

from bhp_ctms.crf.definition.model import ItemType, TextPattern

# How a validation's min and max are read: as numbers, dates, times, or not at all.
Bounds = Literal["integer", "decimal", "date", "datetime", "time", ""]


@dataclass(frozen=True)
class TextValidation:
    """What a REDCap text field with this validation type becomes."""

    type: ItemType
    bounds: Bounds = ""
    precision: int | None = None
    pattern: TextPattern | None = None
    # What the import changes, told to the person importing (listed with the row).
    note: str = ""
    # The order of day, month and year REDCap shows a date in ("dmy", "mdy", "ymd").
    date_order: str = "ymd"


def _pattern(regex: str, message: str) -> TextPattern:
    re.compile(regex)
    return TextPattern(regex=regex, message=message)


_SECONDS_DROPPED = "REDCap keeps seconds; BHP CTMS keeps hours and minutes, so seconds are dropped"
_COMMA_DECIMAL = "entered with a decimal point in BHP CTMS, not REDCap's decimal comma"


def _validations() -> dict[str, TextValidation]:
    table: dict[str, TextValidation] = {}
    for order in ("dmy", "mdy", "ymd"):
        table[f"date_{order}"] = TextValidation("date", "date", date_order=order)
        table[f"datetime_{order}"] = TextValidation("datetime", "datetime", date_order=order)
        table[f"datetime_seconds_{order}"] = TextValidation(
            "datetime", "datetime", note=_SECONDS_DROPPED, date_order=order
        )
    table["time"] = TextValidation("time", "time")
    table["time_hh_mm_ss"] = TextValidation("time", "time", note=_SECONDS_DROPPED)
    # Minutes and seconds is a duration, not a time of day.
    table["time_mm_ss"] = TextValidation(
        "text",
        pattern=_pattern(
            "[0-5][0-9]:[0-5][0-9]", "Minutes and seconds, as MM:SS (00:00 to 59:59)."
        ),
    )
    table["integer"] = TextValidation("integer", "integer")
    table["number"] = TextValidation("decimal", "decimal")
    table["number_comma_decimal"] = TextValidation("decimal", "decimal", note=_COMMA_DECIMAL)
    for places in range(1, 5):
        table[f"number_{places}dp"] = TextValidation("decimal", "decimal", precision=places)
        table[f"number_{places}dp_comma_decimal"] = TextValidation(
            "decimal", "decimal", precision=places, note=_COMMA_DECIMAL
        )
    patterns = {
        "alpha_only": ("[A-Za-z]+", "Letters only (A to Z), without spaces."),
        "email": (
            "[^@\\s]+@[^@\\s]+\\.[^@\\s]+",
            "An e-mail address, such as name@example.org.",
        ),
        "mrn_10d": ("[0-9]{10}", "A medical record number of 10 digits."),
        "mrn_generic": (
            "[A-Za-z0-9_\\-]+",
            "A medical record number: letters, digits, hyphens and underscores.",
        ),
        "phone": (
            "\\(?[2-9][0-9]{2}\\)?[ .\\-]*[2-9][0-9]{2}[ .\\-]*[0-9]{4}"
            "( *(#|x\\.?|ext\\.?|extension) *[0-9]+)?",
            "A North American phone number with its area code, such as (555) 555-1234.",
        ),
        "phone_australia": (
            "(\\(0[2-9]\\)|0[2-9])( ?[0-9]){8}",
            "An Australian phone number of 10 digits with its area code, such as 02 9876 5432.",
        ),
        "postalcode_australia": ("[0-9]{4}", "An Australian postcode of 4 digits."),
        "postalcode_canada": (
            "[A-Za-z][0-9][A-Za-z] ?[0-9][A-Za-z][0-9]",
            "A Canadian postal code, such as K1A 0B1.",
        ),
        "postalcode_french": ("[0-9]{5}", "A French postal code of 5 digits."),
        "postalcode_germany": ("(0[1-9]|[1-9][0-9])[0-9]{3}", "A German postal code of 5 digits."),
        "ssn": ("[0-9]{3}-[0-9]{2}-[0-9]{4}", "A US Social Security number, such as 123-45-6789."),
        "vmrn": ("[0-9]{4,9}", "A Vanderbilt medical record number of 4 to 9 digits."),
        "zipcode": (
            "[0-9]{5}(-[0-9]{4})?",
            "A US ZIP code of 5 digits, or ZIP+4 such as 12345-6789.",
        ),
    }
    for name, (regex, message) in patterns.items():
        table[name] = TextValidation("text", pattern=_pattern(regex, message))
    # Names older REDCap versions wrote.
    table["int"] = table["integer"]
    table["float"] = table["number"]
    table["date"] = table["date_ymd"]
    table["datetime"] = table["datetime_ymd"]
    return table


VALIDATIONS: Mapping[str, TextValidation] = _validations()

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+([.,][0-9]*)?|[.,][0-9]+)")
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})(:[0-9]{2})?")
_DATE_PARTS = {
    "ymd": re.compile(r"(?P<y>[0-9]{4})[-/](?P<m>[0-9]{1,2})[-/](?P<d>[0-9]{1,2})"),
    "dmy": re.compile(r"(?P<d>[0-9]{1,2})[-/](?P<m>[0-9]{1,2})[-/](?P<y>[0-9]{4})"),
    "mdy": re.compile(r"(?P<m>[0-9]{1,2})[-/](?P<d>[0-9]{1,2})[-/](?P<y>[0-9]{4})"),
}


class BoundError(ValueError):
    """A validation min or max that is not a value of the item's type."""


def canonical_bound(text: str, bounds: Bounds, date_order: str = "ymd") -> str:
    """A validation min or max as canonical value text (``model`` docstring).

    Dates are read as Y-M-D (as REDCap's dictionaries hold them) or in the field's own
    order; for dates, ``today`` (or ``now``) stays ``today``. Raises
    :class:`BoundError` with a message naming what was expected.
    """
    value = text.strip()
    if bounds == "integer":
        if not _INTEGER.fullmatch(value):
            raise BoundError(f"{value!r} is not a whole number")
        return str(int(value))
    if bounds == "decimal":
        if not _DECIMAL.fullmatch(value):
            raise BoundError(f"{value!r} is not a number")
        sign = "-" if value.startswith("-") else ""
        whole, _, fraction = value.lstrip("+-").replace(",", ".").partition(".")
        whole = whole.lstrip("0") or "0"
        return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"
    if bounds == "time":
        match = _TIME.fullmatch(value)
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise BoundError(f"{value!r} is not a time (HH:MM)")
        return f"{int(match[1]):02d}:{match[2]}"
    if bounds == "date":
        if value.lower() in ("today", "now"):
            return "today"
        return _date(value, date_order).isoformat()
    if bounds == "datetime":
        day_text, _, time_text = value.partition(" ")
        day = _date(day_text, date_order)
        match = _TIME.fullmatch(time_text.strip() or "00:00")
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise BoundError(f"{value!r} is not a date and time (YYYY-MM-DD HH:MM)")
        return f"{day.isoformat()}T{int(match[1]):02d}:{match[2]}"
    raise BoundError("this validation type has no min or max")


def _date(value: str, order: str) -> date:
    for candidate in dict.fromkeys(("ymd", order)):
        match = _DATE_PARTS[candidate].fullmatch(value)
        if match:
            try:
                return date(int(match["y"]), int(match["m"]), int(match["d"]))
            except ValueError:
                break
    raise BoundError(f"{value!r} is not a date (YYYY-MM-DD)")


def bound_above(minimum: str, maximum: str, bounds: Bounds) -> bool:
    """Whether canonical bound ``minimum`` is above ``maximum`` (never, when either is
    ``today``, which moves)."""
    if "today" in (minimum, maximum):
        return False
    if bounds in ("integer", "decimal"):
        return float(minimum) > float(maximum)
    # Canonical dates, times and datetimes sort as text.
    return minimum > maximum
