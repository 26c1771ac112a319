"""Properties of the expression language over random input: nothing but an
ExpressionError escapes the parser, evaluation never raises, and a calculated value's
stored text reads back as the same number."""

from __future__ import annotations

import json
import math
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from bhp_ctms.crf.expressions import ExpressionError, format_value, parse_expression
from bhp_ctms.crf.expressions.values import round_number, text_number

# Pieces expressions are made of, so that random ones get past the first character.
TOKENS = [
    "[a]",
    "[b]",
    "[c(2)]",
    "[v1][a]",
    "[",
    "]",
    "(",
    ")",
    ",",
    "'x'",
    '"1"',
    "'",
    "''",
    "0",
    "1",
    "2.5",
    ".5",
    "-",
    "+",
    "*",
    "/",
    "^",
    "=",
    "<>",
    "!=",
    "<",
    ">=",
    "and",
    "OR",
    "true",
    "if",
    "datediff",
    "round",
    "sum",
    "left",
    "isblankormissingcode",
    "'today'",
    "'d'",
    "'y'",
    "weight",
    "\n",
    "&",
    "#",
]

VALUES = st.dictionaries(
    st.sampled_from(["a", "b", "c", "v1.a"]),
    st.one_of(
        st.sampled_from(["", "0", "1", "2", "1|2", "-3.5", "abc", "ND", "2024-UN-UN"]),
        st.dates().map(date.isoformat),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.text(max_size=5),
    ),
)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_any_text_parses_or_raises_an_expression_error(text):
    try:
        parse_expression(text)
    except ExpressionError as error:
        assert 0 <= error.position <= len(text)
        assert error.line >= 1 and error.column >= 1
        assert error.message


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=12).map(" ".join), VALUES, st.dates())
def test_what_parses_evaluates_without_raising(text, values, today):
    try:
        expression = parse_expression(text)
    except ExpressionError as error:
        assert 0 <= error.position <= len(text)
        return
    value = expression.evaluate(values, today=today)
    assert value is None or isinstance(value, str | float | bool)
    if isinstance(value, float):
        assert math.isfinite(value)
    assert expression.holds(values, today=today) in (True, False, None)
    assert json.loads(json.dumps(expression.to_json())) == expression.to_json()
    assert isinstance(format_value(value, 2), str)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_number_is_stored_in_digits_that_read_back_as_itself(number):
    text = format_value(number, None)
    assert "e" not in text.lower()
    assert float(text) == number
    # ... and an expression reading the stored text sees the same number.
    assert text_number(text) == number


@given(
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
    st.integers(min_value=0, max_value=6),
)
def test_a_number_with_a_precision_is_stored_rounded_to_it(number, precision):
    text = format_value(number, precision)
    decimals = text.partition(".")[2]
    assert len(decimals) == precision
    stored = float(text)
    assert abs(stored - number) <= 0.5 * 10**-precision * (1 + 1e-9) + abs(number) * 1e-15
    # round() in an expression gives the number the stored text holds.
    assert stored == round_number(number, float(precision), "half_away")
    rounded = parse_expression(f"round([x], {precision})").evaluate({"x": repr(number)})
    assert rounded == stored


@given(st.text())
def test_text_is_stored_as_it_is(text):
    assert format_value(text, 2) == text
