"""Form entries: finding a participant's CRF at an event, and saving it.

A save is all or nothing. It is refused, with nothing written, when the entry was
saved by someone else since the person loaded it (a conflict: both versions are
shown), when a value breaks a hard rule, when "complete" is asked for and a required
item is unanswered, or when a complete form is changed without a reason for each
changed item. Otherwise every changed value is written (each with its reason, through
the audit trail), calculated items are recomputed, values of items that no longer
show are cleared, system queries follow the soft checks, and SDV marks and
signatures over changed data stop being current.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from bhp_ctms.audit.capture import change_reason
from bhp_ctms.crf.definition.model import FormDefinition, Item
from bhp_ctms.crf.evaluation import Evaluation, evaluate_entry, item_label, split_path
from bhp_ctms.crf.expressions import compiled
from bhp_ctms.crf.models import (
    REASON_NEEDED_STATUSES,
    FormEntry,
    FormStatus,
    FormVersion,
    ItemValue,
)
from bhp_ctms.db import utcnow
from bhp_ctms.participants.models import Participant
from bhp_ctms.studies.services import protocol_definition

_DEFINITIONS: dict[tuple[int, str], FormDefinition] = {}

RECALCULATED = "Recalculated after a change to {items}"
NO_LONGER_APPLIES = "No longer applies: hidden by the form's show-if logic"


def form_definition(version: FormVersion) -> FormDefinition:
    """A form version's definition, parsed once (versions never change)."""
    key = (version.id, version.sha256)
    definition = _DEFINITIONS.get(key)
    if definition is None:
        definition = FormDefinition.from_json(version.definition)
        _DEFINITIONS[key] = definition
    return definition


def form_version_for(db: Session, participant: Participant, form_code: str) -> FormVersion | None:
    """The version of a form that the participant's protocol version uses."""
    study = protocol_definition(participant.protocol_version)
    sha256 = next((form.sha256 for form in study.forms if form.code == form_code), None)
    if sha256 is None:
        return None
    return db.scalars(
        select(FormVersion)
        .where(
            FormVersion.study_id == participant.study_id,
            FormVersion.form_code == form_code,
            FormVersion.sha256 == sha256,
        )
        # The definition (a large JSON document) is read only if form_definition has
        # not parsed it yet, which is once per process.
        .options(defer(FormVersion.definition))
    ).first()


def find_entry(
    db: Session,
    participant: Participant,
    event_code: str,
    instance: int,
    form_code: str,
    *,
    for_update: bool = False,
) -> FormEntry | None:
    statement = select(FormEntry).where(
        FormEntry.participant_id == participant.id,
        FormEntry.event_code == event_code,
        FormEntry.event_instance == instance,
        FormEntry.form_code == form_code,
    )
    if for_update:
        # Two saves of one entry queue here, so the second sees the first's version.
        statement = statement.with_for_update()
    return db.scalars(statement).first()


def stored_values(entry: FormEntry | None) -> tuple[dict[str, str], dict[str, str]]:
    """An entry's values and missing-data codes, by item path."""
    values: dict[str, str] = {}
    missing: dict[str, str] = {}
    for row in entry.values if entry is not None else ():
        if row.value:
            values[row.item_path] = row.value
        if row.missing_code:
            missing[row.item_path] = row.missing_code
    return values, missing


def context_values(
    db: Session,
    participant: Participant,
    event_code: str,
    instance: int,
    definition: FormDefinition,
) -> dict[str, str]:
    """Values of other forms' items that this form's expressions refer to: from the
    same event first, else the participant's latest value of the item."""
    own = {item.code for item in definition.items}
    expressions = [item.show_if for item in definition.items] + [
        item.calculation for item in definition.items
    ]
    expressions += [group.show_if for group in definition.groups]
    expressions += [check.condition for check in definition.checks]
    wanted = {
        reference.item
        for text in expressions
        if text
        for reference in compiled(text).references
        if reference.item not in own
    }
    if not wanted:
        return {}
    rows = db.execute(
        select(ItemValue.item_path, ItemValue.value, FormEntry.event_code, FormEntry.event_instance)
        .join(FormEntry, ItemValue.form_entry_id == FormEntry.id)
        .where(
            FormEntry.participant_id == participant.id,
            ItemValue.item_path.in_(wanted),
            ItemValue.value.is_not(None),
        )
        .order_by(FormEntry.id)
    ).all()
    found: dict[str, str] = {}
    same_event: dict[str, str] = {}
    for path, value, row_event, row_instance in rows:
        found[path] = value or ""
        if row_event == event_code and row_instance == instance:
            same_event[path] = value or ""
    return {**found, **same_event}


@dataclass
class Submission:
    """What a person sent: canonical values and missing-data codes by item path, the
    reasons they gave for changes, and the entry version their page showed (None for
    a form not started)."""

    values: Mapping[str, str]
    missing: Mapping[str, str]
    reasons: Mapping[str, str] = field(default_factory=dict)
    base_version: int | None = None
    mark_complete: bool = False


@dataclass
class SaveResult:
    """How a save went. ``saved`` when it was written; otherwise ``conflict`` (someone
    saved first: ``theirs`` holds the stored values), ``evaluation`` with hard
    failures or missing required items, or ``reasons_needed`` naming the changed
    items of a complete form that lack a reason."""

    saved: bool
    entry: FormEntry | None
    evaluation: Evaluation | None = None
    conflict: bool = False
    theirs: dict[str, str] = field(default_factory=dict)
    theirs_missing: dict[str, str] = field(default_factory=dict)
    reasons_needed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


class EntryLocked(Exception):
    """A locked form entry cannot change."""


def save_entry(
    db: Session,
    participant: Participant,
    event_code: str,
    instance: int,
    form_code: str,
    submission: Submission,
    *,
    today: date | None = None,
) -> SaveResult:
    """Save a form entry (see the module's docstring for when a save is refused)."""
    entry = find_entry(db, participant, event_code, instance, form_code, for_update=True)
    if entry is not None and entry.status == FormStatus.LOCKED:
        raise EntryLocked(entry.form_key)
    if entry is not None and submission.base_version != entry.version:
        theirs, theirs_missing = stored_values(entry)
        return SaveResult(False, entry, conflict=True, theirs=theirs, theirs_missing=theirs_missing)
    if entry is None and submission.base_version is not None:
        # The page showed an entry that is gone: cannot happen without a deletion.
        return SaveResult(False, None, conflict=True)
    version = (
        entry.form_version if entry is not None else form_version_for(db, participant, form_code)
    )
    if version is None:
        raise LookupError(f"form {form_code} is not part of the participant's protocol")
    definition = form_definition(version)
    context = context_values(db, participant, event_code, instance, definition)
    evaluation = evaluate_entry(
        definition, submission.values, submission.missing, context=context, today=today
    )
    was_complete = entry is not None and entry.status in REASON_NEEDED_STATUSES
    completing = submission.mark_complete or was_complete
    if evaluation.hard_failures or (completing and not evaluation.completable):
        return SaveResult(False, entry, evaluation=evaluation)
    old_values, old_missing = stored_values(entry)
    changed = _changed_paths(old_values, old_missing, evaluation)
    entered = _entered_changes(definition, changed, evaluation)
    if was_complete:
        lacking = [path for path in entered if not submission.reasons.get(path, "").strip()]
        if lacking:
            return SaveResult(False, entry, evaluation=evaluation, reasons_needed=lacking)
    if entry is None:
        entry = FormEntry(
            participant=participant,
            event_code=event_code,
            event_instance=instance,
            form_code=form_code,
            form_version=version,
            status=FormStatus.IN_PROGRESS,
        )
        # Flushed with its values: one flush, one batch of audit events.
        db.add(entry)
    _write_values(db, entry, definition, changed, entered, evaluation, submission, was_complete)
    if submission.mark_complete and entry.status == FormStatus.IN_PROGRESS:
        entry.status = FormStatus.COMPLETE
    entry.updated_at = utcnow()
    db.flush()
    _after_save(db, entry, evaluation, set(changed))
    return SaveResult(True, entry, evaluation=evaluation, changed=changed)


def _changed_paths(
    old_values: Mapping[str, str], old_missing: Mapping[str, str], evaluation: Evaluation
) -> list[str]:
    paths = {*old_values, *old_missing, *evaluation.values, *evaluation.missing}
    return sorted(
        path
        for path in paths
        if old_values.get(path, "") != evaluation.values.get(path, "")
        or old_missing.get(path, "") != evaluation.missing.get(path, "")
    )


def _item_of(definition: FormDefinition, path: str) -> Item | None:
    _, _, code = split_path(path)
    try:
        return definition.item(code)
    except KeyError:
        return None


def _entered_changes(
    definition: FormDefinition,
    changed: list[str],
    evaluation: Evaluation,
) -> list[str]:
    """The changed paths a person changed (not recalculated, not cleared by show-if)."""
    entered = []
    for path in changed:
        item = _item_of(definition, path)
        if item is None or not item.entered or path in evaluation.hidden:
            continue
        entered.append(path)
    return entered


def _write_values(
    db: Session,
    entry: FormEntry,
    definition: FormDefinition,
    changed: list[str],
    entered: list[str],
    evaluation: Evaluation,
    submission: Submission,
    was_complete: bool,
) -> None:
    rows = {row.item_path: row for row in entry.values}
    by_reason: dict[str, list[str]] = {}
    for path in changed:
        if not was_complete:
            reason = ""
        elif path in entered:
            reason = submission.reasons[path].strip()
        elif path in evaluation.hidden:
            reason = NO_LONGER_APPLIES
        else:
            labels = ", ".join(item_label(definition, entered_path) for entered_path in entered)
            reason = RECALCULATED.format(items=labels or "other items")
        by_reason.setdefault(reason, []).append(path)
    for reason, paths in by_reason.items():
        for path in paths:
            value = evaluation.values.get(path) or None
            missing = evaluation.missing.get(path) or None
            row = rows.get(path)
            if row is None:
                row = ItemValue(item_path=path, value=value, missing_code=missing)
                # Added before it joins the entry, so that joining does not cascade
                # through the entry's other values (a cost that grows with each one).
                db.add(row)
                entry.values.append(row)
            else:
                row.value = value
                row.missing_code = missing
        if reason:
            with change_reason(db, reason):
                pass
        else:
            db.flush()


def _after_save(db: Session, entry: FormEntry, evaluation: Evaluation, changed: set[str]) -> None:
    from bhp_ctms.crf.queries import sync_system_queries
    from bhp_ctms.crf.signatures import invalidate_signatures
    from bhp_ctms.crf.verification import supersede_verifications

    sync_system_queries(db, entry, evaluation.soft_failures)
    if changed:
        supersede_verifications(db, entry, changed)
        invalidate_signatures(db, entry, changed)
