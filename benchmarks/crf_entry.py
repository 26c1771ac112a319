"""How fast a 200-item CRF renders and saves, through the whole web stack.

Makes a copy of the demo study whose walking diary form is replaced by a form of I
items (default 200) in the mix of a real visit form: numbers with hard and soft
ranges, text, dates, single and multiple choices, yes/no, calculations and show-if
logic. Loads it (as ``ctms study load`` does), registers P participants at one site
and logs in a coordinator through WebTest. Then, for each participant, times:

- the first save of the form with every item answered (``first save``);
- a GET of the form page showing those values (``render``);
- a save of the in-progress form with 10 values changed (``re-save``).

A trivial page (the account page) is timed alongside, interleaved, as the reference;
each median is also given as a multiple of its median, which varies less than the
times themselves on a busy machine. Last, the study's audit chain is verified, so a
fast save is never a save with a broken audit trail.

Goal (issue 5): a 200-item form renders in < 100 ms and saves in < 100 ms (median,
PostgreSQL).

    python -m benchmarks.crf_entry [--backend sqlite] [--items 200] [--participants 30]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from webtest import TestApp

from benchmarks.scratch import machine_load, print_table, scratch_database
from bhp_ctms import config
from bhp_ctms.audit.chain import chain_of, count_events, verify_chain
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.participants.models import ParticipantStatus
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.loading import load_study
from bhp_ctms.studies.models import Study
from tests.conftest import make_settings
from tests.factories import MembershipFactory, ParticipantFactory, UserFactory, bind_factories
from tests.functional.helpers import form_posting_to, login

GOAL_MS = 100.0
DEMO_FOLDER = Path(__file__).resolve().parent.parent / "forms" / "demo"
FORM_CODE = "walking_diary"
EVENT = "week_2"
COORDINATOR = "crf-coordinator"
CHANGED_PER_RESAVE = 10


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--participants", type=int, default=30)
    parser.add_argument("--warm-up", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261123)
    return parser.parse_args()


def big_form(items: int) -> dict[str, Any]:
    """A form of ``items`` items in a visit form's mix, every tenth one a show-if
    item and every twentieth a calculation."""
    entries: list[dict[str, Any]] = [
        {"code": "done", "label": "Was the visit done?", "type": "yes_no", "required": True}
    ]
    kinds = ("integer", "decimal", "text", "date", "single_choice", "yes_no", "multiple_choice")
    for number in range(1, items):
        code = f"q{number:03d}"
        kind = kinds[number % len(kinds)]
        item: dict[str, Any] = {"code": code, "label": f"Question {number}", "type": kind}
        if number % 20 == 0:
            item = {
                "code": code,
                "label": f"Total {number}",
                "type": "calculated",
                "calculation": f"[q{number - 6:03d}] + [q{number - 13:03d}]",
                "precision": 1,
            }
        elif kind == "integer":
            item.update(hard_range={"min": 0, "max": 1000}, soft_range={"min": 10, "max": 900})
        elif kind == "decimal":
            item.update(precision=1, units="kg", hard_range={"min": 0, "max": 500})
        elif kind == "text":
            item.update(max_length=100)
        elif kind == "date":
            item.update(partial_dates=True)
        elif kind in ("single_choice", "multiple_choice"):
            item["choices"] = [{"code": str(n), "label": f"Answer {n}"} for n in range(1, 6)]
        if number % 10 == 5:
            item["show_if"] = "[done] = '1'"
        entries.append(item)
    return {"code": FORM_CODE, "title": "Big visit form", "version": "1.0", "items": entries}


def answer(item: dict[str, Any], rng: random.Random) -> dict[str, str]:
    """What a coordinator types for an item, as the form's fields."""
    code, kind = item["code"], item["type"]
    if kind == "integer":
        return {code: str(rng.randint(20, 800))}
    if kind == "decimal":
        return {code: f"{rng.uniform(1, 400):.1f}"}
    if kind == "text":
        return {code: rng.choice(["None", "Walked to the shops", "Felt well"])}
    if kind == "date":
        day = date(2026, rng.randint(1, 12), rng.randint(1, 28))
        return {
            f"{code}-day": str(day.day),
            f"{code}-month": str(day.month),
            f"{code}-year": "2026",
        }
    if kind in ("single_choice",):
        return {code: str(rng.randint(1, 5))}
    if kind == "yes_no":
        return {code: "1"}
    return {}


def set_up(url: str, arguments: argparse.Namespace, folder: Path) -> tuple[Any, list[str]]:
    wsgi_app = config.main({}, bhp_ctms=make_settings(url))
    factory: sessionmaker[Session] = wsgi_app.registry["sqlalchemy.sessionmaker"]
    with factory() as db:
        bind_factories(db)
        result = load_study(db, AuditActor.system("benchmark"), folder)
        site = db.scalars(select(Site).where(Site.study_id == result.study.id)).first()
        assert site is not None
        coordinator = UserFactory(username=COORDINATOR, full_name="Naledi Dube")
        MembershipFactory(
            user=coordinator, role=Role.SITE_COORDINATOR, study_id=site.study_id, site_id=site.id
        )
        codes: list[str] = [
            str(ParticipantFactory(site=site, status=ParticipantStatus.RANDOMISED).code)
            for _ in range(arguments.participants + arguments.warm_up)
        ]
        db.commit()
    return wsgi_app, codes


def audit_chain_state(wsgi_app: Any) -> str:
    """The study's audit chain after the run: its events, and whether it verifies."""
    factory: sessionmaker[Session] = wsgi_app.registry["sqlalchemy.sessionmaker"]
    with factory() as db:
        study_id = db.scalar(select(Study.id).where(Study.code == "DEMO"))
        chain = chain_of(study_id)
        problem = verify_chain(db, chain)
        events = count_events(db, chain)
    return f"{events} events, " + ("intact" if problem is None else f"BROKEN: {problem}")


def timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def main() -> None:
    arguments = parse_arguments()
    rng = random.Random(arguments.seed)
    started = time.perf_counter()
    load_before = machine_load()
    form = big_form(arguments.items)
    with tempfile.TemporaryDirectory() as scratch, scratch_database(arguments.backend) as url:
        folder = Path(scratch) / "study"
        shutil.copytree(DEMO_FOLDER, folder)
        (folder / "forms" / f"{FORM_CODE}.yaml").write_text(yaml.safe_dump(form), "utf-8")
        wsgi_app, codes = set_up(url, arguments, folder)
        app = TestApp(wsgi_app, extra_environ={"REMOTE_ADDR": "192.0.2.10"})
        login(app, COORDINATOR)
        first: list[float] = []
        render: list[float] = []
        resave: list[float] = []
        reference: list[float] = []
        for index, code in enumerate(codes):
            path = f"/studies/DEMO/participants/{code}/events/{EVENT}/1/forms/{FORM_CODE}"
            page = app.get(path)
            entry_form = form_posting_to(page, path)
            for item in form["items"]:
                for name, value in answer(item, rng).items():
                    entry_form[name] = value
            choices = [item for item in form["items"] if item["type"] == "multiple_choice"]
            for item in choices:
                entry_form.get(item["code"], index=0).checked = True
            first_ms, response = timed(lambda f=entry_form: f.submit("action", value="save"))
            assert response.status_int == 303, response.text[:2000]
            render_ms, page = timed(lambda p=path: app.get(p))
            entry_form = form_posting_to(page, path)
            numbers = [item for item in form["items"] if item["type"] == "integer"]
            for item in rng.sample(numbers, CHANGED_PER_RESAVE):
                entry_form[item["code"]] = str(rng.randint(20, 800))
            resave_ms, response = timed(lambda f=entry_form: f.submit("action", value="save"))
            assert response.status_int == 303, response.text[:2000]
            reference_ms, _ = timed(lambda: app.get("/account"))
            if index >= arguments.warm_up:
                first.append(first_ms)
                render.append(render_ms)
                resave.append(resave_ms)
                reference.append(reference_ms)
        size = len(page.body)
        chain = audit_chain_state(wsgi_app)
        wsgi_app.registry["sqlalchemy.engine"].dispose()
    unit = statistics.median(reference)

    def figures(values: list[float]) -> str:
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        median = statistics.median(values)
        return (
            f"median {median:7.1f}   p95 {p95:7.1f}   max {max(values):7.1f}"
            f"   ({median / unit:4.1f} x the trivial page)"
        )

    print_table(
        f"A {arguments.items}-item CRF, {arguments.backend} (ms, whole web stack)",
        [
            ("form", f"{arguments.items} items, page of {size / 1024:.0f} KiB"),
            ("participants timed", f"{len(first)} (after {arguments.warm_up} untimed)"),
            ("render (GET, all answered)", figures(render)),
            ("first save (all items)", figures(first)),
            (f"re-save ({CHANGED_PER_RESAVE} changed)", figures(resave)),
            ("trivial page (/account)", figures(reference)),
            ("audit trail of the study", chain),
            ("machine load before / after", f"{load_before} / {machine_load()}"),
            ("whole run (s)", f"{time.perf_counter() - started:.1f}"),
        ],
    )
    for name, values in (("render", render), ("first save", first), ("re-save", resave)):
        median = statistics.median(values)
        verdict = "PASS" if median < GOAL_MS else "FAIL"
        print(f"{verdict}: {name} median {median:.1f} ms against the goal of < {GOAL_MS:.0f} ms")
    if "BROKEN" in chain:
        print(f"FAIL: the audit trail written by the saves does not verify: {chain}")


if __name__ == "__main__":
    main()
