"""How fast one participant's history is read from a large audit trail (PostgreSQL).

Bulk-loads N events (default 5,000,000) of data entry for ~20,000 participants over
20 studies, with a skewed number of events per participant, then times the query
of a monitor's "history of one participant" page for random participants: the
newest events of the participant (``participant_id = X ORDER BY id DESC LIMIT
200``), loaded as AuditEvent objects through a new ORM session, as a page would.
The audit trail page filtered to the participant (``page_of_events``, the
production path, which also filters by study) is timed alongside. Hashes are
dummies here: (chain, sequence) is unique, the chains are not valid.

Goal (issue): one participant's history out of 5,000,000 events returns in < 50 ms.

    python -m benchmarks.audit_history [--events 5000000] [--participants 20000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Select, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from benchmarks.scratch import (
    load_events,
    machine_load,
    print_table,
    scratch_database,
    vacuum_analyze,
)
from benchmarks.synthetic import form_saves, make_participants, unsealed_rows
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.queries import AuditFilters, TrailScope, page_of_events
from bhp_ctms.db import create_database_engine
from bhp_ctms.sites.services import SiteScope

GOAL_MS = 50.0
INDEX = "ix_audit_events_participant_id_id"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--participants", type=int, default=20_000)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--sites-per-study", type=int, default=6)
    parser.add_argument("--queries", type=int, default=200, help="random participants to time")
    parser.add_argument("--limit", type=int, default=200, help="events on the history page")
    parser.add_argument("--seed", type=int, default=20261123)
    return parser.parse_args()


def history_statement(participant_id: int, limit: int) -> Select[AuditEvent]:
    """The newest events of one participant, as the history page asks for them."""
    return (
        select(AuditEvent)
        .where(AuditEvent.participant_id == participant_id)
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )


def fill(engine: Engine, arguments: argparse.Namespace) -> float:
    rng = random.Random(arguments.seed)
    sites_by_study = {
        study_id: [study_id * 100 + number for number in range(1, arguments.sites_per_study + 1)]
        for study_id in range(1, arguments.studies + 1)
    }
    participants, weights = make_participants(rng, arguments.participants, sites_by_study)
    events = form_saves(rng, participants, weights, datetime(2024, 1, 8, 7, 30, tzinfo=UTC))
    started = time.perf_counter()
    loaded = load_events(engine, unsealed_rows(events, arguments.events))
    loading = time.perf_counter() - started
    print(f"loaded {loaded:,} events by COPY in {loading:.1f} s ({loaded / loading:,.0f}/s)")
    started = time.perf_counter()
    vacuum_analyze(engine)
    print(f"VACUUM (ANALYZE) in {time.perf_counter() - started:.1f} s")
    return loading


def events_per_participant(engine: Engine) -> dict[int, tuple[int, int]]:
    """Each participant's study and number of events."""
    with Session(engine) as db:
        rows = db.execute(
            select(AuditEvent.participant_id, func.min(AuditEvent.study_id), func.count())
            .where(AuditEvent.participant_id.is_not(None))
            .group_by(AuditEvent.participant_id)
        )
        return {
            participant: (study, count)
            for participant, study, count in rows
            if participant is not None and study is not None
        }


def time_queries(
    engine: Engine, participant_ids: list[int], run: Callable[[Session, int], Any]
) -> list[float]:
    """Milliseconds per query, each in a new session as a request would have."""
    milliseconds = []
    for participant_id in participant_ids:
        with Session(engine) as db:
            started = time.perf_counter()
            run(db, participant_id)
            milliseconds.append((time.perf_counter() - started) * 1000)
    return milliseconds


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def explain(engine: Engine, statement: Select[Any]) -> list[str]:
    sql = statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        return [row[0] for row in connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")]


def summary(label: str, milliseconds: list[float]) -> tuple[str, str]:
    return (
        label,
        f"median {statistics.median(milliseconds):6.2f}   p95 {percentile(milliseconds, 0.95):6.2f}"
        f"   max {max(milliseconds):6.2f}",
    )


def main() -> None:
    arguments = parse_arguments()
    started = time.perf_counter()
    load_before = machine_load()
    with scratch_database("postgresql") as url:
        engine = create_database_engine(url)
        try:
            loading = fill(engine, arguments)
            counts = events_per_participant(engine)
            rng = random.Random(arguments.seed + 1)
            chosen = rng.sample(sorted(counts), min(arguments.queries, len(counts)))
            busiest = sorted(counts, key=lambda participant: counts[participant][1])[-10:]

            def history(db: Session, participant_id: int) -> list[AuditEvent]:
                return list(db.scalars(history_statement(participant_id, arguments.limit)))

            def trail_page(db: Session, participant_id: int) -> Any:
                study_id = counts[participant_id][0]
                scope = TrailScope.of_study(SiteScope(study_id, True, frozenset()))
                return page_of_events(db, scope, AuditFilters(participant_id=participant_id))

            time_queries(engine, busiest[:3], history)  # warm the pool and statement caches
            time_queries(engine, busiest[:3], trail_page)
            random_history = time_queries(engine, chosen, history)
            busiest_history = time_queries(engine, busiest, history)
            random_page = time_queries(engine, chosen, trail_page)
            plan = explain(engine, history_statement(busiest[-1], arguments.limit))
        finally:
            engine.dispose()

    sizes = sorted(count for _, count in counts.values())
    print("EXPLAIN (ANALYZE, BUFFERS) of the history query for the busiest participant:")
    for line in plan:
        print(f"    {line}")
    print(f"index {INDEX} used: {'yes' if any(INDEX in line for line in plan) else 'NO'}")
    p95 = percentile(random_history, 0.95)
    print_table(
        f"One participant's history out of {arguments.events:,} events (PostgreSQL, ms)",
        [
            ("participants with events", f"{len(counts):,}"),
            (
                "events per participant",
                f"median {statistics.median(sizes):,.0f}, p95 {percentile(sizes, 0.95):,}, "
                f"max {sizes[-1]:,}",
            ),
            summary(f"history, {len(chosen)} random participants", random_history),
            summary(f"history, the {len(busiest)} busiest participants", busiest_history),
            summary(f"trail page (page_of_events), {len(chosen)} random", random_page),
            ("history page size", f"{arguments.limit} events (trail page: 50)"),
            ("loading (generation + COPY) (s)", f"{loading:.1f}"),
            ("machine load before / after", f"{load_before} / {machine_load()}"),
            ("whole run (s)", f"{time.perf_counter() - started:.1f}"),
        ],
    )
    verdict = "PASS" if p95 < GOAL_MS else "FAIL"
    print(
        f"{verdict}: p95 of one participant's history is {p95:.2f} ms "
        f"(max {max(random_history):.2f} ms; goal < {GOAL_MS:.0f} ms)"
    )


if __name__ == "__main__":
    main()
