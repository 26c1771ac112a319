"""An item's value: from what a person typed to canonical text, and back for display.

Each function names the item in its message, as a person reading an error summary
needs ("Weight must be a number, like 72.5"), and never loses what was typed: the
form keeps the raw input and shows it again beside the message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation

from bhp_ctms.crf.definition.model import Item, Range
from bhp_ctms.db import utc_today

UNKNOWN = "UN"
INTEGER = re.compile(r"[+-]?\d+")
DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
TIME = re.compile(r"(\d{1,2})[:.](\d{2})")
DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{1,2}:\d{2})(:\d{2})?")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ValueProblem(ValueError):
    """What is wrong with a typed value, in words for the person who typed it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class DateParts:
    """A date as typed in its three boxes."""

    day: str = ""
    month: str = ""
    year: str = ""

    @property
    def blank(self) -> bool:
        return not (self.day.strip() or self.month.strip() or self.year.strip())

    @classmethod
    def of(cls, canonical: str | None) -> DateParts:
        """The boxes showing a stored date (``2024-03-UN`` shows day ``UN``)."""
        if not canonical:
            return cls()
        year, month, day = [*canonical.split("-"), "", "", ""][:3]
        return cls(day=day, month=month, year=year)


def _name(item: Item) -> str:
    return item.label or item.code


def parse_value(item: Item, raw: str | DateParts | Sequence[str]) -> str:
    """The canonical text of what was typed for ``item``: "" for blank.

    Raises :class:`ValueProblem` when it is not a value of the item's type, or is
    outside its hard range, or does not match its pattern.
    """
    if isinstance(raw, DateParts):
        value = _date(item, raw)
    elif isinstance(raw, str):
        value = _scalar(item, raw.strip())
    else:
        value = _choices(item, [code for code in raw if code])
    if value:
        check_range(item, value, item.hard_range, hard=True)
    return value


def _scalar(item: Item, text: str) -> str:
    if not text:
        return ""
    name = _name(item)
    kind = item.type
    if kind == "integer":
        if not INTEGER.fullmatch(text.replace(",", "")):
            raise ValueProblem(f"{name} must be a whole number, like 72")
        return str(int(text.replace(",", "")))
    if kind in ("decimal", "calculated"):
        return _decimal(item, text)
    if kind == "time":
        return _time(name, text)
    if kind == "datetime":
        return _datetime(name, text)
    if kind == "date":
        return _date_text(item, text)
    if kind in ("single_choice", "yes_no"):
        codes = {choice.code for choice in item.choices}
        if text not in codes:
            raise ValueProblem(f"Select one of the answers for {name}")
        return text
    if kind == "multiple_choice":
        return _choices(item, text.split("|"))
    if item.max_length is not None and len(text) > item.max_length:
        raise ValueProblem(f"{name} must be {item.max_length} characters or fewer")
    if item.pattern is not None and not re.fullmatch(item.pattern.regex, text):
        raise ValueProblem(f"{name}: {item.pattern.message}")
    return text


def _decimal(item: Item, text: str) -> str:
    name = _name(item)
    cleaned = text.replace(",", "") if text.count(",") and "." in text else text
    if not DECIMAL.fullmatch(cleaned):
        raise ValueProblem(f"{name} must be a number, like 72.5")
    number = Decimal(cleaned)
    places = max(0, -number.as_tuple().exponent)  # type: ignore[operator]
    if item.precision is not None and places > item.precision:
        if item.precision == 0:
            raise ValueProblem(f"{name} must be a whole number")
        plural = "" if item.precision == 1 else "s"
        raise ValueProblem(f"{name} must have {item.precision} decimal place{plural} or fewer")
    canonical = format(number, "f")
    if canonical.startswith("-") and number == 0:
        canonical = canonical[1:]
    return canonical


def _time(name: str, text: str) -> str:
    match = TIME.fullmatch(text)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueProblem(f"{name} must be a time on the 24-hour clock, like 14:30")
    return f"{int(match[1]):02d}:{match[2]}"


def _datetime(name: str, text: str) -> str:
    match = DATETIME.fullmatch(text)
    if match:
        try:
            day = date.fromisoformat(match[1])
            clock = _time(name, match[2])
        except (ValueError, ValueProblem):
            pass
        else:
            return f"{day.isoformat()}T{clock}"
    raise ValueProblem(f"{name} must be a date and time, like 2025-03-12 14:30")


def _date_text(item: Item, text: str) -> str:
    """A date given as text (an import, the API): ``YYYY-MM-DD`` or a partial date."""
    parts = text.split("-")
    if len(parts) != 3:
        raise ValueProblem(f"{_name(item)} must be a date, like 2025-03-12")
    return _date(item, DateParts(day=parts[2], month=parts[1], year=parts[0]))


def _date(item: Item, parts: DateParts) -> str:
    if parts.blank:
        return ""
    name = _name(item)
    day, month, year = (
        (part.strip().upper() if part.strip().upper() == UNKNOWN else part.strip())
        for part in (parts.day, parts.month, parts.year)
    )
    if not year or not year.isdigit() or len(year) != 4:
        raise ValueProblem(f"{name} must include a year of four digits")
    unknown_day = day in ("", UNKNOWN)
    unknown_month = month in ("", UNKNOWN)
    if unknown_day or unknown_month:
        if not item.partial_dates:
            missing = "a day" if not unknown_month else "a month"
            raise ValueProblem(f"{name} must include {missing}")
        if unknown_month and not unknown_day:
            raise ValueProblem(f"{name}: a day cannot be given without a month")
    if not unknown_month and (not month.isdigit() or not 1 <= int(month) <= 12):
        raise ValueProblem(f"{name} must be a real date: the month is 1 to 12")
    if not unknown_day:
        try:
            date(int(year), int(month), int(day))
        except ValueError:
            raise ValueProblem(f"{name} must be a real date") from None
    month_text = UNKNOWN if unknown_month else f"{int(month):02d}"
    day_text = UNKNOWN if unknown_day else f"{int(day):02d}"
    return f"{year}-{month_text}-{day_text}"


def _choices(item: Item, codes: Sequence[str]) -> str:
    known = [choice.code for choice in item.choices]
    unknown = [code for code in codes if code not in known]
    if unknown:
        raise ValueProblem(f"{_name(item)}: {unknown[0]!r} is not one of the answers")
    chosen = set(codes)
    return "|".join(code for code in known if code in chosen)


def _comparable(item: Item, text: str, today: date) -> Decimal | str | None:
    """A value or a limit in a form that orders correctly; None when it has none (a
    partial date)."""
    if item.type in ("integer", "decimal", "calculated"):
        try:
            return Decimal(text)
        except InvalidOperation:
            return None
    if item.type == "date":
        if text == "today":
            return today.isoformat()
        return None if UNKNOWN in text else text
    if item.type == "datetime" and text == "now":
        return datetime.combine(today, time()).strftime("%Y-%m-%dT%H:%M")
    return text


def range_problem(item: Item, value: str, limits: Range | None, today: date | None = None) -> str:
    """The message saying ``value`` is outside ``limits``, or "" when it is inside."""
    if limits is None or not value:
        return ""
    today = today or utc_today()
    current = _comparable(item, value, today)
    if current is None:
        return ""
    low = _comparable(item, limits.minimum, today) if limits.minimum is not None else None
    high = _comparable(item, limits.maximum, today) if limits.maximum is not None else None
    below = low is not None and current < low  # type: ignore[operator]
    above = high is not None and current > high  # type: ignore[operator]
    if not (below or above):
        return ""
    if limits.message:
        return limits.message
    units = f" {item.units}" if item.units else ""
    shown_low = display_limit(item, limits.minimum)
    shown_high = display_limit(item, limits.maximum)
    name = _name(item)
    if low is not None and high is not None:
        return f"{name} must be between {shown_low} and {shown_high}{units}"
    if low is not None:
        return f"{name} must be {shown_low}{units} or more"
    return f"{name} must be {shown_high}{units} or less"


def check_range(item: Item, value: str, limits: Range | None, *, hard: bool) -> None:
    problem = range_problem(item, value, limits)
    if problem and hard:
        raise ValueProblem(problem)


def display_limit(item: Item, limit: str | None) -> str:
    if limit is None:
        return ""
    if item.type == "date" and limit not in ("today",):
        return display_value(item, limit)
    return limit


def display_value(item: Item, value: str | None) -> str:
    """A stored value as a person reads it: a choice's label, ``12 Mar 2025``."""
    if not value:
        return ""
    if item.type in ("single_choice", "yes_no"):
        return item.choice_label(value)
    if item.type == "multiple_choice":
        return "; ".join(item.choice_label(code) for code in value.split("|"))
    if item.type == "date":
        year, month, day = value.split("-")
        if month == UNKNOWN:
            return f"{year} (day and month unknown)"
        month_name = MONTHS[int(month) - 1]
        if day == UNKNOWN:
            return f"{month_name} {year} (day unknown)"
        return f"{int(day)} {month_name} {year}"
    if item.type == "datetime":
        day_text, clock = value.split("T")
        return f"{display_value(_DATE_ITEM, day_text)} {clock}"
    if item.units:
        return f"{value} {item.units}"
    return value


_DATE_ITEM = Item(code="date", label="Date", type="date")
