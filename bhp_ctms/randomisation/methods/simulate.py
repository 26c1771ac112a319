"""Simulating a scheme: how much imbalance between the arms it leaves.

Each trial recruits ``n`` participants whose site and factor levels are drawn
uniformly at random, and allocates them by the scheme: list methods take the next
allocation of the participant's stratum from a list generated for the trial,
minimisation runs the minimiser. After each trial, and for each factor (the site
included), the largest imbalance within any of its levels is noted: the largest
ratio-adjusted arm count (count / ratio) minus the smallest. ``all participants``
is the same over the whole trial.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from bhp_ctms.randomisation.methods.lists import (
    UNSTRATIFIED,
    Draw,
    seeded_rng,
    stratum_draws,
    stratum_key,
    stratum_rng,
)
from bhp_ctms.randomisation.methods.minimisation import Minimiser, choose_exact
from bhp_ctms.randomisation.methods.scheme import SITE, Scheme

OVERALL = "all participants"


@dataclass(frozen=True)
class Distribution:
    """A statistic's distribution over the trials (95th percentile by nearest rank)."""

    minimum: float
    median: float
    percentile_95: float
    maximum: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        ordered = sorted(values)
        rank = max(math.ceil(0.95 * len(ordered)), 1)
        return cls(ordered[0], statistics.median(ordered), ordered[rank - 1], ordered[-1])


@dataclass(frozen=True)
class Simulation:
    """The largest imbalance within any level of each factor (and over all
    participants, under :data:`OVERALL`), one value per trial."""

    scheme: Scheme
    n: int
    trials: int
    seed: str
    levels: Mapping[str, tuple[str, ...]]
    imbalances: Mapping[str, tuple[float, ...]]

    def distribution(self, factor: str) -> Distribution:
        return Distribution.of(self.imbalances[factor])

    def report(self) -> str:
        """The distributions as a table for the terminal."""
        lines = [
            f"Scheme: {self.scheme.describe()}.",
            f"{self.trials} simulated trials of {self.n} participants each"
            f" (seed {self.seed!r}); sites and factor levels drawn uniformly at random.",
            "",
            "Largest imbalance between the arms within any level of each factor, over the",
            "trials (arm counts divided by the ratios; largest minus smallest):",
            "",
        ]
        rows: list[tuple[str, ...]] = [("factor", "levels", "min", "median", "95th centile", "max")]
        for factor in self.imbalances:
            spread = self.distribution(factor)
            rows.append(
                (
                    factor,
                    str(len(self.levels[factor])) if factor in self.levels else "",
                    *(
                        _number(value)
                        for value in (
                            spread.minimum,
                            spread.median,
                            spread.percentile_95,
                            spread.maximum,
                        )
                    ),
                )
            )
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        for row in rows:
            cells = [row[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}"


def simulate(
    scheme: Scheme,
    sites: Sequence[str],
    factor_levels: Mapping[str, Sequence[str]],
    n: int,
    trials: int,
    seed: str,
) -> Simulation:
    """Run ``trials`` trials of ``n`` participants under ``scheme``. ``factor_levels``
    gives the levels of each factor read from a CRF item (the site's are ``sites``)."""
    if n < 1 or trials < 1:
        raise ValueError("a simulation needs at least one participant and one trial")
    levels: dict[str, tuple[str, ...]] = {SITE: tuple(sites)}
    for factor in scheme.item_factors:
        levels[factor.code] = tuple(factor_levels.get(factor.code, ()))
    for code, choices in levels.items():
        if not choices:
            raise ValueError(f"factor {code!r} has no levels to draw from")
    codes = list(levels)
    ratios = [arm.ratio for arm in scheme.arms]
    common = math.lcm(*ratios)
    steps = [common // ratio for ratio in ratios]
    arm_index = {code: index for index, code in enumerate(scheme.arm_codes)}
    results: dict[str, list[float]] = {code: [] for code in [*codes, OVERALL]}
    for trial in range(1, trials + 1):
        people = seeded_rng(f"{seed}/trial/{trial}/participants")
        allocate = _allocator(scheme, f"{seed}/trial/{trial}")
        # factor index -> level -> adjusted counts per arm (count * lcm / ratio).
        adjusted: list[dict[str, list[int]]] = [
            {level: [0] * len(steps) for level in levels[code]} for code in codes
        ]
        overall = [0] * len(steps)
        for _ in range(n):
            participant = {
                code: levels[code][people.randrange(len(levels[code]))] for code in codes
            }
            index = arm_index[allocate(participant)]
            step = steps[index]
            for by_level, code in zip(adjusted, codes, strict=True):
                by_level[participant[code]][index] += step
            overall[index] += step
        for by_level, code in zip(adjusted, codes, strict=True):
            largest = max(max(counts) - min(counts) for counts in by_level.values())
            results[code].append(largest / common)
        results[OVERALL].append((max(overall) - min(overall)) / common)
    return Simulation(
        scheme=scheme,
        n=n,
        trials=trials,
        seed=seed,
        levels=levels,
        imbalances={code: tuple(values) for code, values in results.items()},
    )


class _ListAllocator:
    """Allocates each participant the next draw of their stratum's list."""

    def __init__(self, scheme: Scheme, seed: str) -> None:
        self.scheme = scheme
        self.seed = seed
        self.draws: dict[str, Iterator[Draw]] = {}

    def __call__(self, participant: Mapping[str, str]) -> str:
        stratum = stratum_key(self.scheme, participant) if self.scheme.stratify_by else UNSTRATIFIED
        draws = self.draws.get(stratum)
        if draws is None:
            draws = self.draws[stratum] = stratum_draws(
                self.scheme, stratum_rng(self.seed, stratum)
            )
        return next(draws).arm


class _MinimisingAllocator:
    def __init__(self, scheme: Scheme, seed: str) -> None:
        self.scheme = scheme
        self.minimiser = Minimiser(scheme)
        self.rng = seeded_rng(f"{seed}/allocations")

    def __call__(self, participant: Mapping[str, str]) -> str:
        minimiser = self.minimiser
        totals = minimiser.exact_totals(participant)
        arm = choose_exact(self.scheme, totals, self.rng, minimiser.allocated).arm
        minimiser.add(participant, arm)
        return arm


def _allocator(scheme: Scheme, seed: str) -> _ListAllocator | _MinimisingAllocator:
    if scheme.list_based:
        return _ListAllocator(scheme, seed)
    return _MinimisingAllocator(scheme, seed)
