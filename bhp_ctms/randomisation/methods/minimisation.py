"""Pocock-Simon minimisation: the imbalance scores of a new participant, and the arm.

For each arm, and each factor, the participants already allocated who share the new
participant's level of that factor are counted per arm, as if the new participant
were allocated to that arm; the counts are divided by the arm ratios, and their
imbalance is their range or sample variance. An arm's total is the sum of these over
the factors, weighted or not (see :mod:`bhp_ctms.randomisation.methods.scheme`). The
arm with the smallest total is preferred.

Scores are computed exactly, in whole numbers of a common unit, so ties are ties
whatever the ratios and weights; :class:`Scores` also gives them as ordinary numbers
for people and for the record (:meth:`Scores.to_json`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import lcm
from typing import Any, Literal

from bhp_ctms.randomisation.methods.lists import weighted_arm
from bhp_ctms.randomisation.methods.scheme import Scheme

ChoiceReason = Literal["random_first", "preferred", "not_preferred", "tie_random"]


@dataclass(frozen=True)
class FactorScore:
    """One factor's part of the scores: the new participant's ``level``, how many
    participants at that level each arm already has (``counts``), and the imbalance
    within the level if the new participant is allocated to each arm."""

    factor: str
    level: str
    weight: float
    counts: Mapping[str, int]
    imbalance: Mapping[str, float]


@dataclass(frozen=True)
class Scores:
    """Each arm's total imbalance if the new participant is allocated to it, and the
    detail per factor. ``exact_totals`` (in the order of ``arms``) are the totals as
    whole numbers of one unit, for exact comparison."""

    imbalance: str
    total: str
    arms: tuple[str, ...]
    totals: Mapping[str, float]
    factors: tuple[FactorScore, ...]
    exact_totals: tuple[int, ...]

    @property
    def minimal_arms(self) -> tuple[str, ...]:
        """The arms with the smallest total, in the order of the study's arms."""
        best = min(self.exact_totals)
        return tuple(
            arm for arm, total in zip(self.arms, self.exact_totals, strict=True) if total == best
        )

    def to_json(self) -> dict[str, Any]:
        """The scores as plain JSON data, for the allocation's record."""
        return {
            "imbalance": self.imbalance,
            "total": self.total,
            "totals": dict(self.totals),
            "minimal_arms": list(self.minimal_arms),
            "factors": [
                {
                    "factor": factor.factor,
                    "level": factor.level,
                    "weight": factor.weight,
                    "counts": dict(factor.counts),
                    "imbalance": dict(factor.imbalance),
                }
                for factor in self.factors
            ],
        }


@dataclass(frozen=True)
class Choice:
    """The arm chosen and why: ``random_first`` (one of the first participants,
    allocated at random), ``preferred`` (the one arm with the smallest total),
    ``tie_random`` (drawn among arms tied on the smallest total) or
    ``not_preferred`` (another arm, with probability 1 - preferred_p)."""

    arm: str
    reason: ChoiceReason

    def to_json(self) -> dict[str, Any]:
        return {"arm": self.arm, "reason": self.reason}


class Minimiser:
    """The counts of the participants allocated so far, per factor level and arm, and
    the scores of a new participant against them.

    Participants' levels are mappings from factor code (``site`` included) to level.
    """

    def __init__(self, scheme: Scheme) -> None:
        if scheme.method != "minimisation" or not scheme.factors:
            raise ValueError("a minimiser needs a minimisation scheme with factors")
        self.scheme = scheme
        self.arms = scheme.arm_codes
        ratios = [arm.ratio for arm in scheme.arms]
        common = lcm(*ratios)
        # One participant adds common / ratio to an arm's adjusted count: whole numbers
        # proportional to count / ratio.
        self._steps = tuple(common // ratio for ratio in ratios)
        self._factor_codes = tuple(factor.code for factor in scheme.factors)
        self._variance = scheme.imbalance == "variance"
        arm_count = len(self.arms)
        # An imbalance d in whole units is d / unit in counts per ratio: the range is
        # max - min; the variance k * sum(x^2) - sum(x)^2 over k (k - 1).
        self._unit = common if not self._variance else arm_count * (arm_count - 1) * common**2
        if scheme.total == "weighted_sum":
            weights = [Fraction(repr(factor.weight)) for factor in scheme.factors]
            denominator = lcm(*(weight.denominator for weight in weights))
            self._weights = tuple(int(weight * denominator) for weight in weights)
            self._weight_unit = denominator
        else:
            self._weights = (1,) * len(scheme.factors)
            self._weight_unit = 1
        # factor index -> level -> adjusted counts per arm (in whole units).
        self._adjusted: tuple[dict[str, list[int]], ...] = tuple({} for _ in scheme.factors)
        self.allocated = 0

    @classmethod
    def from_history(
        cls, scheme: Scheme, history: Iterable[tuple[Mapping[str, str], str]]
    ) -> Minimiser:
        """A minimiser that has counted each earlier participant's (levels, arm)."""
        minimiser = cls(scheme)
        for levels, arm in history:
            minimiser.add(levels, arm)
        return minimiser

    def add(self, levels: Mapping[str, str], arm: str) -> None:
        """Count a participant allocated to ``arm``."""
        index = self.arms.index(arm)
        step = self._steps[index]
        arm_count = len(self.arms)
        for by_level, code in zip(self._adjusted, self._factor_codes, strict=True):
            counts = by_level.get(levels[code])
            if counts is None:
                counts = by_level[levels[code]] = [0] * arm_count
            counts[index] += step
        self.allocated += 1

    def _imbalance(self, adjusted: list[int]) -> int:
        if self._variance:
            total = sum(adjusted)
            return len(adjusted) * sum(count * count for count in adjusted) - total * total
        return max(adjusted) - min(adjusted)

    def _factor_imbalances(self, factor_index: int, level: str) -> list[int]:
        """The imbalance within a level, in whole units, for each candidate arm."""
        adjusted = list(self._adjusted[factor_index].get(level) or [0] * len(self.arms))
        imbalances = []
        for index, step in enumerate(self._steps):
            adjusted[index] += step
            imbalances.append(self._imbalance(adjusted))
            adjusted[index] -= step
        return imbalances

    def exact_totals(self, levels: Mapping[str, str]) -> list[int]:
        """Each arm's total in whole units: the comparison :meth:`scores` makes,
        without its detail (for simulations)."""
        totals = [0] * len(self.arms)
        for factor_index, code in enumerate(self._factor_codes):
            weight = self._weights[factor_index]
            for index, imbalance in enumerate(self._factor_imbalances(factor_index, levels[code])):
                totals[index] += weight * imbalance
        return totals

    def scores(self, levels: Mapping[str, str]) -> Scores:
        """The scores of a new participant with these levels (not yet counted)."""
        factors = []
        totals = [0] * len(self.arms)
        for factor_index, factor in enumerate(self.scheme.factors):
            level = levels[factor.code]
            imbalances = self._factor_imbalances(factor_index, level)
            adjusted = self._adjusted[factor_index].get(level) or [0] * len(self.arms)
            factors.append(
                FactorScore(
                    factor=factor.code,
                    level=level,
                    weight=factor.weight,
                    counts={
                        arm: count // step
                        for arm, count, step in zip(self.arms, adjusted, self._steps, strict=True)
                    },
                    imbalance={
                        arm: imbalance / self._unit
                        for arm, imbalance in zip(self.arms, imbalances, strict=True)
                    },
                )
            )
            for index, imbalance in enumerate(imbalances):
                totals[index] += self._weights[factor_index] * imbalance
        unit = self._unit * self._weight_unit
        return Scores(
            imbalance=self.scheme.imbalance,
            total=self.scheme.total,
            arms=self.arms,
            totals={arm: total / unit for arm, total in zip(self.arms, totals, strict=True)},
            factors=tuple(factors),
            exact_totals=tuple(totals),
        )


def choose(scheme: Scheme, scores: Scores, rng: random.Random, allocated_before: int) -> Choice:
    """The arm for a participant with these scores, ``allocated_before`` participants
    having been allocated already (see :mod:`bhp_ctms.randomisation.methods.scheme`
    for the rules). Draws from ``rng`` only what the rules need."""
    return choose_exact(scheme, scores.exact_totals, rng, allocated_before)


def choose_exact(
    scheme: Scheme, exact_totals: Sequence[int], rng: random.Random, allocated_before: int
) -> Choice:
    """:func:`choose`, from the totals of :meth:`Minimiser.exact_totals`."""
    arms = scheme.arm_codes
    ratios = [arm.ratio for arm in scheme.arms]
    if allocated_before < scheme.random_first:
        return Choice(weighted_arm(rng, arms, ratios), "random_first")
    best = min(exact_totals)
    minimal = [index for index, total in enumerate(exact_totals) if total == best]
    if len(minimal) == len(arms):
        return Choice(weighted_arm(rng, arms, ratios), "tie_random")
    reason: ChoiceReason
    if len(minimal) == 1:
        preferred, reason = arms[minimal[0]], "preferred"
    else:
        preferred = weighted_arm(rng, [arms[i] for i in minimal], [ratios[i] for i in minimal])
        reason = "tie_random"
    if scheme.preferred_p >= 1 or rng.random() < scheme.preferred_p:
        return Choice(preferred, reason)
    others = [index for index, arm in enumerate(arms) if arm != preferred]
    return Choice(
        weighted_arm(rng, [arms[i] for i in others], [ratios[i] for i in others]),
        "not_preferred",
    )


def imbalance_scores(
    scheme: Scheme,
    history: Iterable[tuple[Mapping[str, str], str]],
    levels: Mapping[str, str],
) -> Scores:
    """The scores of a new participant with ``levels``, after the earlier
    participants' (levels, arm) in ``history``."""
    return Minimiser.from_history(scheme, history).scores(levels)
