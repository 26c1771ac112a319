"""A study's randomisation scheme: the ``randomisation`` section of ``study.yaml``,
checked.

The section names a ``method`` and the settings that method takes. Settings for
every method:

``factors``
    The participant characteristics used to stratify (list methods) or to minimise
    on, each ``{code, item, weight}``. ``code`` names the factor (lower-case letters,
    digits and ``_``); ``item`` is the CRF item holding the participant's level, as
    ``"<event>/<form>.<item>"`` (``"screening/demographics.sex"``); its choices are
    the factor's levels. ``site`` is built in: list it with no ``item``.
    ``weight`` (a positive number, default 1) is for minimisation only.
``kit_codes``
    ``true`` (the default) or ``false``: whether each allocation has a kit (pack)
    number, the only thing blinded people see of it.

The list methods (``simple``, ``permuted_blocks``, ``big_stick``) allocate from a
list made in advance, one sequence per stratum. They also take:

``stratify_by``
    The factors whose combination of levels makes a stratum, in order:
    ``[site, sex]``. ``site`` needs no entry in ``factors``; every other name must be
    a factor's code, and every factor must be used here. Without it the study has
    one stratum, ``all``.
``seed_required``
    ``true`` or ``false`` (the default). ``true``: the list must be generated in the
    application from a seed that is recorded; an uploaded list is refused.

Then, by method:

``simple``
    Nothing more: each allocation is drawn independently, in proportion to the arm
    ratios.
``permuted_blocks``
    ``block_sizes: [4, 6]``: the block sizes, each drawn at random (all equally
    likely) for each new block. Each size must be a multiple of the sum of the arm
    ratios (2:1 needs multiples of 3), so that every block holds the arms in their
    exact ratio.
``big_stick``
    ``max_imbalance: 3``: the largest imbalance tolerated (Soares and Wu, 1983). Each
    allocation is random in proportion to the ratios among the arms that keep the
    imbalance within the limit. With unequal ratios the imbalance is measured on
    ratio-adjusted counts, count / ratio (with 2:1, 4 on the first arm and 2 on the
    second are balanced), as the largest minus the smallest.
``minimisation``
    Pocock-Simon minimisation, with the names and meanings of the ``smallerize``
    package (0.5.0). For a new participant and each arm, the imbalance within each
    factor is measured over the participants sharing the new one's level of that
    factor, as if they were allocated to that arm; the arms are then ranked by the
    total over the factors.

    - ``factors``: at least one.
    - ``imbalance``: ``range`` (the default: largest count minus smallest) or
      ``variance`` (the sample variance of the counts, divided by the number of
      arms minus one). Counts are ratio-adjusted, count / ratio, the new participant
      included: with arms 2:1, 3 participants on the first and 1 on the second count
      as 1.5 and 1. ``smallerize`` divides the current counts by the ratios but then
      adds a whole 1 for the new participant; the two agree exactly when the ratios
      are equal.
    - ``total``: ``sum`` (the default: the factors count equally, and weights must
      not be given) or ``weighted_sum`` (each factor's imbalance times its weight).
    - ``preferred_p``: the probability of allocating to the arm with the smallest
      total (0.8 by default); more than 1 / the number of arms, at most 1 (1 is
      deterministic minimisation). Otherwise one of the other arms is allocated, at
      random in proportion to their ratios. Arms tied on the smallest total are
      drawn between in proportion to their ratios; when all arms tie, the allocation
      is simply random.
    - ``random_first``: how many of the first participants are allocated at random,
      in proportion to the ratios, before minimisation starts (0 by default). Their
      scores are still recorded.

Any other key is refused, naming the keys the method allows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

Method = Literal["simple", "permuted_blocks", "big_stick", "minimisation"]
Imbalance = Literal["range", "variance"]
Total = Literal["sum", "weighted_sum"]

METHODS: tuple[Method, ...] = get_args(Method)
LIST_METHODS: tuple[Method, ...] = ("simple", "permuted_blocks", "big_stick")
IMBALANCES: tuple[Imbalance, ...] = get_args(Imbalance)
TOTALS: tuple[Total, ...] = get_args(Total)

# The built-in factor: the participant's site, whose levels are the site codes.
SITE = "site"

COMMON_KEYS = ("factors", "kit_codes")
LIST_KEYS = ("stratify_by", "seed_required")
METHOD_KEYS: dict[Method, tuple[str, ...]] = {
    "simple": (*COMMON_KEYS, *LIST_KEYS),
    "permuted_blocks": (*COMMON_KEYS, *LIST_KEYS, "block_sizes"),
    "big_stick": (*COMMON_KEYS, *LIST_KEYS, "max_imbalance"),
    "minimisation": (*COMMON_KEYS, "imbalance", "total", "preferred_p", "random_first"),
}
FACTOR_KEYS = ("code", "item", "weight")

FACTOR_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_CODE = r"[a-z][a-z0-9_]{0,63}"
ITEM_REFERENCE = re.compile(rf"({_CODE})/({_CODE})\.({_CODE})")
# Larger blocks balance no better and make a list needlessly long to generate.
MAX_BLOCK_SIZE = 100

DEFAULT_PREFERRED_P = 0.8


@dataclass(frozen=True)
class SchemeProblem:
    """One thing wrong with a randomisation section. ``path`` is the key path inside
    the section (``("factors", 1, "weight")``); ``()`` is the section itself."""

    path: tuple[str | int, ...]
    message: str

    @property
    def where(self) -> str:
        """The path as ``study.yaml`` problems name places: ``randomisation.factors[1].weight``."""
        where = "randomisation"
        for step in self.path:
            where += f"[{step}]" if isinstance(step, int) else f".{step}"
        return where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class SchemeArm:
    code: str
    ratio: int


@dataclass(frozen=True)
class Factor:
    """A stratification or minimisation factor. ``item`` is ``None`` for the site."""

    code: str
    item: str | None = None
    weight: float = 1.0

    @property
    def item_parts(self) -> tuple[str, str, str] | None:
        """The item reference as (event code, form code, item code)."""
        if self.item is None:
            return None
        match = ITEM_REFERENCE.fullmatch(self.item)
        assert match is not None, self.item
        return match.group(1), match.group(2), match.group(3)


@dataclass(frozen=True)
class Scheme:
    """A checked randomisation scheme: the settings of its method, defaults filled in.
    Settings of other methods keep their defaults."""

    method: Method
    arms: tuple[SchemeArm, ...]
    factors: tuple[Factor, ...] = ()
    stratify_by: tuple[str, ...] = ()
    kit_codes: bool = True
    seed_required: bool = False
    block_sizes: tuple[int, ...] = ()
    max_imbalance: int = 0
    imbalance: Imbalance = "range"
    total: Total = "sum"
    preferred_p: float = DEFAULT_PREFERRED_P
    random_first: int = 0

    @property
    def list_based(self) -> bool:
        """Whether allocations are taken from a list made in advance."""
        return self.method in LIST_METHODS

    @property
    def arm_codes(self) -> tuple[str, ...]:
        return tuple(arm.code for arm in self.arms)

    @property
    def ratio_sum(self) -> int:
        return sum(arm.ratio for arm in self.arms)

    def ratio(self, arm_code: str) -> int:
        for arm in self.arms:
            if arm.code == arm_code:
                return arm.ratio
        raise KeyError(arm_code)

    def factor(self, code: str) -> Factor:
        for factor in self.factors:
            if factor.code == code:
                return factor
        raise KeyError(code)

    @property
    def item_factors(self) -> tuple[Factor, ...]:
        """The factors read from CRF items (all but the site)."""
        return tuple(factor for factor in self.factors if factor.item is not None)

    def describe(self) -> str:
        """One line for people: the method, its settings and the arms."""
        ratios = ":".join(str(arm.ratio) for arm in self.arms)
        arms = f"arms {', '.join(self.arm_codes)} ({ratios})"
        if self.method == "permuted_blocks":
            sizes = ", ".join(str(size) for size in self.block_sizes)
            text = f"permuted blocks of {sizes}"
        elif self.method == "big_stick":
            text = f"big stick, maximum imbalance {self.max_imbalance}"
        elif self.method == "minimisation":
            factors = ", ".join(
                f"{factor.code} (weight {factor.weight:g})"
                if self.total == "weighted_sum"
                else factor.code
                for factor in self.factors
            )
            text = (
                f"minimisation on {factors}: {self.imbalance}, {self.total.replace('_', ' ')},"
                f" preferred arm with p = {self.preferred_p:g}"
            )
            if self.random_first:
                text += f", the first {self.random_first} at random"
        else:
            text = "simple randomisation"
        if self.list_based:
            if self.stratify_by:
                text += f", stratified by {', '.join(self.stratify_by)}"
            else:
                text += ", not stratified"
        return f"{text}; {arms}"


def read_scheme(
    method: str, settings: Mapping[str, Any], arms: Sequence[tuple[str, int]]
) -> tuple[Scheme | None, list[SchemeProblem]]:
    """The scheme a ``randomisation`` section defines, or ``None`` and every problem.

    ``settings`` are the section's keys other than ``method``, as plain data;
    ``arms`` the study's arms as (code, ratio). Item references are checked only for
    their shape: whether the item exists, and its levels, is the caller's to check.
    """
    return _SchemeReader(arms).read(method, settings)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_integer(value) or isinstance(value, float)) and math.isfinite(value)


def _described(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return repr(value)


class _SchemeReader:
    def __init__(self, arms: Sequence[tuple[str, int]]) -> None:
        self.arms = tuple(SchemeArm(code, ratio) for code, ratio in arms)
        self.problems: list[SchemeProblem] = []

    def problem(self, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append(SchemeProblem(path, message))

    def read(
        self, method: str, settings: Mapping[str, Any]
    ) -> tuple[Scheme | None, list[SchemeProblem]]:
        if method not in METHODS:
            self.problem(("method",), f"must be one of {', '.join(METHODS)}, not {method!r}")
            return None, self.problems
        chosen = cast(Method, method)
        self._check_arms()
        allowed = METHOD_KEYS[chosen]
        for key in settings:
            if key not in allowed:
                self._unknown_key(chosen, str(key), allowed)
        scheme = Scheme(
            method=chosen,
            arms=self.arms,
            factors=self._factors(chosen, settings.get("factors")),
            kit_codes=self._boolean(settings, "kit_codes", default=True),
        )
        if chosen in LIST_METHODS:
            scheme = self._list_settings(scheme, settings)
        else:
            scheme = self._minimisation_settings(scheme, settings)
        if self.problems:
            return None, self.problems
        return scheme, []

    def _check_arms(self) -> None:
        if len(self.arms) < 2:
            self.problem((), "needs at least two arms")
        codes = [arm.code for arm in self.arms]
        if len(set(codes)) != len(codes):
            self.problem((), "the arm codes must differ from each other")
        for arm in self.arms:
            if not _is_integer(arm.ratio) or arm.ratio < 1:
                self.problem((), f"arm {arm.code!r} needs a ratio of 1 or more")

    def _unknown_key(self, method: Method, key: str, allowed: Sequence[str]) -> None:
        if key in LIST_KEYS and method == "minimisation":
            message = f"'{key}' is for the list methods ({', '.join(LIST_METHODS)}), not {method}"
        elif any(key in METHOD_KEYS[other] for other in METHODS):
            users = [other for other in METHODS if key in METHOD_KEYS[other]]
            message = f"'{key}' is a setting of {' and '.join(users)}, not of {method}"
        else:
            message = f"unknown key '{key}'"
        self.problem((key,), f"{message}; {method} takes: {', '.join(allowed)}")

    def _boolean(self, settings: Mapping[str, Any], key: str, *, default: bool) -> bool:
        value = settings.get(key, default)
        if not isinstance(value, bool):
            self.problem((key,), f"must be true or false, not {_described(value)}")
            return default
        return value

    def _whole_number(
        self, settings: Mapping[str, Any], key: str, *, minimum: int, default: int, what: str
    ) -> int:
        value = settings.get(key, default)
        if not _is_integer(value) or value < minimum:
            self.problem((key,), f"must be {what}, not {_described(value)}")
            return default
        return int(value)

    def _choice(self, settings: Mapping[str, Any], key: str, choices: Sequence[str]) -> str:
        value = settings.get(key, choices[0])
        if value not in choices:
            allowed = " or ".join(choices)
            self.problem((key,), f"must be {allowed}, not {_described(value)}")
            return choices[0]
        return str(value)

    def _factors(self, method: Method, value: Any) -> tuple[Factor, ...]:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            self.problem(
                ("factors",),
                "must be a list of factors, each {code, item}, not " + _described(value),
            )
            return ()
        factors: list[Factor] = []
        seen: dict[str, int] = {}
        for index, entry in enumerate(value):
            factor = self._factor(method, index, entry)
            if factor is None:
                continue
            if factor.code in seen:
                self.problem(
                    ("factors", index, "code"),
                    f"factor {factor.code!r} is given twice"
                    f" (first as factors[{seen[factor.code]}])",
                )
                continue
            seen[factor.code] = index
            factors.append(factor)
        return tuple(factors)

    def _factor(self, method: Method, index: int, entry: Any) -> Factor | None:
        path: tuple[str | int, ...] = ("factors", index)
        if not isinstance(entry, Mapping):
            self.problem(path, f"must be a mapping {{code, item}}, not {_described(entry)}")
            return None
        ok = True
        for key in entry:
            if key not in FACTOR_KEYS:
                self.problem(
                    (*path, str(key)),
                    f"unknown key '{key}'; a factor takes: {', '.join(FACTOR_KEYS)}",
                )
                ok = False
        code = entry.get("code")
        if code is None:
            self.problem(path, "missing required key 'code'")
            return None
        if not isinstance(code, str) or not FACTOR_CODE.fullmatch(code):
            self.problem(
                (*path, "code"),
                f"{_described(code)} is not a valid factor code (lower-case letters, digits"
                " and '_', starting with a letter, at most 32)",
            )
            return None
        item = entry.get("item")
        if code == SITE:
            if item is not None:
                self.problem(
                    (*path, "item"),
                    "the site factor is built in: remove its item (its levels are the site codes)",
                )
                ok = False
            item = None
        elif item is None:
            self.problem(
                path,
                f"factor {code!r} needs an item: the CRF item holding each participant's"
                ' level, as "<event>/<form>.<item>", e.g. "screening/demographics.sex"',
            )
            ok = False
        elif not isinstance(item, str) or not ITEM_REFERENCE.fullmatch(item):
            self.problem(
                (*path, "item"),
                f'{_described(item)} is not an item reference: write "<event>/<form>.<item>",'
                ' e.g. "screening/demographics.sex"',
            )
            ok = False
        weight = entry.get("weight")
        if weight is not None and method != "minimisation":
            self.problem(
                (*path, "weight"),
                f"weights are for minimisation only: remove it ({method} does not weigh factors)",
            )
            ok = False
        elif weight is not None and (not _is_number(weight) or weight <= 0):
            self.problem(
                (*path, "weight"), f"must be a positive number such as 1 or 2.5, not {weight!r}"
            )
            ok = False
        if not ok:
            return None
        return Factor(code=code, item=item, weight=1.0 if weight is None else float(weight))

    def _list_settings(self, scheme: Scheme, settings: Mapping[str, Any]) -> Scheme:
        stratify_by = self._stratify_by(scheme, settings.get("stratify_by"))
        block_sizes: tuple[int, ...] = ()
        max_imbalance = 0
        if scheme.method == "permuted_blocks":
            block_sizes = self._block_sizes(settings.get("block_sizes"))
        elif scheme.method == "big_stick":
            if "max_imbalance" not in settings:
                self.problem(
                    (),
                    "missing required key 'max_imbalance': the largest imbalance between"
                    " the arms to tolerate, e.g. 3",
                )
            max_imbalance = self._whole_number(
                settings, "max_imbalance", minimum=1, default=1, what="a whole number of 1 or more"
            )
        return Scheme(
            method=scheme.method,
            arms=scheme.arms,
            factors=scheme.factors,
            stratify_by=stratify_by,
            kit_codes=scheme.kit_codes,
            seed_required=self._boolean(settings, "seed_required", default=False),
            block_sizes=block_sizes,
            max_imbalance=max_imbalance,
        )

    def _stratify_by(self, scheme: Scheme, value: Any) -> tuple[str, ...]:
        codes = [factor.code for factor in scheme.factors]
        if value is None:
            value = []
        if not isinstance(value, list | tuple):
            self.problem(
                ("stratify_by",), f"must be a list such as [site, sex], not {_described(value)}"
            )
            return ()
        names: list[str] = []
        for index, name in enumerate(value):
            path: tuple[str | int, ...] = ("stratify_by", index)
            if not isinstance(name, str) or not name:
                self.problem(path, f"must be a factor's code, not {_described(name)}")
            elif name in names:
                self.problem(path, f"{name!r} is listed twice")
            elif name != SITE and name not in codes:
                self.problem(
                    path,
                    f"{name!r} is not a factor: add it to factors with the CRF item holding it"
                    f' ({{code: {name}, item: "<event>/<form>.<item>"}}), or use site',
                )
            else:
                names.append(name)
        for index, factor in enumerate(scheme.factors):
            if factor.code not in names:
                self.problem(
                    ("factors", index),
                    f"factor {factor.code!r} is not used: add it to stratify_by or remove it",
                )
        return tuple(names)

    def _block_sizes(self, value: Any) -> tuple[int, ...]:
        ratio_sum = sum(arm.ratio for arm in self.arms)
        if value is None:
            self.problem(
                (),
                "missing required key 'block_sizes': the block sizes to draw from, e.g. [4, 6]",
            )
            return ()
        if _is_integer(value):
            value = [value]
        if not isinstance(value, list | tuple) or not value:
            self.problem(
                ("block_sizes",), f"must be a list of block sizes such as [4, 6], not {value!r}"
            )
            return ()
        sizes: list[int] = []
        for index, size in enumerate(value):
            path: tuple[str | int, ...] = ("block_sizes", index)
            if not _is_integer(size) or size < 1:
                self.problem(path, f"must be a whole number of 1 or more, not {_described(size)}")
            elif size % ratio_sum:
                multiples = ", ".join(str(ratio_sum * k) for k in (1, 2, 3))
                self.problem(
                    path,
                    f"block size {size} is not a multiple of {ratio_sum}, the sum of the arm"
                    f" ratios, so its blocks could not hold the arms in their ratio: use"
                    f" {multiples}, ...",
                )
            elif size > MAX_BLOCK_SIZE:
                self.problem(path, f"block size {size} is too large: at most {MAX_BLOCK_SIZE}")
            elif size in sizes:
                self.problem(path, f"block size {size} is given twice")
            else:
                sizes.append(size)
        return tuple(sizes)

    def _minimisation_settings(self, scheme: Scheme, settings: Mapping[str, Any]) -> Scheme:
        example = 'e.g. [{code: site}, {code: sex, item: "screening/demographics.sex"}]'
        if "factors" not in settings:
            self.problem(
                (), f"missing required key 'factors': minimisation needs at least one, {example}"
            )
        elif settings["factors"] in ([], (), None):
            self.problem(("factors",), f"minimisation needs at least one factor, {example}")
        total = cast(Total, self._choice(settings, "total", TOTALS))
        if total == "sum":
            for index, factor in enumerate(scheme.factors):
                if factor.weight != 1:
                    self.problem(
                        ("factors", index, "weight"),
                        "is ignored when total is sum: set total: weighted_sum to use the"
                        " weights, or remove them",
                    )
        preferred_p = settings.get("preferred_p", DEFAULT_PREFERRED_P)
        lowest = 1 / max(len(self.arms), 1)
        if not _is_number(preferred_p) or not lowest < preferred_p <= 1:
            self.problem(
                ("preferred_p",),
                f"must be a probability above 1/{len(self.arms)} (one over the number of"
                f" arms) and at most 1, such as 0.8, not {_described(preferred_p)}",
            )
            preferred_p = DEFAULT_PREFERRED_P
        return Scheme(
            method=scheme.method,
            arms=scheme.arms,
            factors=scheme.factors,
            kit_codes=scheme.kit_codes,
            imbalance=cast(Imbalance, self._choice(settings, "imbalance", IMBALANCES)),
            total=total,
            preferred_p=float(preferred_p),
            random_first=self._whole_number(
                settings, "random_first", minimum=0, default=0, what="a whole number of 0 or more"
            ),
        )
