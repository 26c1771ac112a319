"""How fast, and in how much memory, a locked dataset is exported.

Makes a PostgreSQL study of P (2,000) participants x 10 scheduled events x 5 forms x
50 items (5,000,000 values with the defaults), and a second one a fifth of its size
(1,000,000 values), bulk-loaded with the audit capture off (set-up, not what is
measured). Then, for each study, in a fresh child process each:

- the reference: PostgreSQL ``COPY`` of the same values (participant, event,
  instance, form, item, value, missing code) to a CSV file;
- taking the snapshot (``take_snapshot``), which reads the live tables once;
- the CSV bundle (wide files per form, the long file, the dictionary, the manifest)
  written from the snapshot, and the ODM bundle likewise;

printing each time, each as a multiple of the ``COPY`` of the same study, and each
child's peak resident memory.

Goals (issue 7): the CSV bundle at most 5x the ``COPY``, ODM at most 10x; peak memory
of the export process under 500 MB and flat from 1,000,000 to 5,000,000 values.

    python -m benchmarks.exports [--participants 2000] [--small-share 0.2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import Session

from benchmarks.scratch import machine_load, print_table, scratch_database
from bhp_ctms.audit.capture import DISABLED_KEY
from bhp_ctms.crf.definition.model import Choice, FormDefinition, Item
from bhp_ctms.crf.models import FormEntry, FormStatus, FormVersion
from bhp_ctms.participants.models import Participant, ParticipantSequence, ParticipantStatus
from bhp_ctms.sites.models import Site, SiteStatus
from bhp_ctms.studies.definition import Event, read_study
from bhp_ctms.studies.loading import definition_sha256
from bhp_ctms.studies.models import ProtocolVersion, Study, StudyStatus

CSV_GOAL = 5.0
ODM_GOAL = 10.0
MEMORY_GOAL_MB = 500.0
EVENTS = 10
FORMS = 5
ITEMS = 50
SITES = ("NTH", "STH", "EST", "WST")
DEMO_FOLDER = Path(__file__).resolve().parent.parent / "forms" / "demo"
CHOICES = tuple(Choice(code=str(code), label=f"Answer {code}") for code in range(1, 6))

REFERENCE_COPY = """
COPY (
    SELECT p.code, e.event_code, e.event_instance, e.form_code, v.item_path, v.value,
           v.missing_code
    FROM item_values v
    JOIN form_entries e ON e.id = v.form_entry_id
    JOIN participants p ON p.id = e.participant_id
    WHERE p.study_id = {study_id}
    ORDER BY p.code, e.id, v.id
) TO STDOUT WITH (FORMAT csv, HEADER true)
"""


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=2000)
    parser.add_argument(
        "--small-share",
        type=float,
        default=0.2,
        help="size of the second study, as a share of the first (default 0.2)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--child", nargs=3, metavar=("URL", "STUDY", "WHAT"), help=argparse.SUPPRESS
    )
    return parser.parse_args()


# --- The generated study ------------------------------------------------------------


def _item(form: int, number: int) -> Item:
    """The form's ``number``th item: numbers, choices, dates, text and yes/no in turn."""
    code = f"f{form}_i{number:02d}"
    kind = number % 5
    common: dict[str, Any] = {"code": code, "missing_codes": ("not_done",)}
    if kind in (0, 1):
        return Item(label=f"Measurement {number}", type="decimal", units="mg", **common)
    if kind == 2:
        return Item(label=f"Question {number}", type="single_choice", choices=CHOICES, **common)
    if kind == 3:
        return Item(label=f"Date {number}", type="date", **common)
    return Item(label=f"Comment {number}", type="text", max_length=200, **common)


def generated_forms() -> list[FormDefinition]:
    return [
        FormDefinition(
            code=f"form_{form}",
            title=f"Generated form {form}",
            version="1.0",
            description="",
            entries=tuple(_item(form, number) for number in range(1, ITEMS + 1)),
        )
        for form in range(1, FORMS + 1)
    ]


def _value_pool(item: Item, rng: random.Random) -> list[str]:
    """A few hundred plausible values for an item, drawn from when the rows are made."""
    if item.type == "decimal":
        return [f"{rng.uniform(0, 200):.1f}" for _ in range(500)]
    if item.type == "single_choice":
        return [choice.code for choice in CHOICES]
    if item.type == "date":
        start = date(2025, 1, 1)
        return [(start + timedelta(days=day)).isoformat() for day in range(0, 700, 3)]
    return [f"Free text note {number}, with a comma" for number in range(200)]


def load_study(url: str, code: str, participants: int, seed: int) -> int:
    """Make study ``code`` with its data; the number of values loaded."""
    rng = random.Random(seed)
    forms = generated_forms()
    demo = read_study(DEMO_FOLDER)
    events = tuple(
        Event(
            code=f"visit_{number}",
            name=f"Visit {number}",
            day_offset=28 * number,
            window_before=7,
            window_after=7,
            repeating=False,
            forms=tuple(form.code for form in forms),
            max_repeats=None,
        )
        for number in range(EVENTS)
    )
    definition = dataclasses.replace(
        demo, code=code, events=events, randomisation=None, schedule_baseline="registration"
    )
    engine = create_engine(url)
    values = 0
    with Session(engine) as db:
        db.info[DISABLED_KEY] = True
        study = Study(code=code, title=f"Export benchmark {code}", status=StudyStatus.FOLLOW_UP)
        db.add(study)
        db.flush()
        stored = definition.to_json()
        version = ProtocolVersion(
            study_id=study.id,
            number=1,
            label="1.0",
            effective_on=date(2025, 1, 1),
            definition=stored,
            definition_sha256=definition_sha256(stored),
        )
        sites = [
            Site(study_id=study.id, code=site, name=f"Site {site}", status=SiteStatus.OPEN)
            for site in SITES
        ]
        db.add_all([version, *sites])
        db.flush()
        form_versions = {}
        for form in forms:
            json_form = form.to_json()
            form_version = FormVersion(
                study_id=study.id,
                form_code=form.code,
                number=1,
                label="1.0",
                title=form.title,
                definition=json_form,
                sha256=definition_sha256(json_form),
            )
            db.add(form_version)
            form_versions[form.code] = form_version
        db.flush()
        people = []
        for sequence in range(1, participants + 1):
            site = sites[sequence % len(sites)]
            people.append(
                {
                    "study_id": study.id,
                    "site_id": site.id,
                    "code": f"{code}-{site.code}-{sequence:05d}",
                    "sequence": sequence,
                    "status": ParticipantStatus.RANDOMISED,
                    "protocol_version_id": version.id,
                    "registered_on": date(2025, 1, 1) + timedelta(days=sequence % 300),
                    "randomised_on": date(2025, 1, 8) + timedelta(days=sequence % 300),
                    "is_child": False,
                    "status_details": "",
                }
            )
        db.execute(insert(Participant), people)
        db.add_all(
            ParticipantSequence(site_id=site.id, last_sequence=participants) for site in sites
        )
        participant_ids = db.scalars(
            select(Participant.id).where(Participant.study_id == study.id).order_by(Participant.id)
        ).all()
        entries = [
            {
                "participant_id": participant_id,
                "event_code": event.code,
                "event_instance": 1,
                "form_code": form.code,
                "form_version_id": form_versions[form.code].id,
                "status": FormStatus.COMPLETE,
                "version": 1,
            }
            for participant_id in participant_ids
            for event in events
            for form in forms
        ]
        db.execute(insert(FormEntry), entries)
        db.commit()
        entry_rows = db.execute(
            select(FormEntry.id, FormEntry.form_code)
            .join(Participant, Participant.id == FormEntry.participant_id)
            .where(Participant.study_id == study.id)
            .order_by(FormEntry.id)
        ).all()
    pools = {
        form.code: [(item.code, _value_pool(item, rng)) for item in form.items] for form in forms
    }
    raw = engine.raw_connection()
    try:
        cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(
            "COPY item_values (form_entry_id, item_path, value, missing_code) FROM STDIN"
        ) as copy:
            for entry_id, form_code in entry_rows:
                for item_code, pool in pools[form_code]:
                    if rng.random() < 0.01:
                        copy.write_row((entry_id, item_code, None, "ND"))
                    else:
                        copy.write_row((entry_id, item_code, rng.choice(pool), None))
                    values += 1
        raw.commit()
    finally:
        raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM (ANALYZE)")
    engine.dispose()
    return values


# --- What is measured, each in a child process ---------------------------------------


def _peak_mb() -> float:
    """This process's peak resident memory. Not ``getrusage``: on Linux its maximum
    carries the parent's size across ``fork`` and ``exec``; ``VmHWM`` is this
    program's own high-water mark."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(url: str, code: str, what: str) -> None:
    """Measure one thing in this (fresh) process and print it as JSON."""
    from bhp_ctms.exports.bundles import write_bundle
    from bhp_ctms.exports.models import DatasetSnapshot
    from bhp_ctms.exports.records import ExportOptions
    from bhp_ctms.exports.snapshots import open_snapshot, take_snapshot

    engine = create_engine(url)
    started_mb = _peak_mb()
    with tempfile.TemporaryDirectory(prefix="ctms-bench-export-") as directory:
        out = Path(directory) / "out"
        with Session(engine) as db:
            study = db.scalars(select(Study).where(Study.code == code)).one()
            started = time.perf_counter()
            if what == "copy":
                raw: Any = db.connection().connection.driver_connection
                statement = REFERENCE_COPY.format(study_id=study.id)
                with raw.cursor().copy(statement) as copy, out.open("wb") as file:
                    for block in copy:
                        file.write(block)
            elif what == "snapshot":
                take_snapshot(db, study, kind="interim", description="Benchmark")
                db.commit()
            else:
                snapshot = db.scalars(
                    select(DatasetSnapshot)
                    .where(DatasetSnapshot.study_id == study.id)
                    .order_by(DatasetSnapshot.id.desc())
                ).first()
                records = open_snapshot(db, cast(Any, snapshot), blinded=True)
                options = ExportOptions(formats=(what,), blinded=True)
                with out.open("wb") as file:
                    write_bundle(records, options, file)
            seconds = time.perf_counter() - started
        size = out.stat().st_size if out.exists() else 0
    print(
        json.dumps(
            {"seconds": seconds, "peak_mb": _peak_mb(), "start_mb": started_mb, "bytes": size}
        )
    )


def run_child(url: str, code: str, what: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.exports", "--child", url, code, what],
        check=False,
        capture_output=True,
        text=True,
        env=os.environ,
    )
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        raise SystemExit(f"measuring {what} of {code} failed (exit {result.returncode})")
    return cast(dict[str, float], json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    arguments = parse_arguments()
    if arguments.child:
        child(*arguments.child)
        return
    large = arguments.participants
    small = max(1, round(large * arguments.small_share))
    print(f"machine load: {machine_load()}")
    with scratch_database("postgresql", "ctms_bench_export") as url:
        sizes = {}
        for code, count in (("EXPSMALL", small), ("EXPLARGE", large)):
            started = time.perf_counter()
            sizes[code] = load_study(url, code, count, arguments.seed)
            print(
                f"{code}: {count:,} participants, {sizes[code]:,} values loaded in "
                f"{time.perf_counter() - started:.0f} s"
            )
        results: dict[str, dict[str, dict[str, float]]] = {}
        for code in sizes:
            results[code] = {what: run_child(url, code, what) for what in ("copy", "snapshot")}
            for what in ("csv", "odm"):
                results[code][what] = run_child(url, code, what)
        for code, values in sizes.items():
            copy = results[code]["copy"]["seconds"]
            rows = []
            for what, label in (
                ("copy", "PostgreSQL COPY to CSV (reference)"),
                ("snapshot", "take the snapshot"),
                ("csv", "CSV bundle from the snapshot"),
                ("odm", "ODM bundle from the snapshot"),
            ):
                figure = results[code][what]
                rows.append(
                    (
                        label,
                        f"{figure['seconds']:7.1f} s  {figure['seconds'] / copy:5.1f}x COPY  "
                        f"peak {figure['peak_mb']:6.0f} MB  {figure['bytes'] / 1e6:7.1f} MB out",
                    )
                )
            print_table(f"{code}: {values:,} values", rows)
        large_results = results["EXPLARGE"]
        copy = large_results["copy"]["seconds"]
        verdicts = [
            ("CSV bundle", large_results["csv"]["seconds"] / copy, CSV_GOAL),
            ("ODM bundle", large_results["odm"]["seconds"] / copy, ODM_GOAL),
        ]
        for label, ratio, goal in verdicts:
            verdict = "PASS" if ratio <= goal else "FAIL"
            print(f"{verdict}: {label} {ratio:.1f}x COPY (goal <= {goal}x)")
        for what in ("snapshot", "csv", "odm"):
            peak_small = results["EXPSMALL"][what]["peak_mb"]
            peak_large = large_results[what]["peak_mb"]
            flat = peak_large <= peak_small * 1.25 + 20
            ok = peak_large < MEMORY_GOAL_MB and flat
            print(
                f"{'PASS' if ok else 'FAIL'}: peak memory of {what}: {peak_small:.0f} MB at "
                f"{sizes['EXPSMALL']:,} values, {peak_large:.0f} MB at {sizes['EXPLARGE']:,} "
                f"(goal < {MEMORY_GOAL_MB:.0f} MB and flat)"
            )


if __name__ == "__main__":
    main()
