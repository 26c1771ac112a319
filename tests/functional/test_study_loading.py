"""Loading a study folder into the database: the first version, an amendment beside
it, and what is refused (with the file and line to fix), all audited.

The demo study (forms/demo) is a folder with two arms, six scheduled events with
windows and two repeating events (adverse events, unscheduled visits).
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bhp_ctms.audit.capture import acting_as
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.participants.models import Visit, VisitStatus
from bhp_ctms.sites.models import Site, SiteStatus
from bhp_ctms.studies.definition import DefinitionError
from bhp_ctms.studies.loading import definition_sha256, load_study
from bhp_ctms.studies.models import Blinding, ProtocolVersion, ResearchPillar, StudyStatus
from bhp_ctms.studies.services import (
    current_protocol_version,
    protocol_definition,
    protocol_versions,
)
from tests.factories import ParticipantFactory, StudyFactory

ROOT = Path(__file__).resolve().parents[2]
DEMO_FOLDER = ROOT / "forms" / "demo"
LOADER = AuditActor(user_id=None, name="Dara Manager (test)", role="data_manager")

WEEK_26 = """  - code: week_26
    name: Week 26 visit (end of study)
    day_offset: 182
    window_before: 14
    window_after: 14
    forms: [vitals, hip_score, end_of_study]
"""
WEEK_24_CALL = """  - code: week_24_call
    name: Week 24 phone call (end of study)
    day_offset: 168
    window_before: 7
    window_after: 7
    forms: [end_of_study]
"""

# Version 2.0 of the demo protocol: the week 26 visit becomes a phone call at week 24,
# the week 12 window widens, adverse events are capped at two, the target grows.
AMENDMENT = (
    ('protocol_version: "1.0"', 'protocol_version: "2.0"'),
    ("effective_on: 2026-01-05", "effective_on: 2026-06-01"),
    (
        'amendment_summary: ""',
        'amendment_summary: "Week 26 visit replaced by a week 24 phone call"',
    ),
    ("target_sample_size: 120", "target_sample_size: 150"),
    # The file's status only seeds a new study: changing it changes nothing.
    ("status: recruiting", "status: follow_up"),
    (
        "day_offset: 84\n    window_before: 7\n    window_after: 7",
        "day_offset: 84\n    window_before: 7\n    window_after: 10",
    ),
    (WEEK_26, WEEK_24_CALL),
    (
        "    repeating: true\n    forms: [ae]",
        "    repeating: true\n    max_repeats: 2\n    forms: [ae]",
    ),
)


def study_folder(tmp_path: Path, name: str, *replacements: tuple[str, str]) -> Path:
    """A copy of the demo study folder with some of its text replaced."""
    text = (DEMO_FOLDER / "study.yaml").read_text(encoding="utf-8")
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    folder = tmp_path / name
    shutil.copytree(DEMO_FOLDER, folder)
    (folder / "study.yaml").write_text(text, encoding="utf-8")
    return folder


def line_of(folder: Path, snippet: str) -> int:
    lines = (folder / "study.yaml").read_text(encoding="utf-8").splitlines()
    [number] = [number for number, line in enumerate(lines, 1) if line.startswith(snippet)]
    return number


def amended_folder(tmp_path: Path, *more: tuple[str, str], name: str = "amended") -> Path:
    return study_folder(tmp_path, name, *AMENDMENT, *more)


def audit_count(db_session, entity_type: str | None = None) -> int:
    statement = select(func.count(AuditEvent.id))
    if entity_type is not None:
        statement = statement.where(AuditEvent.entity_type == entity_type)
    return db_session.scalar(statement) or 0


def record_visit(participant, event_code, version, on, instance=1):
    visit = Visit(
        participant=participant,
        event_code=event_code,
        instance=instance,
        protocol_version_id=version.id,
        status=VisitStatus.DONE,
        visit_on=on,
    )
    ParticipantFactory._meta.sqlalchemy_session.add(visit)
    ParticipantFactory._meta.sqlalchemy_session.flush()
    return visit


def test_a_study_folder_loads_as_its_first_protocol_version(db_session):
    result = load_study(db_session, LOADER, DEMO_FOLDER)

    study, version = result.study, result.version
    assert (result.created_study, result.new_version, result.changes) == (True, True, [])
    assert result.describe() == "Created study DEMO at protocol version 1.0 (effective 5 Jan 2026)."
    assert study.title.startswith("A randomised trial of a daily walking programme")
    assert (study.status, study.blinding, study.target_sample_size) == (
        StudyStatus.RECRUITING,
        Blinding.DOUBLE,
        120,
    )
    assert (study.phase, study.isrctn, study.iras, study.pillar) == (
        "III",
        "ISRCTN12345678",
        "312456",
        ResearchPillar.CHRONIC_DISEASE,
    )
    assert study.sponsor == "University of Birmingham" and len(study.organisations) == 3
    assert (version.number, version.label, version.effective_on) == (1, "1.0", date(2026, 1, 5))
    assert version.definition_sha256 == definition_sha256(version.definition)

    definition = protocol_definition(version)
    assert [arm.name for arm in definition.arms] == ["Daily walking programme", "Usual care"]
    scheduled = [event for event in definition.events if event.scheduled]
    assert len(scheduled) == 6
    assert (
        definition.event("week_12").window_before,
        definition.event("week_12").window_after,
    ) == (
        7,
        7,
    )
    assert definition.event("adverse_event").repeating

    sites = db_session.scalars(select(Site).where(Site.study_id == study.id).order_by(Site.code))
    assert [(site.code, site.status, site.principal_investigator) for site in sites] == [
        ("CHH", SiteStatus.OPEN, "Chidi Okafor"),
        ("NTH", SiteStatus.OPEN, "Priya Investigator"),
    ]
    actions = set(
        db_session.scalars(select(AuditEvent.action).where(AuditEvent.study_id == study.id))
    )
    assert {"study.created", "protocol_version.created", "site.created"} <= actions
    assert set(
        db_session.scalars(select(AuditEvent.actor_name).where(AuditEvent.study_id == study.id))
    ) == {"Dara Manager (test)"}


def test_a_malformed_folder_is_refused_with_file_and_line(db_session, tmp_path):
    folder = study_folder(
        tmp_path,
        "bad",
        ("day_offset: 42", "day_offset: six"),
        ("ratio: 1\n  - code: usual", "ratio: 0\n  - code: usual"),
    )

    with pytest.raises(DefinitionError) as refused:
        load_study(db_session, LOADER, folder)

    where = {(problem.path.name, problem.line) for problem in refused.value.problems}
    assert ("study.yaml", line_of(folder, "    day_offset: six")) in where
    assert ("study.yaml", line_of(folder, "    ratio: 0")) in where
    assert "events[3].day_offset" in str(refused.value)
    assert audit_count(db_session, "study") == 0


def test_an_amendment_is_a_new_version_and_entries_keep_theirs(db_session, tmp_path):
    first = load_study(db_session, LOADER, DEMO_FOLDER)
    site = db_session.scalars(select(Site).where(Site.code == "NTH")).one()
    participant = ParticipantFactory(site=site)
    visit = record_visit(participant, "week_26", first.version, date(2026, 3, 3))
    assert participant.protocol_version_id == first.version.id

    result = load_study(db_session, LOADER, amended_folder(tmp_path))

    version = result.version
    assert (result.created_study, result.new_version) == (False, True)
    assert (version.number, version.label, version.effective_on) == (2, "2.0", date(2026, 6, 1))
    assert version.summary == "Week 26 visit replaced by a week 24 phone call"
    assert result.describe() == (
        "Loaded amendment: DEMO protocol version 2.0 as version 2 (effective 1 Jun 2026),"
        f" with {len(result.changes)} changes."
    )
    descriptions = [change.description for change in result.changes]
    assert "Event Week 26 visit (end of study) (week_26) removed" in descriptions
    assert "Week 12 visit: window after changed from 7 to 10 days" in descriptions
    assert "Target sample size changed from 120 to 150" in descriptions
    assert not any("status" in description.lower() for description in descriptions)
    assert [v.number for v in protocol_versions(db_session, result.study.id)] == [1, 2]

    # The study follows the file, except its status, which is managed in the application.
    assert result.study.target_sample_size == 150
    assert result.study.status == StudyStatus.RECRUITING
    changed = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "study.updated")
    ).all()
    assert [(event.field, event.old_value, event.new_value) for event in changed] == [
        ("target_sample_size", "120", "150")
    ]

    # Entries already made stay on the version they were made on.
    db_session.expire_all()
    assert db_session.get(type(participant), participant.id).protocol_version_id == first.version.id
    assert db_session.get(Visit, visit.id).protocol_version_id == first.version.id

    # Version 1.0 is in effect until the amendment's effective date, then 2.0.
    study_id = result.study.id
    assert current_protocol_version(db_session, study_id, date(2026, 5, 31)).label == "1.0"
    assert current_protocol_version(db_session, study_id, date(2026, 6, 1)).label == "2.0"


def test_loading_the_same_folder_again_changes_nothing(db_session, tmp_path):
    load_study(db_session, LOADER, DEMO_FOLDER)
    events_before = audit_count(db_session)

    again = load_study(db_session, LOADER, DEMO_FOLDER)

    assert (again.created_study, again.new_version, again.version.number) == (False, False, 1)
    assert again.describe() == "DEMO is up to date at protocol version 1.0."
    assert audit_count(db_session) == events_before
    assert db_session.scalar(select(func.count(ProtocolVersion.id))) == 1


def test_a_change_to_the_seeds_alone_is_not_an_amendment(db_session, tmp_path):
    load_study(db_session, LOADER, DEMO_FOLDER)
    events_before = audit_count(db_session)
    folder = study_folder(
        tmp_path,
        "seeds",
        ("status: recruiting", "status: set_up"),
        (
            "recruitment_target: 60\n    principal_investigator: Chidi",
            "recruitment_target: 80\n    principal_investigator: Chidi",
        ),
    )

    again = load_study(db_session, LOADER, folder)

    assert (again.new_version, again.version.label) == (False, "1.0")
    assert audit_count(db_session) == events_before


def test_the_same_label_with_different_content_is_refused(db_session, tmp_path):
    load_study(db_session, LOADER, DEMO_FOLDER)
    folder = study_folder(
        tmp_path,
        "relabelled",
        ("target_sample_size: 120", "target_sample_size: 150"),
        ('amendment_summary: ""', 'amendment_summary: "A bigger target"'),
    )

    with pytest.raises(DefinitionError) as refused:
        load_study(db_session, LOADER, folder)

    [problem] = refused.value.problems
    assert problem.path == folder / "study.yaml"
    assert problem.line == line_of(folder, "protocol_version:")
    assert "1.0" in problem.message and "new version label" in problem.message
    assert db_session.scalar(select(func.count(ProtocolVersion.id))) == 1


def test_an_amendment_needs_a_summary_and_no_earlier_effective_date(db_session, tmp_path):
    load_study(db_session, LOADER, DEMO_FOLDER)
    folder = study_folder(
        tmp_path,
        "careless",
        ('protocol_version: "1.0"', 'protocol_version: "1.1"'),
        ("effective_on: 2026-01-05", "effective_on: 2025-12-01"),
        ("target_sample_size: 120", "target_sample_size: 150"),
    )

    with pytest.raises(DefinitionError) as refused:
        load_study(db_session, LOADER, folder)

    problems = {problem.line: problem.message for problem in refused.value.problems}
    assert "before 2026-01-05" in problems[line_of(folder, "effective_on:")]
    assert "needs a summary" in problems[line_of(folder, "amendment_summary:")]
    assert db_session.scalar(select(func.count(ProtocolVersion.id))) == 1


@pytest.mark.parametrize("status", [StudyStatus.LOCKED, StudyStatus.ARCHIVED])
def test_a_locked_or_archived_study_takes_no_amendment(db_session, tmp_path, status):
    study = load_study(db_session, LOADER, DEMO_FOLDER).study
    with acting_as(db_session, LOADER):
        study.status = status

    with pytest.raises(DefinitionError) as refused:
        load_study(db_session, LOADER, amended_folder(tmp_path))

    [problem] = refused.value.problems
    assert problem.message == (
        f"protocol_version: DEMO is {status.label.lower()}: no amendment can be loaded"
    )
    assert db_session.scalar(select(func.count(ProtocolVersion.id))) == 1


def test_a_study_loaded_before_protocol_versions_gets_its_first(db_session):
    study = StudyFactory(code="DEMO", title="Old title", status=StudyStatus.FOLLOW_UP)

    result = load_study(db_session, LOADER, DEMO_FOLDER)

    assert result.study.id == study.id
    assert (result.created_study, result.new_version, result.version.number) == (False, True, 1)
    assert study.title.startswith("A randomised trial") and study.status == StudyStatus.FOLLOW_UP
    assert {site.code for site in study.sites} == {"NTH", "CHH"}
