"""The ``ctms`` command, driven as an operator would drive it."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bhp_ctms.accounts.models import Membership, User
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.cli import ctms
from bhp_ctms.cli.permissions import permission_matrix_markdown
from bhp_ctms.db import create_database_engine
from bhp_ctms.sessions import UserSession
from bhp_ctms.studies.models import Study
from tests.demo import demo_usernames

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ini(tmp_path, monkeypatch):
    for name in ("BHP_CTMS_DATABASE_URL", "BHP_CTMS_BROKER_URL", "BHP_CTMS_RESULT_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    text = (ROOT / "development.ini").read_text()
    text = text.replace("%(here)s/var", str(tmp_path / "var"))
    text = text.replace("%(here)s/alembic", str(ROOT / "alembic"))
    text = text.replace("%(here)s/forms", str(ROOT / "forms"))
    path = tmp_path / "ctms.ini"
    path.write_text(text)
    monkeypatch.setenv("BHP_CTMS_DEMO_PASSWORD", "lighthouse-cabbage-origami")
    return str(path)


def run(ini, *args, input=None):
    result = CliRunner().invoke(ctms, ["-c", ini, *args], input=input, catch_exceptions=False)
    return result


def count(ini, statement):
    engine = create_database_engine(f"sqlite:///{Path(ini).parent}/var/ctms.sqlite")
    try:
        with engine.connect() as connection:
            return connection.execute(statement).scalar()
    finally:
        engine.dispose()


def test_help_lists_the_commands():
    result = CliRunner().invoke(ctms, ["--help"])
    for name in ("initdb", "demo", "worker", "user", "run", "db", "permissions", "audit"):
        assert re.search(rf"^\s+{name}\s", result.output, re.MULTILINE), name


def test_demo_is_idempotent_and_prints_its_log_ins(ini):
    assert run(ini, "initdb").exit_code == 0
    first = run(ini, "demo")
    assert first.exit_code == 0, first.output
    for username in demo_usernames():
        assert username in first.output
    assert "lighthouse-cabbage-origami" in first.output
    counts = (
        count(ini, select(func.count(User.id))),
        count(ini, select(func.count(Membership.id))),
        count(ini, select(func.count(Study.id))),
    )
    second = run(ini, "demo")
    assert second.exit_code == 0
    assert counts == (
        count(ini, select(func.count(User.id))),
        count(ini, select(func.count(Membership.id))),
        count(ini, select(func.count(Study.id))),
    )
    assert counts == (len(demo_usernames()), len(demo_usernames()), 1)


def test_user_add_grant_revoke_and_disable_are_audited(ini):
    run(ini, "initdb")
    run(ini, "demo")
    added = run(
        ini,
        "user",
        "add",
        "jsmith",
        "--full-name",
        "Jo Smith",
        "--password-stdin",
        input="saffron-kettle-meadow-42\n",
    )
    assert added.exit_code == 0, added.output
    granted = run(
        ini, "user", "grant", "jsmith", "site_coordinator", "--study", "DEMO", "--site", "NTH"
    )
    assert "Granted Site coordinator to jsmith in study DEMO, site NTH" in granted.output
    revoked = run(
        ini,
        "user",
        "revoke",
        "jsmith",
        "site_coordinator",
        "--study",
        "DEMO",
        "--site",
        "NTH",
        "--reason",
        "moved",
    )
    assert revoked.exit_code == 0, revoked.output
    disabled = run(ini, "user", "disable", "jsmith", "--reason", "left the unit")
    assert "ended 0 session(s)" in disabled.output
    actions = [
        count(ini, select(func.count(AuditEvent.id)).where(AuditEvent.action == action))
        for action in ("user.created", "membership.created", "membership.deleted", "user.updated")
    ]
    assert all(actions), actions
    reasons = count(
        ini,
        select(func.count(AuditEvent.id)).where(
            AuditEvent.action.in_(["membership.deleted", "user.updated"]),
            AuditEvent.reason.in_(["moved", "left the unit"]),
        ),
    )
    assert reasons == 2
    assert count(ini, select(func.count(UserSession.token_hash))) == 0


def test_bad_input_is_refused_with_a_clear_message(ini):
    run(ini, "initdb")
    weak = run(ini, "user", "add", "jo", "--full-name", "Jo", "--password-stdin", input="short\n")
    assert weak.exit_code != 0 and "at least 12 characters" in weak.output
    missing = run(ini, "user", "grant", "ghost", "monitor")
    assert missing.exit_code != 0 and "no user called 'ghost'" in missing.output
    bad_study = run(ini, "user", "grant", "ghost", "monitor", "--study", "NOPE")
    assert "no study with code 'NOPE'" in bad_study.output


def test_missing_config_file_is_named(tmp_path):
    result = CliRunner().invoke(ctms, ["-c", str(tmp_path / "absent.ini"), "initdb"])
    assert result.exit_code != 0 and "absent.ini" in result.output


def test_readme_matrix_is_the_one_in_the_code():
    assert permission_matrix_markdown() in (ROOT / "README.md").read_text()


def test_initdb_works_from_a_copy_of_the_repository_files(tmp_path, monkeypatch):
    # The ini's %(here)s paths resolve next to the ini file, wherever it is.
    for name in ("alembic", "forms"):
        shutil.copytree(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "development.ini", tmp_path / "development.ini")
    monkeypatch.delenv("BHP_CTMS_DATABASE_URL", raising=False)
    result = CliRunner().invoke(ctms, ["-c", str(tmp_path / "development.ini"), "initdb"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "var" / "ctms.sqlite").exists()


def test_audit_verify_passes_then_names_the_first_edited_event(ini):
    run(ini, "initdb")
    run(ini, "demo")
    intact = run(ini, "audit", "verify")
    assert intact.exit_code == 0, intact.output
    assert "chain system:" in intact.output and "intact" in intact.output
    database = sqlite3.connect(Path(ini).parent / "var" / "ctms.sqlite")
    with database:
        database.execute("DROP TRIGGER audit_events_no_update")
        database.execute(
            "UPDATE audit_events SET actor_name = 'someone else' "
            "WHERE chain = 'system' AND sequence = 3"
        )
    database.close()
    broken = run(ini, "audit", "verify")
    assert broken.exit_code == 1
    assert "chain system" in broken.output and "(sequence 3)" in broken.output
    assert "edited" in broken.output
    assert run(ini, "audit", "verify", "--study", "DEMO").exit_code == 0


def test_audit_verify_finds_a_value_edited_in_the_database_and_a_recomputed_chain(ini):
    run(ini, "initdb")
    run(ini, "demo")
    signed = run(ini, "audit", "checkpoint")
    assert signed.exit_code == 0 and "chain system: signed at sequence" in signed.output
    database = sqlite3.connect(Path(ini).parent / "var" / "ctms.sqlite")
    with database:
        database.execute("UPDATE sites SET name = 'Edited at the prompt' WHERE code = 'NTH'")
    broken = run(ini, "audit", "verify", "--study", "DEMO")
    assert broken.exit_code == 1
    assert "DIFFERS site" in broken.output and " name, event " in broken.output
    assert "changed outside the application" in broken.output
    with database:
        database.execute("UPDATE sites SET name = 'Northern General Hospital' WHERE code = 'NTH'")
        database.execute("DROP TRIGGER audit_events_no_delete")
        # Remove the last system event: the chain alone still links up, its checkpoint does not.
        database.execute(
            "DELETE FROM audit_events WHERE id = "
            "(SELECT max(id) FROM audit_events WHERE chain = 'system')"
        )
    database.close()
    truncated = run(ini, "audit", "verify")
    assert truncated.exit_code == 1
    assert "checkpoint" in truncated.output and "events were deleted" in truncated.output
