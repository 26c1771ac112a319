"""Masking allocation values in the audit trail for blinded roles.

A model names the columns that reveal an allocation in ``Audited.blinded``; the
trail records their values like any other, and every place that shows or exports
the trail masks them here for a reader who is blinded. A reader is blinded unless
they hold an unblinded role for the study.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from bhp_ctms.audit.capture import audited_specs
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.spec import Audited
from bhp_ctms.permissions import Role

MASKED = "Masked (blinded)"


class HeldRole(Protocol):
    """A membership as masking needs it: the role, and the study it holds for."""

    study_id: int | None
    role: Any


def blinded_fields(specs: Iterable[Audited] | None = None) -> frozenset[tuple[str, str]]:
    """The (entity type, field) pairs whose values are masked; by default every
    audited model's."""
    if specs is None:
        specs = [spec for _cls, spec in audited_specs()]
    return frozenset((spec.entity_type, name) for spec in specs for name in spec.blinded)


def is_blinded(memberships: Iterable[HeldRole], study_id: int | None) -> bool:
    """Whether a reader is blinded in a study (None: outside any study).

    Only an unblinded role held for that study, or for every study, unblinds.
    """
    return not any(
        (membership.study_id is None or membership.study_id == study_id)
        and not Role(membership.role).is_blinded
        for membership in memberships
    )


def displayed_values(
    event: AuditEvent, blinded: bool, fields: frozenset[tuple[str, str]] | None = None
) -> tuple[Any, Any]:
    """The event's old and new values (decoded from JSON) as a reader may see them.

    For a blinded reader a blinded field's values become :data:`MASKED`, and so do
    the blinded keys of a deletion's snapshot. An absent value stays None: that a
    value was empty reveals no allocation.
    """
    old, new = event.old, event.new
    if not blinded:
        return old, new
    if fields is None:
        fields = blinded_fields()
    if (event.entity_type, event.field) in fields:
        return _mask(old), _mask(new)
    if not event.field and isinstance(old, dict):
        old = {
            key: _mask(value) if (event.entity_type, key) in fields else value
            for key, value in old.items()
        }
    return old, new


def _mask(value: Any) -> Any:
    return None if value is None else MASKED
