"""Allocation lists of the list methods: simple, permuted blocks and big stick.

A list holds, for each stratum, the arms of its 1st, 2nd, 3rd... allocation. A
stratum is named by its levels of the ``stratify_by`` factors, in that order:
``site=NTH;sex=F``; an unstratified study has the one stratum ``all``.

A generated list is reproducible: each stratum draws from its own
:class:`random.Random` seeded with ``"<seed>/<stratum>"``, and the kit codes from one
seeded with ``"<seed>/kit_codes"``, so the same seed and strata give the same list on
any machine and Python version, and adding a stratum changes no other stratum's arms.

The canonical CSV form (:func:`write_list_csv`) has the columns
``stratum,sequence,arm,kit_code,block,block_size``, one row per allocation sorted by
stratum then sequence, ``\\n`` line ends and no byte order mark; a list's SHA-256
(:func:`list_sha256`) is that of this text in UTF-8. The block columns are empty for
lists without blocks. An uploaded list needs only ``stratum,sequence,arm`` and, when
the study uses kit codes, ``kit_code`` (:func:`read_list_csv`).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import itertools
import math
import random
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

from bhp_ctms.randomisation.methods.scheme import Scheme

UNSTRATIFIED = "all"
COLUMNS = ("stratum", "sequence", "arm", "kit_code", "block", "block_size")
REQUIRED_COLUMNS = ("stratum", "sequence", "arm")
# Kit codes are printed on packs and typed by people: letters, digits and a few
# separators. Starting with a letter or digit also keeps a spreadsheet from reading
# one as a formula.
KIT_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
KIT_CODE_RULE = (
    "letters, digits, '.', '_', '/' and '-', starting with a letter or digit, at most 64"
)
_DIGITS = re.compile(r"[0-9]{1,9}")
# Characters that would make a stratum name ambiguous, or break a CSV line.
_LEVEL_FORBIDDEN = re.compile(r"[;=\r\n]")


@dataclass(frozen=True)
class ListRow:
    """One allocation of a list: the ``sequence``-th (from 1) of its stratum.
    ``kit_code`` is "" when the study does not use kit codes; ``block`` (from 1 in
    each stratum) and ``block_size`` are ``None`` for lists without blocks."""

    stratum: str
    sequence: int
    arm: str
    block: int | None
    block_size: int | None
    kit_code: str


@dataclass(frozen=True)
class ListProblem:
    """One thing wrong with an uploaded list. ``line`` counts from 1 (``None``: the
    whole file); ``column`` is the column's name (``None``: the whole line)."""

    line: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column}")
        text = f"{', '.join(where)}: {self.message}" if where else self.message
        return text[:1].upper() + text[1:]


# --- Strata -----------------------------------------------------------------------


def stratum_key(scheme: Scheme, levels: Mapping[str, str]) -> str:
    """The stratum of a participant with these levels of the factors (``site`` too).

    Raises ``KeyError`` for a missing factor and ``ValueError`` for a level that could
    not be told apart in a stratum's name (empty, or holding ``;``, ``=`` or a line end).
    """
    if not scheme.stratify_by:
        return UNSTRATIFIED
    parts = []
    for factor in scheme.stratify_by:
        level = levels[factor]
        _check_level(factor, level)
        parts.append(f"{factor}={level}")
    return ";".join(parts)


def strata(scheme: Scheme, levels: Mapping[str, Sequence[str]]) -> list[str]:
    """Every stratum: each combination of the ``stratify_by`` factors' levels, in the
    order of the factors and of their levels."""
    if not scheme.stratify_by:
        return [UNSTRATIFIED]
    choices = []
    for factor in scheme.stratify_by:
        factor_levels = list(levels[factor])
        if not factor_levels:
            raise ValueError(f"factor {factor!r} has no levels")
        for level in factor_levels:
            _check_level(factor, level)
        choices.append([f"{factor}={level}" for level in factor_levels])
    return [";".join(combination) for combination in itertools.product(*choices)]


def stratum_levels(stratum: str) -> dict[str, str]:
    """The levels a stratum's name holds (``{}`` for ``all``)."""
    if stratum == UNSTRATIFIED:
        return {}
    return dict(part.split("=", 1) for part in stratum.split(";"))


def _check_level(factor: str, level: str) -> None:
    if not level or _LEVEL_FORBIDDEN.search(level):
        raise ValueError(
            f"level {level!r} of factor {factor!r} cannot name a stratum:"
            " it must not be empty or hold ';', '=' or a line end"
        )


# --- Generating -------------------------------------------------------------------


def weighted_arm(rng: random.Random, codes: Sequence[str], ratios: Sequence[int]) -> str:
    """One of ``codes``, drawn in proportion to ``ratios`` (whole numbers)."""
    draw = rng.randrange(sum(ratios))
    for code, ratio in zip(codes, ratios, strict=True):
        if draw < ratio:
            return code
        draw -= ratio
    raise AssertionError("unreachable: the draw is below the sum of the ratios")


def shuffled(rng: random.Random, values: Sequence[str]) -> list[str]:
    """A random permutation (Fisher-Yates, spelt out so that it cannot change with
    the Python version)."""
    result = list(values)
    for index in range(len(result) - 1, 0, -1):
        other = rng.randrange(index + 1)
        result[index], result[other] = result[other], result[index]
    return result


@dataclass(frozen=True)
class Draw:
    arm: str
    block: int | None = None
    block_size: int | None = None


def stratum_draws(scheme: Scheme, rng: random.Random) -> Iterator[Draw]:
    """A stratum's allocations, in order, without end."""
    codes = scheme.arm_codes
    ratios = [arm.ratio for arm in scheme.arms]
    if scheme.method == "permuted_blocks":
        for block in itertools.count(1):
            size = scheme.block_sizes[rng.randrange(len(scheme.block_sizes))]
            per_ratio = size // scheme.ratio_sum
            contents = [arm.code for arm in scheme.arms for _ in range(arm.ratio * per_ratio)]
            for arm in shuffled(rng, contents):
                yield Draw(arm, block, size)
    elif scheme.method == "big_stick":
        # Counts are scaled by lcm(ratios) / ratio: whole numbers proportional to
        # count / ratio, so the limit is compared exactly.
        common = math.lcm(*ratios)
        scale = [common // ratio for ratio in ratios]
        limit = scheme.max_imbalance * common
        adjusted = [0] * len(codes)
        while True:
            allowed = []
            for index in range(len(codes)):
                adjusted[index] += scale[index]
                if max(adjusted) - min(adjusted) <= limit:
                    allowed.append(index)
                adjusted[index] -= scale[index]
            arm = weighted_arm(rng, [codes[i] for i in allowed], [ratios[i] for i in allowed])
            adjusted[codes.index(arm)] += scale[codes.index(arm)]
            yield Draw(arm)
    elif scheme.method == "simple":
        while True:
            yield Draw(weighted_arm(rng, codes, ratios))
    else:
        raise ValueError(f"{scheme.method} does not allocate from a list")


def seeded_rng(text: str) -> random.Random:
    """A random stream that the text alone determines, on any machine and Python
    version (string seeds are hashed with SHA-512: version 2 seeding). Allocation
    must be reproducible by the statistician, so not the operating system's randomness;
    concealment rests on the seed being kept secret."""
    return random.Random(text)  # noqa: S311 - reproducible by design, see above


def stratum_rng(seed: str, stratum: str) -> random.Random:
    return seeded_rng(f"{seed}/{stratum}")


def generate_list(
    scheme: Scheme, strata: Sequence[str], seed: str, per_stratum: int
) -> list[ListRow]:
    """A list with at least ``per_stratum`` allocations in each stratum, in the order
    of ``strata`` then sequence. Permuted blocks complete the last block."""
    if not scheme.list_based:
        raise ValueError(f"{scheme.method} does not allocate from a list")
    if not seed:
        raise ValueError("a list needs a seed")
    if per_stratum < 1:
        raise ValueError("a list needs at least one allocation per stratum")
    if not strata or len(set(strata)) != len(strata):
        raise ValueError("a list needs one or more strata, each named once")
    draws: list[tuple[str, int, Draw]] = []
    for stratum in strata:
        last_block = None
        for sequence, draw in enumerate(stratum_draws(scheme, stratum_rng(seed, stratum)), 1):
            # Past the number asked for, stop where the next block would start.
            if sequence > per_stratum and (draw.block is None or draw.block != last_block):
                break
            last_block = draw.block
            draws.append((stratum, sequence, draw))
    kit_codes = (
        _kit_codes(seeded_rng(f"{seed}/kit_codes"), len(draws))
        if scheme.kit_codes
        else [""] * len(draws)
    )
    return [
        ListRow(stratum, sequence, draw.arm, draw.block, draw.block_size, kit_code)
        for (stratum, sequence, draw), kit_code in zip(draws, kit_codes, strict=True)
    ]


def _kit_codes(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct random codes of 6 digits (more for very long lists, keeping
    nine in ten unused so that a mistyped code is rarely another pack's). No leading
    zero: spreadsheets drop it."""
    width = 6
    while 9 * 10 ** (width - 1) < 10 * count:
        width += 1
    low, high = 10 ** (width - 1), 10**width
    codes: list[str] = []
    used: set[int] = set()
    while len(codes) < count:
        number = rng.randrange(low, high)
        if number not in used:
            used.add(number)
            codes.append(str(number))
    return codes


# --- CSV --------------------------------------------------------------------------


def write_list_csv(rows: Collection[ListRow]) -> str:
    """The list in its canonical CSV form (see the module's docstring)."""
    output = io.StringIO()
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in sorted(rows, key=lambda row: (row.stratum, row.sequence)):
        writer.writerow(
            (
                row.stratum,
                row.sequence,
                row.arm,
                row.kit_code,
                "" if row.block is None else row.block,
                "" if row.block_size is None else row.block_size,
            )
        )
    return output.getvalue()


def list_sha256(rows: Collection[ListRow]) -> str:
    """The SHA-256 (hex) of the list's canonical CSV, whatever the rows' order."""
    return hashlib.sha256(write_list_csv(rows).encode("utf-8")).hexdigest()


def read_list_csv(
    text: str, scheme: Scheme, arm_codes: Collection[str], strata: Collection[str]
) -> tuple[list[ListRow], list[ListProblem]]:
    """An uploaded list's rows (sorted by stratum and sequence), or no rows and every
    problem found, each with its line and column.

    A byte order mark, Windows line ends, blank lines and empty trailing cells are
    tolerated. The header must name ``stratum``, ``sequence``, ``arm`` and, when
    ``scheme.kit_codes``, ``kit_code``; ``block`` and ``block_size`` are optional.
    Each stratum's sequence numbers must run 1, 2, 3... without a gap or repeat.
    """
    return _ListReader(scheme, arm_codes, strata).read(text)


class _ListReader:
    def __init__(self, scheme: Scheme, arm_codes: Collection[str], strata: Collection[str]) -> None:
        self.kit_codes = scheme.kit_codes
        self.arm_codes = list(arm_codes)
        self.strata = list(strata)
        self.known_strata = set(strata)
        self.problems: list[ListProblem] = []
        self.columns: dict[str, int] = {}
        self.seen_sequences: dict[tuple[str, int], int] = {}
        self.seen_kit_codes: dict[str, int] = {}
        self._stratum_hints: dict[str, str] = {}

    def problem(self, line: int | None, column: str | None, message: str) -> None:
        self.problems.append(ListProblem(line, column, message))

    def read(self, text: str) -> tuple[list[ListRow], list[ListProblem]]:
        rows: list[ListRow] = []
        header_line: int | None = None
        for line, cells in self._lines(text.removeprefix("\ufeff")):
            if header_line is None:
                header_line = line
                if not self._header(line, cells):
                    return [], self.problems
                continue
            row = self._row(line, cells)
            if row is not None:
                rows.append(row)
        if header_line is None:
            self.problem(
                None,
                None,
                "the file is empty: it needs a header line"
                f" ({','.join(self._required())}) and then one line per allocation",
            )
        elif not rows and not self.problems:
            self.problem(None, None, "the list has no allocations: add one line per allocation")
        self._check_gaps()
        if self.problems:
            return [], self.problems
        return sorted(rows, key=lambda row: (row.stratum, row.sequence)), []

    def _lines(self, text: str) -> Iterator[tuple[int, list[str]]]:
        """Each line that is not blank, with its number (the first of a row that
        spans lines inside quotes)."""
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        previous_end = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                self.problem(
                    previous_end + 1,
                    None,
                    f"this is not CSV that can be read ({error}): check the quotes",
                )
                return
            line = previous_end + 1
            previous_end = reader.line_num
            cells = [cell.strip() for cell in cells]
            if any(cells):
                yield line, cells

    def _required(self) -> list[str]:
        return [*REQUIRED_COLUMNS, *(["kit_code"] if self.kit_codes else [])]

    def _header(self, line: int, cells: list[str]) -> bool:
        names = [cell.lower() for cell in cells]
        while names and not names[-1]:
            names.pop()
        if not any(name in COLUMNS for name in names):
            self.problem(
                line,
                None,
                "the first line must be the header naming the columns"
                f" {','.join(self._required())} (optionally also block,block_size)",
            )
            return False
        for index, name in enumerate(names):
            if name not in COLUMNS:
                shown = repr(name[:40]) if name else f"number {index + 1} (no name)"
                self.problem(
                    line,
                    name[:40] or None,
                    f"column {shown} is not recognised: the columns are {', '.join(COLUMNS)}"
                    " (the first line must be the header)",
                )
            elif name in self.columns:
                self.problem(line, name, f"column {name} is given twice")
            else:
                self.columns[name] = index
        missing = [name for name in self._required() if name not in self.columns]
        for name in missing:
            self.problem(
                line,
                name,
                f"the header has no {name} column: the first line must name the columns"
                f" {','.join(self._required())}",
            )
        return not missing

    def _row(self, line: int, cells: list[str]) -> ListRow | None:
        width = max(self.columns.values()) + 1
        if len(cells) > width and not any(cells[width:]):
            cells = cells[:width]
        if len(cells) != width:
            self.problem(
                line,
                None,
                f"this line has {len(cells)} values but the header has {width} columns",
            )
            return None
        problems_before = len(self.problems)
        stratum = self._stratum(line, cells[self.columns["stratum"]])
        sequence = self._whole_number(line, "sequence", cells[self.columns["sequence"]])
        arm = self._arm(line, cells[self.columns["arm"]])
        kit_code = self._kit_code(line, self._cell(cells, "kit_code"))
        block = self._optional_number(line, "block", self._cell(cells, "block"))
        block_size = self._optional_number(line, "block_size", self._cell(cells, "block_size"))
        if stratum and sequence:
            first = self.seen_sequences.setdefault((stratum, sequence), line)
            if first != line:
                self.problem(
                    line,
                    "sequence",
                    f"sequence {sequence} of stratum {stratum} is given twice (first on"
                    f" line {first}): each allocation of a stratum needs its own number",
                )
        if len(self.problems) > problems_before or not (stratum and sequence and arm):
            return None
        return ListRow(stratum, sequence, arm, block, block_size, kit_code)

    def _cell(self, cells: list[str], column: str) -> str:
        index = self.columns.get(column)
        return "" if index is None else cells[index]

    def _stratum(self, line: int, value: str) -> str:
        if value in self.known_strata:
            return value
        if not value:
            self.problem(line, "stratum", "the stratum is missing: name it, e.g. site=NTH")
            return ""
        hint = self._stratum_hints.get(value)
        if hint is None:
            same = [name for name in self.strata if name.lower() == value.lower()]
            close = same or difflib.get_close_matches(value, self.strata, n=1, cutoff=0.85)
            if close:
                hint = f"did you mean {close[0]}?"
            else:
                shown = ", ".join(self.strata[:4]) + (", ..." if len(self.strata) > 4 else "")
                hint = f"the strata are {shown}"
            self._stratum_hints[value] = hint
        self.problem(line, "stratum", f"{value[:60]!r} is not one of this study's strata ({hint})")
        return ""

    def _whole_number(self, line: int, column: str, value: str) -> int:
        if not value:
            self.problem(line, column, f"the {column} is missing: give a whole number from 1")
            return 0
        if not _DIGITS.fullmatch(value) or int(value) < 1:
            self.problem(
                line, column, f"{value[:40]!r} is not a whole number from 1 (1, 2, 3, ...)"
            )
            return 0
        return int(value)

    def _optional_number(self, line: int, column: str, value: str) -> int | None:
        if not value:
            return None
        return self._whole_number(line, column, value) or None

    def _arm(self, line: int, value: str) -> str:
        if value in self.arm_codes:
            return value
        arms = ", ".join(self.arm_codes)
        if not value:
            self.problem(line, "arm", f"the arm is missing: give one of {arms}")
            return ""
        same = [code for code in self.arm_codes if code.lower() == value.lower()]
        hint = f" (did you mean {same[0]}? codes are case-sensitive)" if same else ""
        self.problem(line, "arm", f"{value[:40]!r} is not an arm of this study{hint}: use {arms}")
        return ""

    def _kit_code(self, line: int, value: str) -> str:
        if not self.kit_codes:
            if value:
                self.problem(
                    line,
                    "kit_code",
                    "this study does not use kit codes (kit_codes: false): leave kit_code empty",
                )
            return ""
        if not value:
            self.problem(line, "kit_code", "the kit code is missing: each allocation needs one")
            return ""
        if not KIT_CODE.fullmatch(value):
            self.problem(
                line, "kit_code", f"{value[:40]!r} is not a valid kit code ({KIT_CODE_RULE})"
            )
            return ""
        first = self.seen_kit_codes.setdefault(value, line)
        if first != line:
            self.problem(
                line,
                "kit_code",
                f"kit code {value} is given twice (first on line {first}): each pack needs"
                " its own code",
            )
            return ""
        return value

    def _check_gaps(self) -> None:
        sequences: dict[str, set[int]] = {}
        for (stratum, sequence), _ in self.seen_sequences.items():
            sequences.setdefault(stratum, set()).add(sequence)
        for stratum in sorted(sequences):
            numbers = sequences[stratum]
            expected = next(
                (number for number in range(1, len(numbers) + 2) if number not in numbers),
                None,
            )
            if expected is not None and expected <= max(numbers):
                self.problem(
                    None,
                    "sequence",
                    f"stratum {stratum}: the sequence numbers must run 1, 2, 3, ... without"
                    f" a gap, but {expected} is missing",
                )
