"""``ctms randomisation simulate``, run by a statistician against the demo study in a
fresh deployment on each database backend: first its permuted blocks, then, after an
amendment, minimisation on site and sex (the sex item's choices are its levels)."""

from __future__ import annotations

import re

from tests.functional.test_study_cli import deployment, run
from tests.functional.test_study_loading import DEMO_FOLDER, amended_folder

__all__ = ["deployment"]


BLOCKS = """  method: permuted_blocks
  block_sizes: [4, 6]
  stratify_by: [site]
  # The allocation list is generated from a seed that the trial statistician keeps.
  seed_required: true
"""
MINIMISATION = """  method: minimisation
  factors:
    - {code: site}
    - {code: sex, item: "screening/demographics.sex", weight: 2}
  total: weighted_sum
  preferred_p: 0.9
"""
TABLE_HEADER = re.compile(r"factor +levels +min +median +95th centile +max")


def table(output):
    """The report's rows as {factor: [levels, min, median, 95th, max]}."""
    lines = output.splitlines()
    start = next(n for n, line in enumerate(lines) if TABLE_HEADER.fullmatch(line))
    rows = {}
    for line in lines[start + 1 :]:
        name, _, numbers = line.partition("  ")
        rows[name.strip()] = numbers.split()
    return rows


def test_simulate_reports_the_imbalance_of_the_studys_scheme(deployment, tmp_path):
    ini, _ = deployment
    assert run(ini, "study", "load", DEMO_FOLDER).exit_code == 0

    blocks = run(
        ini,
        "randomisation",
        "simulate",
        "--study",
        "DEMO",
        "--n",
        "200",
        "--trials",
        "20",
        "--seed",
        "statistician",
    )

    assert blocks.exit_code == 0, blocks.output
    lines = blocks.output.splitlines()
    assert lines[:3] == [
        "Study DEMO: randomisation simulated, nothing stored.",
        "Scheme: permuted blocks of 4, 6, stratified by site; arms walking, usual_care (1:1).",
        "20 simulated trials of 200 participants each (seed 'statistician'); sites and factor"
        " levels drawn uniformly at random.",
    ]
    rows = table(blocks.output)
    assert list(rows) == ["site", "all participants"]
    assert rows["site"][0] == "2"  # the demo's two sites, CHH and NTH
    assert float(rows["site"][-1]) <= 3, "a site is one stratum: within half a block of 6"
    again = run(
        ini,
        "randomisation",
        "simulate",
        "--study",
        "DEMO",
        "--n",
        "200",
        "--trials",
        "20",
        "--seed",
        "statistician",
    )
    assert again.output == blocks.output

    amended = amended_folder(tmp_path, (BLOCKS, MINIMISATION))
    assert run(ini, "study", "load", amended).exit_code == 0

    minimised = run(ini, "randomisation", "simulate", "--study", "DEMO", "--trials", "5")

    assert minimised.exit_code == 0, minimised.output
    assert minimised.output.splitlines()[1] == (
        "Scheme: minimisation on site (weight 1), sex (weight 2): range, weighted sum,"
        " preferred arm with p = 0.9; arms walking, usual_care (1:1)."
    )
    assert re.search(
        r"5 simulated trials of 1000 participants each \(seed '[0-9a-f]{16}'\)", minimised.output
    )
    rows = table(minimised.output)
    assert list(rows) == ["site", "sex", "all participants"]
    assert rows["sex"][0] == "2"  # F and M, from the sex codelist


def test_simulate_names_what_is_missing(deployment):
    ini, _ = deployment

    unknown = run(ini, "randomisation", "simulate", "--study", "NOPE")
    bad_n = run(ini, "randomisation", "simulate", "--study", "DEMO", "--n", "0")

    assert unknown.exit_code == 1
    assert unknown.output.strip() == "Error: no study with code 'NOPE'"
    assert bad_n.exit_code == 2
    assert "'--n': 0 is not in the range x>=1" in bad_n.output
