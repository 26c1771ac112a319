"""``ctms odm import``, driven as a data manager would drive it, against a fresh
deployment on each database backend: each valid ODM sample imported, exported again
from a dataset snapshot, validated and compared; the invalid ones refused."""

from __future__ import annotations

import io
import shutil
from collections import Counter
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
from bhp_ctms.crf.definition import read_forms
from bhp_ctms.crf.values import ValueProblem
from bhp_ctms.db import create_database_engine
from bhp_ctms.exports.records import ExportOptions
from bhp_ctms.exports.snapshots import open_snapshot, take_snapshot
from bhp_ctms.odm.folder import write_study_folder
from bhp_ctms.odm.importer import canonical_value, read_and_plan
from bhp_ctms.odm.schema import schema_problems
from bhp_ctms.odm.writer import write_odm
from bhp_ctms.participants.models import Participant
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.models import Study
from bhp_ctms.studies.services import find_study
from tests.databases import BACKENDS, throwaway_database
from tests.unit.odm.snapshots import full_snapshot

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path("/work/shared/samples")
SAMPLES = SHARED / "odm"

# The valid samples, and what each holds: (study code, participants, values).
VALID = {
    # Metadata and clinical data: 7 forms, all events repeating, 2 subjects, 165 values.
    "odm-data-snapshot.xml": ("VIRUS", 2, 165),
    # Clinical data only (no metadata): its forms are made from its data; one subject
    # in two ClinicalData, 10 values.
    "test_clinical_data_01.xml": ("P2006-101", 1, 10),
    # Reference data only: their item groups become a form, their values belong to no
    # participant and are not imported.
    "test_referece_data_01.xml": ("P2006-101", 0, 0),
    # Metadata only, much of it referred to but not defined.
    "test_odm_002.xml": ("ODM_XML_TEST_STUDY_NAME", 0, 0),
    "test_odm_001-validated.xml": ("ODM_XML_TEST_STUDY_NAME", 0, 0),
    # Metadata only: CDASH forms, repeating item groups.
    "cdash-odm-test.xml": ("TEST_STUDY_003", 0, 0),
}

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="the shared samples are absent")


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
    with throwaway_database(request.param, tmp_path, "ctms_odm") as url:
        monkeypatch.setenv("BHP_CTMS_DATABASE_URL", url)
        assert run(str(ini), "initdb").exit_code == 0
        yield str(ini), url


def run(ini, *args):
    return CliRunner().invoke(ctms, ["-c", ini, *map(str, args)], catch_exceptions=False)


def exported(url: str, code: str, *, audit_trail: bool = False) -> bytes:
    """The study as ODM, written from a dataset snapshot taken now."""
    engine = create_database_engine(url)
    try:
        with Session(engine) as db:
            use_actor(db, AuditActor.system("ODM round trip"))
            study = find_study(db, code)
            assert study is not None
            snapshot = take_snapshot(db, study, kind="interim", description="ODM round trip")
            out = io.BytesIO()
            options = ExportOptions(formats=("odm",), blinded=False, audit_trail=audit_trail)
            write_odm(open_snapshot(db, snapshot, blinded=False), options, out)
            db.rollback()
            return out.getvalue()
    finally:
        engine.dispose()


def values_in(path: Path, scratch: Path) -> Counter[tuple[str, str, str, str, str]]:
    """Every value of a file as (subject, event, form, item, canonical value), read the
    way the import reads it; a missing value as ``missing:<code>``."""
    shutil.rmtree(scratch, ignore_errors=True)
    odm, plan = read_and_plan(path, scratch)
    write_study_folder(plan, scratch, effective_on=date.today())
    forms = read_forms(scratch).forms
    found: Counter[tuple[str, str, str, str, str]] = Counter()
    for data in odm.clinical:
        for subject in data.subjects:
            for event in subject.events:
                event_code = plan.event_oids.get(event.oid, "")
                place = f"{event_code}#{event.repeat_key or 1}"
                for form in event.forms:
                    form_code = plan.form_oids.get(form.oid)
                    if form_code is None:
                        continue
                    for group in form.groups:
                        for item in group.items:
                            placed = plan.forms[form_code].place(group.oid, item.oid)
                            if placed is None:
                                continue
                            code = f"{placed.group or ''}[{group.repeat_key}].{placed.item.code}"
                            if item.missing:
                                value = f"missing:{item.missing}"
                            elif item.value is None:
                                continue
                            else:
                                try:
                                    definition = forms[form_code].item(placed.item.code)
                                    value = canonical_value(definition, item.value)
                                except ValueProblem:
                                    continue
                            found[(subject.key, place, form_code, code, value)] += 1
    return found


def items_in(path: Path, scratch: Path) -> set[tuple[str, str, str]]:
    """Every form item of a file's metadata: (form, item, type)."""
    shutil.rmtree(scratch, ignore_errors=True)
    _, plan = read_and_plan(path, scratch)
    return {
        (code, item.code, item.type)
        for code, form in plan.forms.items()
        for item in form.definition.items
    }


def count(url: str, statement) -> int:
    engine = create_database_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(statement).scalar() or 0)
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", list(VALID))
def test_each_valid_sample_imports_exports_again_valid_and_keeps_items_and_values(
    name, deployment, tmp_path
):
    ini, url = deployment
    code, participants, values = VALID[name]
    source = SAMPLES / name

    result = run(ini, "odm", "import", source, "--data")

    assert result.exit_code == 0, result.output
    assert f"Created study {code} at protocol version 1.0" in result.stdout
    assert f"{values} value{'' if values == 1 else 's'} imported" in result.stdout
    plural = "" if participants == 1 else "s"
    assert f"{participants} participant{plural} ({participants} new)" in result.stdout
    data = exported(url, code)
    assert schema_problems(data) == []
    again = tmp_path / "again.xml"
    again.write_bytes(data)
    assert items_in(again, tmp_path / "b") == items_in(source, tmp_path / "a")
    before = values_in(source, tmp_path / "a")
    after = values_in(again, tmp_path / "b")
    assert sum(after.values()) == values
    assert after == before


def test_a_study_of_every_item_type_round_trips(deployment, tmp_path):
    ini, url = deployment
    source = tmp_path / "demo.xml"
    with source.open("wb") as out:
        write_odm(full_snapshot(), ExportOptions(formats=("odm",), blinded=False), out)

    result = run(ini, "odm", "import", source, "--data", "--study-folder", tmp_path / "study")

    assert result.exit_code == 0, result.output
    assert "Clinical data: 3 participants (3 new), 5 form entries, 24 values imported." in (
        result.stdout
    )
    assert "participants' arms are not imported" in result.stderr
    checked = run(ini, "study", "check", tmp_path / "study")
    assert checked.exit_code == 0, checked.output
    for audit_trail in (False, True):
        data = exported(url, "DEMO", audit_trail=audit_trail)
        assert schema_problems(data) == []
    again = tmp_path / "again.xml"
    again.write_bytes(exported(url, "DEMO"))
    assert values_in(again, tmp_path / "b") == values_in(source, tmp_path / "a")
    # Each value came in through the audit trail, as the operator, with the reason.
    reasons = count(
        url,
        select(func.count(func.distinct(AuditEvent.entity_id))).where(
            AuditEvent.entity_type == "item_value",
            AuditEvent.reason == "Imported from the ODM file demo.xml",
            AuditEvent.actor_name.like("ctms command (%"),
        ),
    )
    assert reasons == 24
    # Importing it again changes nothing: the same protocol version, the same values.
    repeat = run(ini, "odm", "import", source, "--data")
    assert "DEMO is up to date at protocol version 1.0." in repeat.stdout
    assert "3 participants (0 new)" in repeat.stdout


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("cdash-odm-test-invalid.xml", ":14: not valid ODM 1.3.2: Element 'studyName'"),
        ("test_odm_001.xml", ":2:325: not namespace-well-formed XML: Namespace prefix xs"),
    ],
)
def test_an_invalid_file_is_refused_with_file_line_and_problem(name, where, deployment):
    ini, url = deployment

    result = run(ini, "odm", "import", SAMPLES / name, "--data")

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert f"{SAMPLES / name}{where}" in result.stderr
    assert result.stderr.rstrip().endswith("not imported: nothing was written or loaded.")
    assert result.stdout == ""
    assert count(url, select(func.count(Study.id))) == 0


def test_redcap_project_xml_imports_leniently_with_warnings_by_line(deployment, tmp_path):
    ini, url = deployment
    project = SHARED / "redcap" / "simple" / "project.xml"

    result = run(ini, "odm", "import", project, "--data")

    assert result.exit_code == 0, result.output
    assert (
        f"{project}:434: warning: not valid ODM 1.3.2: Element 'FormData': This element is "
        "not expected" in result.stderr
    )
    assert f"{project}:170: warning: field mugshot is not imported" in result.stderr
    assert "REDCap project XML, study REDCAPR_SIMPLE: 3 forms, 15 items, 1 events" in result.stdout
    assert "Clinical data: 5 participants (5 new), 15 form entries" in result.stdout
    engine = create_database_engine(url)
    try:
        with Session(engine) as db:
            rows = db.execute(
                select(Participant.code, Site.code).join(Site).order_by(Participant.code)
            ).all()
    finally:
        engine.dispose()
    # Each record at its data access group; the one without a group at site ODM.
    assert [tuple(row) for row in rows] == [
        ("1", "DAG1"),
        ("2", "DAG1"),
        ("3", "DAG1"),
        ("4", "ODM"),
        ("5", "DAG2"),
    ]


def test_no_load_writes_a_folder_that_study_check_accepts(tmp_path):
    folder = tmp_path / "virus"

    result = run(
        "absent.ini",
        "odm",
        "import",
        SAMPLES / "odm-data-snapshot.xml",
        "--no-load",
        "--study-folder",
        folder,
    )

    assert result.exit_code == 0, result.output
    assert f"Wrote the study folder {folder}." in result.stdout
    checked = run("absent.ini", "study", "check", folder)
    assert checked.exit_code == 0, checked.output
    refused = run(
        "absent.ini",
        "odm",
        "import",
        SAMPLES / "odm-data-snapshot.xml",
        "--no-load",
        "--study-folder",
        folder,
    )
    assert refused.exit_code == 1
    assert "already exists and is not an empty folder" in refused.stderr


def test_odm_validate_checks_files_against_the_schema():
    good = run("absent.ini", "odm", "validate", SAMPLES / "cdash-odm-test.xml")
    assert good.exit_code == 0
    assert good.stdout.strip() == f"{SAMPLES / 'cdash-odm-test.xml'}: valid ODM 1.3.2"
    bad = run("absent.ini", "odm", "validate", SAMPLES / "cdash-odm-test-invalid.xml")
    assert bad.exit_code == 1
    assert ":14: not valid ODM 1.3.2" in bad.stderr
