"""How fast one study's hash chain is verified.

Fills a scratch database with one study (created through the ORM, so its own events
are captured as usual) and a chain of N validly sealed data-entry events, then
times ``verify_chain`` (the production path: hashing inside PostgreSQL, in Python
on SQLite) against ``verify_chain_in_python`` as the reference, and the whole
``verify_audit_trail`` of that study (chain, checkpoint and replay).

Goal (issue): verifying 1,000,000 events runs at >= 200,000 events/s.

    python -m benchmarks.audit_verify [--backend sqlite] [--events 1000000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from benchmarks.scratch import (
    load_events,
    machine_load,
    print_table,
    scratch_database,
    vacuum_analyze,
)
from benchmarks.synthetic import form_saves, make_participants, sealed_rows
from bhp_ctms.audit.capture import use_actor
from bhp_ctms.audit.chain import chain_head, chain_of, verify_chain, verify_chain_in_python
from bhp_ctms.audit.checkpoints import write_checkpoint
from bhp_ctms.audit.models import CheckpointTrigger
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.audit.verify import verify_audit_trail
from bhp_ctms.db import create_database_engine, utcnow
from bhp_ctms.sites.models import Site, SiteStatus
from bhp_ctms.studies.models import Blinding, Study, StudyStatus

GOAL_EVENTS_PER_SECOND = 200_000
SECRET_KEY = "benchmark-secret-key-" + "x" * 32


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the chain")
    parser.add_argument("--participants", type=int, default=1_500)
    parser.add_argument("--sites", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each verification")
    parser.add_argument("--seed", type=int, default=20261123)
    return parser.parse_args()


def create_study(engine: Engine, site_count: int) -> tuple[int, list[int]]:
    """A study and its sites, saved through the ORM so their creation is audited."""
    with Session(engine) as db:
        use_actor(db, AuditActor.system("benchmark set-up"))
        study = Study(
            code="BHP-BENCH",
            title="Benchmark study of an audited data-entry load",
            status=StudyStatus.RECRUITING,
            blinding=Blinding.DOUBLE,
            target_sample_size=1500,
        )
        db.add(study)
        db.flush()
        sites = [
            Site(
                study_id=study.id,
                code=f"S{number:02d}",
                name=f"Benchmark site {number}",
                principal_investigator="Dr Naledi Dube",
                status=SiteStatus.OPEN,
                recruitment_target=200,
            )
            for number in range(1, site_count + 1)
        ]
        db.add_all(sites)
        db.commit()
        return study.id, [site.id for site in sites]


def fill_chain(engine: Engine, arguments: argparse.Namespace) -> tuple[int, str, float]:
    """Fill one study's chain up to ``--events`` events; its id, chain and loading time."""
    study_id, site_ids = create_study(engine, arguments.sites)
    chain = chain_of(study_id)
    with Session(engine) as db:
        sequence, head_hash = chain_head(db, chain)
    rng = random.Random(arguments.seed)
    participants, weights = make_participants(rng, arguments.participants, {study_id: site_ids})
    events = form_saves(rng, participants, weights, utcnow())
    started = time.perf_counter()
    rows = sealed_rows(events, study_id, arguments.events - sequence, sequence, head_hash)
    loaded = load_events(engine, rows)
    loading = time.perf_counter() - started
    print(
        f"sealed and loaded {loaded:,} events in {loading:.1f} s "
        f"({loaded / loading:,.0f} events/s, hashing in Python)"
    )
    with Session(engine) as db:
        write_checkpoint(db, SECRET_KEY, chain, CheckpointTrigger.MANUAL)
        db.commit()
    started = time.perf_counter()
    vacuum_analyze(engine)
    print(f"VACUUM/ANALYZE in {time.perf_counter() - started:.1f} s")
    return study_id, chain, loading


def timed(repeats: int, run: Callable[[Session], Any], engine: Engine) -> tuple[list[float], Any]:
    """Seconds of each run (each in a new session), and the last run's result."""
    seconds = []
    result = None
    for _ in range(repeats):
        with Session(engine) as db:
            started = time.perf_counter()
            result = run(db)
            seconds.append(time.perf_counter() - started)
    return seconds, result


def runs_text(seconds: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in seconds)


def main() -> None:
    arguments = parse_arguments()
    started = time.perf_counter()
    load_before = machine_load()
    with scratch_database(arguments.backend) as url:
        engine = create_database_engine(url)
        try:
            study_id, chain, loading = fill_chain(engine, arguments)
            with Session(engine) as db:
                events = chain_head(db, chain)[0]

            production, problem = timed(
                arguments.repeats, lambda db: verify_chain(db, chain), engine
            )
            if arguments.backend == "postgresql":
                reference, reference_problem = timed(
                    arguments.repeats, lambda db: verify_chain_in_python(db, chain), engine
                )
            else:  # verify_chain is verify_chain_in_python there: no need to time it twice
                reference, reference_problem = [], None
            trail, report = timed(
                arguments.repeats,
                lambda db: verify_audit_trail(db, SECRET_KEY, study_id, all_chains=False),
                engine,
            )
        finally:
            engine.dispose()

    production_median = statistics.median(production)
    trail_median = statistics.median(trail)
    rate = events / production_median
    path = "in PostgreSQL (SQL sha256)" if arguments.backend == "postgresql" else "in Python"
    rows = [
        ("events in the chain", f"{events:,}"),
        ("verify_chain path", path),
        ("verify_chain runs (s)", runs_text(production)),
        ("verify_chain median (s)", f"{production_median:.2f}"),
        ("verify_chain events/s", f"{rate:,.0f}"),
        ("verify_chain result", "intact" if problem is None else f"BROKEN {problem}"),
    ]
    if reference:
        reference_median = statistics.median(reference)
        rows += [
            ("reference: verify_chain_in_python runs (s)", runs_text(reference)),
            ("reference median (s)", f"{reference_median:.2f}"),
            ("reference events/s", f"{events / reference_median:,.0f}"),
            (
                "reference result",
                "intact" if reference_problem is None else f"BROKEN {reference_problem}",
            ),
            (
                "speed-up of verify_chain over the reference",
                f"{reference_median / production_median:.2f}x",
            ),
        ]
    else:
        rows.append(("reference: verify_chain_in_python", "is verify_chain on SQLite (1.00x)"))
    rows += [
        ("verify_audit_trail runs (s)", runs_text(trail)),
        ("verify_audit_trail median (s)", f"{trail_median:.2f}"),
        ("verify_audit_trail events/s", f"{report.events_checked / trail_median:,.0f}"),
        ("verify_audit_trail result", "ok" if report.ok else "; ".join(report.problems[:3])),
        ("loading (sealing in Python + bulk load) (s)", f"{loading:.1f}"),
        ("machine load before / after", f"{load_before} / {machine_load()}"),
        ("whole run (s)", f"{time.perf_counter() - started:.1f}"),
    ]
    print_table(f"Verifying one chain on {arguments.backend}", rows)
    verdict = "PASS" if rate >= GOAL_EVENTS_PER_SECOND else "FAIL"
    print(
        f"{verdict}: verify_chain checked {rate:,.0f} events/s on {arguments.backend} "
        f"(goal >= {GOAL_EVENTS_PER_SECOND:,} events/s)"
    )


if __name__ == "__main__":
    main()
