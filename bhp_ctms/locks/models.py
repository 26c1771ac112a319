"""Locks: a data manager's freeze of a form entry, a participant, a site or a whole
study against any further change.

A lock is active until it is unlocked; an unlocked lock keeps its row, with who
unlocked it, when and why, so the study's page lists every lock it ever had. Both
acts are e-signed (the data manager's password, and code) and audited as changes to
this row, each with its reason for change.

What an active lock covers is :class:`bhp_ctms.locks.state.ActiveLock`'s to say, and
what it freezes is decided in one place, :mod:`bhp_ctms.locks.guard`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bhp_ctms.audit.capture import AuditContext, Audited, Change
from bhp_ctms.db import ModelBase, enum_by_value, utcnow
from bhp_ctms.studies.models import StudyStatus

if TYPE_CHECKING:
    from bhp_ctms.participants.models import Participant
    from bhp_ctms.sites.models import Site
    from bhp_ctms.studies.models import Study

# What a data manager means by signing a lock or an unlock (21 CFR 11.50(a)(3)).
LOCK_MEANING = "I confirm these data are final and lock them against any change"
UNLOCK_MEANING = "I reopen these locked data for change"


class LockScope(StrEnum):
    """What a lock covers, from the widest to the narrowest."""

    STUDY = "study"
    SITE = "site"
    PARTICIPANT = "participant"
    FORM_ENTRY = "form_entry"

    @property
    def label(self) -> str:
        return {
            "study": "Study",
            "site": "Site",
            "participant": "Participant",
            "form_entry": "Form",
        }[self.value]


def _unlock_reason(change: Change) -> str | None:
    """Unlocking (the only change a lock's row ever has) needs a reason for change."""
    if change.kind == "updated":
        return f"unlocking lock #{change.obj.id}"
    return None


def what_is_locked(
    scope: LockScope, study_code: str, site_code: str, participant_code: str, form_key: str
) -> str:
    """What a lock covers, as a person names it: ``study DEMO``, ``site NTH``,
    ``participant DEMO-NTH-0001`` or ``form baseline/vitals of participant DEMO-NTH-0001``."""
    if scope == LockScope.STUDY:
        return f"study {study_code}"
    if scope == LockScope.SITE:
        return f"site {site_code}"
    if scope == LockScope.PARTICIPANT:
        return f"participant {participant_code}"
    return f"form {form_key} of participant {participant_code}"


class Lock(ModelBase):
    """One lock of a study's data: the whole study, one site, one participant or one
    form entry (``form_key`` ``event/form`` as :attr:`FormEntry.form_key`)."""

    __tablename__ = "locks"
    # The guard reads a study's active locks at the first write of each transaction.
    __table_args__ = (Index("ix_locks_study_id_unlocked_at", "study_id", "unlocked_at"),)
    __audit__ = Audited(
        "lock",
        context=lambda lock: AuditContext(
            study_id=lock.study_id,
            site_id=lock.site_id,
            participant_id=lock.participant_id,
            form=lock.form_key,
        ),
        reason_rule=_unlock_reason,
        describe=lambda lock: f"#{lock.id}",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[LockScope] = mapped_column(enum_by_value(LockScope))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"))
    form_entry_id: Mapped[int | None] = mapped_column(ForeignKey("form_entries.id"))
    # The form entry's key, ``event/form`` (``event#2/form``), as the audit trail files it.
    form_key: Mapped[str] = mapped_column(String(100), default="")
    reason: Mapped[str] = mapped_column(Text)
    # The e-signature: the data manager's printed name and role, when, and its meaning.
    locked_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    locked_by_name: Mapped[str] = mapped_column(String(200))
    locked_by_role: Mapped[str] = mapped_column(String(64))
    locked_at: Mapped[datetime] = mapped_column(default=utcnow)
    meaning: Mapped[str] = mapped_column(String(200), default=LOCK_MEANING)
    # A study lock sets the study's status to locked; unlocking puts this one back.
    previous_study_status: Mapped[StudyStatus | None] = mapped_column(enum_by_value(StudyStatus))
    unlocked_at: Mapped[datetime | None]
    unlocked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    unlocked_by_name: Mapped[str] = mapped_column(String(200), default="")
    unlocked_by_role: Mapped[str] = mapped_column(String(64), default="")
    unlock_reason: Mapped[str] = mapped_column(Text, default="")
    unlock_meaning: Mapped[str] = mapped_column(String(200), default="")

    study: Mapped[Study] = relationship()
    site: Mapped[Site | None] = relationship()
    participant: Mapped[Participant | None] = relationship()

    @property
    def active(self) -> bool:
        return self.unlocked_at is None

    @property
    def what(self) -> str:
        return what_is_locked(
            self.scope,
            self.study.code,
            self.site.code if self.site is not None else "",
            self.participant.code if self.participant is not None else "",
            self.form_key,
        )

    def __repr__(self) -> str:
        return f"<Lock {self.id} {self.scope} {'active' if self.active else 'unlocked'}>"
