"""Sites taking part in a study."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bhp_ctms.audit.capture import AuditContext, Audited, Change
from bhp_ctms.db import ModelBase, enum_by_value, utcnow

if TYPE_CHECKING:
    from bhp_ctms.studies.models import Study


class SiteStatus(StrEnum):
    PENDING = "pending"
    OPEN = "open"
    SUSPENDED = "suspended"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return self.value.capitalize()


def _closed_site_reason(change: Change) -> str | None:
    """A closed site's record is complete: changing it (even reopening) needs a reason."""
    if change.kind == "updated" and change.before("status") == SiteStatus.CLOSED:
        return f"site {change.obj.code} is closed"
    return None


class Site(ModelBase):
    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("study_id", "code"),)
    __audit__ = Audited(
        "site",
        context=lambda site: AuditContext(study_id=site.study_id, site_id=site.id),
        reason_rule=_closed_site_reason,
        describe=lambda site: site.code,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    principal_investigator: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[SiteStatus] = mapped_column(
        enum_by_value(SiteStatus), default=SiteStatus.PENDING
    )
    recruitment_target: Mapped[int | None]
    activated_on: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    study: Mapped[Study] = relationship(back_populates="sites")

    def __repr__(self) -> str:
        return f"<Site {self.code}>"
