"""Case report form data made directly in the database: a form version from a
definition built in code, and form entries with their item values.

Bound to the test's session by :func:`tests.factories.bind_factories` (through the
participant factory's session), like the other factories.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bhp_ctms.crf.definition.model import (
    Choice,
    EditCheck,
    FormDefinition,
    Item,
    ItemGroup,
    Range,
)
from bhp_ctms.crf.models import FormEntry, FormStatus, FormVersion, ItemValue
from bhp_ctms.participants.models import Participant
from tests.factories import ParticipantFactory

SOFT_WEIGHT = "Unusual weight: please check."
DBP_BELOW_SBP = "Diastolic pressure must be below systolic."


def vitals_definition(*, checks: bool = True, weight_limits: Range | None = None) -> FormDefinition:
    """A small vital signs form: a soft range on weight, a soft cross-field check on
    blood pressure, a choice, and a table of medications."""
    soft = weight_limits or Range("40", "160", SOFT_WEIGHT)
    return FormDefinition(
        code="vitals",
        title="Vital signs",
        version="1.0",
        description="",
        entries=(
            Item(
                code="weight",
                label="Weight",
                type="decimal",
                precision=1,
                units="kg",
                soft_range=soft,
                missing_codes=("not_done",),
            ),
            Item(code="sbp", label="Systolic blood pressure", type="integer", units="mmHg"),
            Item(code="dbp", label="Diastolic blood pressure", type="integer", units="mmHg"),
            Item(
                code="position",
                label="Position",
                type="single_choice",
                choices=(Choice("1", "Sitting"), Choice("2", "Lying")),
            ),
            Item(code="note", label="Read this first", type="descriptive"),
            ItemGroup(
                code="medications",
                label="Medications",
                items=(Item(code="drug", label="Drug", type="text"),),
            ),
        ),
        checks=(
            EditCheck(
                code="dbp_below_sbp",
                condition="[dbp] < [sbp]",
                message=DBP_BELOW_SBP,
                severity="soft",
                items=("dbp", "sbp"),
            ),
        )
        if checks
        else (),
    )


def _session() -> Session:
    return ParticipantFactory._meta.sqlalchemy_session  # type: ignore[attr-defined,no-any-return]


def store_form_version(study_id: int, definition: FormDefinition | None = None) -> FormVersion:
    """A form version of ``definition`` (the vitals form by default) in the study."""
    db = _session()
    definition = definition or vitals_definition()
    data = definition.to_json()
    sha256 = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    number = db.scalar(
        select(func.count(FormVersion.id)).where(
            FormVersion.study_id == study_id, FormVersion.form_code == definition.code
        )
    )
    version = FormVersion(
        study_id=study_id,
        form_code=definition.code,
        number=(number or 0) + 1,
        label=definition.version,
        title=definition.title,
        definition=data,
        sha256=sha256,
    )
    db.add(version)
    db.flush()
    return version


def form_entry(
    participant: Participant,
    version: FormVersion,
    values: Mapping[str, str] | None = None,
    *,
    event: str = "baseline",
    instance: int = 1,
    missing: Mapping[str, str] | None = None,
    status: FormStatus = FormStatus.IN_PROGRESS,
    created_at: datetime | None = None,
) -> FormEntry:
    """A form entry of the participant with these values (canonical text by item path)
    and missing-data codes."""
    db = _session()
    entry = FormEntry(
        participant=participant,
        event_code=event,
        event_instance=instance,
        form_code=version.form_code,
        form_version=version,
        status=FormStatus.IN_PROGRESS,
    )
    if created_at is not None:
        entry.created_at = created_at
    for path, value in (values or {}).items():
        entry.values.append(ItemValue(item_path=path, value=value))
    for path, code in (missing or {}).items():
        entry.values.append(ItemValue(item_path=path, value=None, missing_code=code))
    db.add(entry)
    db.flush()
    # Values added to a complete form need a reason for change; these were entered first.
    if status != FormStatus.IN_PROGRESS:
        entry.status = status
        db.flush()
    return entry
