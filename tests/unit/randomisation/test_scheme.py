"""Reading a study's randomisation section: defaults, and a clear problem, at its key
path, for each mistake a data manager might make."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bhp_ctms.randomisation.methods.scheme import (
    Factor,
    Scheme,
    SchemeArm,
    SchemeProblem,
    read_scheme,
)

ROOT = Path(__file__).resolve().parents[3]
ONE_TO_ONE = [("walking", 1), ("usual_care", 1)]
TWO_TO_ONE = [("active", 2), ("placebo", 1)]
SEX = {"code": "sex", "item": "screening/demographics.sex"}


def problems_of(method, settings, arms=ONE_TO_ONE):
    scheme, problems = read_scheme(method, settings, arms)
    assert scheme is None
    return [(problem.path, problem.message) for problem in problems]


def test_the_demo_study_section_reads_with_its_defaults():
    section = yaml.safe_load((ROOT / "forms" / "demo" / "study.yaml").read_text())["randomisation"]
    method = section.pop("method")

    scheme, problems = read_scheme(method, section, ONE_TO_ONE)

    assert problems == []
    assert scheme == Scheme(
        method="permuted_blocks",
        arms=(SchemeArm("walking", 1), SchemeArm("usual_care", 1)),
        stratify_by=("site",),
        block_sizes=(4, 6),
        seed_required=True,
        kit_codes=True,
    )
    assert scheme.list_based
    assert scheme.describe() == (
        "permuted blocks of 4, 6, stratified by site; arms walking, usual_care (1:1)"
    )


def test_each_method_reads_its_own_settings():
    simple, _ = read_scheme("simple", {"kit_codes": False}, ONE_TO_ONE)
    stick, _ = read_scheme(
        "big_stick",
        {"max_imbalance": 3, "stratify_by": ["site", "sex"], "factors": [{"code": "site"}, SEX]},
        TWO_TO_ONE,
    )
    minimised, problems = read_scheme(
        "minimisation",
        {
            "factors": [{"code": "site"}, {**SEX, "weight": 2}, {"code": "age", "item": "a/b.c"}],
            "imbalance": "variance",
            "total": "weighted_sum",
            "preferred_p": 1,
            "random_first": 10,
        },
        ONE_TO_ONE,
    )

    assert problems == []
    assert simple is not None and stick is not None and minimised is not None
    assert (simple.method, simple.kit_codes, simple.stratify_by) == ("simple", False, ())
    assert (stick.max_imbalance, stick.stratify_by) == (3, ("site", "sex"))
    assert stick.factors == (Factor("site"), Factor("sex", "screening/demographics.sex"))
    assert stick.ratio("active") == 2 and stick.ratio_sum == 3
    assert minimised.factors[1] == Factor("sex", "screening/demographics.sex", 2.0)
    assert minimised.factors[1].item_parts == ("screening", "demographics", "sex")
    assert minimised.item_factors == minimised.factors[1:]
    assert (minimised.imbalance, minimised.total, minimised.preferred_p) == (
        "variance",
        "weighted_sum",
        1.0,
    )
    assert minimised.random_first == 10
    assert not minimised.list_based


def test_minimisation_defaults_follow_smallerize_names():
    scheme, problems = read_scheme("minimisation", {"factors": [{"code": "site"}]}, ONE_TO_ONE)

    assert problems == []
    assert scheme is not None
    assert (scheme.imbalance, scheme.total, scheme.preferred_p, scheme.random_first) == (
        "range",
        "sum",
        0.8,
        0,
    )
    assert scheme.describe() == (
        "minimisation on site: range, sum, preferred arm with p = 0.8;"
        " arms walking, usual_care (1:1)"
    )


@pytest.mark.parametrize(
    ("method", "settings", "expected"),
    [
        (
            "permuted_blocks",
            {"block_sizes": [4, 5, 4, 0, 200]},
            [
                (
                    ("block_sizes", 1),
                    "block size 5 is not a multiple of 2, the sum of the arm ratios, so its"
                    " blocks could not hold the arms in their ratio: use 2, 4, 6, ...",
                ),
                (("block_sizes", 2), "block size 4 is given twice"),
                (("block_sizes", 3), "must be a whole number of 1 or more, not 0"),
                (("block_sizes", 4), "block size 200 is too large: at most 100"),
            ],
        ),
        (
            "permuted_blocks",
            {},
            [
                (
                    (),
                    "missing required key 'block_sizes': the block sizes to draw from, e.g. [4, 6]",
                )
            ],
        ),
        (
            "permuted_blocks",
            {"block_sizes": "4, 6"},
            [(("block_sizes",), "must be a list of block sizes such as [4, 6], not '4, 6'")],
        ),
        (
            "big_stick",
            {"max_imbalance": 0},
            [(("max_imbalance",), "must be a whole number of 1 or more, not 0")],
        ),
        (
            "big_stick",
            {"max_imbalance": True, "kit_codes": "yes please"},
            [
                (("kit_codes",), "must be true or false, not 'yes please'"),
                (("max_imbalance",), "must be a whole number of 1 or more, not true"),
            ],
        ),
        (
            "simple",
            {"block_sizes": [4], "stratify": ["site"]},
            [
                (
                    ("block_sizes",),
                    "'block_sizes' is a setting of permuted_blocks, not of simple; simple"
                    " takes: factors, kit_codes, stratify_by, seed_required",
                ),
                (
                    ("stratify",),
                    "unknown key 'stratify'; simple takes: factors, kit_codes, stratify_by,"
                    " seed_required",
                ),
            ],
        ),
        (
            "simple",
            {"stratify_by": ["site", "sex", "site", 3], "factors": [{"code": "age", "item": "x"}]},
            [
                (
                    ("factors", 0, "item"),
                    "'x' is not an item reference: write \"<event>/<form>.<item>\","
                    ' e.g. "screening/demographics.sex"',
                ),
                (
                    ("stratify_by", 1),
                    "'sex' is not a factor: add it to factors with the CRF item holding it"
                    ' ({code: sex, item: "<event>/<form>.<item>"}), or use site',
                ),
                (("stratify_by", 2), "'site' is listed twice"),
                (("stratify_by", 3), "must be a factor's code, not 3"),
            ],
        ),
        (
            "simple",
            {"stratify_by": ["site"], "factors": [SEX, {"code": "site", "weight": 2}]},
            [
                (
                    ("factors", 1, "weight"),
                    "weights are for minimisation only: remove it (simple does not weigh factors)",
                ),
                (
                    ("factors", 0),
                    "factor 'sex' is not used: add it to stratify_by or remove it",
                ),
            ],
        ),
        (
            "minimisation",
            {"stratify_by": ["site"], "seed_required": True},
            [
                (
                    ("stratify_by",),
                    "'stratify_by' is for the list methods (simple, permuted_blocks,"
                    " big_stick), not minimisation; minimisation takes: factors, kit_codes,"
                    " imbalance, total, preferred_p, random_first",
                ),
                (
                    ("seed_required",),
                    "'seed_required' is for the list methods (simple, permuted_blocks,"
                    " big_stick), not minimisation; minimisation takes: factors, kit_codes,"
                    " imbalance, total, preferred_p, random_first",
                ),
                (
                    (),
                    "missing required key 'factors': minimisation needs at least one, e.g."
                    ' [{code: site}, {code: sex, item: "screening/demographics.sex"}]',
                ),
            ],
        ),
        (
            "minimisation",
            {"factors": []},
            [
                (
                    ("factors",),
                    "minimisation needs at least one factor, e.g."
                    ' [{code: site}, {code: sex, item: "screening/demographics.sex"}]',
                )
            ],
        ),
        (
            "minimisation",
            {
                "factors": [
                    {"code": "site", "item": "a/b.c"},
                    {"code": "Sex", "item": "a/b.c"},
                    {"code": "age"},
                    {"code": "bmi", "item": "a/b.c", "weight": -1, "levels": 3},
                    "sex",
                    {"item": "a/b.c"},
                    {"code": "site"},
                    {"code": "site"},
                ],
                "imbalance": "sd",
                "total": "product",
                "preferred_p": 0.5,
                "random_first": -1,
            },
            [
                (
                    ("factors", 0, "item"),
                    "the site factor is built in: remove its item (its levels are the site codes)",
                ),
                (
                    ("factors", 1, "code"),
                    "'Sex' is not a valid factor code (lower-case letters, digits and '_',"
                    " starting with a letter, at most 32)",
                ),
                (
                    ("factors", 2),
                    "factor 'age' needs an item: the CRF item holding each participant's"
                    ' level, as "<event>/<form>.<item>", e.g. "screening/demographics.sex"',
                ),
                (
                    ("factors", 3, "levels"),
                    "unknown key 'levels'; a factor takes: code, item, weight",
                ),
                (("factors", 3, "weight"), "must be a positive number such as 1 or 2.5, not -1"),
                (("factors", 4), "must be a mapping {code, item}, not 'sex'"),
                (("factors", 5), "missing required key 'code'"),
                (("factors", 7, "code"), "factor 'site' is given twice (first as factors[6])"),
                (("total",), "must be sum or weighted_sum, not 'product'"),
                (
                    ("preferred_p",),
                    "must be a probability above 1/2 (one over the number of arms) and at"
                    " most 1, such as 0.8, not 0.5",
                ),
                (("imbalance",), "must be range or variance, not 'sd'"),
                (("random_first",), "must be a whole number of 0 or more, not -1"),
            ],
        ),
        (
            "minimisation",
            {"factors": [{"code": "site", "weight": 2}]},
            [
                (
                    ("factors", 0, "weight"),
                    "is ignored when total is sum: set total: weighted_sum to use the weights,"
                    " or remove them",
                )
            ],
        ),
    ],
)
def test_each_mistake_is_a_problem_at_its_key_path(method, settings, expected):
    assert problems_of(method, settings) == expected


def test_three_arms_allow_a_preferred_p_of_one_half():
    arms = [("a", 1), ("b", 1), ("c", 1)]
    scheme, problems = read_scheme(
        "minimisation", {"factors": [{"code": "site"}], "preferred_p": 0.5}, arms
    )

    assert problems == [] and scheme is not None and scheme.preferred_p == 0.5
    assert problems_of("minimisation", {"factors": [{"code": "site"}], "preferred_p": 0.3}, arms)


def test_block_sizes_must_hold_unequal_ratios_exactly():
    scheme, problems = read_scheme("permuted_blocks", {"block_sizes": [3, 6]}, TWO_TO_ONE)

    assert problems == [] and scheme is not None and scheme.block_sizes == (3, 6)
    assert problems_of("permuted_blocks", {"block_sizes": [4]}, TWO_TO_ONE) == [
        (
            ("block_sizes", 0),
            "block size 4 is not a multiple of 3, the sum of the arm ratios, so its blocks"
            " could not hold the arms in their ratio: use 3, 6, 9, ...",
        )
    ]


def test_an_unknown_method_or_too_few_arms_is_a_problem():
    assert problems_of("urn", {}) == [
        (("method",), "must be one of simple, permuted_blocks, big_stick, minimisation, not 'urn'")
    ]
    assert problems_of("simple", {}, [("only", 1)]) == [((), "needs at least two arms")]
    assert problems_of("simple", {}, [("a", 1), ("a", 0)]) == [
        ((), "the arm codes must differ from each other"),
        ((), "arm 'a' needs a ratio of 1 or more"),
    ]


def test_a_problem_names_its_place_as_study_yaml_problems_do():
    problem = SchemeProblem(("factors", 1, "weight"), "must be a positive number")

    assert problem.where == "randomisation.factors[1].weight"
    assert str(problem) == "randomisation.factors[1].weight: must be a positive number"
    assert SchemeProblem((), "needs at least two arms").where == "randomisation"
