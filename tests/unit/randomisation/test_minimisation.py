"""Minimisation scores against an independent implementation (the ``smallerize``
package, test-only), a hand-computed case with unequal ratios, and the choice rules."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import smallerize

from bhp_ctms.randomisation.methods.lists import seeded_rng
from bhp_ctms.randomisation.methods.minimisation import (
    Choice,
    Minimiser,
    choose,
    choose_exact,
    imbalance_scores,
)
from bhp_ctms.randomisation.methods.scheme import Scheme, read_scheme

FACTORS = {
    "site": ("NTH", "CHH", "QEH", "BWC"),
    "sex": ("F", "M"),
    "age": ("18-39", "40-64", "65+"),
}
WEIGHTS = {"site": 1, "sex": 2, "age": 0.5}


def minimisation(arms, **settings) -> Scheme:
    scheme, problems = read_scheme("minimisation", settings, arms)
    assert problems == [] and scheme is not None
    return scheme


def three_factors(total):
    return [
        {"code": "site"},
        *(
            {"code": code, "item": f"screening/demographics.{code}"}
            | ({"weight": WEIGHTS[code]} if total == "weighted_sum" else {})
            for code in ("sex", "age")
        ),
    ]


def oracle_for(scheme: Scheme) -> smallerize.Minimizer:
    return smallerize.Minimizer(
        factors=[
            smallerize.Factor(factor.code, FACTORS[factor.code], weight=factor.weight)
            for factor in scheme.factors
        ],
        arms=[smallerize.Arm(arm.code, arm.ratio) for arm in scheme.arms],
        d_imbalance_method=scheme.imbalance,
        total_imbalance_method=scheme.total,
        probability_method="best_only",
        preferred_p=1.0,
    )


@pytest.mark.parametrize("total", ["sum", "weighted_sum"])
@pytest.mark.parametrize("imbalance", ["range", "variance"])
@pytest.mark.parametrize("arm_count", [2, 3])
def test_scores_and_choices_equal_smallerizes_over_random_histories(arm_count, imbalance, total):
    arms = [(f"arm_{n}", 1) for n in range(arm_count)]
    scheme = minimisation(
        arms, factors=three_factors(total), imbalance=imbalance, total=total, preferred_p=1
    )
    oracle = oracle_for(scheme)
    ours = Minimiser(scheme)
    history = []
    people = seeded_rng(f"history/{arm_count}/{imbalance}/{total}")
    unique_choices = 0
    for sequence in range(1, 561):
        levels = {code: people.choice(choices) for code, choices in FACTORS.items()}

        scores = ours.scores(levels)

        expected = oracle.get_new_total_imbalances(levels)
        assert scores.totals == pytest.approx(expected, rel=1e-12, abs=1e-12), sequence
        if sequence % 10 == 0:
            detail = oracle.get_new_ds(levels)
            for factor in scores.factors:
                for arm in scheme.arm_codes:
                    assert factor.imbalance[arm] == pytest.approx(detail[arm][factor.factor])
        choice = choose(scheme, scores, seeded_rng(str(sequence)), allocated_before=sequence - 1)
        if len(scores.minimal_arms) == 1:
            unique_choices += 1
            assert choice == Choice(oracle.get_assignment_info(levels)["arm"], "preferred")
        else:
            assert choice.reason == "tie_random"
            assert choice.arm in scores.minimal_arms
        # A fifth of the history is allocated at random, so that imbalances of every
        # size occur, not only those minimisation leaves.
        arm = people.choice(scheme.arm_codes) if people.random() < 0.2 else choice.arm
        oracle.add_existing_participant(levels, arm)
        ours.add(levels, arm)
        history.append((levels, arm))
    assert unique_choices > 100
    # The one-call form, from the whole history, gives the same scores.
    newcomer = {"site": "QEH", "sex": "M", "age": "65+"}
    assert imbalance_scores(scheme, history, newcomer) == ours.scores(newcomer)


def test_unequal_ratios_divide_the_counts_including_the_new_participant():
    # Arms 2:1. At level F, "active" has 2 participants and "placebo" 1: adjusted counts
    # 2/2 = 1 and 1/1 = 1. Allocated to active: 3/2 - 1 = 0.5; to placebo: 1 - 2/1 = 1.
    # (smallerize adds a whole 1 to the adjusted count, and would score both arms 1.)
    scheme = minimisation(
        [("active", 2), ("placebo", 1)],
        factors=[{"code": "sex", "item": "screening/demographics.sex"}],
    )
    history = [({"sex": "F"}, "active"), ({"sex": "F"}, "placebo"), ({"sex": "F"}, "active")]

    scores = imbalance_scores(scheme, [*history, ({"sex": "M"}, "placebo")], {"sex": "F"})

    assert scores.totals == {"active": 0.5, "placebo": 1.0}
    assert scores.minimal_arms == ("active",)
    [sex] = scores.factors
    assert (sex.level, sex.counts) == ("F", {"active": 2, "placebo": 1})

    # Variance of (1.5, 1) is 0.125; of (1, 2) is 0.5.
    variance = minimisation(
        [("active", 2), ("placebo", 1)],
        factors=[{"code": "sex", "item": "screening/demographics.sex"}],
        imbalance="variance",
    )
    assert imbalance_scores(variance, history, {"sex": "F"}).totals == {
        "active": 0.125,
        "placebo": 0.5,
    }


def test_weighted_totals_are_compared_exactly_so_ties_are_ties():
    # With weights 0.1 and 0.2, floating point makes 0.1 + 0.2 differ from 0.3: the
    # exact totals still tie.
    scheme = minimisation(
        [("a", 1), ("b", 1)],
        factors=[
            {"code": "x", "item": "e/f.x", "weight": 0.1},
            {"code": "y", "item": "e/f.y", "weight": 0.2},
            {"code": "z", "item": "e/f.z", "weight": 0.3},
        ],
        total="weighted_sum",
    )
    # Allocated to a: x and y unbalanced (0.1 + 0.2); to b: z unbalanced (0.3).
    history = [({"x": "1", "y": "1", "z": "0"}, "b"), ({"x": "0", "y": "0", "z": "1"}, "a")]

    scores = imbalance_scores(scheme, history, {"x": "1", "y": "1", "z": "1"})

    assert scores.minimal_arms == ("a", "b")
    assert scores.totals["a"] == pytest.approx(scores.totals["b"])


def test_the_scores_are_plain_json_with_every_factors_detail():
    scheme = minimisation(
        [("walking", 1), ("usual_care", 1)],
        factors=[{"code": "site"}, {"code": "sex", "item": "screening/demographics.sex"}],
    )
    history = [({"site": "NTH", "sex": "F"}, "walking")]

    data = imbalance_scores(scheme, history, {"site": "NTH", "sex": "M"}).to_json()

    assert (
        json.loads(json.dumps(data))
        == data
        == {
            "imbalance": "range",
            "total": "sum",
            "totals": {"walking": 3.0, "usual_care": 1.0},
            "minimal_arms": ["usual_care"],
            "factors": [
                {
                    "factor": "site",
                    "level": "NTH",
                    "weight": 1.0,
                    "counts": {"walking": 1, "usual_care": 0},
                    "imbalance": {"walking": 2.0, "usual_care": 0.0},
                },
                {
                    "factor": "sex",
                    "level": "M",
                    "weight": 1.0,
                    "counts": {"walking": 0, "usual_care": 0},
                    "imbalance": {"walking": 1.0, "usual_care": 1.0},
                },
            ],
        }
    )


def reasons(scheme, exact_totals, allocated_before=100, draws=4000):
    rng = seeded_rng("reasons")
    return Counter(choose_exact(scheme, exact_totals, rng, allocated_before) for _ in range(draws))


def test_the_preferred_arm_is_chosen_with_probability_p_and_the_others_share_the_rest():
    arms = [("a", 1), ("b", 1), ("c", 2)]
    scheme = minimisation(arms, factors=[{"code": "site"}], preferred_p=0.8)

    counts = reasons(scheme, [1, 5, 5])

    assert set(counts) == {
        Choice("a", "preferred"),
        Choice("b", "not_preferred"),
        Choice("c", "not_preferred"),
    }
    assert counts[Choice("a", "preferred")] / 4000 == pytest.approx(0.8, abs=0.02)
    # The others in proportion to their ratios: c (2) twice as often as b (1).
    assert counts[Choice("c", "not_preferred")] / 4000 == pytest.approx(0.2 * 2 / 3, abs=0.02)


def test_ties_the_first_participants_and_certainty():
    arms = [("a", 1), ("b", 1), ("c", 2)]
    certain = minimisation(arms, factors=[{"code": "site"}], preferred_p=1, random_first=3)

    assert set(reasons(certain, [4, 2, 9], draws=50)) == {Choice("b", "preferred")}
    tied = reasons(certain, [2, 2, 9])
    assert set(tied) == {Choice("a", "tie_random"), Choice("b", "tie_random")}
    everyone = reasons(certain, [0, 0, 0])
    assert {choice.reason for choice in everyone} == {"tie_random"}
    # All tied: simply random, in proportion to the ratios.
    assert everyone[Choice("c", "tie_random")] / 4000 == pytest.approx(0.5, abs=0.03)
    first = reasons(certain, [4, 2, 9], allocated_before=2)
    assert {choice.reason for choice in first} == {"random_first"}
    assert first[Choice("c", "random_first")] / 4000 == pytest.approx(0.5, abs=0.03)
    assert set(reasons(certain, [4, 2, 9], allocated_before=3, draws=10)) == {
        Choice("b", "preferred")
    }


def test_the_same_stream_gives_the_same_choice():
    scheme = minimisation([("a", 1), ("b", 1)], factors=[{"code": "site"}])
    scores = imbalance_scores(scheme, [({"site": "NTH"}, "a")], {"site": "NTH"})

    choices = {
        choose(scheme, scores, seeded_rng("seed/7"), allocated_before=1).arm for _ in range(20)
    }

    assert len(choices) == 1


def test_a_minimiser_needs_a_minimisation_scheme():
    blocks, _ = read_scheme("permuted_blocks", {"block_sizes": [2]}, [("a", 1), ("b", 1)])

    with pytest.raises(ValueError, match="minimisation scheme"):
        Minimiser(blocks)
