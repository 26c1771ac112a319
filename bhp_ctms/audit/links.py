"""Links from a record's page to the audit history of its values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bhp_ctms.permissions import Permissions


def audit_history_url(
    request: Any, study_code: str, entity_type: str, entity_id: int | str, field: str = ""
) -> str:
    """The history page of one record of a study, or of one of its values."""
    query: dict[str, Any] = {"entity_type": entity_type, "entity_id": entity_id}
    if field:
        query["field"] = field
    return str(request.route_path("audit_history", code=study_code, _query=query))


def value_history_links(
    request: Any, study_code: str, entity_type: str, entity_id: int, fields: Iterable[str]
) -> dict[str, str]:
    """Each named value's history page, for those who may read the audit trail (an empty
    mapping for everyone else, so pages show no link they could not follow)."""
    if not request.has_permission(Permissions.AUDIT_VIEW):
        return {}
    return {
        field: audit_history_url(request, study_code, entity_type, entity_id, field)
        for field in fields
    }
