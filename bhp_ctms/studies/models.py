"""Studies (protocols)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
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


class ResearchPillar(StrEnum):
    """The partnership's research pillars, by which the portfolio is grouped."""

    CANCER = "cancer"
    CHRONIC_DISEASE = "chronic_disease"
    HEALTH_WELLBEING = "health_wellbeing"
    WOMENS_CHILDRENS = "womens_childrens"

    @property
    def label(self) -> str:
        return {
            "cancer": "Cancer",
            "chronic_disease": "Chronic disease",
            "health_wellbeing": "Health & wellbeing",
            "womens_childrens": "Women's & children's",
        }[self.value]


DEFAULT_PARTICIPANT_ID_PATTERN = "{study}-{site}-{seq:04d}"


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
    phase: Mapped[str] = mapped_column(String(8), default="")
    isrctn: Mapped[str] = mapped_column(String(32), default="")
    # EudraCT or, for trials under the EU CTR, CTIS number.
    eudract: Mapped[str] = mapped_column(String(32), default="")
    iras: Mapped[str] = mapped_column(String(32), default="")
    pillar: Mapped[ResearchPillar | None] = mapped_column(enum_by_value(ResearchPillar))
    rare_disease: Mapped[bool] = mapped_column(default=False)
    sponsor: Mapped[str] = mapped_column(String(200), default="")
    # The member organisations taking part, as a list of names.
    organisations: Mapped[list[str]] = mapped_column(JSON, default=list)
    participant_id_pattern: Mapped[str] = mapped_column(
        String(100), default=DEFAULT_PARTICIPANT_ID_PATTERN
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    sites: Mapped[list[Site]] = relationship(back_populates="study", order_by="Site.code")
    protocol_versions: Mapped[list[ProtocolVersion]] = relationship(
        back_populates="study", order_by="ProtocolVersion.number"
    )

    def __repr__(self) -> str:
        return f"<Study {self.code}>"


class ProtocolVersion(ModelBase):
    """One version of a study's protocol (the first, or an amendment), as loaded from
    its folder in ``forms/``. Immutable once loaded: an amendment is a new version.

    ``definition`` holds the whole study definition
    (:meth:`bhp_ctms.studies.definition.StudyDefinition.to_json`); data entered on a
    version stays on it until a participant is moved to a newer one.
    """

    __tablename__ = "protocol_versions"
    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        UniqueConstraint("study_id", "label"),
    )
    __audit__ = Audited(
        "protocol_version",
        context=lambda version: AuditContext(study_id=version.study_id),
        describe=lambda version: f"version {version.label}",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    # 1 for the first version, then 2, 3… in the order they were loaded.
    number: Mapped[int]
    # The protocol's own version label, e.g. "2.0".
    label: Mapped[str] = mapped_column(String(32))
    effective_on: Mapped[date]
    summary: Mapped[str] = mapped_column(Text, default="")
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    definition_sha256: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)

    study: Mapped[Study] = relationship(back_populates="protocol_versions")

    def __repr__(self) -> str:
        return f"<ProtocolVersion {self.study_id} {self.label}>"
