"""Randomisation: allocation lists, allocations, emergency unblindings.

An allocation list is made once, from a recorded seed or uploaded by the unblinded
statistician, and never changes: its SHA-256 is recorded in the audit trail when it is
made, and its entries can be hashed again at any time to show they are the ones
recorded. Allocations take the next entry of their stratum under a lock on the
stratum's counter; the unique constraints are the last line of defence against a
participant allocated twice or an entry used twice.

Columns that reveal an arm are named in ``blinded``: the audit trail masks them for
blinded readers, and the views never show them to blinded roles.
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
    from bhp_ctms.accounts.models import User
    from bhp_ctms.participants.models import Participant


class ListSource(StrEnum):
    GENERATED = "generated"
    UPLOADED = "uploaded"

    @property
    def label(self) -> str:
        return {"generated": "Generated from a seed", "uploaded": "Uploaded"}[self.value]


class AllocationList(ModelBase):
    """A study's allocation list. Its entries are written once, with it; the list's
    ``sha256`` (of :func:`bhp_ctms.randomisation.methods.lists.write_list_csv`) binds
    them. The seed is recorded in the audit trail only as a digest, and both are
    masked for blinded readers."""

    __tablename__ = "allocation_lists"
    __audit__ = Audited(
        "allocation_list",
        context=lambda allocation_list: AuditContext(study_id=allocation_list.study_id),
        secret=frozenset({"seed"}),
        # The list is made by a published algorithm: its seed, even as a digest (a
        # seed people choose is soon guessed), or its SHA-256 would let a blinded
        # reader test guesses at the list. Both are masked for them.
        blinded=frozenset({"seed", "sha256"}),
        describe=lambda allocation_list: f"#{allocation_list.id}",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    method: Mapped[str] = mapped_column(String(32))
    source: Mapped[ListSource] = mapped_column(enum_by_value(ListSource))
    seed: Mapped[str] = mapped_column(String(200), default="")
    # The name of the uploaded file, for the statistician's records.
    filename: Mapped[str] = mapped_column(String(200), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    entry_count: Mapped[int]
    # The list in use; an earlier list is replaced only while nothing was allocated from it.
    active: Mapped[bool] = mapped_column(default=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    created_by: Mapped[User | None] = relationship()


class ListEntry(ModelBase):
    """One position of an allocation list: the ``sequence``-th allocation of a stratum.

    Not audited row by row: entries are written once, with their list, whose creation
    is audited with the SHA-256 that covers every entry; no code changes them."""

    __tablename__ = "allocation_list_entries"
    __table_args__ = (
        UniqueConstraint("list_id", "stratum", "sequence"),
        UniqueConstraint("list_id", "kit_code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("allocation_lists.id"), index=True)
    stratum: Mapped[str] = mapped_column(String(200))
    sequence: Mapped[int]
    arm_code: Mapped[str] = mapped_column(String(32))
    # Empty (NULL) when the study does not use kit codes.
    kit_code: Mapped[str | None] = mapped_column(String(64))
    block: Mapped[int | None]
    block_size: Mapped[int | None]


class StratumCounter(ModelBase):
    """The last position taken in a stratum of a list (minimisation: of the study).

    Allocation increments it in the transaction that writes the allocation, under a
    row lock (PostgreSQL) or the database's write lock (SQLite): concurrent allocations
    in one stratum take consecutive positions, and a rolled-back one gives its position
    back. Not audited: it is a counter; each position is recorded with its allocation.
    """

    __tablename__ = "allocation_stratum_counters"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    stratum: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(default=0)


def _allocation_reason(change: Change) -> str | None:
    if change.kind == "updated":
        return f"changing the allocation of participant {change.obj.participant.code}"
    return None


class Allocation(ModelBase):
    """A participant's allocation: exactly one, ever. One made in error is marked
    invalid, with a reason; its list position stays used."""

    __tablename__ = "allocations"
    __table_args__ = (
        UniqueConstraint("participant_id"),
        UniqueConstraint("list_entry_id"),
        UniqueConstraint("study_id", "stratum", "sequence"),
    )
    __audit__ = Audited(
        "allocation",
        context=lambda allocation: AuditContext(
            study_id=allocation.study_id,
            site_id=allocation.site_id,
            participant_id=allocation.participant_id,
        ),
        blinded=frozenset({"arm_code", "scores"}),
        reason_rule=_allocation_reason,
        describe=lambda allocation: f"of participant {allocation.participant.code}",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    method: Mapped[str] = mapped_column(String(32))
    list_entry_id: Mapped[int | None] = mapped_column(ForeignKey("allocation_list_entries.id"))
    stratum: Mapped[str] = mapped_column(String(200))
    # The position in the stratum's list (minimisation: the study's n-th allocation).
    sequence: Mapped[int]
    arm_code: Mapped[str] = mapped_column(String(32))
    kit_code: Mapped[str | None] = mapped_column(String(64))
    # The participant's levels of the factors (site, sex, ...) used to allocate.
    factor_levels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # Minimisation: each arm's imbalance score and how the arm was chosen.
    scores: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    allocated_at: Mapped[datetime] = mapped_column(default=utcnow)
    allocated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    invalidated_at: Mapped[datetime | None]
    invalidated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    invalid_reason: Mapped[str] = mapped_column(Text, default="")

    participant: Mapped[Participant] = relationship()
    allocated_by: Mapped[User | None] = relationship(foreign_keys=[allocated_by_id])
    invalidated_by: Mapped[User | None] = relationship(foreign_keys=[invalidated_by_id])
    unblindings: Mapped[list[Unblinding]] = relationship(
        back_populates="allocation", order_by="Unblinding.id"
    )

    @property
    def valid(self) -> bool:
        return self.invalidated_at is None


class Unblinding(ModelBase):
    """An emergency unblinding: who learned a participant's arm, when and why. The arm
    itself is not stored here: it is the allocation's."""

    __tablename__ = "unblindings"
    __audit__ = Audited(
        "unblinding",
        context=lambda unblinding: AuditContext(
            study_id=unblinding.allocation.study_id,
            site_id=unblinding.allocation.site_id,
            participant_id=unblinding.allocation.participant_id,
        ),
        describe=lambda unblinding: f"of participant {unblinding.allocation.participant.code}",
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    allocation_id: Mapped[int] = mapped_column(ForeignKey("allocations.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The requester's printed name and role when they asked.
    user_name: Mapped[str] = mapped_column(String(200))
    user_role: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    unblinded_at: Mapped[datetime] = mapped_column(default=utcnow)

    allocation: Mapped[Allocation] = relationship(back_populates="unblindings")
