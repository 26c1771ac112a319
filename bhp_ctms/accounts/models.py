"""Users, their memberships of studies and sites, and their log-in attempts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bhp_ctms.audit.capture import AuditContext, Audited
from bhp_ctms.db import ModelBase, enum_by_value, utcnow
from bhp_ctms.permissions import Role


class User(ModelBase):
    __tablename__ = "users"
    # The password hash and the second-factor secret are audited as digests only;
    # the last log-in time and TOTP step change at every log-in, which has its own event.
    __audit__ = Audited(
        "user",
        context=lambda user: AuditContext(subject_user_id=user.id),
        exclude=frozenset({"last_login_at", "totp_last_timecode"}),
        secret=frozenset({"password_hash", "totp_secret_encrypted"}),
        describe=lambda user: user.username,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Fernet token of the base32 TOTP secret, encrypted with a key derived from
    # settings.secret_key; NULL when the user has no second factor.
    totp_secret_encrypted: Mapped[str | None] = mapped_column(String(255))
    # The last TOTP time step accepted: a code of that step or earlier is a replay.
    totp_last_timecode: Mapped[int | None]

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user",
        foreign_keys="Membership.user_id",
        cascade="all, delete-orphan",
    )

    @property
    def has_totp(self) -> bool:
        return self.totp_secret_encrypted is not None

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class Membership(ModelBase):
    """A user's role in one study (or all studies) at one site (or all its sites)."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "study_id", "site_id", "role"),)
    __audit__ = Audited(
        "membership",
        context=lambda membership: AuditContext(
            study_id=membership.study_id,
            site_id=membership.site_id,
            subject_user_id=membership.user_id,
        ),
        describe=lambda membership: f"{membership.role} of user #{membership.user_id}",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # NULL study: every study (CTU admins, auditors). NULL site: every site of the study.
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    role: Mapped[Role] = mapped_column(enum_by_value(Role))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    user: Mapped[User] = relationship(back_populates="memberships", foreign_keys=[user_id])


class LoginOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    BAD_PASSWORD = "bad_password"
    BAD_SECOND_FACTOR = "bad_second_factor"
    REFUSED_LOCKED = "refused_locked"
    REFUSED_DISABLED = "refused_disabled"
    UNLOCKED = "unlocked"

    @property
    def is_failure(self) -> bool:
        """Failures count towards a lock-out; refusals while locked do not extend it."""
        return self in {LoginOutcome.BAD_PASSWORD, LoginOutcome.BAD_SECOND_FACTOR}


class LoginAttempt(ModelBase):
    """One attempt to log in under a user name, whether or not such a user exists.

    Counting by user name (not by user) means an unknown name locks exactly like a
    known one, so the lock-out reveals nothing about which accounts exist.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_username_attempted_at", "username", "attempted_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[LoginOutcome] = mapped_column(enum_by_value(LoginOutcome))
    client_addr: Mapped[str] = mapped_column(String(64), default="")
