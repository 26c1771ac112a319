"""Allocation lists: what a generated list guarantees (exact blocks, bounded
imbalance, reproducibility), its canonical CSV, and the checking of uploaded lists."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bhp_ctms.randomisation.methods.lists import (
    ListProblem,
    ListRow,
    generate_list,
    list_sha256,
    read_list_csv,
    strata,
    stratum_key,
    stratum_levels,
    write_list_csv,
)
from bhp_ctms.randomisation.methods.scheme import Scheme, read_scheme

ONE_TO_ONE = [("walking", 1), ("usual_care", 1)]
TWO_TO_ONE = [("active", 2), ("placebo", 1)]
SEX = {"code": "sex", "item": "screening/demographics.sex"}
LEVELS = {"site": ["NTH", "CHH", "QEH"], "sex": ["F", "M"]}


def scheme_of(method, arms=ONE_TO_ONE, **settings) -> Scheme:
    scheme, problems = read_scheme(method, settings, arms)
    assert problems == [] and scheme is not None
    return scheme


def blocks(block_sizes, arms=ONE_TO_ONE, **settings):
    return scheme_of(
        "permuted_blocks",
        arms,
        block_sizes=block_sizes,
        stratify_by=["site", "sex"],
        factors=[SEX],
        **settings,
    )


def by_stratum(rows):
    grouped = defaultdict(list)
    for row in rows:
        grouped[row.stratum].append(row)
    return grouped


def largest_imbalance(scheme, arms):
    """The largest ratio-adjusted imbalance (max - min of count / ratio) over every
    prefix of a sequence of arms."""
    # Counts times lcm / ratio: whole numbers proportional to count / ratio.
    common = math.lcm(*(arm.ratio for arm in scheme.arms))
    step = {arm.code: common // arm.ratio for arm in scheme.arms}
    adjusted = dict.fromkeys(scheme.arm_codes, 0)
    largest = 0
    for arm in arms:
        adjusted[arm] += step[arm]
        largest = max(largest, max(adjusted.values()) - min(adjusted.values()))
    return Fraction(largest, common)


# --- Strata -----------------------------------------------------------------------


def test_strata_are_named_by_their_levels_in_stratify_by_order():
    scheme = blocks([4, 6])

    assert strata(scheme, LEVELS) == [
        "site=NTH;sex=F",
        "site=NTH;sex=M",
        "site=CHH;sex=F",
        "site=CHH;sex=M",
        "site=QEH;sex=F",
        "site=QEH;sex=M",
    ]
    assert stratum_key(scheme, {"sex": "M", "site": "CHH", "age": "old"}) == "site=CHH;sex=M"
    assert stratum_levels("site=CHH;sex=M") == {"site": "CHH", "sex": "M"}
    unstratified = scheme_of("simple")
    assert strata(unstratified, {}) == ["all"]
    assert stratum_key(unstratified, {"site": "NTH"}) == "all"
    assert stratum_levels("all") == {}


def test_a_level_that_would_make_a_stratum_ambiguous_is_refused():
    scheme = blocks([4])

    with pytest.raises(KeyError):
        stratum_key(scheme, {"site": "NTH"})
    for level in ("", "F;M", "a=b", "F\n"):
        with pytest.raises(ValueError, match="cannot name a stratum"):
            stratum_key(scheme, {"site": "NTH", "sex": level})
    with pytest.raises(ValueError, match="no levels"):
        strata(scheme, {"site": ["NTH"], "sex": []})


# --- Generating -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arms", "block_sizes"), [(ONE_TO_ONE, [4, 6]), (TWO_TO_ONE, [3, 6]), (ONE_TO_ONE, [2])]
)
def test_every_block_holds_the_arms_in_their_exact_ratio(arms, block_sizes):
    scheme = blocks(block_sizes, arms)

    rows = generate_list(scheme, strata(scheme, LEVELS), "block test", 50)

    contents = defaultdict(Counter)
    sizes = {}
    for row in rows:
        contents[row.stratum, row.block][row.arm] += 1
        sizes[row.stratum, row.block] = row.block_size
    for key, counts in contents.items():
        size = sizes[key]
        assert size in block_sizes
        assert sum(counts.values()) == size, "every block is complete, the last included"
        for code, ratio in arms:
            assert counts[code] == size * ratio // scheme.ratio_sum
    assert {size for size in sizes.values()} == set(block_sizes), "sizes are drawn from the set"


@pytest.mark.parametrize(("arms", "block_sizes"), [(ONE_TO_ONE, [4, 6]), (TWO_TO_ONE, [3, 6])])
def test_over_10000_allocations_a_stratum_is_never_off_by_more_than_half_a_block(arms, block_sizes):
    scheme = blocks(block_sizes, arms)
    names = strata(scheme, LEVELS)

    rows = generate_list(scheme, names, "ten thousand", 10_000 // len(names) + 1)

    assert len(rows) >= 10_000
    for stratum, stratum_rows in by_stratum(rows).items():
        assert [row.sequence for row in stratum_rows] == list(range(1, len(stratum_rows) + 1))
        imbalance = largest_imbalance(scheme, [row.arm for row in stratum_rows])
        assert imbalance <= Fraction(max(block_sizes), 2), stratum
        assert imbalance > 0


def test_the_last_block_is_completed_past_the_number_asked_for():
    scheme = blocks([4, 6])

    rows = generate_list(scheme, ["site=NTH;sex=F"], "completion", 5)

    assert len(rows) in (8, 10, 12)
    last = rows[-1]
    assert [row.block for row in rows].count(last.block) == last.block_size


def test_the_same_seed_gives_the_same_list_and_another_seed_another():
    scheme = blocks([4, 6])
    names = strata(scheme, LEVELS)

    first = generate_list(scheme, names, "seed one", 40)

    assert generate_list(scheme, names, "seed one", 40) == first
    assert generate_list(scheme, names, "seed two", 40) != first
    # Each stratum has its own stream: adding or reordering strata changes no arm.
    more = generate_list(scheme, [*reversed(names), "site=XYZ;sex=F"], "seed one", 40)
    arms = {(row.stratum, row.sequence): row.arm for row in first}
    assert all(arms[row.stratum, row.sequence] == row.arm for row in more if row.stratum in names)


def test_a_generated_list_is_the_same_on_every_machine_and_python_version():
    # Pinned: a change here means lists can no longer be reproduced from their seeds.
    scheme = scheme_of("permuted_blocks", block_sizes=[4, 6], stratify_by=["site"])

    rows = generate_list(scheme, ["site=NTH", "site=CHH"], "golden seed", 5)

    assert write_list_csv(rows).splitlines()[:3] == [
        "stratum,sequence,arm,kit_code,block,block_size",
        "site=CHH,1,usual_care,778587,1,4",
        "site=CHH,2,walking,985423,1,4",
    ]
    assert list_sha256(rows) == "14365d0080b70b1b29c74454e1b8e1ba0398af83d2ce14c8e4ef913b4e581b11"
    stick = scheme_of("big_stick", TWO_TO_ONE, max_imbalance=2, kit_codes=False)
    assert [row.arm for row in generate_list(stick, ["all"], "golden seed", 8)] == [
        "placebo",
        "active",
        "placebo",
        "active",
        "placebo",
        "active",
        "active",
        "active",
    ]


@pytest.mark.parametrize(
    ("arms", "max_imbalance"),
    [(ONE_TO_ONE, 1), (ONE_TO_ONE, 3), (TWO_TO_ONE, 2), ([("a", 1), ("b", 1), ("c", 2)], 2)],
)
def test_big_stick_never_exceeds_its_maximum_imbalance(arms, max_imbalance):
    scheme = scheme_of("big_stick", arms, max_imbalance=max_imbalance)

    rows = generate_list(scheme, ["all"], "big stick", 10_000)

    assert len(rows) == 10_000
    assert {row.block for row in rows} == {None}
    # It reaches the limit (it is random up to there) but never passes it.
    assert largest_imbalance(scheme, [row.arm for row in rows]) == max_imbalance


def test_simple_randomisation_follows_the_ratio_on_average():
    scheme = scheme_of("simple", TWO_TO_ONE)

    rows = generate_list(scheme, ["all"], "simple", 9_000)

    share = Counter(row.arm for row in rows)["active"] / len(rows)
    assert abs(share - 2 / 3) < 0.02


def test_kit_codes_are_unique_random_six_digit_numbers_or_none_at_all():
    scheme = blocks([4, 6])

    rows = generate_list(scheme, strata(scheme, LEVELS), "kits", 200)

    codes = [row.kit_code for row in rows]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"[1-9][0-9]{5}", code) for code in codes)
    assert codes != sorted(codes)
    off = blocks([4, 6], kit_codes=False)
    assert {row.kit_code for row in generate_list(off, ["site=NTH;sex=F"], "kits", 20)} == {""}


def test_generating_refuses_what_it_cannot_do():
    scheme = blocks([4])
    minimised = scheme_of("minimisation", factors=[{"code": "site"}])

    for args in [
        (minimised, ["all"], "seed", 10),
        (scheme, ["a"], "", 10),
        (scheme, ["a"], "seed", 0),
        (scheme, [], "seed", 10),
        (scheme, ["a", "a"], "seed", 10),
    ]:
        with pytest.raises(ValueError):
            generate_list(*args)


# --- The canonical CSV ------------------------------------------------------------


def test_the_csv_round_trips_and_its_hash_does_not_depend_on_row_order():
    scheme = blocks([4, 6])
    names = strata(scheme, LEVELS)
    rows = generate_list(scheme, names, "round trip", 12)

    text = write_list_csv(rows)
    read, problems = read_list_csv(text, scheme, scheme.arm_codes, names)

    assert problems == []
    assert sorted(read, key=lambda row: (row.stratum, row.sequence)) == read
    assert write_list_csv(read) == text
    assert list_sha256(read) == list_sha256(list(reversed(rows))) == list_sha256(rows)
    assert len(list_sha256(rows)) == 64


# --- Uploaded lists ---------------------------------------------------------------

SIMPLE = scheme_of("simple", stratify_by=["site"])
SITES = ["site=NTH", "site=CHH"]


def upload(text, scheme=SIMPLE, strata_names=SITES):
    return read_list_csv(text, scheme, scheme.arm_codes, strata_names)


def problems_in(text, scheme=SIMPLE, strata_names=SITES):
    rows, problems = upload(text, scheme, strata_names)
    assert rows == []
    return [(problem.line, problem.column, problem.message) for problem in problems]


def test_an_uploaded_list_needs_only_four_columns_in_any_order_and_tolerates_excel():
    text = (
        "\ufeffKit_Code, Arm ,sequence,STRATUM,,\r\n"
        "\r\n"
        "A-101,walking,1,site=NTH,,\r\n"
        "A-102, usual_care ,2,site=NTH,,\r\n"
        ",,,,,\r\n"
        "B.7,usual_care,1,site=CHH,,\r\n"
    )

    rows, problems = upload(text)

    assert problems == []
    assert rows == [
        ListRow("site=CHH", 1, "usual_care", None, None, "B.7"),
        ListRow("site=NTH", 1, "walking", None, None, "A-101"),
        ListRow("site=NTH", 2, "usual_care", None, None, "A-102"),
    ]


def test_an_uploaded_list_of_a_study_without_kit_codes_needs_no_kit_code_column():
    scheme = scheme_of("permuted_blocks", block_sizes=[2], kit_codes=False)

    rows, problems = upload(
        "stratum,sequence,arm,block,block_size\nall,1,walking,1,2\nall,2,usual_care,1,2\n",
        scheme,
        ["all"],
    )

    assert problems == []
    assert rows[1] == ListRow("all", 2, "usual_care", 1, 2, "")
    assert problems_in("stratum,sequence,arm,kit_code\nall,1,walking,123\n", scheme, ["all"]) == [
        (
            2,
            "kit_code",
            "this study does not use kit codes (kit_codes: false): leave kit_code empty",
        ),
    ]


def test_each_bad_row_is_named_with_its_line_and_column():
    text = "\n".join(
        [
            "stratum,sequence,arm,kit_code",
            "site=NTH,1,walking,K1",  # 2
            "site=nth,2,walking,K2",  # 3
            "site=NTH,2,Walking,K3",  # 4
            "site=NTH,two,walking,K4",  # 5
            "site=NTH,0,walking,K5",  # 6
            "site=NTH,2,usual_care,K1",  # 7
            "site=NTH,2,usual_care,K6",  # 8
            "site=NTH,5,usual_care,",  # 9
            "site=CHH,1,walking,=cmd()",  # 10
            "site=CHH,2,walking",  # 11
            "site=CHH,3,,K9",  # 12
            '"site=CHH",4,"walking",K10',  # 13
            "site=XYZ,1,walking,K11",  # 14
        ]
    )

    assert problems_in(text) == [
        (3, "stratum", "'site=nth' is not one of this study's strata (did you mean site=NTH?)"),
        (
            4,
            "arm",
            "'Walking' is not an arm of this study (did you mean walking? codes are"
            " case-sensitive): use walking, usual_care",
        ),
        (5, "sequence", "'two' is not a whole number from 1 (1, 2, 3, ...)"),
        (6, "sequence", "'0' is not a whole number from 1 (1, 2, 3, ...)"),
        (
            7,
            "kit_code",
            "kit code K1 is given twice (first on line 2): each pack needs its own code",
        ),
        (
            7,
            "sequence",
            "sequence 2 of stratum site=NTH is given twice (first on line 4): each"
            " allocation of a stratum needs its own number",
        ),
        (
            8,
            "sequence",
            "sequence 2 of stratum site=NTH is given twice (first on line 4): each"
            " allocation of a stratum needs its own number",
        ),
        (9, "kit_code", "the kit code is missing: each allocation needs one"),
        (
            10,
            "kit_code",
            "'=cmd()' is not a valid kit code (letters, digits, '.', '_', '/' and '-',"
            " starting with a letter or digit, at most 64)",
        ),
        (11, None, "this line has 3 values but the header has 4 columns"),
        (12, "arm", "the arm is missing: give one of walking, usual_care"),
        (
            14,
            "stratum",
            "'site=XYZ' is not one of this study's strata (the strata are site=NTH, site=CHH)",
        ),
        (
            None,
            "sequence",
            "stratum site=CHH: the sequence numbers must run 1, 2, 3, ... without a gap,"
            " but 2 is missing",
        ),
        (
            None,
            "sequence",
            "stratum site=NTH: the sequence numbers must run 1, 2, 3, ... without a gap,"
            " but 3 is missing",
        ),
    ]


def test_a_missing_or_unknown_column_is_named():
    assert problems_in("stratum,sequence,arms,kit_code\nsite=NTH,1,walking,K1\n") == [
        (
            1,
            "arms",
            "column 'arms' is not recognised: the columns are stratum, sequence, arm,"
            " kit_code, block, block_size (the first line must be the header)",
        ),
        (
            1,
            "arm",
            "the header has no arm column: the first line must name the columns"
            " stratum,sequence,arm,kit_code",
        ),
    ]
    assert problems_in("stratum,sequence,arm,sequence,kit_code\n") == [
        (1, "sequence", "column sequence is given twice"),
    ]


def test_a_file_without_header_or_rows_or_proper_quotes_is_refused_plainly():
    header_first = (
        "the first line must be the header naming the columns"
        " stratum,sequence,arm,kit_code (optionally also block,block_size)"
    )
    assert problems_in("\n\nsite=NTH,1,walking,K1\n") == [(3, None, header_first)]
    assert problems_in("\ufeff\r\n\r\n") == [
        (
            None,
            None,
            "the file is empty: it needs a header line (stratum,sequence,arm,kit_code) and"
            " then one line per allocation",
        )
    ]
    assert problems_in("stratum,sequence,arm,kit_code\n") == [
        (None, None, "the list has no allocations: add one line per allocation")
    ]
    [(line, column, message)] = problems_in(
        'stratum,sequence,arm,kit_code\nsite=NTH,1,walking,K1\nsite=NTH,2,"walk"ing,K2\n'
    )
    assert (line, column) == (3, None)
    assert message.startswith("this is not CSV that can be read (")
    assert message.endswith("): check the quotes")


def test_a_problem_reads_as_a_sentence_with_its_place():
    assert str(ListProblem(4, "arm", "the arm is missing")) == (
        "Line 4, column arm: the arm is missing"
    )
    assert str(ListProblem(None, "sequence", "gap")) == "Column sequence: gap"
    assert str(ListProblem(None, None, "the file is empty")) == "The file is empty"


# Pieces of plausible and implausible lists, so that random files get past the header.
PIECES = [
    "stratum,sequence,arm,kit_code",
    "stratum,sequence,arm",
    "block,block_size",
    "site=NTH",
    "site=CHH",
    "site=",
    "all",
    "walking",
    "usual_care",
    "1",
    "2",
    "0",
    "-1",
    "99999999999999999999",
    "K1",
    "=1+1",
    ",",
    ";",
    '"',
    '""',
    "\n",
    "\r\n",
    "\r",
    "\ufeff",
    "\x00",
    " ",
]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_gives_rows_or_problems_never_a_traceback(text):
    check_upload(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=5)), max_size=40))
def test_any_jumble_of_list_pieces_gives_rows_or_problems_never_a_traceback(pieces):
    check_upload("".join(pieces))


def check_upload(text):
    for scheme in (SIMPLE, scheme_of("simple", stratify_by=["site"], kit_codes=False)):
        rows, problems = upload(text, scheme)
        assert bool(rows) != bool(problems)
        for problem in problems:
            assert problem.message and len(problem.message) < 600
            assert problem.line is None or problem.line >= 1
        if rows:
            assert write_list_csv(rows).count("\n") == len(rows) + 1
