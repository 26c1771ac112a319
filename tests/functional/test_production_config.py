"""production.ini refuses to start without its secrets, and starts with them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from alembic import command
from pyramid.paster import get_app
from webtest import TestApp

from bhp_ctms.migrations import alembic_config
from bhp_ctms.settings import SettingsError

ROOT = Path(__file__).resolve().parents[2]
SECRET_VARIABLES = (
    "BHP_CTMS_SECRET_KEY",
    "BHP_CTMS_DATABASE_URL",
    "BHP_CTMS_BROKER_URL",
    "BHP_CTMS_RESULT_BACKEND",
)


@pytest.fixture
def production_ini(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("BHP_CTMS_"):
            monkeypatch.delenv(name)
    copy = tmp_path / "production.ini"
    shutil.copy(ROOT / "production.ini", copy)
    return str(copy)


def test_refuses_to_start_without_secrets(production_ini):
    with pytest.raises(SettingsError) as refused:
        get_app(production_ini)
    message = str(refused.value)
    for name in ("BHP_CTMS_SECRET_KEY", "BHP_CTMS_DATABASE_URL", "BHP_CTMS_BROKER_URL"):
        assert name in message


@pytest.mark.parametrize(
    "secret_key", ["development-only-secret-key-do-not-use", "change-me", "too-short-1234"]
)
def test_refuses_a_default_or_short_secret(production_ini, monkeypatch, tmp_path, secret_key):
    monkeypatch.setenv("BHP_CTMS_SECRET_KEY", secret_key)
    monkeypatch.setenv("BHP_CTMS_DATABASE_URL", f"sqlite:///{tmp_path}/ctms.sqlite")
    monkeypatch.setenv("BHP_CTMS_BROKER_URL", "redis://127.0.0.1:6379/0")
    with pytest.raises(SettingsError, match="secret_key"):
        get_app(production_ini)


def test_starts_with_its_secrets_and_sends_hsts(production_ini, monkeypatch, tmp_path):
    monkeypatch.setenv("BHP_CTMS_SECRET_KEY", "s" * 16 + "0123456789abcdefghij")
    monkeypatch.setenv("BHP_CTMS_DATABASE_URL", f"sqlite:///{tmp_path}/ctms.sqlite")
    monkeypatch.setenv("BHP_CTMS_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("BHP_CTMS_RESULT_BACKEND", "redis://127.0.0.1:6379/1")
    command.upgrade(alembic_config(database_url=f"sqlite:///{tmp_path}/ctms.sqlite"), "head")

    app = TestApp(get_app(production_ini))
    response = app.get("/login", extra_environ={"wsgi.url_scheme": "https"})
    assert response.status_int == 200
    assert "Strict-Transport-Security" in response.headers
    assert "secure" in response.headers["Set-Cookie"].lower()
