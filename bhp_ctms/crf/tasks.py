"""The data-quality run: every stored form entry of a study re-checked against its
form version's edit checks by a worker, raising system queries for new failures and
closing those whose check now passes.

A run is requested from its page by a data manager, and by itself
(:func:`enqueue_data_quality_run`) when a new protocol version of a study with data
is loaded (:func:`recheck_after_load`), whether by ``ctms study load``, ``ctms demo``
or otherwise, and when a participant is moved to a newer protocol version
(:func:`recheck_after_migration`: that participant's entries only). The loading and
migration services notify their events through the request their session belongs
to; the runs are sent to the workers once that transaction commits, from a command
as from a page. Its progress and result are kept in the study's audit trail, as
events of the entity ``data_quality_run`` (requested, started, finished or failed,
the counts in the finished event's details), beside the queries it raised and
closed: who asked for it, when, and what it did stay on record with the data it
touched.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from bhp_ctms.audit.capture import current_actor
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor, record_event
from bhp_ctms.crf.entry import context_values, form_definition, stored_values
from bhp_ctms.crf.evaluation import evaluate_entry
from bhp_ctms.crf.models import FormEntry, FormStatus
from bhp_ctms.crf.queries import synchronise_system_queries, system_queries_of
from bhp_ctms.locks.guard import held_locks
from bhp_ctms.locks.state import ActiveLocks, active_locks, unlocked_entries
from bhp_ctms.participants.migration import ParticipantsMigrated
from bhp_ctms.participants.models import Participant
from bhp_ctms.studies.loading import StudyVersionLoaded
from bhp_ctms.tasks import is_transient_error, task

log = logging.getLogger(__name__)

# Entries re-checked per transaction: each batch commits, so that the run never holds
# the study's audit chain (which every audited write appends to) for long.
DATA_QUALITY_BATCH = 200

RUN_ENTITY = "data_quality_run"
REQUESTED = f"{RUN_ENTITY}.requested"
STARTED = f"{RUN_ENTITY}.started"
FINISHED = f"{RUN_ENTITY}.finished"
FAILED = f"{RUN_ENTITY}.failed"


class RunTrigger(StrEnum):
    """Why a run was asked for."""

    REQUESTED = "requested"
    # Runs recorded before protocol versions were loaded as such keep this trigger.
    FORMS_LOADED = "forms_loaded"
    PROTOCOL_LOADED = "protocol_loaded"
    PARTICIPANTS_MIGRATED = "participants_migrated"

    @property
    def label(self) -> str:
        return {
            "requested": "Asked for on this page",
            "forms_loaded": "The study's forms were loaded",
            "protocol_loaded": "A new protocol version was loaded",
            "participants_migrated": "A participant was moved to a newer protocol version",
        }[self.value]


@dataclass(frozen=True)
class RunSummary:
    """What a data-quality run did."""

    entries_checked: int = 0
    queries_raised: int = 0
    queries_closed: int = 0

    def __add__(self, other: RunSummary) -> RunSummary:
        return RunSummary(
            self.entries_checked + other.entries_checked,
            self.queries_raised + other.queries_raised,
            self.queries_closed + other.queries_closed,
        )


# -- the run itself ----------------------------------------------------------------------


def run_data_quality(
    db: Session,
    study_id: int,
    *,
    participant_ids: Sequence[int] | None = None,
    after_batch: Callable[[], None] | None = None,
    today: date | None = None,
) -> RunSummary:
    """Re-check every form entry of a study (or of ``participant_ids`` in it) against
    the edit checks of its form version, with its data as they stand now (other
    forms' values included): raise a system query for each soft failure that has
    none, and close each system query whose check now passes (see
    :func:`bhp_ctms.crf.queries.sync_system_queries`). Locked entries are left alone:
    their data can no longer change. Idempotent: a second run raises and closes
    nothing.

    ``after_batch`` is called after each batch of entries (the task commits there).
    """
    entry_ids = list(
        db.scalars(
            _entries_to_check(study_id, participant_ids, active_locks(db, study_id)).order_by(
                FormEntry.id
            )
        )
    )
    summary = RunSummary()
    for start in range(0, len(entry_ids), DATA_QUALITY_BATCH):
        batch = entry_ids[start : start + DATA_QUALITY_BATCH]
        summary += _recheck(db, study_id, batch, today)
        db.flush()
        if after_batch is not None:
            after_batch()
    return summary


def _entries_to_check(
    study_id: int, participant_ids: Sequence[int] | None, locks: ActiveLocks
) -> Select[int]:
    """The ids of the entries a run checks: those no lock covers, of the study or of
    some of its participants."""
    statement = (
        select(FormEntry.id)
        .join(Participant, FormEntry.participant_id == Participant.id)
        .where(
            Participant.study_id == study_id,
            FormEntry.status != FormStatus.LOCKED,
            unlocked_entries(locks, FormEntry.participant_id, Participant.site_id, FormEntry.id),
        )
    )
    if participant_ids is not None:
        statement = statement.where(Participant.id.in_(participant_ids))
    return statement


def _recheck(
    db: Session,
    study_id: int,
    entry_ids: Sequence[int],
    today: date | None,
) -> RunSummary:
    entries = db.scalars(
        select(FormEntry)
        .where(FormEntry.id.in_(entry_ids))
        .options(
            selectinload(FormEntry.values),
            selectinload(FormEntry.form_version),
            selectinload(FormEntry.participant),
        )
        .order_by(FormEntry.id)
        # A save of one of these entries waits for the batch (and the batch for it), so
        # the two never raise the same query twice.
        .with_for_update(of=FormEntry)
    ).all()
    # An entry locked since the run began is left alone too: the locks are read as they
    # stay until this batch commits (bhp_ctms.locks.guard), after the entries' row locks
    # as a save takes them, so none of the batch's writes is refused.
    locks = held_locks(db, study_id)
    if locks:
        entries = [
            entry
            for entry in entries
            if locks.of_participant(entry.participant, entry.form_key) is None
        ]
    existing = system_queries_of(db, [entry.id for entry in entries])
    raised = closed = 0
    for entry in entries:
        definition = form_definition(entry.form_version)
        values, missing = stored_values(entry)
        context = context_values(
            db, entry.participant, entry.event_code, entry.event_instance, definition
        )
        evaluation = evaluate_entry(definition, values, missing, context=context, today=today)
        result = synchronise_system_queries(db, entry, evaluation.soft_failures, existing[entry.id])
        raised += result.raised
        closed += result.closed
    return RunSummary(len(entries), raised, closed)


# -- asking for a run, and the worker's side ----------------------------------------------


def enqueue_data_quality_run(
    request: Any,
    study_id: int,
    *,
    trigger: RunTrigger = RunTrigger.PROTOCOL_LOADED,
    version: str = "",
    participants: Mapping[int, str] | None = None,
) -> str:
    """Ask a worker for a data-quality run of a study once this request's transaction
    commits (nothing is sent if it aborts); returns the run's id. The request is
    recorded at once, so the run's page shows it queued, with the protocol version
    label that led to it (``version``) if any.

    ``participants`` (their study IDs by id) limits the run to their entries.
    """
    run_id = uuid.uuid4().hex
    details: dict[str, Any] = {"trigger": trigger.value}
    if version:
        details["version"] = version
    if participants is not None:
        details["participants"] = sorted(participants.values())
    record_event(
        request.db,
        current_actor(request.db),
        REQUESTED,
        entity_type=RUN_ENTITY,
        entity_id=run_id,
        study_id=study_id,
        details=details,
    )
    if participants is None:
        request.enqueue(run_data_quality_task, study_id, run_id)
    else:
        request.enqueue(run_data_quality_task, study_id, run_id, sorted(participants))
    return run_id


def _anything_to_check(db: Session, study_id: int, participant_ids: Sequence[int] | None) -> bool:
    statement = _entries_to_check(study_id, participant_ids, active_locks(db, study_id))
    return db.scalar(statement.limit(1)) is not None


def recheck_after_load(event: StudyVersionLoaded) -> None:
    """A new protocol version of a study: re-check the data stored (a new version of
    a form, or of an entry's context, may change what its checks find). A study with
    no form entered yet, such as one just created, has nothing to check: no run."""
    if event.created_study or not _anything_to_check(event.request.db, event.study_id, None):
        return
    enqueue_data_quality_run(
        event.request,
        event.study_id,
        trigger=RunTrigger.PROTOCOL_LOADED,
        version=event.version_label,
    )


def recheck_after_migration(event: ParticipantsMigrated) -> None:
    """Participants moved to a newer protocol version: re-check their entries (none
    entered: no run)."""
    if not _anything_to_check(event.request.db, event.study_id, event.participant_ids):
        return
    enqueue_data_quality_run(
        event.request,
        event.study_id,
        trigger=RunTrigger.PARTICIPANTS_MIGRATED,
        version=event.version_label,
        participants=dict(zip(event.participant_ids, event.participant_codes, strict=True)),
    )


def _record(
    db: Session, actor: AuditActor, action: str, study_id: int, run_id: str, **details: Any
) -> None:
    record_event(
        db,
        actor,
        action,
        entity_type=RUN_ENTITY,
        entity_id=run_id,
        study_id=study_id,
        details=details,
    )


@task()
def run_data_quality_task(
    request: Any, study_id: int, run_id: str, participant_ids: list[int] | None = None
) -> dict[str, int] | None:
    """A worker's data-quality run of a study (of ``participant_ids`` only, if given);
    returns its counts (None if it failed).

    Idempotent under redelivery: a run already finished is not done again, and one
    left unfinished by a worker that died is simply run again (the run itself raises
    nothing twice). An unexpected error is recorded as the run's result, so its page
    reports it instead of waiting for ever; a transient database error is left to the
    task's retries.
    """
    db = request.db
    actor = current_actor(db)
    done = _finished_run(db, run_id)
    if done is not None:
        return asdict(done.summary) if done.summary is not None else None
    _record(db, actor, STARTED, study_id, run_id)
    # Committed at once, so the run's page shows it running while it works.
    request.tm.commit()
    request.tm.begin()

    def commit_batch() -> None:
        request.tm.commit()
        request.tm.begin()

    try:
        summary = run_data_quality(
            request.db, study_id, participant_ids=participant_ids, after_batch=commit_batch
        )
    except Exception as error:
        if is_transient_error(error):
            raise
        log.exception("data-quality run %s of study %s could not finish", run_id, study_id)
        # The failed work's transaction may be unusable (PostgreSQL aborts it on an error).
        request.tm.abort()
        request.tm.begin()
        _record(
            request.db, actor, FAILED, study_id, run_id, error=f"{type(error).__name__}: {error}"
        )
        return None
    _record(request.db, actor, FINISHED, study_id, run_id, **asdict(summary))
    return asdict(summary)


# -- the runs' records -----------------------------------------------------------------------


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return self.value.capitalize()


@dataclass
class DataQualityRun:
    """One run as its audit events tell it."""

    run_id: str
    requested_at: datetime
    requested_by: str
    trigger: str
    # The protocol version label that led to the run, and the study IDs of the
    # participants it was limited to (none: every participant).
    version: str = ""
    participants: tuple[str, ...] = ()
    status: RunStatus = RunStatus.QUEUED
    started_at: datetime | None = None
    finished_at: datetime | None = None
    summary: RunSummary | None = None
    problem: str = ""

    @property
    def trigger_label(self) -> str:
        """Why the run was made, in a sentence."""
        if self.trigger == RunTrigger.PROTOCOL_LOADED and self.version:
            return f"Protocol version {self.version} was loaded"
        if self.trigger == RunTrigger.PARTICIPANTS_MIGRATED and self.participants:
            moved = ", ".join(self.participants)
            to = f"protocol version {self.version}" if self.version else "a newer protocol version"
            return f"{moved} moved to {to} (their forms only)"
        try:
            return RunTrigger(self.trigger).label
        except ValueError:
            return self.trigger

    @property
    def pending(self) -> bool:
        return self.status in (RunStatus.QUEUED, RunStatus.RUNNING)


def _runs(events: Sequence[AuditEvent]) -> dict[str, DataQualityRun]:
    runs: dict[str, DataQualityRun] = {}
    for event in events:
        details = event.details
        if event.action == REQUESTED:
            runs[event.entity_id] = DataQualityRun(
                run_id=event.entity_id,
                requested_at=event.occurred_at,
                requested_by=event.actor_name,
                trigger=str(details.get("trigger", "")),
                version=str(details.get("version", "")),
                participants=tuple(str(code) for code in details.get("participants", ())),
            )
            continue
        run = runs.get(event.entity_id)
        if run is None:
            continue
        if event.action == STARTED:
            run.status = RunStatus.RUNNING
            run.started_at = event.occurred_at
        elif event.action == FINISHED:
            run.status = RunStatus.FINISHED
            run.finished_at = event.occurred_at
            run.summary = RunSummary(
                int(details.get("entries_checked", 0)),
                int(details.get("queries_raised", 0)),
                int(details.get("queries_closed", 0)),
            )
        elif event.action == FAILED:
            run.status = RunStatus.FAILED
            run.finished_at = event.occurred_at
            run.problem = str(details.get("error", ""))
    return runs


def recent_runs(db: Session, study_id: int, limit: int = 20) -> list[DataQualityRun]:
    """A study's latest data-quality runs, newest first."""
    # Through the index on (entity_type, entity_id): runs are few beside the study's
    # other events.
    events = db.scalars(
        select(AuditEvent)
        .where(AuditEvent.entity_type == RUN_ENTITY, AuditEvent.study_id == study_id)
        .order_by(AuditEvent.id)
    ).all()
    runs = list(_runs(events).values())
    runs.reverse()
    return runs[:limit]


def _finished_run(db: Session, run_id: str) -> DataQualityRun | None:
    events = db.scalars(
        select(AuditEvent)
        .where(AuditEvent.entity_type == RUN_ENTITY, AuditEvent.entity_id == run_id)
        .order_by(AuditEvent.id)
    ).all()
    run = _runs(events).get(run_id)
    return run if run is not None and not run.pending else None
