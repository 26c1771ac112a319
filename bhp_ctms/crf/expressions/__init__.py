"""The one expression language of show-if logic, calculations and edit checks.

The syntax is REDCap's (branching logic and calculated fields), parsed by lark
(``grammar.lark``) into a tree of frozen nodes that the server evaluates
(:class:`Expression`) and the browser evaluates too (``static/js/crf-expressions.js``,
over :meth:`Expression.to_json`), with exactly the same rules:

Syntax
    Items ``[weight]``; checkbox terms ``[race(3)]``; another event's item
    ``[baseline][weight]``. Numbers ``72``, ``72.5``, ``.5``; texts in 'single' or
    "double" quotes (no escapes); ``true`` and ``false``. Operators, loosest first:
    ``or``; ``and`` (keywords in any case); ``=`` ``<>`` ``!=`` ``<`` ``<=`` ``>``
    ``>=`` (``==`` is ``=``; no chains such as ``a < b < c``); ``+`` ``-``; ``*`` ``/``;
    unary minus; ``^`` (power, right-associative and binding tighter than a leading
    minus: ``-2^2`` is -4, ``2^3^2`` is 512). Parentheses. Functions (names in any
    case): ``if``, ``datediff``, ``round``, ``roundup``, ``rounddown``, ``sqrt``,
    ``abs``, ``exponential``, ``log``, ``mod``, ``min``, ``max``, ``sum``, ``mean``,
    ``median``, ``stdev``, ``isnumber``, ``isinteger``, ``isblankormissingcode``,
    ``contains``, ``not_contain``, ``starts_with``, ``ends_with``, ``find``,
    ``length``, ``left``, ``right``, ``mid``, ``upper``, ``lower``, ``trim``,
    ``concat``, ``year``, ``month``, ``day``. A bad expression raises
    :class:`ExpressionError` with a message, its offset, line and column.

Values
    An item's value is its canonical text ("" when blank or absent; a multiple-choice
    item's codes joined by ``|``). A checkbox term is "1" when the choice is ticked,
    else "0" (blank included). An expression's value is text, a number (an IEEE
    double: the browser computes with the same doubles), True/False, or None when
    it cannot be worked out.

Numbers
    A text is a number when it is written as one in ASCII digits (``72.5``, ``-3``,
    ``.5``, ``1e3``; no spaces, no grouping); True and False count as 1 and 0. ``+``
    ``-`` ``*`` ``/`` ``^`` and unary minus give None when an operand is blank or not
    a number, on division by zero, and when the result is not finite. A whole
    exponent multiplies by squaring (the same steps in both languages); other powers,
    log() and exponential() use the platform's pow/log/exp, which may differ from the
    browser's in the last binary digit.

Comparisons
    Give True/False, or None when an operand is None (could not be worked out).
    Two numbers compare as numbers (``'18.0' = 18`` holds). Two full dates or
    datetimes (or two times) compare in time, a date counting as its midnight.
    Otherwise ``=`` and ``<>`` compare the texts exactly (so ``[x] = ''`` tests for a
    blank, and ``[sex] = '1'`` is False, not None, when sex is blank), and ``<``
    ``<=`` ``>`` ``>=`` give None (a blank, a word, or a partial date cannot be
    ordered).

Truth
    ``and``, ``or``, if()'s condition and :meth:`Expression.holds` read a value as:
    True/False as they are; a number (or text holding one) holds unless it is 0; a
    blank, other text, and None cannot be worked out (None). ``and`` is False if any
    operand is False, else None if any is None, else True; ``or`` is True if any is
    True, else None if any is None, else False. if() with a condition that cannot be
    worked out gives None. A show-if shows its item only when ``holds()`` is True; an
    edit check fails only when it is False.

Functions
    datediff(date1, date2, units[, format][, signed]) as REDCap: units 'y' (years of
    365.2425 days), 'M' (months of 30.44 days), 'd', 'h', 'm', 's'; the result is not
    rounded and is the absolute difference unless ``signed`` is true (date2 - date1).
    Dates are ``YYYY-MM-DD``, datetimes ``YYYY-MM-DDTHH:MM`` (or a space; seconds
    optional), a date counting as its midnight; two times (``HH:MM``) differ in time
    of day. 'today' and 'now' are the evaluation's day (against 'today' a datetime
    counts as its day); the format ('ymd', 'mdy', 'dmy') only reads dates written
    day or month first (stored values are always year first). A partial date
    (``2024-UN-UN``), an impossible date or a blank gives None.
    round(x[, places]) rounds half away from zero (REDCap's Math.round rounds -2.5
    to -2; we give -3), places 0 by default, negative for tens; roundup() and
    rounddown() round towards plus and minus infinity, as REDCap. All three round
    the decimal digits a person sees, so round(1.005, 2) is 1.01.
    min, max, sum, mean, median and stdev (sample, n - 1: None for fewer than two
    numbers) leave blanks (and None) out and give None if an argument is other text
    or nothing is left. isnumber() and isinteger() hold for a number or a text
    holding one (whole, for isinteger), not for True/False or a blank.
    log(x[, base]): natural without a base; None unless x > 0 and base > 0, not 1.
    mod(a, b): whole numbers only, the remainder takes a's sign.
    Text functions work on characters (code points); contains, not_contain,
    starts_with, ends_with and find ignore case; find gives the 1-based position,
    0 when absent; left/right/mid give "" for a count (or start) that is not a
    whole number of at least 1, and what there is when it runs past the end; trim
    takes off spaces, tabs, line breaks and no-break spaces; concat() and the text
    functions read None as "" and numbers in their shortest form (``n=4``).
    isblankormissingcode() holds for a blank and for the missing-data codes (ND, NA,
    UNK). year(), month() and day() read partial dates too (None for an ``UN`` part).

Stored text (:func:`format_value`)
    None gives ""; True/False "1"/"0"; text is kept; a number with a precision is
    rounded half away from zero (on its shortest decimal digits) and written with
    exactly that many decimals; without a precision, in the fewest digits that give
    the number back, never in exponent notation; minus zero is "0".
"""

from bhp_ctms.crf.expressions.evaluation import Expression, compiled, parse_expression
from bhp_ctms.crf.expressions.nodes import ExpressionError, Reference
from bhp_ctms.crf.expressions.values import Value, format_value

__all__ = [
    "Expression",
    "ExpressionError",
    "Reference",
    "Value",
    "compiled",
    "format_value",
    "parse_expression",
]
