"""How fast a large REDCap data dictionary imports into form files.

Makes a dictionary of N fields (default 5,000) with the mix of the REDCap samples in
tests/data/redcap/, counted from them when the script runs: the share of each field
type, of each text validation type, of ranges, identifiers, field notes, section
headers, matrix groups, branching logic and calculations, and the samples' mean
number of fields an instrument. Branching logic and calculations use fields before
them in their instrument, as the samples' do. Then times ``import_dictionary`` of it
into a fresh folder (median of R runs) and, as the reference in the same run, reading
the same file with the ``csv`` module. Reading the forms written back with
``check_forms`` is timed too, for information.

Goal (issue): a 5,000-field dictionary imports in < 10 s.

    python -m benchmarks.redcap_import [--fields 5000] [--repeats 3] [--seed N]
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.scratch import machine_load, print_table
from bhp_ctms.crf.definition import check_forms
from bhp_ctms.crf.redcap import import_dictionary

GOAL_SECONDS = 10.0
SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "data" / "redcap"
NAME = "Variable / Field Name"
FORM = "Form Name"
SECTION = "Section Header"
TYPE = "Field Type"
LABEL = "Field Label"
CHOICES = "Choices, Calculations, OR Slider Labels"
NOTE = "Field Note"
VALIDATION = "Text Validation Type OR Show Slider Number"
MINIMUM = "Text Validation Min"
MAXIMUM = "Text Validation Max"
IDENTIFIER = "Identifier?"
LOGIC = "Branching Logic (Show field only if...)"
MATRIX = "Matrix Group Name"
MATRIX_ROWS = 4


@dataclass
class Mix:
    """What the samples' fields are made of (their record IDs left out)."""

    header: list[str]
    types: Counter[str] = field(default_factory=Counter)
    validations: Counter[str] = field(default_factory=Counter)
    labels: list[str] = field(default_factory=list)
    choice_lists: list[str] = field(default_factory=list)
    slider_labels: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    ranged: int = 0
    ranged_of: int = 0
    fields: int = 0
    forms: int = 0
    identifiers: int = 0
    with_notes: int = 0
    with_sections: int = 0
    in_matrices: int = 0
    with_logic: int = 0

    def share(self, count: int) -> float:
        return count / self.fields


def sample_mix() -> Mix:
    header: list[str] = []
    mix = Mix(header)
    for path in sorted(SAMPLES.glob("*/dictionary.csv")):
        with path.open(encoding="utf-8-sig", newline="") as file:
            rows = list(csv.DictReader(file))
        header[:] = list(rows[0])
        mix.forms += len({row[FORM] for row in rows[1:]})
        for row in rows[1:]:
            mix.fields += 1
            kind = row[TYPE]
            mix.types[kind] += 1
            mix.labels.append(row[LABEL])
            if kind == "text":
                validation = row[VALIDATION]
                mix.validations[validation] += 1
                if validation.startswith(("integer", "number", "date")):
                    mix.ranged_of += 1
                    mix.ranged += bool(row[MINIMUM] or row[MAXIMUM])
            elif kind in ("radio", "dropdown", "checkbox"):
                mix.choice_lists.append(row[CHOICES])
            elif kind == "slider":
                mix.slider_labels.append(row[CHOICES])
            mix.identifiers += row[IDENTIFIER] == "y"
            mix.with_notes += bool(row[NOTE])
            mix.with_sections += bool(row[SECTION])
            mix.in_matrices += bool(row[MATRIX])
            mix.with_logic += bool(row[LOGIC])
            if row[NOTE]:
                mix.notes.append(row[NOTE])
            if row[SECTION]:
                mix.sections.append(row[SECTION])
    return mix


def _weighted(rng: random.Random, counts: Counter[str]) -> Callable[[], str]:
    names = list(counts)
    weights = [counts[name] for name in names]
    return lambda: rng.choices(names, weights)[0]


def dictionary_rows(mix: Mix, count: int, rng: random.Random) -> list[dict[str, str]]:
    """``count`` fields with the samples' mix; the record ID first."""
    field_type = _weighted(rng, mix.types)
    validation = _weighted(rng, mix.validations)
    per_form = round(mix.fields / mix.forms)
    rows = [{NAME: "record_id", FORM: "form_0001", TYPE: "text", LABEL: "Record ID"}]
    numeric: list[str] = []
    choices: list[tuple[str, str]] = []
    matrix_left = 0
    matrix = matrix_choices = ""
    for number in range(1, count):
        form = f"form_{number // per_form + 1:04d}"
        if form != rows[-1][FORM]:
            numeric, choices, matrix_left = [], [], 0
        name = f"f{number:05d}"
        row = {NAME: name, FORM: form, LABEL: rng.choice(mix.labels)}
        kind = field_type()
        if matrix_left:
            kind, row[CHOICES], row[MATRIX] = "checkbox", matrix_choices, matrix
            matrix_left -= 1
        elif rng.random() < mix.share(mix.in_matrices) / MATRIX_ROWS:
            # The samples' matrix is four checkbox rows sharing their choices.
            matrix, matrix_choices = f"m{number:05d}", rng.choice(mix.choice_lists)
            kind, row[CHOICES], row[MATRIX] = "checkbox", matrix_choices, matrix
            matrix_left = MATRIX_ROWS - 1
        row[TYPE] = kind
        if kind == "text":
            row[VALIDATION] = validation()
            if row[VALIDATION].startswith(("integer", "number")):
                numeric.append(name)
                if rng.random() < mix.ranged / max(1, mix.ranged_of):
                    row[MINIMUM], row[MAXIMUM] = "0", str(rng.randint(100, 300))
            elif row[VALIDATION].startswith("date") and rng.random() < mix.ranged / mix.ranged_of:
                row[MINIMUM], row[MAXIMUM] = "1900-01-01", "2099-12-31"
        elif kind in ("radio", "dropdown", "checkbox", "yesno", "truefalse"):
            if kind in ("radio", "dropdown", "checkbox") and CHOICES not in row:
                row[CHOICES] = rng.choice(mix.choice_lists)
            if kind != "checkbox":
                first_code = row.get(CHOICES, "1, x").split(",", 1)[0].strip()
                choices.append((name, first_code))
        elif kind == "slider":
            row[CHOICES] = rng.choice(mix.slider_labels)
        elif kind == "calc":
            if len(numeric) >= 2:
                weight, height = rng.sample(numeric, 2)
                row[CHOICES] = f"round(([{weight}]*10000)/(([{height}])^(2)),1)"
            else:
                row[CHOICES] = "3+4"
        elif kind == "sql":
            row[CHOICES] = "SELECT 1 as one;"
        if rng.random() < mix.share(mix.identifiers):
            row[IDENTIFIER] = "y"
        if rng.random() < mix.share(mix.with_notes):
            row[NOTE] = rng.choice(mix.notes)
        if rng.random() < mix.share(mix.with_sections):
            row[SECTION] = rng.choice(mix.sections)
        if choices and rng.random() < mix.share(mix.with_logic):
            (first, code), *others = rng.sample(choices, min(2, len(choices)))
            logic = f'[{first}] = "{code}"'
            for other, other_code in others:
                logic += f' and [{other}] = "{other_code}"'
            row[LOGIC] = logic
        rows.append(row)
    return rows


def write_dictionary(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, header, restval="")
        writer.writeheader()
        writer.writerows(rows)


def read_with_csv(path: Path) -> int:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return sum(1 for _ in csv.DictReader(file))


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fields", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3, help="timed imports (median)")
    parser.add_argument("--seed", type=int, default=20261123)
    arguments = parser.parse_args()
    started = time.perf_counter()
    load_before = machine_load()
    mix = sample_mix()
    rows = dictionary_rows(mix, arguments.fields, random.Random(arguments.seed))
    made = Counter(row[TYPE] for row in rows)
    with tempfile.TemporaryDirectory(prefix="ctms-redcap-") as directory:
        folder = Path(directory)
        dictionary = folder / "dictionary.csv"
        write_dictionary(dictionary, mix.header, rows)
        imports: list[float] = []
        reference: list[float] = []
        result = None
        for run in range(arguments.repeats):
            out = folder / f"study_{run}"
            started_import = time.perf_counter()
            result = import_dictionary(dictionary, out)
            imports.append(time.perf_counter() - started_import)
            reference.append(timed(lambda: read_with_csv(dictionary)))
        assert result is not None
        problems: list[object] = []
        checking = timed(lambda: problems.extend(check_forms(folder / "study_0")))
        if problems:
            raise SystemExit(f"the forms written do not check: {problems[:5]}")
        size = dictionary.stat().st_size
    median = statistics.median(imports)
    logic_rows = sum(1 for row in rows if row.get(LOGIC))
    print_table(
        f"REDCap import of a {arguments.fields:,}-field dictionary (seconds)",
        [
            (
                "dictionary",
                f"{len(rows):,} fields, {size / 1024:.0f} KiB, {result.field_count:,} read",
            ),
            (
                "mix (from the samples)",
                ", ".join(f"{kind} {made[kind]}" for kind, _ in mix.types.most_common()),
            ),
            (
                "logic",
                f"{logic_rows} branching, {made['calc']} calculations, "
                f"{sum(1 for row in rows if row.get(MATRIX))} matrix rows",
            ),
            (
                "written",
                f"{len(result.forms)} forms, {result.item_count:,} items, "
                f"{len(result.skipped)} not imported, {len(result.notes)} notes",
            ),
            (
                f"import_dictionary (median of {arguments.repeats})",
                f"{median:7.3f}   min {min(imports):7.3f}   max {max(imports):7.3f}",
            ),
            (
                "reference: csv.DictReader of the file",
                f"{statistics.median(reference):7.3f}",
            ),
            ("check_forms of what was written", f"{checking:7.3f}"),
            ("machine load before / after", f"{load_before} / {machine_load()}"),
            ("whole run (s)", f"{time.perf_counter() - started:.1f}"),
        ],
    )
    verdict = "PASS" if median < GOAL_SECONDS else "FAIL"
    print(f"{verdict}: median {median:.2f} s against the goal of < {GOAL_SECONDS:.0f} s")


if __name__ == "__main__":
    main()
