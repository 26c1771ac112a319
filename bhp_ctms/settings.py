"""Typed settings, read once at start-up from the ini file and the environment.

Every setting has a key in the ini file (``bhp_ctms.<name>``) and may be overridden
by an environment variable (``BHP_CTMS_<NAME>``). Settings are validated as a whole
and every problem is reported at once, so an operator fixes a deployment in one go.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from bhp_ctms.permissions import Role

INI_PREFIX = "bhp_ctms."
ENV_PREFIX = "BHP_CTMS_"

# Values shipped in example files or documentation; never acceptable in production.
KNOWN_DEFAULT_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "development-only-secret-key-do-not-use"}
)
MINIMUM_SECRET_LENGTH = 32
MAIL_BACKENDS = ("log", "smtp")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TESTING = "testing"


class SettingsError(ValueError):
    """Raised when the settings cannot be used; the message lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "BHP CTMS cannot start with these settings:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def _minutes(value: str) -> timedelta:
    return timedelta(minutes=float(value))


def _seconds(value: str) -> timedelta:
    return timedelta(seconds=float(value))


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _roles(value: str) -> frozenset[Role]:
    return frozenset(Role(name) for name in value.replace(",", " ").split())


def _setting(parse: Any, *, secret: bool = False, doc: str = "") -> dict[str, Any]:
    return {"parse": parse, "secret": secret, "doc": doc}


@dataclass(frozen=True)
class Settings:
    environment: Environment = field(
        default=Environment.DEVELOPMENT,
        metadata=_setting(Environment, doc="development, production or testing"),
    )
    database_url: str = field(
        default="", metadata=_setting(str, secret=True, doc="SQLAlchemy URL of the database")
    )
    database_role: str = field(
        default="",
        metadata=_setting(
            str,
            doc="PostgreSQL role the application acts as (SET ROLE); bhp_ctms_app may not "
            "change the audit tables",
        ),
    )
    broker_url: str = field(
        default="", metadata=_setting(str, secret=True, doc="Celery broker URL")
    )
    result_backend: str = field(
        default="", metadata=_setting(str, secret=True, doc="Celery result backend URL")
    )
    secret_key: str = field(
        default="",
        metadata=_setting(str, secret=True, doc="key for encryption at rest and signatures"),
    )
    alembic_dir: str = field(default="", metadata=_setting(str, doc="the alembic/ folder"))
    forms_dir: str = field(default="", metadata=_setting(str, doc="the forms/ folder"))
    cookie_secure: bool = field(default=False, metadata=_setting(_boolean))
    hsts: bool = field(default=False, metadata=_setting(_boolean))
    session_idle_timeout: timedelta = field(
        default=timedelta(minutes=30), metadata=_setting(_minutes, doc="minutes")
    )
    session_absolute_timeout: timedelta = field(
        default=timedelta(hours=12), metadata=_setting(_minutes, doc="minutes")
    )
    lockout_threshold: int = field(default=10, metadata=_setting(int))
    lockout_window: timedelta = field(
        default=timedelta(minutes=5), metadata=_setting(_seconds, doc="seconds")
    )
    lockout_duration: timedelta = field(
        default=timedelta(minutes=15), metadata=_setting(_seconds, doc="seconds")
    )
    mfa_required_roles: frozenset[Role] = field(
        default=frozenset(), metadata=_setting(_roles, doc="roles that must use TOTP")
    )
    task_always_eager: bool = field(default=False, metadata=_setting(_boolean))
    mail_backend: str = field(
        default="log",
        metadata=_setting(
            str,
            doc="how email is delivered: log (written to the log only, for development) or smtp",
        ),
    )
    mail_sender: str = field(
        default="bhp-ctms@localhost", metadata=_setting(str, doc="the From address of email")
    )
    smtp_host: str = field(default="localhost", metadata=_setting(str, doc="SMTP server"))
    smtp_port: int = field(default=25, metadata=_setting(int, doc="SMTP port"))
    ctu_email: str = field(
        default="ctu@localhost",
        metadata=_setting(str, doc="the trials unit's address for notifications (unblinding)"),
    )

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @classmethod
    def from_mapping(
        cls, ini: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from ini-file values overridden by ``BHP_CTMS_*`` variables."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for setting in dataclasses.fields(cls):
            env_name = ENV_PREFIX + setting.name.upper()
            raw = environ.get(env_name)
            source = env_name
            if raw is None:
                raw = ini.get(INI_PREFIX + setting.name)
                source = INI_PREFIX + setting.name
            if raw is None:
                continue
            if not isinstance(raw, str):
                values[setting.name] = raw
                continue
            try:
                values[setting.name] = setting.metadata["parse"](raw.strip())
            except ValueError as error:
                problems.append(f"{source}: {error}")
        settings = cls(**values)
        problems.extend(settings.problems())
        if problems:
            raise SettingsError(problems)
        return settings

    def problems(self) -> list[str]:
        """Everything that stops these settings from being used safely."""
        problems = []
        for name in ("database_url", "broker_url"):
            if not getattr(self, name):
                problems.append(
                    f"{name} is not set: set {ENV_PREFIX}{name.upper()} or {INI_PREFIX}{name}"
                )
        if self.session_idle_timeout > self.session_absolute_timeout:
            problems.append("session_idle_timeout is longer than session_absolute_timeout")
        if self.lockout_threshold < 1:
            problems.append("lockout_threshold must be at least 1")
        if self.mail_backend not in MAIL_BACKENDS:
            problems.append(
                f"mail_backend is {self.mail_backend!r}: use " + " or ".join(MAIL_BACKENDS)
            )
        if self.database_role and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", self.database_role):
            problems.append(
                "database_role must be a lower-case PostgreSQL role name "
                f"(letters, digits, underscores), not {self.database_role!r}"
            )
        if self.is_production:
            if self.secret_key in KNOWN_DEFAULT_SECRETS:
                problems.append(
                    f"secret_key is missing or a known default: set {ENV_PREFIX}SECRET_KEY "
                    f"to a random value of at least {MINIMUM_SECRET_LENGTH} characters"
                )
            elif len(self.secret_key) < MINIMUM_SECRET_LENGTH:
                problems.append(f"secret_key is shorter than {MINIMUM_SECRET_LENGTH} characters")
            if not self.cookie_secure:
                problems.append("cookie_secure must be true in production")
            if self.task_always_eager:
                problems.append("task_always_eager must be false in production")
        elif not self.secret_key:
            problems.append(f"secret_key is not set: set {ENV_PREFIX}SECRET_KEY")
        return problems
