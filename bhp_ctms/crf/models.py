"""Case report form data: form versions, form entries and their item values,
queries (discrepancy notes), source data verification and electronic signatures.

Every value a person enters is one :class:`ItemValue` row, so the audit trail holds
each item's own history (who, when, old value, new value, reason for change), and a
query, an SDV mark or a signature can point at the exact item it is about.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bhp_ctms.audit.capture import AuditContext, Audited, Change
from bhp_ctms.db import ModelBase, enum_by_value, utcnow

if TYPE_CHECKING:
    from bhp_ctms.participants.models import Participant


class FormVersion(ModelBase):
    """One version of a CRF as loaded with a protocol version: its definition
    (:meth:`bhp_ctms.crf.definition.FormDefinition.to_json`) and the SHA-256 of its
    file. A form file loaded unchanged with a later protocol version keeps its version;
    data entered on a version stays valid on it."""

    __tablename__ = "form_versions"
    __table_args__ = (
        UniqueConstraint("study_id", "form_code", "number"),
        UniqueConstraint("study_id", "form_code", "sha256"),
    )
    __audit__ = Audited(
        "form_version",
        context=lambda version: AuditContext(study_id=version.study_id, form=version.form_code),
        describe=lambda version: f"{version.form_code} version {version.number}",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    form_code: Mapped[str] = mapped_column(String(32))
    # 1 for the form's first version in the study, then 2, 3… as they are loaded.
    number: Mapped[int]
    # The label the form file gives its version, e.g. "1.1".
    label: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<FormVersion {self.form_code} {self.number}>"


class FormStatus(StrEnum):
    """Where a form entry is on its way to the locked dataset. A form not started has
    no entry at all."""

    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    VERIFIED = "verified"
    SIGNED = "signed"
    LOCKED = "locked"

    @property
    def label(self) -> str:
        return {
            "in_progress": "In progress",
            "complete": "Complete",
            "verified": "SDV'd",
            "signed": "Signed",
            "locked": "Locked",
        }[self.value]


# A change to an entry's values in these states needs a reason for change.
REASON_NEEDED_STATUSES = frozenset(
    {FormStatus.COMPLETE, FormStatus.VERIFIED, FormStatus.SIGNED, FormStatus.LOCKED}
)


def _entry_context(entry: FormEntry) -> AuditContext:
    participant = entry.participant
    return AuditContext(
        study_id=participant.study_id,
        site_id=participant.site_id,
        participant_id=participant.id,
        form=entry.form_key,
    )


def _locked_entry_reason(change: Change) -> str | None:
    if change.kind == "updated" and change.before("status") == FormStatus.LOCKED:
        return f"form {change.obj.form_key} is locked"
    return None


class FormEntry(ModelBase):
    """One CRF completed for a participant at an event (one instance of a repeating
    event). ``version`` counts its saves: a save made from an older version than the
    stored one is a conflicting edit, refused with both versions shown."""

    __tablename__ = "form_entries"
    __table_args__ = (
        UniqueConstraint("participant_id", "event_code", "event_instance", "form_code"),
    )
    __audit__ = Audited(
        "form_entry",
        context=_entry_context,
        exclude=frozenset({"version", "updated_at"}),
        reason_rule=_locked_entry_reason,
        describe=lambda entry: entry.form_key,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    event_code: Mapped[str] = mapped_column(String(32))
    event_instance: Mapped[int] = mapped_column(default=1)
    form_code: Mapped[str] = mapped_column(String(32))
    form_version_id: Mapped[int] = mapped_column(ForeignKey("form_versions.id"))
    status: Mapped[FormStatus] = mapped_column(
        enum_by_value(FormStatus), default=FormStatus.IN_PROGRESS
    )
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    participant: Mapped[Participant] = relationship()
    form_version: Mapped[FormVersion] = relationship()
    values: Mapped[list[ItemValue]] = relationship(
        back_populates="entry", order_by="ItemValue.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}

    @property
    def form_key(self) -> str:
        """How the audit trail files the entry's events: ``event/form`` (``event#2/form``
        for a repeating event's second instance)."""
        event = (
            self.event_code
            if self.event_instance == 1
            else f"{self.event_code}#{self.event_instance}"
        )
        return f"{event}/{self.form_code}"

    def __repr__(self) -> str:
        return f"<FormEntry {self.participant_id} {self.form_key}>"


def _item_value_reason(change: Change) -> str | None:
    """A value of a complete (or later) form changes, or is added, only with a reason."""
    entry = change.obj.entry
    if entry.status not in REASON_NEEDED_STATUSES:
        return None
    verb = "added to" if change.kind == "created" else "on"
    return f"{change.obj.item_path} {verb} {entry.status.label.lower()} form {entry.form_key}"


def _entry_of(value: ItemValue) -> AuditContext:
    return _entry_context(value.entry)


class ItemValue(ModelBase):
    """One item's value on a form entry, as canonical text; or, instead of a value,
    the code of why it is missing (``ND``, ``NA``, ``UNK``). ``item_path`` is the
    item's code, or ``group[row].item`` for an item in a row of a repeating group
    (rows counted from 1)."""

    __tablename__ = "item_values"
    __table_args__ = (UniqueConstraint("form_entry_id", "item_path"),)
    __audit__ = Audited(
        "item_value",
        context=_entry_of,
        reason_rule=_item_value_reason,
        describe=lambda value: value.item_path,
        # The entry is carried in every event's details rather than recorded as an
        # event of its own (see bhp_ctms.audit.capture).
        details=lambda value: {"form_entry_id": value.form_entry_id, "item": value.item_path},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    form_entry_id: Mapped[int] = mapped_column(ForeignKey("form_entries.id"), index=True)
    item_path: Mapped[str] = mapped_column(String(100))
    value: Mapped[str | None] = mapped_column(Text)
    missing_code: Mapped[str | None] = mapped_column(String(8))

    entry: Mapped[FormEntry] = relationship(back_populates="values")

    def __repr__(self) -> str:
        return f"<ItemValue {self.item_path}={self.value!r}>"


class QueryStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class QueryOrigin(StrEnum):
    """Who raised a query: an edit check (a soft range, a cross-field check, the
    data-quality run) or a person (a monitor or data manager)."""

    SYSTEM = "system"
    MANUAL = "manual"


class QueryAction(StrEnum):
    RAISED = "raised"
    ANSWERED = "answered"
    CLOSED = "closed"
    REOPENED = "reopened"
    COMMENTED = "commented"


def _query_context(query: Query) -> AuditContext:
    return _entry_context(query.entry)


class Query(ModelBase):
    """A discrepancy note on an item: open → answered → closed (or re-opened).

    A system query names the ``check`` that raised it (``soft_range:weight`` or an
    edit check's code) so that the data-quality run can close it when the condition
    no longer holds, and never raises the same query twice."""

    __tablename__ = "queries"
    __audit__ = Audited(
        "query",
        context=_query_context,
        describe=lambda query: f"#{query.id} on {query.item_path}",
        details=lambda query: {"item": query.item_path},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    form_entry_id: Mapped[int] = mapped_column(ForeignKey("form_entries.id"), index=True)
    item_path: Mapped[str] = mapped_column(String(100))
    origin: Mapped[QueryOrigin] = mapped_column(enum_by_value(QueryOrigin))
    check: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[QueryStatus] = mapped_column(
        enum_by_value(QueryStatus), default=QueryStatus.OPEN
    )
    text: Mapped[str] = mapped_column(Text)
    # The item's value when the query was raised, shown beside the question.
    value_when_raised: Mapped[str] = mapped_column(Text, default="")
    raised_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    raised_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]

    entry: Mapped[FormEntry] = relationship()
    messages: Mapped[list[QueryMessage]] = relationship(
        back_populates="query", order_by="QueryMessage.id"
    )

    def __repr__(self) -> str:
        return f"<Query {self.id} {self.item_path} {self.status}>"


class QueryMessage(ModelBase):
    """One message in a query's thread, and what it did to the query."""

    __tablename__ = "query_messages"
    __audit__ = Audited(
        "query_message",
        context=lambda message: _query_context(message.query),
        describe=lambda message: f"on query #{message.query_id}",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("queries.id"), index=True)
    action: Mapped[QueryAction] = mapped_column(enum_by_value(QueryAction))
    text: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The name shown in the thread ("System" for an edit check's message).
    author_name: Mapped[str] = mapped_column(String(200))
    written_at: Mapped[datetime] = mapped_column(default=utcnow)

    query: Mapped[Query] = relationship(back_populates="messages")


class SourceVerification(ModelBase):
    """A monitor's mark that an item (or, with an empty ``item_path``, a whole form
    entry) agrees with the source documents. ``content_sha256`` is the digest of
    what was verified; a later change to it makes the mark no longer current
    (``superseded_at``), which the form shows."""

    __tablename__ = "source_verifications"
    __audit__ = Audited(
        "source_verification",
        context=lambda mark: _entry_context(mark.entry),
        describe=lambda mark: mark.item_path or "whole form",
        details=lambda mark: {"item": mark.item_path},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    form_entry_id: Mapped[int] = mapped_column(ForeignKey("form_entries.id"), index=True)
    item_path: Mapped[str] = mapped_column(String(100), default="")
    content_sha256: Mapped[str] = mapped_column(String(64))
    verified_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    verified_by_name: Mapped[str] = mapped_column(String(200))
    verified_at: Mapped[datetime] = mapped_column(default=utcnow)
    superseded_at: Mapped[datetime | None]

    entry: Mapped[FormEntry] = relationship()


class SignatureMeaning(StrEnum):
    """What a signer means by signing (21 CFR 11.50(a)(3))."""

    REVIEWED = "reviewed"
    APPROVED = "approved"
    RESPONSIBLE = "responsible"

    @property
    def label(self) -> str:
        return {
            "reviewed": "I have reviewed this data and confirm it is accurate and complete",
            "approved": "I approve this data",
            "responsible": "I take responsibility for this data as principal investigator",
        }[self.value]


class Signature(ModelBase):
    """An electronic signature of one form entry or of a participant's whole casebook
    (``form_entry_id`` empty). It binds the SHA-256 of the signed content; any later
    change to that content makes it invalid (``invalidated_at``), visibly."""

    __tablename__ = "signatures"
    __audit__ = Audited(
        "signature",
        context=lambda signature: AuditContext(
            study_id=signature.participant.study_id,
            site_id=signature.participant.site_id,
            participant_id=signature.participant_id,
            form=signature.entry.form_key if signature.entry is not None else "",
        ),
        describe=lambda signature: f"by {signature.signer_name}",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    form_entry_id: Mapped[int | None] = mapped_column(ForeignKey("form_entries.id"), index=True)
    signer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The signer's printed name and role when they signed (11.50(a)(1)).
    signer_name: Mapped[str] = mapped_column(String(200))
    signer_role: Mapped[str] = mapped_column(String(64))
    meaning: Mapped[SignatureMeaning] = mapped_column(enum_by_value(SignatureMeaning))
    content_sha256: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)
    invalidated_at: Mapped[datetime | None]
    invalidated_reason: Mapped[str] = mapped_column(Text, default="")

    participant: Mapped[Participant] = relationship()
    entry: Mapped[FormEntry | None] = relationship()

    @property
    def valid(self) -> bool:
        return self.invalidated_at is None


class SamplingMethod(StrEnum):
    """Which participants' forms a study's monitors verify against source."""

    ALL = "all"
    FIRST = "first"
    PERCENTAGE = "percentage"

    @property
    def label(self) -> str:
        return {
            "all": "Every participant",
            "first": "The first participants at each site",
            "percentage": "A percentage of participants at each site",
        }[self.value]


class SourceVerificationPlan(ModelBase):
    """A study's SDV sample: every participant, the first ``count`` registered at each
    site, or ``percentage`` per cent of each site's participants spread evenly through
    the order they were registered. A study without a plan verifies everyone."""

    __tablename__ = "source_verification_plans"
    __audit__ = Audited(
        "source_verification_plan",
        context=lambda plan: AuditContext(study_id=plan.study_id),
        describe=lambda plan: plan.method.value,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), unique=True)
    method: Mapped[SamplingMethod] = mapped_column(enum_by_value(SamplingMethod))
    count: Mapped[int | None]
    percentage: Mapped[int | None]
