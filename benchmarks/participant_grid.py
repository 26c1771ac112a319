"""How fast a site's participant grid renders, through the whole web stack.

Makes a study whose protocol version has E scheduled events (default 12: the demo
study's schedule, stretched), one open site with P participants (default 2,000) in
mixed statuses and visits recorded for about 60% of their past events, then logs in a
coordinator of that site through WebTest and times GET of the site's grid page: a few
untimed requests first, then N timed ones. A trivial page (the account page: session,
user, template) is timed alongside, interleaved, as the reference for the same run.

Goal (issue): the grid of a site of 2,000 participants x 12 events renders
server-side in < 300 ms (median, PostgreSQL).

    python -m benchmarks.participant_grid [--backend sqlite] [--participants 2000]
        [--events 12] [--requests 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker
from webtest import TestApp

from benchmarks.scratch import machine_load, print_table, scratch_database
from bhp_ctms import config
from bhp_ctms.audit.capture import DISABLED_KEY
from bhp_ctms.participants.models import (
    ExclusionReason,
    Participant,
    ParticipantSequence,
    ParticipantStatus,
    Visit,
    VisitStatus,
    WithdrawalType,
)
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site, SiteStatus
from bhp_ctms.studies.definition import Event, StudyDefinition, read_study
from bhp_ctms.studies.models import ProtocolVersion, Study
from tests.conftest import make_settings
from tests.factories import (
    MembershipFactory,
    SiteFactory,
    StudyFactory,
    UserFactory,
    bind_factories,
    definition_sha256,
)
from tests.functional.helpers import login

GOAL_MS = 300.0
STUDY_CODE = "GRID"
SITE_CODE = "GAB"
COORDINATOR = "grid-coordinator"
DEMO_FOLDER = Path(__file__).resolve().parent.parent / "forms" / "demo"
# Share of the participants in each status; the rest are randomised.
STATUS_MIX = (
    (ParticipantStatus.SCREENED, 0.08),
    (ParticipantStatus.CONSENTED, 0.04),
    (ParticipantStatus.ELIGIBLE, 0.03),
    (ParticipantStatus.INELIGIBLE, 0.03),
    (ParticipantStatus.NOT_ENROLLED, 0.05),
    (ParticipantStatus.COMPLETED, 0.07),
    (ParticipantStatus.WITHDRAWN, 0.04),
    (ParticipantStatus.LOST_TO_FOLLOW_UP, 0.02),
    (ParticipantStatus.DIED, 0.01),
)
RECORDED_SHARE = 0.6


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--participants", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=12, help="scheduled events (at least 2)")
    parser.add_argument("--requests", type=int, default=30, help="timed requests of each page")
    parser.add_argument("--warm-up", type=int, default=3, help="untimed requests first")
    parser.add_argument("--seed", type=int, default=20261123)
    arguments = parser.parse_args()
    if arguments.events < 2:
        parser.error("--events must be at least 2 (screening and baseline)")
    return arguments


def grid_definition(events: int) -> StudyDefinition:
    """The demo study with ``events`` scheduled events: screening, baseline, then
    follow-up visits every four weeks, each with a window of a week either side."""
    demo = read_study(DEMO_FOLDER)
    screening, baseline = demo.event("screening"), demo.event("baseline")
    follow_up = demo.event("week_2")
    scheduled = [screening, baseline] + [
        dataclasses.replace(
            follow_up,
            code=f"week_{4 * number}",
            name=f"Week {4 * number} visit",
            day_offset=28 * number,
            window_before=7,
            window_after=7,
        )
        for number in range(1, events - 1)
    ]
    repeating = [event for event in demo.events if event.repeating]
    return dataclasses.replace(demo, events=tuple(scheduled + repeating))


def _status_of(rng: random.Random) -> ParticipantStatus:
    roll = rng.random()
    for status, share in STATUS_MIX:
        if roll < share:
            return status
        roll -= share
    return ParticipantStatus.RANDOMISED


def participant_rows(
    rng: random.Random,
    count: int,
    study_id: int,
    site_id: int,
    version_id: int,
    today: date,
) -> list[dict[str, Any]]:
    """Participants registered over the last two years, in mixed statuses."""
    randomised_statuses = {
        ParticipantStatus.RANDOMISED,
        ParticipantStatus.COMPLETED,
        ParticipantStatus.WITHDRAWN,
        ParticipantStatus.LOST_TO_FOLLOW_UP,
        ParticipantStatus.DIED,
    }
    rows = []
    for sequence in range(1, count + 1):
        status = _status_of(rng)
        registered_on = today - timedelta(days=rng.randint(0, 730))
        randomised_on = None
        if status in randomised_statuses:
            randomised_on = min(today, registered_on + timedelta(days=rng.randint(7, 21)))
        rows.append(
            {
                "study_id": study_id,
                "site_id": site_id,
                "code": f"{STUDY_CODE}-{SITE_CODE}-{sequence:04d}",
                "sequence": sequence,
                "status": status,
                "protocol_version_id": version_id,
                "registered_on": registered_on,
                "randomised_on": randomised_on,
                "is_child": False,
                "exclusion_reason": rng.choice(list(ExclusionReason))
                if status == ParticipantStatus.NOT_ENROLLED
                else None,
                "withdrawal_type": rng.choice(list(WithdrawalType))
                if status == ParticipantStatus.WITHDRAWN
                else None,
                "status_on": None,
                "status_details": "",
            }
        )
    return rows


def visit_rows(
    rng: random.Random,
    participants: list[tuple[int, date | None]],
    definition: StudyDefinition,
    version_id: int,
    today: date,
) -> list[dict[str, Any]]:
    """Visits for about 60% of each randomised participant's past events, mostly in
    their window, a few outside it or not done."""
    scheduled: list[Event] = [event for event in definition.events if not event.repeating]
    rows = []
    for participant_id, randomised_on in participants:
        if randomised_on is None:
            continue
        for event in scheduled:
            assert event.day_offset is not None
            expected = randomised_on + timedelta(days=event.day_offset)
            if expected > today or rng.random() >= RECORDED_SHARE:
                continue
            not_done = rng.random() < 0.05
            late = rng.random() < 0.1
            drift = rng.randint(event.window_after + 1, event.window_after + 10) if late else 0
            visit_on = expected + timedelta(days=drift)
            rows.append(
                {
                    "participant_id": participant_id,
                    "event_code": event.code,
                    "instance": 1,
                    "protocol_version_id": version_id,
                    "status": VisitStatus.NOT_DONE if not_done else VisitStatus.DONE,
                    "visit_on": None if not_done else min(visit_on, today),
                    "not_done_reason": "Participant unwell" if not_done else "",
                }
            )
    return rows


def set_up(url: str, arguments: argparse.Namespace) -> tuple[TestApp, str, dict[str, int]]:
    """The application on ``url`` with the study, site, participants and visits, and a
    logged-in coordinator of the site; the grid's path and what was loaded."""
    # Built as a WSGI server builds it (bhp_ctms.config:main), start-up tuning included.
    wsgi_app = config.main({}, bhp_ctms=make_settings(url))
    factory: sessionmaker[Session] = wsgi_app.registry["sqlalchemy.sessionmaker"]
    rng = random.Random(arguments.seed)
    today = date.today()
    definition = grid_definition(arguments.events)
    with factory() as db:
        # Set-up data, not what is measured: the audit capture would only slow it down.
        db.info[DISABLED_KEY] = True
        bind_factories(db)
        study = cast(
            Study, StudyFactory(code=STUDY_CODE, target_sample_size=arguments.participants)
        )
        site = cast(
            Site,
            SiteFactory(
                study=study,
                code=SITE_CODE,
                name="Gaborone",
                status=SiteStatus.OPEN,
                recruitment_target=arguments.participants,
            ),
        )
        coordinator = UserFactory(username=COORDINATOR, full_name="Naledi Dube")
        MembershipFactory(
            user=coordinator, role=Role.SITE_COORDINATOR, study_id=study.id, site_id=site.id
        )
        stored = definition.to_json()
        version = ProtocolVersion(
            study_id=study.id,
            number=1,
            label=definition.protocol_version,
            effective_on=definition.effective_on,
            summary="",
            definition=stored,
            definition_sha256=definition_sha256(stored),
        )
        db.add(version)
        db.flush()
        people = participant_rows(rng, arguments.participants, study.id, site.id, version.id, today)
        db.execute(insert(Participant), people)
        db.add(ParticipantSequence(site_id=site.id, last_sequence=arguments.participants))
        ids = [
            (participant_id, randomised_on)
            for participant_id, randomised_on in db.execute(
                select(Participant.id, Participant.randomised_on)
                .where(Participant.site_id == site.id)
                .order_by(Participant.id)
            )
        ]
        visits = visit_rows(rng, ids, definition, version.id, today)
        db.execute(insert(Visit), visits)
        db.commit()
    app = TestApp(wsgi_app, extra_environ={"REMOTE_ADDR": "192.0.2.10"})
    login(app, COORDINATOR)
    loaded = {"participants": len(people), "visits": len(visits)}
    return app, f"/studies/{STUDY_CODE}/sites/{SITE_CODE}/grid", loaded


def timed_get(app: TestApp, path: str) -> tuple[float, int]:
    """GET one page: milliseconds, and the size of the page in bytes."""
    started = time.perf_counter()
    response = app.get(path)
    milliseconds = (time.perf_counter() - started) * 1000
    return milliseconds, len(response.body)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    arguments = parse_arguments()
    started = time.perf_counter()
    load_before = machine_load()
    with scratch_database(arguments.backend) as url:
        app, grid_path, loaded = set_up(url, arguments)
        print(
            f"loaded {loaded['participants']} participants and {loaded['visits']} visits "
            f"in {time.perf_counter() - started:.1f} s"
        )
        reference_path = "/account"
        grid_page = app.get(grid_path)
        rows = grid_page.text.count('<th scope="row">')
        if rows != loaded["participants"]:
            raise SystemExit(f"the grid shows {rows} rows, not {loaded['participants']}")
        for _ in range(arguments.warm_up):
            timed_get(app, grid_path)
            timed_get(app, reference_path)
        grid: list[float] = []
        reference: list[float] = []
        size = 0
        for _ in range(arguments.requests):
            milliseconds, size = timed_get(app, grid_path)
            grid.append(milliseconds)
            reference.append(timed_get(app, reference_path)[0])
        app.app.registry["sqlalchemy.engine"].dispose()
    median = statistics.median(grid)
    print_table(
        f"Participant grid of one site, {arguments.backend} (ms per GET, whole web stack)",
        [
            (
                "site",
                f"{loaded['participants']} participants x {arguments.events} events, "
                f"{loaded['visits']} visits recorded",
            ),
            ("page size", f"{size / 1024:.0f} KiB"),
            ("requests timed", f"{arguments.requests} of each page, interleaved"),
            (
                "grid page",
                f"median {median:7.1f}   p95 {percentile(grid, 0.95):7.1f}   max {max(grid):7.1f}",
            ),
            (
                f"trivial page ({reference_path})",
                f"median {statistics.median(reference):7.1f}   "
                f"p95 {percentile(reference, 0.95):7.1f}   max {max(reference):7.1f}",
            ),
            ("machine load before / after", f"{load_before} / {machine_load()}"),
            ("whole run (s)", f"{time.perf_counter() - started:.1f}"),
        ],
    )
    verdict = "PASS" if median < GOAL_MS else "FAIL"
    print(f"{verdict}: median {median:.1f} ms against the goal of < {GOAL_MS:.0f} ms")


if __name__ == "__main__":
    main()
