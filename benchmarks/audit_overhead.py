"""What auditing costs a form save, through the whole web stack.

Logged in as a CTU admin through WebTest, the benchmark posts the site edit form
(``site_edit``) again and again, changing four values each time, with the
automatic audit capture on and then off (its two session listeners removed), in
interleaved blocks so drift in the machine's speed falls on both alike. It prints
the mean time per save each way and the ratio, on SQLite and on PostgreSQL.

The issue asks for the overhead on a CRF save; there is no CRF save yet (the eCRF
engine is a later issue), so this measures a site edit, the closest audited form
save: one request that loads, validates, changes and commits one audited row.

    python -m benchmarks.audit_overhead [--backend sqlite] [--saves 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker
from webtest import TestApp

from benchmarks.scratch import machine_load, print_table, scratch_database
from bhp_ctms.audit import capture
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.config import configure
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import SiteStatus
from tests.conftest import make_settings
from tests.factories import (
    MembershipFactory,
    SiteFactory,
    StudyFactory,
    UserFactory,
    bind_factories,
)
from tests.functional.helpers import form_posting_to, login

NOTE = (
    "There is no CRF save yet (the eCRF engine is a later issue): this is a site edit, "
    "the closest audited form save."
)
# The capture's session listeners: removing them turns auditing off for every session.
CAPTURE_LISTENERS = (
    ("before_flush", capture._check_reasons),
    ("after_flush", capture._write_events),
)
STUDY_CODE = "BHP-BENCH"
SITE_CODE = "GAB"
ADMIN = "ctu-admin"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql"), action="append", dest="backends"
    )
    parser.add_argument("--saves", type=int, default=200, help="timed saves each way")
    parser.add_argument("--rounds", type=int, default=10, help="blocks each way, interleaved")
    parser.add_argument("--warm-up", type=int, default=20, help="untimed saves each way first")
    arguments = parser.parse_args()
    arguments.backends = arguments.backends or ["sqlite", "postgresql"]
    return arguments


@contextmanager
def auditing_off() -> Iterator[None]:
    """No audit capture in any session inside the block."""
    for name, listener in CAPTURE_LISTENERS:
        event.remove(Session, name, listener)
    try:
        yield
    finally:
        for name, listener in CAPTURE_LISTENERS:
            event.listen(Session, name, listener)


def set_up(url: str) -> TestApp:
    """The application on ``url``, with a study, an open site and a logged-in CTU admin."""
    wsgi_app = configure({"bhp_ctms": make_settings(url)}).make_wsgi_app()
    factory: sessionmaker[Session] = wsgi_app.registry["sqlalchemy.sessionmaker"]
    with factory() as db:
        capture.use_actor(db, AuditActor.system("benchmark set-up"))
        bind_factories(db)
        admin = UserFactory(username=ADMIN, full_name="Kagiso Molefe")
        MembershipFactory(user=admin, role=Role.CTU_ADMIN)
        study = StudyFactory(code=STUDY_CODE)
        SiteFactory(study=study, code=SITE_CODE, name="Gaborone", status=SiteStatus.OPEN)
        db.commit()
    app = TestApp(wsgi_app, extra_environ={"REMOTE_ADDR": "192.0.2.10"})
    login(app, ADMIN)
    return app


class SiteEditor:
    """Saves the site edit form, with different values each time."""

    def __init__(self, app: TestApp) -> None:
        self.app = app
        self.path = f"/studies/{STUDY_CODE}/sites/{SITE_CODE}/edit"
        self.form = form_posting_to(app.get(self.path), self.path)
        self.saves = 0

    def save(self) -> float:
        """Post one save; the seconds it took."""
        self.saves += 1
        number = self.saves
        self.form["name"] = f"Gaborone clinic {number}"
        self.form["principal_investigator"] = f"Dr Naledi Dube ({number})"
        self.form["recruitment_target"] = str(100 + number % 900)
        self.form["activated_on-day"] = str(1 + number % 28)
        self.form["activated_on-month"] = "3"
        self.form["activated_on-year"] = "2025"
        self.form["reason"] = "Updated from the site initiation visit report"
        started = time.perf_counter()
        response = self.form.submit()
        seconds = time.perf_counter() - started
        if response.status_int != 303:
            raise SystemExit(f"the save was refused ({response.status}):\n{response.text[:2000]}")
        return seconds


def count_events(app: TestApp) -> int:
    factory: sessionmaker[Session] = app.app.registry["sqlalchemy.sessionmaker"]
    with factory() as db:
        return int(db.scalar(select(func.count(AuditEvent.id))) or 0)


def measure(backend: str, arguments: argparse.Namespace) -> dict[str, Any]:
    with scratch_database(backend) as url:
        app = set_up(url)
        editor = SiteEditor(app)
        for _ in range(arguments.warm_up):
            editor.save()
        with auditing_off():
            for _ in range(arguments.warm_up):
                editor.save()
        block = max(1, arguments.saves // arguments.rounds)
        timings: dict[str, list[float]] = {"on": [], "off": []}
        events_written = {"on": 0, "off": 0}
        for round_number in range(arguments.rounds):
            # on, off, off, on, on, off...: a steady drift weighs on both alike.
            order = ("on", "off") if round_number % 2 == 0 else ("off", "on")
            for mode in order:
                before = count_events(app)
                with auditing_off() if mode == "off" else nullcontext():
                    timings[mode].extend(editor.save() for _ in range(block))
                events_written[mode] += count_events(app) - before
        app.app.registry["sqlalchemy.engine"].dispose()
    return {
        "on": [seconds * 1000 for seconds in timings["on"]],
        "off": [seconds * 1000 for seconds in timings["off"]],
        "events_per_save": {
            mode: events_written[mode] / len(timings[mode]) for mode in ("on", "off")
        },
    }


def main() -> None:
    arguments = parse_arguments()
    print(NOTE)
    results = {}
    for backend in arguments.backends:
        started = time.perf_counter()
        load_before = machine_load()
        results[backend] = measure(backend, arguments)
        results[backend]["seconds"] = time.perf_counter() - started
        results[backend]["load"] = f"{load_before} / {machine_load()}"
    for backend, result in results.items():
        on, off = result["on"], result["off"]
        print_table(
            f"Audit overhead on a site edit save, {backend} (ms per save, POST only)",
            [
                ("saves timed each way", f"{len(on)} in {arguments.rounds} interleaved blocks"),
                (
                    "audit events written per save",
                    f"on {result['events_per_save']['on']:.1f}, "
                    f"off {result['events_per_save']['off']:.1f}",
                ),
                (
                    "auditing on",
                    f"mean {statistics.mean(on):6.2f}   median {statistics.median(on):6.2f}",
                ),
                (
                    "auditing off",
                    f"mean {statistics.mean(off):6.2f}   median {statistics.median(off):6.2f}",
                ),
                (
                    "ratio on/off",
                    f"mean {statistics.mean(on) / statistics.mean(off):.2f}   "
                    f"median {statistics.median(on) / statistics.median(off):.2f}",
                ),
                ("cost of auditing per save", f"{statistics.mean(on) - statistics.mean(off):.2f}"),
                ("machine load before / after", result["load"]),
                ("whole run (s)", f"{result['seconds']:.1f}"),
            ],
        )
    print(NOTE)


if __name__ == "__main__":
    main()
