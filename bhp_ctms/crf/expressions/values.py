"""Values as expressions see them: numbers in text, dates and times, rounding, and a
calculated value's stored text.

Every rule here has a twin in ``bhp_ctms/static/js/crf-expressions.js``, written the
same way step by step (numbers are IEEE doubles on both sides), so that the browser
shows and hides exactly what the server does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Set
from datetime import date, datetime
from typing import Literal

Value = str | float | bool | None

# The codes of missing data as the data hold them: the values of
# bhp_ctms.crf.definition.model.MISSING_CODES (not imported: the definition package
# uses this one, and a test keeps the two the same).
MISSING_VALUES: tuple[str, ...] = ("ND", "NA", "UNK")

# ASCII digits only: Python's \d would also take other scripts' digits, JavaScript's not.
NUMBER_TEXT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_DATE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?)?"
)
_DAY_FIRST_DATE = re.compile(
    r"([0-9]{2})-([0-9]{2})-([0-9]{4})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?)?"
)
_TIME = re.compile(r"([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?")

# What trim() takes off: a fixed set, where str.strip() and String.trim() differ.
TRIMMED = " \t\n\r\x0b\x0c\xa0"

SECONDS_PER_DAY = 86400


def value_text(value: object) -> str:
    """An item's value as an expression sees it: its canonical text ("" when blank).

    A multiple-choice item's codes may be given as a set (joined by ``|``, sorted as
    the set has no order), numbers and dates are written canonically.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_value(value, None)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Set | list | tuple):
        return "|".join(sorted(str(code) for code in value))
    return str(value)


def text_number(text: str) -> float | None:
    """The number a text holds (``72.5``, ``-3``, ``.5``), or None if it holds none."""
    if NUMBER_TEXT.fullmatch(text) is None:
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def as_number(value: Value) -> float | None:
    """A value as a number: True and False count as 1 and 0; None when it is blank or
    not a number."""
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    return text_number(value)


def as_text(value: Value) -> str:
    """A value as text: numbers in their shortest form, True and False as 1 and 0."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    return format_value(value, None)


def truth(value: Value) -> bool | None:
    """Whether a value holds: a number (or a text holding one) holds unless it is 0;
    a blank, or a text that is not a number, cannot be worked out (None)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value != 0
    number = text_number(value)
    return None if number is None else number != 0


def finite(number: float) -> float | None:
    return number if math.isfinite(number) else None


# The decimal digits of a number: (negative, digits, exponent) stands for
# digits * 10**exponent, digits without leading zeros ("0" for zero).
Digits = tuple[bool, str, int]


def decimal_digits(number: float) -> Digits:
    """The shortest decimal digits that give back ``number`` (its ``repr``)."""
    text = repr(abs(number))
    mantissa, _, power = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0") or "0"
    exponent = (int(power) if power else 0) - len(fraction)
    if digits != "0":
        stripped = digits.rstrip("0")
        exponent += len(digits) - len(stripped)
        digits = stripped
    else:
        exponent = 0
    return number < 0 or (number == 0 and math.copysign(1, number) < 0), digits, exponent


Rounding = Literal["half_away", "up", "down"]


def _increment(digits: str) -> str:
    """The decimal digits of one more than ``digits``."""
    carried = list(digits)
    index = len(carried) - 1
    while index >= 0:
        if carried[index] == "9":
            carried[index] = "0"
            index -= 1
        else:
            carried[index] = chr(ord(carried[index]) + 1)
            return "".join(carried)
    return "1" + "".join(carried)


def round_decimal(decimal: Digits, places: int, rounding: Rounding) -> Digits:
    """``decimal`` rounded to ``places`` decimal places (negative: tens, hundreds...).

    ``half_away`` rounds a half away from zero (2.5 to 3, -2.5 to -3); ``up`` and
    ``down`` round towards plus and minus infinity (REDCap's roundup and rounddown).
    Rounding works on the decimal digits a person sees, so round(1.005, 2) is 1.01.
    """
    negative, digits, exponent = decimal
    target = -places
    if exponent >= target:
        return decimal
    dropped_count = target - exponent
    if dropped_count > len(digits):
        kept, first_dropped, dropped = "0", "0", digits
    else:
        kept = digits[: len(digits) - dropped_count] or "0"
        dropped = digits[len(digits) - dropped_count :]
        first_dropped = dropped[0]
    any_dropped = dropped.strip("0") != ""
    if rounding == "half_away":
        carry = first_dropped >= "5"
    elif rounding == "up":
        carry = any_dropped and not negative
    else:
        carry = any_dropped and negative
    if carry:
        kept = _increment(kept)
    kept = kept.lstrip("0") or "0"
    return negative and kept != "0", kept, target


def decimal_number(decimal: Digits) -> float | None:
    negative, digits, exponent = decimal
    number = float(f"{'-' if negative else ''}{digits}e{exponent}")
    if number == 0:
        return 0.0
    return finite(number)


def round_number(number: float, places: float, rounding: Rounding) -> float | None:
    """round(), roundup() and rounddown(): None unless ``places`` is a whole number."""
    if not places.is_integer():
        return None
    # Beyond 400 places either way a double has nothing left to round.
    places = max(-400.0, min(400.0, places))
    return decimal_number(round_decimal(decimal_digits(number), int(places), rounding))


def _positional(decimal: Digits, places: int) -> str:
    """Plain decimal notation, never an exponent, with at least ``places`` decimals."""
    negative, digits, exponent = decimal
    if exponent >= 0:
        whole, fraction = digits + "0" * exponent, ""
    elif len(digits) > -exponent:
        whole, fraction = digits[:exponent], digits[exponent:]
    else:
        whole, fraction = "0", "0" * (-exponent - len(digits)) + digits
    fraction += "0" * (places - len(fraction))
    sign = "-" if negative and digits != "0" else ""
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


def format_value(value: Value, precision: int | None) -> str:
    """The text a calculated item stores for ``value``.

    None gives "" (a blank item); True and False give "1" and "0"; text is kept as
    it is. A number with a ``precision`` is rounded half away from zero to that many
    decimals and written with exactly that many (``22.90`` for 2); without one it is
    written in the fewest digits that give the number back (``0.30000000000000004``),
    never in exponent notation. Minus zero is written ``0``.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        return value
    if not math.isfinite(value):
        return ""
    decimal = decimal_digits(value)
    if precision is None:
        return _positional(decimal, 0)
    places = max(0, min(400, precision))
    return _positional(round_decimal(decimal, places, "half_away"), places)


# Dates and times. A moment is (kind, seconds): kind "date" for a date (at midnight),
# "datetime", or "time" (seconds since midnight); dates count seconds from 0001-01-01.


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard
    Hinnant's algorithm: integers only, so JavaScript gets the same without Date)."""
    year -= 1 if month <= 2 else 0
    era = (year if year >= 0 else year - 399) // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


Moment = tuple[str, int]


def _clock(hour: str | None, minute: str | None, second: str | None) -> int | None:
    hours, minutes, seconds = int(hour or 0), int(minute or 0), int(second or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    return hours * 3600 + minutes * 60 + seconds


def parse_moment(text: str, date_format: str = "ymd") -> Moment | None:
    """A full date, datetime (``T`` or a space before the time, seconds optional) or
    time in ``text``; None for anything else, a partial date (``2024-UN-UN``) too.

    Dates are read year first; with ``date_format`` "mdy" or "dmy" a date written
    ``03-01-2024`` is read month or day first (REDCap's datediff format argument).
    """
    found = _DATE.fullmatch(text)
    if found is not None:
        year, month, day = int(found[1]), int(found[2]), int(found[3])
    else:
        found = _DAY_FIRST_DATE.fullmatch(text) if date_format in ("mdy", "dmy") else None
        if found is None:
            time = _TIME.fullmatch(text)
            if time is None:
                return None
            seconds = _clock(time[1], time[2], time[3])
            return None if seconds is None else ("time", seconds)
        first, second = int(found[1]), int(found[2])
        year = int(found[3])
        month, day = (first, second) if date_format == "mdy" else (second, first)
    if year < 1 or not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        return None
    seconds = _clock(found[4], found[5], found[6])
    if seconds is None:
        return None
    kind = "date" if found[4] is None else "datetime"
    return kind, _days_from_civil(year, month, day) * SECONDS_PER_DAY + seconds


def date_moment(day: date) -> Moment:
    return "date", _days_from_civil(day.year, day.month, day.day) * SECONDS_PER_DAY


def datetime_moment(moment: datetime) -> Moment:
    seconds = moment.hour * 3600 + moment.minute * 60 + moment.second
    return "datetime", date_moment(moment)[1] + seconds


_PARTIAL_DATE = re.compile(
    r"([0-9]{4})-([0-9]{2}|UN)-([0-9]{2}|UN)(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2})?)?"
)


def date_parts(text: str) -> tuple[int, int | None, int | None] | None:
    """Year, month and day of a date or datetime, partial dates too (None for a part
    that is ``UN``); None if the text is no date."""
    found = _PARTIAL_DATE.fullmatch(text)
    if found is None:
        return None
    year = int(found[1])
    month = None if found[2] == "UN" else int(found[2])
    day = None if found[3] == "UN" else int(found[3])
    if year < 1 or (month is not None and not 1 <= month <= 12):
        return None
    if day is not None and not 1 <= day <= (_days_in_month(year, month) if month else 31):
        return None
    return year, month, day
