"""Studies (protocols)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bhp_ctms.audit.capture import AuditContext, Audited, Change
from bhp_ctms.db import ModelBase, enum_by_value, utcnow

if TYPE_CHECKING:
    from bhp_ctms.sites.models import Site


class StudyStatus(StrEnum):
    SET_UP = "set_up"
    RECRUITING = "recruiting"
    CLOSED_TO_RECRUITMENT = "closed_to_recruitment"
    FOLLOW_UP = "follow_up"
    LOCKED = "locked"
    ARCHIVED = "archived"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize().replace("Set up", "Set-up")


class Blinding(StrEnum):
    OPEN = "open"
    SINGLE = "single"
    DOUBLE = "double"

    @property
    def label(self) -> str:
        return {"open": "Open label", "single": "Single blind", "double": "Double blind"}[
            self.value
        ]


def _locked_study_reason(change: Change) -> str | None:
    """A locked or archived study changes (unlocking included) only with a reason."""
    if change.kind == "updated" and change.before("status") in {
        StudyStatus.LOCKED,
        StudyStatus.ARCHIVED,
    }:
        return f"study {change.obj.code} is {change.before('status').label.lower()}"
    return None


class Study(ModelBase):
    __tablename__ = "studies"
    __audit__ = Audited(
        "study",
        context=lambda study: AuditContext(study_id=study.id),
        reason_rule=_locked_study_reason,
        describe=lambda study: study.code,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    status: Mapped[StudyStatus] = mapped_column(
        enum_by_value(StudyStatus), default=StudyStatus.SET_UP
    )
    blinding: Mapped[Blinding] = mapped_column(enum_by_value(Blinding), default=Blinding.OPEN)
    target_sample_size: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    sites: Mapped[list[Site]] = relationship(back_populates="study", order_by="Site.code")

    def __repr__(self) -> str:
        return f"<Study {self.code}>"
