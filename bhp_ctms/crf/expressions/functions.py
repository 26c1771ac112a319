"""The functions an expression may call (REDCap's special functions), each with the
number of arguments it takes; their twins are in ``crf-expressions.js``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from bhp_ctms.crf.expressions.values import (
    MISSING_VALUES,
    SECONDS_PER_DAY,
    TRIMMED,
    Moment,
    Rounding,
    Value,
    as_number,
    as_text,
    date_moment,
    date_parts,
    datetime_moment,
    finite,
    parse_moment,
    round_number,
    truth,
    value_text,
)


class Scope:
    """What an expression is evaluated with: the items' values, and the day (for
    ``today`` and ``now`` in datediff)."""

    __slots__ = ("_now", "_today", "today_given", "values")

    def __init__(self, values: Mapping[str, object], today: date | None) -> None:
        self.values = values
        self.today_given = today
        self._today: Moment | None = None
        self._now: Moment | None = None

    def value(self, key: str) -> str:
        value = self.values.get(key)
        return value if isinstance(value, str) else value_text(value)

    def today(self) -> Moment:
        if self._today is None:
            given = self.today_given or date.today()
            self._today = date_moment(given)
        return self._today

    def now(self) -> Moment:
        """The moment ``now`` stands for: the given day's time if it is a datetime,
        else midnight of the given day; the clock's time when no day is given."""
        if self._now is None:
            given = self.today_given
            if isinstance(given, datetime):
                self._now = datetime_moment(given)
            elif given is not None:
                self._now = "datetime", date_moment(given)[1]
            else:
                self._now = datetime_moment(datetime.now())
        return self._now


Implementation = Callable[[Sequence[Value], Scope], Value]


@dataclass(frozen=True)
class Function:
    """``maximum`` None: any number of arguments from ``minimum``."""

    minimum: int
    maximum: int | None
    implementation: Implementation
    arguments: str

    def arity_problem(self, name: str, given: int) -> str | None:
        if given >= self.minimum and (self.maximum is None or given <= self.maximum):
            return None
        if self.maximum is None:
            wanted = f"at least {self.minimum} argument{'s' if self.minimum > 1 else ''}"
        elif self.minimum == self.maximum:
            wanted = f"{self.minimum} argument{'s' if self.minimum > 1 else ''}"
        else:
            wanted = f"{self.minimum} to {self.maximum} arguments"
        return f"{name}() takes {wanted} ({name}({self.arguments})), not {given}"


def _numbers(arguments: Sequence[Value]) -> list[float] | None:
    """The numbers among the arguments, blanks left out; None if one is not a number."""
    numbers = []
    for argument in arguments:
        if argument is None or argument == "":
            continue
        number = as_number(argument)
        if number is None:
            return None
        numbers.append(number)
    return numbers


def _whole(value: Value) -> int | None:
    number = as_number(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def _if(arguments: Sequence[Value], scope: Scope) -> Value:
    condition = truth(arguments[0])
    if condition is None:
        return None
    return arguments[1] if condition else arguments[2]


UNIT_SECONDS: Mapping[str, int] = {
    "y": 31556952,  # a year of 365.2425 days, as REDCap counts it
    "M": 2630016,  # a month of 30.44 days
    "d": SECONDS_PER_DAY,
    "h": 3600,
    "m": 60,
    "s": 1,
}
DATE_FORMATS = ("ymd", "mdy", "dmy")


def _datediff_moment(value: Value, date_format: str, scope: Scope) -> Moment | None:
    text = as_text(value)
    keyword = text.lower()
    if keyword == "today":
        return scope.today()
    if keyword == "now":
        return scope.now()
    return parse_moment(text, date_format)


def _is_true(value: Value) -> bool:
    if isinstance(value, str) and value.lower() == "true":
        return True
    return truth(value) is True


def _datediff(arguments: Sequence[Value], scope: Scope) -> Value:
    unit = UNIT_SECONDS.get(as_text(arguments[2]))
    if unit is None:
        return None
    date_format, signed = "ymd", False
    if len(arguments) >= 4:
        fourth = arguments[3]
        if isinstance(fourth, str) and fourth.lower() in DATE_FORMATS:
            date_format = fourth.lower()
        elif len(arguments) == 4:
            signed = _is_true(fourth)
    if len(arguments) == 5:
        signed = _is_true(arguments[4])
    first = _datediff_moment(arguments[0], date_format, scope)
    second = _datediff_moment(arguments[1], date_format, scope)
    if first is None or second is None:
        return None
    (first_kind, first_seconds), (second_kind, second_seconds) = first, second
    if (first_kind == "time") != (second_kind == "time"):
        return None
    # As REDCap: against "today", a datetime counts as its day.
    if as_text(arguments[0]).lower() == "today":
        second_seconds -= second_seconds % SECONDS_PER_DAY
    if as_text(arguments[1]).lower() == "today":
        first_seconds -= first_seconds % SECONDS_PER_DAY
    seconds = second_seconds - first_seconds
    if not signed:
        seconds = abs(seconds)
    return seconds / unit


def _rounding(rounding: Rounding) -> Implementation:
    def implementation(arguments: Sequence[Value], scope: Scope) -> Value:
        number = as_number(arguments[0])
        places = as_number(arguments[1]) if len(arguments) > 1 else 0.0
        if number is None or places is None:
            return None
        return round_number(number, places, rounding)

    return implementation


def _one_number(operation: Callable[[float], float | None]) -> Implementation:
    def implementation(arguments: Sequence[Value], scope: Scope) -> Value:
        number = as_number(arguments[0])
        return None if number is None else operation(number)

    return implementation


def _sqrt(number: float) -> float | None:
    return math.sqrt(number) if number >= 0 else None


def _exponential(number: float) -> float | None:
    try:
        return finite(math.exp(number))
    except OverflowError:
        return None


def _log(arguments: Sequence[Value], scope: Scope) -> Value:
    number = as_number(arguments[0])
    if number is None or number <= 0:
        return None
    if len(arguments) == 1:
        return math.log(number)
    base = as_number(arguments[1])
    if base is None or base <= 0 or base == 1:
        return None
    return math.log(number) / math.log(base)


def _mod(arguments: Sequence[Value], scope: Scope) -> Value:
    dividend, divisor = as_number(arguments[0]), as_number(arguments[1])
    if dividend is None or divisor is None or divisor == 0:
        return None
    if not dividend.is_integer() or not divisor.is_integer():
        return None
    # The remainder takes the dividend's sign, as JavaScript's %.
    return math.fmod(dividend, divisor)


def _aggregate(operation: Callable[[list[float]], float | None]) -> Implementation:
    def implementation(arguments: Sequence[Value], scope: Scope) -> Value:
        numbers = _numbers(arguments)
        if not numbers:
            return None
        return operation(numbers)

    return implementation


def _sum(numbers: list[float]) -> float | None:
    total = 0.0
    for number in numbers:
        total += number
    return finite(total)


def _mean(numbers: list[float]) -> float | None:
    total = _sum(numbers)
    return None if total is None else total / len(numbers)


def _median(numbers: list[float]) -> float | None:
    ordered = sorted(numbers)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return finite((ordered[middle - 1] + ordered[middle]) / 2)


def _stdev(numbers: list[float]) -> float | None:
    """The sample standard deviation (dividing by n - 1), as REDCap's stdev()."""
    if len(numbers) < 2:
        return None
    mean = _mean(numbers)
    if mean is None:
        return None
    squares = 0.0
    for number in numbers:
        deviation = number - mean
        squares += deviation * deviation
    return finite(math.sqrt(squares / (len(numbers) - 1)))


def _isnumber(arguments: Sequence[Value], scope: Scope) -> Value:
    value = arguments[0]
    return not isinstance(value, bool) and as_number(value) is not None


def _isinteger(arguments: Sequence[Value], scope: Scope) -> Value:
    value = arguments[0]
    number = None if isinstance(value, bool) else as_number(value)
    return number is not None and number.is_integer()


def _isblankormissingcode(arguments: Sequence[Value], scope: Scope) -> Value:
    value = arguments[0]
    return value is None or value == "" or (isinstance(value, str) and value in MISSING_VALUES)


def _texts(operation: Callable[[str, str], Value]) -> Implementation:
    """A function of two texts compared without regard to case, as REDCap's."""

    def implementation(arguments: Sequence[Value], scope: Scope) -> Value:
        return operation(as_text(arguments[0]).lower(), as_text(arguments[1]).lower())

    return implementation


def _text(operation: Callable[[str], Value]) -> Implementation:
    def implementation(arguments: Sequence[Value], scope: Scope) -> Value:
        return operation(as_text(arguments[0]))

    return implementation


def _left(arguments: Sequence[Value], scope: Scope) -> Value:
    text, count = as_text(arguments[0]), _whole(arguments[1])
    return text[:count] if count is not None and count >= 1 else ""


def _right(arguments: Sequence[Value], scope: Scope) -> Value:
    text, count = as_text(arguments[0]), _whole(arguments[1])
    return text[-count:] if count is not None and count >= 1 else ""


def _mid(arguments: Sequence[Value], scope: Scope) -> Value:
    text, start, count = as_text(arguments[0]), _whole(arguments[1]), _whole(arguments[2])
    if start is None or count is None or start < 1 or count < 1:
        return ""
    return text[start - 1 : start - 1 + count]


def _find(needle: str, haystack: str) -> Value:
    return float(haystack.find(needle) + 1)


def _concat(arguments: Sequence[Value], scope: Scope) -> Value:
    return "".join(as_text(argument) for argument in arguments)


def _date_part(index: int) -> Implementation:
    def implementation(arguments: Sequence[Value], scope: Scope) -> Value:
        text = as_text(arguments[0])
        if text.lower() in ("today", "now"):
            given = scope.today_given or date.today()
            text = given.isoformat()[:10]
        parts = date_parts(text)
        part = None if parts is None else parts[index]
        return None if part is None else float(part)

    return implementation


FUNCTIONS: Mapping[str, Function] = {
    "if": Function(3, 3, _if, "condition, value if true, value if false"),
    "datediff": Function(3, 5, _datediff, "date1, date2, units[, format][, signed]"),
    "round": Function(1, 2, _rounding("half_away"), "number[, decimal places]"),
    "roundup": Function(1, 2, _rounding("up"), "number[, decimal places]"),
    "rounddown": Function(1, 2, _rounding("down"), "number[, decimal places]"),
    "sqrt": Function(1, 1, _one_number(_sqrt), "number"),
    "abs": Function(1, 1, _one_number(abs), "number"),
    "exponential": Function(1, 1, _one_number(_exponential), "number"),
    "log": Function(1, 2, _log, "number[, base]"),
    "mod": Function(2, 2, _mod, "dividend, divisor"),
    "min": Function(1, None, _aggregate(min), "number, ..."),
    "max": Function(1, None, _aggregate(max), "number, ..."),
    "sum": Function(1, None, _aggregate(_sum), "number, ..."),
    "mean": Function(1, None, _aggregate(_mean), "number, ..."),
    "median": Function(1, None, _aggregate(_median), "number, ..."),
    "stdev": Function(1, None, _aggregate(_stdev), "number, ..."),
    "isnumber": Function(1, 1, _isnumber, "value"),
    "isinteger": Function(1, 1, _isinteger, "value"),
    "isblankormissingcode": Function(1, 1, _isblankormissingcode, "value"),
    "contains": Function(2, 2, _texts(lambda text, part: part in text), "text, part"),
    "not_contain": Function(2, 2, _texts(lambda text, part: part not in text), "text, part"),
    "starts_with": Function(2, 2, _texts(lambda text, part: text.startswith(part)), "text, part"),
    "ends_with": Function(2, 2, _texts(lambda text, part: text.endswith(part)), "text, part"),
    "find": Function(2, 2, _texts(_find), "part, text"),
    "length": Function(1, 1, _text(lambda text: float(len(text))), "text"),
    "left": Function(2, 2, _left, "text, count"),
    "right": Function(2, 2, _right, "text, count"),
    "mid": Function(3, 3, _mid, "text, start, count"),
    "upper": Function(1, 1, _text(str.upper), "text"),
    "lower": Function(1, 1, _text(str.lower), "text"),
    "trim": Function(1, 1, _text(lambda text: text.strip(TRIMMED)), "text"),
    "concat": Function(1, None, _concat, "text, ..."),
    "year": Function(1, 1, _date_part(0), "date"),
    "month": Function(1, 1, _date_part(1), "date"),
    "day": Function(1, 1, _date_part(2), "date"),
}
