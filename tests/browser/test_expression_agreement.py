"""The browser and the server agree on every expression: show-if logic shows and hides
the same items, and calculations store the same text, for random entries, evaluated in
Chromium by static/js/crf-expressions.js over Expression.to_json()."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playwright.sync_api import Page

from bhp_ctms.crf.expressions import compiled, format_value, parse_expression

pytestmark = pytest.mark.browser

MODULE = "/static/js/crf-expressions.js"

# Show-if conditions of the kinds real forms use.
SHOW_IFS = [
    "[sex] = '2' and [age] >= 12",
    "[sex] = '2' and ([pregnant] = '1' or [pregnant] = '')",
    "[weight] > 100 or [weight] < 40",
    "[race(3)] = '1'",
    "[race(1)] = '1' and [race(4)] = '0'",
    "[smoker] <> '0'",
    "datediff([dob], [visit_date], 'y') >= 18",
    "rounddown(datediff([dob], 'today', 'y')) < 65",
    "[onset_date] <= [visit_date]",
    "[sbp] >= 140 or [dbp] >= 90",
    "[dbp] < [sbp]",
    "([race(1)] = '1') + ([race(2)] = '1') + ([race(3)] = '1') >= 2",
    "[age] >= 18 and [age] <= 65 and [consent] = '1'",
    "if([sex] = '1', [hb] < 13, [hb] < 12)",
    "[other_text] <> '' and contains([other_text], 'pain')",
    "isblankormissingcode([weight]) or [weight] = 0",
    "datediff([onset_date], [visit_date], 'd', true) > 14",
    "[baseline][weight] - [weight] >= 5",
    "[weight] / ([height]/100)^2 >= 30",
    "sum([q1], [q2], [q3]) > 5",
    "mean([q1], [q2], [q3]) >= 2.5",
    "[visit_date] = ''",
    "[visit_time] < '12:00'",
    "year([onset_date]) = year([visit_date])",
]

# Calculations and the precision of the item that stores them.
CALCULATIONS: list[tuple[str, int | None]] = [
    ("[weight] / ([height]/100)^2", 1),
    ("[weight] / [height]", None),
    ("datediff([dob], [visit_date], 'y')", 2),
    ("rounddown(datediff([dob], [visit_date], 'y'))", 0),
    ("datediff([onset_date], [visit_date], 'd', true)", None),
    ("datediff([visit_date], 'now', 'h')", 1),
    ("[q1] + [q2] + [q3]", None),
    ("mean([q1], [q2], [q3])", 2),
    ("median([q1], [q2], [q3], [sbp])", 1),
    ("stdev([q1], [q2], [q3])", 3),
    ("max([q1], [q2], [q3]) - min([q1], [q2], [q3])", None),
    ("round([weight] * 2.20462, 1)", 1),
    ("roundup([weight] / 3, 2)", None),
    ("if([sex] = '1', [hb] * 0.6206, [hb])", 3),
    ("sqrt([weight] * [height] / 3600)", 2),
    ("([race(1)] = '1') + ([race(2)] = '1') + ([race(3)] = '1')", None),
    ("[sbp] / 3 + 2 * [dbp] / 3", 0),
    ("concat(upper(left([other_text], 3)), '-', [sex])", None),
    ("length(trim([other_text]))", None),
    ("[weight] ^ 2 - [baseline][weight] ^ 2", 2),
    ("-[weight] * 0.1", 1),
    ("log([hb], 10)", 4),
]

SHOW_IF_TREES = [parse_expression(text).to_json() for text in SHOW_IFS]
CALCULATION_TREES = [
    (parse_expression(text).to_json(), precision) for text, precision in CALCULATIONS
]

BLANKS = st.sampled_from(["", "ND", "UNK"])
# Numbers as people type them, and what they type that is not one.
NUMBERS = st.one_of(
    BLANKS,
    st.integers(min_value=-50, max_value=300).map(str),
    st.decimals(min_value=-50, max_value=300, places=2, allow_nan=False).map(str),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(repr),
    st.sampled_from(["abc", "12a", " 5", "5.", ".5", "-0", "1e3", "+7", "0x10", "1,5", "Infinity"]),
)
CHOICES = st.sampled_from(["", "0", "1", "2", "3", "ND"])
CHECKBOXES = st.sets(st.sampled_from(["1", "2", "3", "4"])).map(
    lambda codes: "|".join(sorted(codes))
)
DAYS = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
CLOCK_TIMES = st.tuples(st.integers(0, 23), st.integers(0, 59)).map(
    lambda hm: f"{hm[0]:02}:{hm[1]:02}"
)
TIMES = st.one_of(BLANKS, CLOCK_TIMES)
DATES = st.one_of(
    BLANKS,
    DAYS.map(date.isoformat),
    st.tuples(DAYS, st.integers(0, 23), st.integers(0, 59), st.sampled_from(["T", " "])).map(
        lambda moment: f"{moment[0].isoformat()}{moment[3]}{moment[1]:02}:{moment[2]:02}"
    ),
    st.integers(1900, 2100).map(lambda year: f"{year}-UN-UN"),
    DAYS.map(lambda day: f"{day.year}-{day.month:02}-UN"),
    # Not dates an entry would keep, but an expression must not trip over them.
    CLOCK_TIMES,
    st.sampled_from(["2023-02-29", "2024-13-01", "01-03-2024", "yesterday"]),
)
TEXTS = st.one_of(
    BLANKS, st.sampled_from(["Pain", "chest PAIN", " knee pain ", "ache", "Straße", "Δ pain"])
)

ENTRIES = st.fixed_dictionaries(
    {
        "sex": CHOICES,
        "age": NUMBERS,
        "pregnant": CHOICES,
        "weight": NUMBERS,
        "baseline.weight": NUMBERS,
        "height": NUMBERS,
        "race": CHECKBOXES,
        "smoker": CHOICES,
        "consent": CHOICES,
        "dob": DATES,
        "visit_date": DATES,
        "onset_date": DATES,
        "visit_time": TIMES,
        "sbp": NUMBERS,
        "dbp": NUMBERS,
        "hb": NUMBERS,
        "q1": NUMBERS,
        "q2": NUMBERS,
        "q3": NUMBERS,
        "other_text": TEXTS,
    }
)


def open_module(page: Page, live_server: str) -> None:
    """Any page of ours, with the expressions module loaded as the data entry page will."""
    page.goto(live_server + "/login")
    page.add_script_tag(url=live_server + MODULE, type="module")
    page.wait_for_function("window.CtmsExpressions !== undefined")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=st.lists(ENTRIES, min_size=1, max_size=6), today=DAYS)
def test_browser_and_server_show_and_hide_the_same_items(page, live_server, entries, today):
    if not page.url.startswith(live_server):
        open_module(page, live_server)
    server = [[compiled(text).holds(entry, today=today) for text in SHOW_IFS] for entry in entries]
    browser = page.evaluate(
        """([trees, entries, today]) => entries.map(
            (entry) => trees.map((tree) => window.CtmsExpressions.holds(tree, entry, today)))""",
        [SHOW_IF_TREES, entries, today.isoformat()],
    )
    for entry, server_row, browser_row in zip(entries, server, browser, strict=True):
        for text, on_server, in_chromium in zip(SHOW_IFS, server_row, browser_row, strict=True):
            assert in_chromium == on_server, f"{text} with {entry}"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=st.lists(ENTRIES, min_size=1, max_size=6), today=DAYS)
def test_browser_and_server_calculate_the_same_stored_text(page, live_server, entries, today):
    if not page.url.startswith(live_server):
        open_module(page, live_server)
    server = [
        [
            format_value(compiled(text).evaluate(entry, today=today), precision)
            for text, precision in CALCULATIONS
        ]
        for entry in entries
    ]
    browser = page.evaluate(
        """([calculations, entries, today]) => entries.map((entry) => calculations.map(
            ([tree, precision]) => window.CtmsExpressions.formatValue(
                window.CtmsExpressions.evaluate(tree, entry, today), precision)))""",
        [CALCULATION_TREES, entries, today.isoformat()],
    )
    for entry, server_row, browser_row in zip(entries, server, browser, strict=True):
        for (text, _), on_server, in_chromium in zip(
            CALCULATIONS, server_row, browser_row, strict=True
        ):
            assert in_chromium == on_server, f"{text} with {entry}"


def test_the_module_loads_under_the_content_security_policy(page, live_server):
    open_module(page, live_server)
    tree = parse_expression("[weight] / ([height]/100)^2").to_json()
    bmi = page.evaluate(
        """(tree) => window.CtmsExpressions.formatValue(
            window.CtmsExpressions.evaluate(tree, {weight: '72.5', height: '180'}), 1)""",
        tree,
    )
    assert bmi == "22.4"
