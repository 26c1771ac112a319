"""Participants: registration, consent, eligibility, status, visits, and their
direct identifiers (kept apart, encrypted)."""

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
    from bhp_ctms.studies.models import ProtocolVersion


class ParticipantStatus(StrEnum):
    SCREENED = "screened"
    CONSENTED = "consented"
    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"
    # Screened but never enrolled (declined, not eligible, other): the CONSORT exclusions.
    NOT_ENROLLED = "not_enrolled"
    RANDOMISED = "randomised"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"
    LOST_TO_FOLLOW_UP = "lost_to_follow_up"
    DIED = "died"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class ExclusionReason(StrEnum):
    """Why a screened person was not enrolled, in CONSORT's categories."""

    NOT_ELIGIBLE = "not_eligible"
    DECLINED = "declined"
    OTHER = "other"

    @property
    def label(self) -> str:
        return {
            "not_eligible": "Did not meet the eligibility criteria",
            "declined": "Declined to take part",
            "other": "Other reason",
        }[self.value]


class WithdrawalType(StrEnum):
    """What a participant withdrew from: each allows less to continue than the last."""

    TREATMENT = "treatment"
    FOLLOW_UP = "follow_up"
    DATA_USE = "data_use"

    @property
    def label(self) -> str:
        return {
            "treatment": "From treatment (follow-up continues)",
            "follow_up": "From follow-up (data collected so far is kept)",
            "data_use": "From any further use of their data",
        }[self.value]


# Statuses after which a participant's record changes only with a reason for change.
CHANGE_NEEDS_REASON = frozenset(
    {
        ParticipantStatus.NOT_ENROLLED,
        ParticipantStatus.COMPLETED,
        ParticipantStatus.LOST_TO_FOLLOW_UP,
        ParticipantStatus.DIED,
    }
)


def _participant_reason(change: Change) -> str | None:
    """A participant whose participation has ended changes only with a reason."""
    if change.kind == "updated" and change.before("status") in CHANGE_NEEDS_REASON:
        return f"participant {change.obj.code} is {change.before('status').label.lower()}"
    return None


class Participant(ModelBase):
    __tablename__ = "participants"
    __table_args__ = (
        UniqueConstraint("study_id", "code"),
        # Gap-free, unique numbering per site: the last line of defence.
        UniqueConstraint("site_id", "sequence"),
    )
    __audit__ = Audited(
        "participant",
        context=lambda participant: AuditContext(
            study_id=participant.study_id,
            site_id=participant.site_id,
            participant_id=participant.id,
        ),
        reason_rule=_participant_reason,
        describe=lambda participant: participant.code,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    # The participant's study ID, e.g. DEMO-NTH-0001: the only name the trial uses.
    code: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int]
    status: Mapped[ParticipantStatus] = mapped_column(
        enum_by_value(ParticipantStatus), default=ParticipantStatus.SCREENED
    )
    protocol_version_id: Mapped[int] = mapped_column(ForeignKey("protocol_versions.id"))
    registered_on: Mapped[date]
    randomised_on: Mapped[date | None]
    # Under 16 at registration: consent by a person with parental responsibility.
    is_child: Mapped[bool] = mapped_column(default=False)
    exclusion_reason: Mapped[ExclusionReason | None] = mapped_column(enum_by_value(ExclusionReason))
    withdrawal_type: Mapped[WithdrawalType | None] = mapped_column(enum_by_value(WithdrawalType))
    # The date the current status took effect (withdrawal, loss, death, completion).
    status_on: Mapped[date | None]
    status_details: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    site: Mapped[Site] = relationship()
    protocol_version: Mapped[ProtocolVersion] = relationship()
    consents: Mapped[list[ConsentRecord]] = relationship(
        back_populates="participant", order_by="ConsentRecord.id"
    )
    eligibility_assessments: Mapped[list[EligibilityAssessment]] = relationship(
        back_populates="participant", order_by="EligibilityAssessment.id"
    )
    visits: Mapped[list[Visit]] = relationship(back_populates="participant", order_by="Visit.id")

    def __repr__(self) -> str:
        return f"<Participant {self.code}>"


class ParticipantSequence(ModelBase):
    """The last sequence number given at a site.

    Registration increments it in the same transaction that inserts the participant,
    under a row lock (PostgreSQL) or the database's write lock (SQLite), so numbers are
    unique and gap-free; a rolled-back registration gives its number back. Not audited:
    it is a counter, and each number is recorded with its participant.
    """

    __tablename__ = "participant_sequences"

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(default=0)


IDENTIFIER_COLUMNS = frozenset(
    {
        "full_name_encrypted",
        "date_of_birth_encrypted",
        "nhs_number_encrypted",
        "nhs_number_hmac",
        "name_dob_hmac",
    }
)


class ParticipantIdentifiers(ModelBase):
    """A participant's direct identifiers, apart from their clinical data.

    Each value is encrypted (Fernet) with a key derived from the deployment's secret
    key for this purpose alone; duplicates are found by keyed HMACs, never plain
    hashes. The audit trail records only digests of these columns.
    """

    __tablename__ = "participant_identifiers"
    # One person, one registration per study: the last line of defence behind the
    # duplicate check (NULLs, where no NHS number is recorded, never collide).
    __table_args__ = (UniqueConstraint("study_id", "nhs_number_hmac"),)
    __audit__ = Audited(
        "participant_identifiers",
        context=lambda identifiers: AuditContext(
            study_id=identifiers.study_id,
            site_id=identifiers.site_id,
            participant_id=identifiers.participant_id,
        ),
        exclude=frozenset({"updated_at"}),
        secret=IDENTIFIER_COLUMNS,
        describe=lambda identifiers: f"of participant #{identifiers.participant_id}",
    )

    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    full_name_encrypted: Mapped[str | None] = mapped_column(Text)
    date_of_birth_encrypted: Mapped[str | None] = mapped_column(Text)
    nhs_number_encrypted: Mapped[str | None] = mapped_column(Text)
    nhs_number_hmac: Mapped[str | None] = mapped_column(String(64), index=True)
    name_dob_hmac: Mapped[str | None] = mapped_column(String(64), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def id(self) -> int:
        """The participant's id: the audit trail files these values' events under it."""
        return self.participant_id


class ConsentKind(StrEnum):
    CONSENT = "consent"
    # A child's agreement, alongside the consent of a person with parental responsibility.
    ASSENT = "assent"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class ConsentGivenBy(StrEnum):
    PARTICIPANT = "participant"
    PARENT = "parent"
    LEGAL_REPRESENTATIVE = "legal_representative"

    @property
    def label(self) -> str:
        return {
            "participant": "The participant",
            "parent": "A person with parental responsibility",
            "legal_representative": "A legal representative",
        }[self.value]


class ConsentRecord(ModelBase):
    """One consent (or assent) given, on named versions of the documents."""

    __tablename__ = "consent_records"
    __audit__ = Audited(
        "consent",
        context=lambda consent: AuditContext(
            study_id=consent.participant.study_id,
            site_id=consent.participant.site_id,
            participant_id=consent.participant_id,
            form="consent",
        ),
        reason_rule=lambda change: (
            "consent records are kept as given" if change.kind == "updated" else None
        ),
        describe=lambda consent: f"#{consent.id}",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    protocol_version_id: Mapped[int] = mapped_column(ForeignKey("protocol_versions.id"))
    kind: Mapped[ConsentKind] = mapped_column(enum_by_value(ConsentKind))
    given_by: Mapped[ConsentGivenBy] = mapped_column(enum_by_value(ConsentGivenBy))
    information_sheet_version: Mapped[str] = mapped_column(String(32))
    form_version: Mapped[str] = mapped_column(String(32))
    consented_on: Mapped[date]
    # The person who took consent, as they sign the consent form.
    taken_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    participant: Mapped[Participant] = relationship(back_populates="consents")


class EligibilityOutcome(StrEnum):
    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class EligibilityAssessment(ModelBase):
    """The eligibility criteria answered for a participant, evaluated, and confirmed by
    the site's PI (or a delegate holding the PI role)."""

    __tablename__ = "eligibility_assessments"
    __audit__ = Audited(
        "eligibility",
        context=lambda assessment: AuditContext(
            study_id=assessment.participant.study_id,
            site_id=assessment.participant.site_id,
            participant_id=assessment.participant_id,
            form="eligibility",
        ),
        describe=lambda assessment: f"#{assessment.id}",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    protocol_version_id: Mapped[int] = mapped_column(ForeignKey("protocol_versions.id"))
    # {criterion code: "yes" | "no"}
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    outcome: Mapped[EligibilityOutcome] = mapped_column(enum_by_value(EligibilityOutcome))
    assessed_on: Mapped[date]
    assessed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    confirmed_at: Mapped[datetime | None]

    participant: Mapped[Participant] = relationship(back_populates="eligibility_assessments")


class VisitStatus(StrEnum):
    DONE = "done"
    NOT_DONE = "not_done"

    @property
    def label(self) -> str:
        return {"done": "Done", "not_done": "Not done"}[self.value]


def _recorded_visit_reason(change: Change) -> str | None:
    if change.kind == "updated":
        return f"visit {change.obj.event_code} has already been recorded"
    return None


class Visit(ModelBase):
    """What happened at one of a participant's events (one instance of a repeating
    event): done on a date, or not done. Kept on the protocol version it was recorded
    on until the participant is moved to a newer one."""

    __tablename__ = "visits"
    __table_args__ = (UniqueConstraint("participant_id", "event_code", "instance"),)
    __audit__ = Audited(
        "visit",
        context=lambda visit: AuditContext(
            study_id=visit.participant.study_id,
            site_id=visit.participant.site_id,
            participant_id=visit.participant_id,
            form=visit.event_code,
        ),
        reason_rule=_recorded_visit_reason,
        describe=lambda visit: f"{visit.event_code} #{visit.instance}",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    event_code: Mapped[str] = mapped_column(String(32))
    instance: Mapped[int] = mapped_column(default=1)
    protocol_version_id: Mapped[int] = mapped_column(ForeignKey("protocol_versions.id"))
    status: Mapped[VisitStatus] = mapped_column(enum_by_value(VisitStatus))
    visit_on: Mapped[date | None]
    not_done_reason: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    participant: Mapped[Participant] = relationship(back_populates="visits")
