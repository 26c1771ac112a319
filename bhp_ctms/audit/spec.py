"""How a model declares that it is audited (see :mod:`bhp_ctms.audit.capture`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.orm import Mapper

ChangeKind = Literal["created", "updated", "deleted"]


@dataclass(frozen=True)
class AuditContext:
    """Where an audited row belongs: the ids its events are filed under."""

    study_id: int | None = None
    site_id: int | None = None
    participant_id: int | None = None
    subject_user_id: int | None = None
    form: str = ""


@dataclass(frozen=True)
class Change:
    """One row's change in a flush: which values went from what to what."""

    obj: Any
    kind: ChangeKind
    values: dict[str, tuple[Any, Any]]

    def before(self, name: str) -> Any:
        """A value as it was before this change."""
        if name in self.values:
            return self.values[name][0]
        return getattr(self.obj, name)


@dataclass(frozen=True)
class Audited:
    """How a model is audited.

    ``context`` files a row's events under its study, site, participant or user.
    ``exclude`` names columns that are operational, not data (a last-log-in time);
    ``secret`` names columns recorded only as a SHA-256 digest (a password hash).
    ``blinded`` names columns that reveal an allocation: audit views and exports
    mask their values for blinded roles.
    ``reason_rule`` says why a change needs a reason, or returns None; deletions
    always need one. ``details`` gives what else a reader of an event needs to know
    (the item a value belongs to), kept with each event.
    """

    entity_type: str
    context: Callable[[Any], AuditContext]
    exclude: frozenset[str] = frozenset()
    secret: frozenset[str] = frozenset()
    blinded: frozenset[str] = frozenset()
    reason_rule: Callable[[Change], str | None] | None = None
    describe: Callable[[Any], str] = field(default=lambda obj: f"#{obj.id}")
    details: Callable[[Any], dict[str, Any]] | None = None

    def columns(self, mapper: Mapper[Any]) -> list[str]:
        return [
            attr.key
            for attr in mapper.column_attrs
            if attr.key not in self.exclude and not attr.columns[0].primary_key
        ]

    def reason_needed(self, change: Change) -> str | None:
        if change.kind == "deleted":
            return f"deleting {self.entity_type} {self.describe(change.obj)}"
        return self.reason_rule(change) if self.reason_rule else None
