from __future__ import annotations

from datetime import timedelta

import pytest

from bhp_ctms.permissions import Role
from bhp_ctms.settings import Settings, SettingsError

BASE = {
    "bhp_ctms.database_url": "sqlite:///ctms.sqlite",
    "bhp_ctms.broker_url": "memory://",
    "bhp_ctms.secret_key": "k" * 40,
}


def test_environment_overrides_the_ini_file():
    settings = Settings.from_mapping(
        {**BASE, "bhp_ctms.session_idle_timeout": "30"},
        environ={
            "BHP_CTMS_SESSION_IDLE_TIMEOUT": "10",
            "BHP_CTMS_MFA_REQUIRED_ROLES": "monitor, auditor",
        },
    )
    assert settings.session_idle_timeout == timedelta(minutes=10)
    assert settings.mfa_required_roles == {Role.MONITOR, Role.AUDITOR}


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as refused:
        Settings.from_mapping(
            {"bhp_ctms.lockout_threshold": "many", "bhp_ctms.mfa_required_roles": "wizard"},
            environ={},
        )
    problems = refused.value.problems
    assert any("lockout_threshold" in p for p in problems)
    assert any("mfa_required_roles" in p for p in problems)
    assert any("database_url is not set" in p for p in problems)
    assert any("broker_url is not set" in p for p in problems)


def test_production_needs_secure_cookies():
    with pytest.raises(SettingsError, match="cookie_secure"):
        Settings.from_mapping({**BASE, "bhp_ctms.environment": "production"}, environ={})
