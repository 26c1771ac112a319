"""``ctms study`` and ``ctms participant migrate``, driven as an operator would drive
them, against a fresh deployment on each database backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bhp_ctms.audit.capture import use_actor
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.cli import ctms
from bhp_ctms.db import create_database_engine
from bhp_ctms.participants.models import Participant, Visit, VisitStatus
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.models import ProtocolVersion
from bhp_ctms.studies.services import find_study, protocol_versions
from tests.databases import BACKENDS, throwaway_database
from tests.functional.test_study_loading import (
    DEMO_FOLDER,
    amended_folder,
    line_of,
    study_folder,
)

ROOT = Path(__file__).resolve().parents[2]
REASON = "Amendment 2.0 approved by the REC"


@pytest.fixture(params=BACKENDS)
def deployment(request, tmp_path, monkeypatch) -> Iterator[tuple[str, str]]:
    """The ini file of a fresh deployment, and its database URL (migrated)."""
    for name in ("BHP_CTMS_BROKER_URL", "BHP_CTMS_RESULT_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    text = (ROOT / "development.ini").read_text()
    text = text.replace("%(here)s/var", str(tmp_path / "var"))
    text = text.replace("%(here)s/alembic", str(ROOT / "alembic"))
    text = text.replace("%(here)s/forms", str(ROOT / "forms"))
    ini = tmp_path / "ctms.ini"
    ini.write_text(text)
    monkeypatch.setenv("BHP_CTMS_DEMO_PASSWORD", "lighthouse-cabbage-origami")
    with throwaway_database(request.param, tmp_path, "ctms_cli") as url:
        monkeypatch.setenv("BHP_CTMS_DATABASE_URL", url)
        assert run(str(ini), "initdb").exit_code == 0
        yield str(ini), url


def run(ini, *args):
    return CliRunner().invoke(ctms, ["-c", ini, *map(str, args)], catch_exceptions=False)


def scalar(url, statement):
    engine = create_database_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(statement).scalar()
    finally:
        engine.dispose()


def register(url, site_code, *visits):
    """A participant on DEMO's latest version at a site, with visits (event, date)."""
    engine = create_database_engine(url)
    try:
        with Session(engine) as db:
            use_actor(db, AuditActor.system("test set-up"))
            study = find_study(db, "DEMO")
            assert study is not None
            site = db.scalars(select(Site).where(Site.code == site_code)).one()
            sequence = 1 + (
                db.scalar(select(func.count(Participant.id)).where(Participant.site_id == site.id))
                or 0
            )
            participant = Participant(
                study_id=study.id,
                site_id=site.id,
                code=f"DEMO-{site_code}-{sequence:04d}",
                sequence=sequence,
                protocol_version_id=protocol_versions(db, study.id)[-1].id,
                registered_on=date(2026, 1, 20),
            )
            db.add(participant)
            for event_code, on in visits:
                db.add(
                    Visit(
                        participant=participant,
                        event_code=event_code,
                        protocol_version_id=participant.protocol_version_id,
                        status=VisitStatus.DONE,
                        visit_on=on,
                    )
                )
            db.commit()
            return participant.code
    finally:
        engine.dispose()


def test_check_reports_every_problem_with_file_and_line_or_a_summary(tmp_path, monkeypatch):
    # No database and no ini file: checking a folder needs neither.
    monkeypatch.chdir(ROOT)
    good = run("absent.ini", "study", "check", "forms/demo")
    assert good.exit_code == 0, good.output
    assert good.output.strip() == (
        "forms/demo: DEMO protocol version 1.0 \N{EM DASH} 2 arms, 6 scheduled and 2 repeating"
        " events, 6 eligibility criteria, 8 forms"
    )

    bad = study_folder(
        tmp_path,
        "bad",
        ("day_offset: 42", "day_offset: six"),
        ("blinding: double", "blinding: triple"),
    )
    refused = run("absent.ini", "study", "check", bad)

    assert refused.exit_code == 1
    lines = refused.output.splitlines()
    path = bad / "study.yaml"
    assert f"{path}:{line_of(bad, 'blinding:')}:11: blinding: must be one of" in lines[0]
    assert lines[1].startswith(f"{path}:{line_of(bad, '    day_offset: six')}:17: events[3]")


def test_load_creates_the_study_then_finds_it_up_to_date_then_amends_it(deployment, tmp_path):
    ini, url = deployment

    created = run(ini, "study", "load", DEMO_FOLDER)
    again = run(ini, "study", "load", DEMO_FOLDER)
    amended = run(ini, "study", "load", amended_folder(tmp_path))

    assert created.exit_code == 0, created.output
    assert created.output.splitlines() == [
        "Created study DEMO at protocol version 1.0 (effective 5 Jan 2026).",
        "Sites: CHH, NTH.",
    ]
    assert again.output.strip() == "DEMO is up to date at protocol version 1.0."
    assert amended.exit_code == 0, amended.output
    lines = amended.output.splitlines()
    assert lines[0].startswith("Loaded amendment: DEMO protocol version 2.0 as version 2")
    assert "  Event Week 26 visit (end of study) (week_26) removed" in lines
    assert scalar(url, select(func.count(ProtocolVersion.id))) == 2
    assert scalar(
        url,
        select(func.count(AuditEvent.id)).where(AuditEvent.action == "protocol_version.created"),
    )


def test_load_refuses_a_bad_folder_or_a_reused_label_with_file_and_line(deployment, tmp_path):
    ini, url = deployment
    malformed = study_folder(tmp_path, "malformed", ("window_after: 14", "window_after: -1"))

    refused = run(ini, "study", "load", malformed)

    assert refused.exit_code == 1
    assert f"{malformed / 'study.yaml'}:{line_of(malformed, '    window_after: -1')}:" in (
        refused.output
    )
    assert scalar(url, select(func.count(ProtocolVersion.id))) == 0

    run(ini, "study", "load", DEMO_FOLDER)
    reused = study_folder(
        tmp_path,
        "reused",
        ("target_sample_size: 120", "target_sample_size: 150"),
        ('amendment_summary: ""', 'amendment_summary: "A bigger target"'),
    )
    relabel = run(ini, "study", "load", reused)

    assert relabel.exit_code == 1
    assert relabel.output.startswith(
        f"{reused / 'study.yaml'}:{line_of(reused, 'protocol_version:')}:1: protocol_version:"
        " version 1.0 of DEMO is already loaded with a different definition"
    )
    assert scalar(url, select(func.count(ProtocolVersion.id))) == 1


def test_diff_shows_changes_by_area_and_the_entries_they_would_affect(deployment, tmp_path):
    ini, url = deployment
    amendment = amended_folder(tmp_path)

    folders = run(ini, "study", "diff", DEMO_FOLDER, amendment)

    assert folders.exit_code == 0, folders.output
    assert "Existing entries" not in folders.output
    lines = folders.output.splitlines()
    assert "Initial status" not in folders.output
    assert (
        lines.index("Study")
        < lines.index("Events")
        < lines.index("  - Event Week 26 visit (end of study) (week_26) removed")
    )

    run(ini, "study", "load", DEMO_FOLDER)
    register(url, "NTH", ("week_26", date(2026, 3, 3)))
    register(url, "CHH", ("week_26", date(2026, 3, 4)), ("week_12", date(2026, 2, 20)))
    loaded = run(ini, "study", "diff", "DEMO@1.0", amendment)

    assert loaded.exit_code == 0, loaded.output
    lines = loaded.output.splitlines()
    assert lines[:2] == [
        f"Changes from DEMO@1.0 to {amendment}:",
        "Existing entries: recorded visits on DEMO@1.0 (2 participants are on this version)",
    ]
    removed = lines.index("  - Event Week 26 visit (end of study) (week_26) removed")
    assert lines[removed + 1] == "      affects 2 recorded visits of 2 participants"
    widened = lines.index("  - Week 12 visit: window after changed from 7 to 10 days")
    assert lines[widened + 1] == "      affects 1 recorded visit of 1 participant"
    target = lines.index("  - Target sample size changed from 120 to 150")
    assert lines[target + 1] == "      affects no recorded visit"
    assert lines.index("Study") < lines.index("Events")

    same = run(ini, "study", "diff", "DEMO@1.0", DEMO_FOLDER)
    assert same.output.strip() == (
        f"No changes: DEMO@1.0 and {DEMO_FOLDER} define the same protocol."
    )
    unknown = run(ini, "study", "diff", "DEMO@9.9", amendment)
    assert unknown.exit_code == 1
    assert "study DEMO has no protocol version '9.9' (loaded: 1.0)" in unknown.output


def test_participant_migrate_is_a_dry_run_until_applied_with_a_reason(deployment, tmp_path):
    ini, url = deployment
    run(ini, "study", "load", DEMO_FOLDER)
    moving = register(url, "NTH", ("screening", date(2026, 1, 20)), ("baseline", date(2026, 2, 2)))
    stuck = register(url, "NTH", ("week_26", date(2026, 3, 3)))
    run(ini, "study", "load", amended_folder(tmp_path))
    migrate = ("participant", "migrate", "--study", "DEMO", "--to", "2.0", "--participant")

    dry = run(ini, *migrate, moving)

    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines() == [
        f"Moving {moving} from protocol version 1.0 to 2.0:",
        "  2 recorded visit(s) move to version 2.0:",
        "    - Screening recorded on 20 Jan 2026",
        "    - Baseline (randomisation) recorded on 2 Feb 2026",
        "  Consent records and eligibility assessments stay on the version they were made on.",
        "Dry run: nothing has been changed. Add --apply --reason TEXT to move.",
    ]
    first = select(ProtocolVersion.id).where(ProtocolVersion.label == "1.0").scalar_subquery()
    versions = select(func.count(Visit.id)).where(Visit.protocol_version_id == first)
    assert scalar(url, versions) == 3

    no_reason = run(ini, *migrate, moving, "--apply")
    assert no_reason.exit_code == 1 and "--apply needs --reason" in no_reason.output

    applied = run(ini, *migrate, moving, "--apply", "--reason", REASON)
    assert applied.exit_code == 0, applied.output
    assert applied.output.splitlines()[-1] == (
        f"Moved {moving} to protocol version 2.0 (2 recorded visit(s) moved)."
    )
    assert scalar(url, versions) == 1
    assert (
        scalar(
            url,
            select(func.count(AuditEvent.id)).where(
                AuditEvent.action.in_(["visit.updated", "participant.updated"]),
                AuditEvent.reason == REASON,
            ),
        )
        == 3
    )

    blocked = run(ini, *migrate, stuck, "--apply", "--reason", REASON)
    assert blocked.exit_code == 1
    assert (
        "    - Week 26 visit (end of study) recorded on 3 Mar 2026 has no event in protocol"
        " version 2.0: moving would drop it"
    ) in blocked.output.splitlines()
    assert scalar(url, versions) == 1


def test_demo_loads_the_demo_folder_as_its_first_protocol_version(deployment):
    ini, url = deployment

    assert run(ini, "demo").exit_code == 0

    assert run(ini, "study", "load", DEMO_FOLDER).output.strip() == (
        "DEMO is up to date at protocol version 1.0."
    )
    labels = scalar(
        url, select(func.count(ProtocolVersion.id)).where(ProtocolVersion.label == "1.0")
    )
    assert labels == 1
