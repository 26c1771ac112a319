"""Simulating a scheme: reproducible from its seed, bounded as each method promises,
and reported per factor."""

from __future__ import annotations

import pytest

from bhp_ctms.randomisation.methods.scheme import Scheme, read_scheme
from bhp_ctms.randomisation.methods.simulate import OVERALL, Distribution, simulate

ONE_TO_ONE = [("walking", 1), ("usual_care", 1)]
SITES = ["NTH", "CHH", "QEH"]
SEX = {"code": "sex", "item": "screening/demographics.sex"}
LEVELS = {"sex": ["F", "M"]}


def scheme_of(method, arms=ONE_TO_ONE, **settings) -> Scheme:
    scheme, problems = read_scheme(method, settings, arms)
    assert problems == [] and scheme is not None
    return scheme


def test_stratified_blocks_keep_each_stratum_within_half_a_block():
    scheme = scheme_of(
        "permuted_blocks", block_sizes=[4, 6], stratify_by=["site", "sex"], factors=[SEX]
    )

    simulation = simulate(scheme, SITES, LEVELS, n=300, trials=40, seed="blocks")

    # Six strata, each off by at most 3: a site holds two of them, the whole trial six.
    assert max(simulation.imbalances["site"]) <= 6
    assert max(simulation.imbalances["sex"]) <= 9
    assert max(simulation.imbalances[OVERALL]) <= 18
    assert simulation.levels == {"site": tuple(SITES), "sex": ("F", "M")}


def test_big_stick_keeps_an_unstratified_trial_within_its_limit():
    scheme = scheme_of("big_stick", max_imbalance=2)

    simulation = simulate(scheme, SITES, {}, n=200, trials=30, seed="stick")

    assert max(simulation.imbalances[OVERALL]) <= 2
    assert set(simulation.imbalances) == {"site", OVERALL}


def test_minimisation_balances_its_factors_better_than_simple_randomisation():
    factors = [{"code": "site"}, SEX]
    minimised = simulate(
        scheme_of("minimisation", factors=factors), SITES, LEVELS, 200, 30, "compare"
    )
    simple = simulate(
        scheme_of("simple", factors=[SEX], stratify_by=["sex"]), SITES, LEVELS, 200, 30, "compare"
    )

    for factor in ("site", "sex"):
        assert minimised.distribution(factor).median < simple.distribution(factor).median


def test_the_same_seed_gives_the_same_simulation():
    scheme = scheme_of("minimisation", factors=[{"code": "site"}, SEX], preferred_p=0.9)

    first = simulate(scheme, SITES, LEVELS, 100, 10, "same")

    assert simulate(scheme, SITES, LEVELS, 100, 10, "same") == first
    assert simulate(scheme, SITES, LEVELS, 100, 10, "other") != first


def test_the_report_gives_each_factors_distribution():
    scheme = scheme_of("minimisation", factors=[{"code": "site"}, SEX])

    report = simulate(scheme, SITES, LEVELS, 50, 20, "report").report()

    lines = report.splitlines()
    assert lines[0] == (
        "Scheme: minimisation on site, sex: range, sum, preferred arm with p = 0.8;"
        " arms walking, usual_care (1:1)."
    )
    assert lines[1] == (
        "20 simulated trials of 50 participants each (seed 'report'); sites and factor"
        " levels drawn uniformly at random."
    )
    header = lines.index("factor            levels  min  median  95th centile  max")
    assert [line.split()[0] for line in lines[header + 1 :]] == ["site", "sex", "all"]
    assert lines[header + 1].split()[1] == "3"


def test_distributions_use_the_nearest_rank_95th_centile():
    assert Distribution.of([float(n) for n in range(1, 101)]) == Distribution(1, 50.5, 95, 100)
    assert Distribution.of([2.0]) == Distribution(2, 2, 2, 2)


def test_a_factor_without_levels_or_an_empty_trial_is_refused():
    scheme = scheme_of("minimisation", factors=[{"code": "site"}, SEX])

    with pytest.raises(ValueError, match="'sex' has no levels"):
        simulate(scheme, SITES, {}, 10, 1, "x")
    with pytest.raises(ValueError, match="at least one participant"):
        simulate(scheme, SITES, LEVELS, 0, 1, "x")
