"""Accounts: passwords, log-in with lock-out, the TOTP second factor, and roles.

No HTTP here: views and the ``ctms`` command call these services. Changes to users
and memberships reach the audit trail through its automatic capture, attributed to
the actor each method is given; security events that change no row (a log-in, a
failed attempt, a lock-out) are recorded explicitly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from functools import lru_cache
from typing import Any, NoReturn

import argon2
import pyotp
import zxcvbn
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from bhp_ctms.accounts.models import LoginAttempt, LoginOutcome, Membership, User
from bhp_ctms.audit.capture import AuditContext, acting_as, change_reason
from bhp_ctms.audit.services import AuditActor, record_event
from bhp_ctms.db import utcnow
from bhp_ctms.encryption import decrypt, encrypt
from bhp_ctms.permissions import Role
from bhp_ctms.sessions import end_sessions_of_user
from bhp_ctms.settings import Settings

MINIMUM_PASSWORD_LENGTH = 12
MAXIMUM_PASSWORD_LENGTH = 256
# zxcvbn scores 0-4; below 3 a password is guessable by an offline attack on a hash.
MINIMUM_PASSWORD_SCORE = 3
TOTP_PURPOSE = "totp-secret"
TOTP_ISSUER = "BHP CTMS"
# A code from the previous or next 30-second step is accepted, for clock drift.
TOTP_VALID_WINDOW = 1
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")

_password_hasher = argon2.PasswordHasher()  # argon2id, RFC 9106 low-memory profile
# Verified against when the user name is unknown, so the reply takes as long.
_DUMMY_HASH = _password_hasher.hash("not a real password, used for timing only")


class AccountError(ValueError):
    """A request about an account that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class Reauthentication:
    """What a user typed to prove it is them before a serious act: their password,
    and their TOTP code if they have a second factor."""

    password: str
    code: str = ""


class ReauthenticationRefused(Exception):
    """The password or code was not right (``status`` FAILED), or the account is
    locked (LOCKED, until ``locked_until``); ``field`` names the one at fault."""

    def __init__(
        self, status: LoginStatus, field: str | None, locked_until: datetime | None = None
    ) -> None:
        super().__init__(f"re-authentication refused: {status.value}")
        self.status = status
        self.field = field
        self.locked_until = locked_until


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problems(password: str, *, username: str = "", full_name: str = "") -> list[str]:
    """Why a password may not be used; empty when it is acceptable.

    Length and resistance to guessing only: no composition rules (NIST SP 800-63B).
    """
    if len(password) < MINIMUM_PASSWORD_LENGTH:
        return [f"Enter a password of at least {MINIMUM_PASSWORD_LENGTH} characters"]
    if len(password) > MAXIMUM_PASSWORD_LENGTH:
        return [f"Enter a password of at most {MAXIMUM_PASSWORD_LENGTH} characters"]
    lowered = password.lower()
    stem = lowered.rstrip("0123456789!@#$%^&*?.")
    if lowered in _common_passwords() or stem in _common_passwords():
        return ["This password is one of the most common passwords: choose another"]
    if username and username.lower() in lowered:
        return ["Your password must not contain your user name"]
    context = [part for part in [username, *full_name.split()] if part]
    if zxcvbn.zxcvbn(password, user_inputs=context)["score"] < MINIMUM_PASSWORD_SCORE:
        return ["This password would be easy to guess: use a longer phrase of unrelated words"]
    return []


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def normalise_username(username: str) -> str:
    return username.strip().lower()


class LoginStatus(Enum):
    LOGGED_IN = "logged_in"
    SECOND_FACTOR_NEEDED = "second_factor_needed"
    ENROLMENT_NEEDED = "enrolment_needed"
    FAILED = "failed"
    LOCKED = "locked"
    DISABLED = "disabled"


@dataclass(frozen=True)
class LoginResult:
    status: LoginStatus
    user: User | None = None
    locked_until: datetime | None = None


class AccountService:
    """Log-in, lock-out, second factor and user administration."""

    def __init__(self, db: Session, settings: Settings, now: datetime | None = None) -> None:
        self.db = db
        self.settings = settings
        self._now = now

    def now(self) -> datetime:
        return self._now or utcnow()

    # -- users -------------------------------------------------------------------

    def find_user(self, username: str) -> User | None:
        return self.db.scalars(
            select(User).where(User.username == normalise_username(username))
        ).first()

    def create_user(
        self,
        actor: AuditActor,
        *,
        username: str,
        full_name: str,
        password: str,
        email: str = "",
    ) -> User:
        username = normalise_username(username)
        if not USERNAME_PATTERN.match(username):
            raise AccountError(
                "User name must be 2 to 64 lower-case letters, digits, dots, dashes or "
                "underscores, starting with a letter or digit"
            )
        if self.find_user(username) is not None:
            raise AccountError(f"A user called {username!r} already exists")
        problems = password_problems(password, username=username, full_name=full_name)
        if problems:
            raise AccountError(problems[0])
        user = User(
            username=username,
            full_name=full_name.strip(),
            email=email.strip(),
            password_hash=hash_password(password),
            password_changed_at=self.now(),
            created_at=self.now(),
        )
        with acting_as(self.db, actor):
            self.db.add(user)
        return user

    def set_password(self, actor: AuditActor, user: User, new_password: str) -> None:
        """Change a password; every session of the user ends."""
        problems = password_problems(new_password, username=user.username, full_name=user.full_name)
        if problems:
            raise AccountError(problems[0])
        with acting_as(self.db, actor):
            user.password_hash = hash_password(new_password)
            user.password_changed_at = self.now()
        end_sessions_of_user(self.db, user.id)

    def set_active(self, actor: AuditActor, user: User, active: bool, reason: str = "") -> int:
        """Enable or disable a user; disabling ends all their sessions at once."""
        with acting_as(self.db, actor), change_reason(self.db, reason):
            user.is_active = active
        return 0 if active else end_sessions_of_user(self.db, user.id)

    # -- roles -------------------------------------------------------------------

    def grant_role(
        self,
        actor: AuditActor,
        user: User,
        role: Role,
        *,
        study_id: int | None = None,
        site_id: int | None = None,
    ) -> Membership:
        """Grant a role; granting one the user already holds changes nothing."""
        if site_id is not None and study_id is None:
            raise AccountError("A site role must name its study")
        existing = self.find_membership(user, role, study_id=study_id, site_id=site_id)
        if existing is not None:
            return existing
        membership = Membership(
            user_id=user.id,
            role=role,
            study_id=study_id,
            site_id=site_id,
            granted_at=self.now(),
            granted_by_id=actor.user_id,
        )
        with acting_as(self.db, actor):
            self.db.add(membership)
        return membership

    def find_membership(
        self, user: User, role: Role, *, study_id: int | None, site_id: int | None
    ) -> Membership | None:
        """The membership granting exactly this role in this study and site, if any."""
        return self.db.scalars(
            select(Membership).where(
                Membership.user_id == user.id,
                Membership.role == role,
                _is(Membership.study_id, study_id),
                _is(Membership.site_id, site_id),
            )
        ).first()

    def revoke_role(self, actor: AuditActor, membership: Membership, reason: str) -> None:
        """Revoke a role; like every deletion of audited data, it needs a reason."""
        with acting_as(self.db, actor), change_reason(self.db, reason):
            self.db.delete(membership)

    def roles_of(self, user: User) -> set[Role]:
        return set(self.db.scalars(select(Membership.role).where(Membership.user_id == user.id)))

    def second_factor_required(self, user: User) -> bool:
        return bool(self.roles_of(user) & self.settings.mfa_required_roles)

    # -- log-in and lock-out -----------------------------------------------------

    def locked_until(self, username: str) -> datetime | None:
        """When the lock on this user name ends, or None if it is not locked.

        Locked when the last ``lockout_threshold`` counted attempts were all failures
        within ``lockout_window``; the lock lasts ``lockout_duration`` from the last
        of them. A success or an administrator's unlock breaks the run.
        """
        threshold = self.settings.lockout_threshold
        recent = self.db.scalars(
            select(LoginAttempt)
            .where(
                LoginAttempt.username == normalise_username(username),
                LoginAttempt.outcome.in_(
                    [
                        LoginOutcome.BAD_PASSWORD,
                        LoginOutcome.BAD_SECOND_FACTOR,
                        LoginOutcome.SUCCEEDED,
                        LoginOutcome.UNLOCKED,
                    ]
                ),
                LoginAttempt.attempted_at
                > self.now() - self.settings.lockout_window - self.settings.lockout_duration,
            )
            .order_by(LoginAttempt.attempted_at.desc(), LoginAttempt.id.desc())
            .limit(threshold)
        ).all()
        if len(recent) < threshold or not all(a.outcome.is_failure for a in recent):
            return None
        newest, oldest = recent[0], recent[-1]
        if newest.attempted_at - oldest.attempted_at > self.settings.lockout_window:
            return None
        until = newest.attempted_at + self.settings.lockout_duration
        return until if until > self.now() else None

    def authenticate(self, username: str, password: str, actor: AuditActor) -> LoginResult:
        """Check a user name and password (the first step of logging in)."""
        username = normalise_username(username)[:64]
        user = self.find_user(username)
        locked_until = self.locked_until(username)
        if locked_until is not None:
            self._record_attempt(username, user, LoginOutcome.REFUSED_LOCKED, actor)
            return LoginResult(LoginStatus.LOCKED, locked_until=locked_until)
        if user is None:
            _verify_hash(_DUMMY_HASH, password)
            return self._fail(username, None, LoginOutcome.BAD_PASSWORD, actor)
        if not _verify_hash(user.password_hash, password):
            return self._fail(username, user, LoginOutcome.BAD_PASSWORD, actor)
        if _password_hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        if not user.is_active:
            self._record_attempt(username, user, LoginOutcome.REFUSED_DISABLED, actor)
            return LoginResult(LoginStatus.DISABLED, user=user)
        if user.has_totp:
            return LoginResult(LoginStatus.SECOND_FACTOR_NEEDED, user=user)
        if self.second_factor_required(user):
            return LoginResult(LoginStatus.ENROLMENT_NEEDED, user=user)
        return self.complete_login(user, actor)

    def verify_second_factor(self, user: User, code: str, actor: AuditActor) -> LoginResult:
        """Check a TOTP code (the second step of logging in)."""
        locked_until = self.locked_until(user.username)
        if locked_until is not None:
            self._record_attempt(user.username, user, LoginOutcome.REFUSED_LOCKED, actor)
            return LoginResult(LoginStatus.LOCKED, locked_until=locked_until)
        if not self.check_totp(user, code):
            return self._fail(user.username, user, LoginOutcome.BAD_SECOND_FACTOR, actor)
        return self.complete_login(user, actor)

    def complete_login(self, user: User, actor: AuditActor) -> LoginResult:
        user.last_login_at = self.now()
        self._record_attempt(user.username, user, LoginOutcome.SUCCEEDED, actor)
        record_event(
            self.db,
            _as_user(actor, user),
            "login.succeeded",
            entity_type="user",
            entity_id=user.id,
            subject_user_id=user.id,
            details={"second_factor": user.has_totp},
        )
        return LoginResult(LoginStatus.LOGGED_IN, user=user)

    def record_logout(self, user: User, actor: AuditActor) -> None:
        record_event(
            self.db,
            actor,
            "logout",
            entity_type="user",
            entity_id=user.id,
            subject_user_id=user.id,
        )

    def unlock(self, actor: AuditActor, username: str) -> None:
        username = normalise_username(username)
        user = self.find_user(username)
        self._record_attempt(username, user, LoginOutcome.UNLOCKED, actor)
        record_event(
            self.db,
            actor,
            "account.unlocked",
            entity_type="user",
            entity_id=user.id if user else "",
            subject_user_id=user.id if user else None,
            details={"username": username},
        )

    def _fail(
        self, username: str, user: User | None, outcome: LoginOutcome, actor: AuditActor
    ) -> LoginResult:
        self._record_attempt(username, user, outcome, actor)
        record_event(
            self.db,
            actor,
            "login.failed",
            entity_type="user",
            entity_id=user.id if user else "",
            subject_user_id=user.id if user else None,
            details={"username": username, "reason": outcome.value},
        )
        locked_until = self.locked_until(username)
        if locked_until is None:
            return LoginResult(LoginStatus.FAILED)
        record_event(
            self.db,
            actor,
            "account.locked",
            entity_type="user",
            entity_id=user.id if user else "",
            subject_user_id=user.id if user else None,
            details={
                "username": username,
                "failed_attempts": self.settings.lockout_threshold,
                "locked_until": locked_until.isoformat(),
            },
        )
        return LoginResult(LoginStatus.LOCKED, locked_until=locked_until)

    def _record_attempt(
        self, username: str, user: User | None, outcome: LoginOutcome, actor: AuditActor
    ) -> None:
        self.db.add(
            LoginAttempt(
                username=username,
                user_id=user.id if user else None,
                outcome=outcome,
                attempted_at=self.now(),
                client_addr=actor.client_addr,
            )
        )
        self.db.flush()

    # -- the TOTP second factor ----------------------------------------------------

    @staticmethod
    def new_totp_secret() -> str:
        return pyotp.random_base32()

    def provisioning_uri(self, user: User, secret: str) -> str:
        return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=TOTP_ISSUER)

    def encrypt_totp_secret(self, secret: str) -> str:
        return encrypt(self.settings.secret_key, TOTP_PURPOSE, secret)

    def decrypt_totp_secret(self, ciphertext: str) -> str:
        return decrypt(self.settings.secret_key, TOTP_PURPOSE, ciphertext)

    def _matching_timecode(self, secret: str, code: str) -> int | None:
        code = code.replace(" ", "").strip()
        if not code.isdigit():
            return None
        totp = pyotp.TOTP(secret)
        now = self.now()
        for offset in range(-TOTP_VALID_WINDOW, TOTP_VALID_WINDOW + 1):
            moment = now + timedelta(seconds=offset * totp.interval)
            if pyotp.utils.strings_equal(totp.at(moment), code):
                return int(totp.timecode(moment))
        return None

    def check_totp(self, user: User, code: str) -> bool:
        """Accept a code once: a code of a time step already used is a replay."""
        if user.totp_secret_encrypted is None:
            return False
        timecode = self._matching_timecode(
            self.decrypt_totp_secret(user.totp_secret_encrypted), code
        )
        if timecode is None:
            return False
        if user.totp_last_timecode is not None and timecode <= user.totp_last_timecode:
            return False
        user.totp_last_timecode = timecode
        return True

    def enrol_totp(self, actor: AuditActor, user: User, secret: str, code: str) -> bool:
        """Turn on the second factor once the user proves their app has the secret."""
        timecode = self._matching_timecode(secret, code)
        if timecode is None:
            return False
        with acting_as(self.db, _as_user(actor, user)):
            user.totp_secret_encrypted = self.encrypt_totp_secret(secret)
            user.totp_last_timecode = timecode
        return True

    def disable_totp(self, actor: AuditActor, user: User, reason: str = "") -> None:
        if self.second_factor_required(user):
            raise AccountError("Your roles require a second factor, so it cannot be turned off")
        with acting_as(self.db, actor), change_reason(self.db, reason):
            user.totp_secret_encrypted = None
            user.totp_last_timecode = None

    def reauthenticate(
        self,
        actor: AuditActor,
        user: User,
        proof: Reauthentication,
        *,
        refused_action: str,
        context: AuditContext,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Check that ``user`` is who is logged in before a serious act (a signature,
        an emergency unblinding): their password, then their TOTP code if they have a
        second factor. A wrong one counts as a failed log-in attempt towards the
        account's lock-out, and is recorded as the event ``refused_action`` (e.g.
        ``signature.refused``) under ``context``, with ``details`` saying what was being
        done. Raises :class:`ReauthenticationRefused`, naming the field at fault."""
        refusal = (refused_action, context, details or {})
        locked_until = self.locked_until(user.username)
        if locked_until is not None:
            raise ReauthenticationRefused(LoginStatus.LOCKED, None, locked_until)
        if not self.verify_password(user, proof.password):
            self._refused_reauthentication(actor, user, LoginOutcome.BAD_PASSWORD, refusal)
        if user.has_totp and not self.check_totp(user, proof.code):
            self._refused_reauthentication(actor, user, LoginOutcome.BAD_SECOND_FACTOR, refusal)

    def _refused_reauthentication(
        self,
        actor: AuditActor,
        user: User,
        outcome: LoginOutcome,
        refusal: tuple[str, AuditContext, dict[str, Any]],
    ) -> NoReturn:
        action, context, details = refusal
        self._record_attempt(user.username, user, outcome, actor)
        record_event(
            self.db,
            actor,
            action,
            entity_type="user",
            entity_id=user.id,
            study_id=context.study_id,
            site_id=context.site_id,
            participant_id=context.participant_id,
            subject_user_id=user.id,
            details={"username": user.username, "reason": outcome.value, **details},
        )
        field = "password" if outcome == LoginOutcome.BAD_PASSWORD else "code"
        locked_until = self.locked_until(user.username)
        if locked_until is not None:
            record_event(
                self.db,
                actor,
                "account.locked",
                entity_type="user",
                entity_id=user.id,
                subject_user_id=user.id,
                details={
                    "username": user.username,
                    "failed_attempts": self.settings.lockout_threshold,
                    "locked_until": locked_until.isoformat(),
                },
            )
            raise ReauthenticationRefused(LoginStatus.LOCKED, field, locked_until)
        raise ReauthenticationRefused(LoginStatus.FAILED, field)

    def verify_password(self, user: User, password: str) -> bool:
        return _verify_hash(user.password_hash, password)


def _verify_hash(password_hash: str, password: str) -> bool:
    try:
        return _password_hasher.verify(password_hash, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def _is(column: Any, value: int | None) -> ColumnElement[bool]:
    """``column IS NULL`` for None (SQL's ``= NULL`` is never true), else equality."""
    return column.is_(None) if value is None else column == value  # type: ignore[no-any-return]


def _as_user(actor: AuditActor, user: User) -> AuditActor:
    """The actor once the user is known (log-in events are the user's own)."""
    return AuditActor(
        user_id=user.id,
        name=user.full_name,
        role=actor.role,
        client_addr=actor.client_addr,
        request_id=actor.request_id,
    )
