"""Moving a participant's data to a newer protocol version, and what an amendment
would affect.

Data entered on a protocol version stays on it when an amendment is loaded. Moving a
participant to the new version is a separate step, one participant at a time: first a
plan (a dry run) lists each recorded visit that moves and each that cannot; only a
plan with nothing blocked can be applied, so no value is ever dropped silently. The
move is audited with its reason. Consent records and eligibility assessments stay on
the version they were made on: they record what happened under it. Once moved,
:class:`ParticipantsMigrated` is notified to the application's subscribers (the eCRF
domain asks for a data-quality run of the participant's stored data).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bhp_ctms.audit.capture import acting_as, change_reason
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.db import utc_today
from bhp_ctms.participants.models import Participant, Visit, VisitStatus
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.definition import Event
from bhp_ctms.studies.diff import DefinitionChange
from bhp_ctms.studies.models import ProtocolVersion
from bhp_ctms.studies.services import protocol_definition, protocol_versions
from bhp_ctms.templating import ukdate


class MigrationError(ValueError):
    """A participant cannot be moved to the protocol version asked for."""


@dataclass(frozen=True)
class VisitMove:
    """One recorded visit that moves: from the version it is on to the target's event."""

    visit: Visit
    source: ProtocolVersion
    event: Event

    @property
    def description(self) -> str:
        instance = f" {self.visit.instance}" if self.event.repeating else ""
        return f"{self.event.name}{instance} {_recorded(self.visit)}"


@dataclass(frozen=True)
class MigrationPlan:
    """What moving a participant to ``target`` would do: the visits that move, and
    why the move cannot be made (``blocked``: empty when it can)."""

    participant: Participant
    current: ProtocolVersion
    target: ProtocolVersion
    moves: list[VisitMove] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    @property
    def can_apply(self) -> bool:
        return not self.blocked


@dataclass(frozen=True)
class ParticipantsMigrated:
    """Participants of a study have been moved to the protocol version ``version_id``.

    Notified with the application registry of the request whose session moved them
    (``request``: a web request or a command's), inside its transaction: what a
    subscriber writes commits or aborts with the move, and work for later goes
    through ``request.enqueue``, sent only once the move has committed.
    """

    request: Any
    study_id: int
    version_id: int
    version_label: str
    participant_ids: tuple[int, ...]
    participant_codes: tuple[str, ...]


def _recorded(visit: Visit) -> str:
    if visit.status == VisitStatus.NOT_DONE or visit.visit_on is None:
        return f"recorded as not done on {ukdate(visit.recorded_at)}"
    return f"recorded on {ukdate(visit.visit_on)}"


def plan_migration(
    db: Session, participant: Participant, target: ProtocolVersion, today: date | None = None
) -> MigrationPlan:
    """The dry run of moving a participant's visits to the protocol version ``target``.

    Each visit not yet on ``target`` moves if its event exists there (within the
    event's maximum repeats); any other blocks the move, with a message saying which
    visit would be dropped. Raises :class:`MigrationError` when ``target`` is of
    another study, older than the participant's version, not yet in effect, or when
    there is nothing to move.
    """
    today = today or utc_today()
    code = participant.code
    if target.study_id != participant.study_id:
        raise MigrationError(f"Protocol version {target.label} is not a version of this study")
    versions = {version.id: version for version in protocol_versions(db, participant.study_id)}
    current = versions[participant.protocol_version_id]
    if target.number < current.number:
        raise MigrationError(
            f"{code} is on protocol version {current.label}: version {target.label} is older,"
            " and participants only move to a newer version"
        )
    if target.effective_on > today:
        raise MigrationError(
            f"Protocol version {target.label} takes effect on {ukdate(target.effective_on)}:"
            " participants can be moved to it from then"
        )
    visits = db.scalars(
        select(Visit)
        .where(Visit.participant_id == participant.id, Visit.protocol_version_id != target.id)
        .order_by(Visit.id)
    ).all()
    if current.id == target.id and not visits:
        raise MigrationError(f"{code} is already on protocol version {target.label}")
    definition = protocol_definition(target)
    plan = MigrationPlan(participant, current, target)
    for visit in visits:
        source = versions[visit.protocol_version_id]
        try:
            name = protocol_definition(source).event(visit.event_code).name
        except KeyError:
            name = visit.event_code
        instance = f" {visit.instance}" if visit.instance > 1 else ""
        what = f"{name}{instance} {_recorded(visit)}"
        if source.number > target.number:
            plan.blocked.append(
                f"{what} is on protocol version {source.label}, newer than {target.label}:"
                f" choose version {source.label} or later"
            )
            continue
        try:
            event = definition.event(visit.event_code)
        except KeyError:
            plan.blocked.append(
                f"{what} has no event in protocol version {target.label}: moving would drop it"
            )
            continue
        if event.repeating and event.max_repeats and visit.instance > event.max_repeats:
            plan.blocked.append(
                f"{what} is beyond the {event.max_repeats} allowed for {event.name} in"
                f" protocol version {target.label}: moving would drop it"
            )
        elif event.scheduled and visit.instance > 1:
            plan.blocked.append(
                f"{what} is a repeat of {event.name}, which happens once in protocol version"
                f" {target.label}: moving would drop it"
            )
        else:
            plan.moves.append(VisitMove(visit, source, event))
    return plan


def apply_migration(
    actor: AuditActor,
    db: Session,
    participant: Participant,
    target: ProtocolVersion,
    reason: str,
    today: date | None = None,
) -> MigrationPlan:
    """Move a participant and their recorded visits to ``target``, with a reason.

    Refuses (:class:`MigrationError`) without a reason or when the plan is blocked;
    otherwise every visit and the participant are moved together, each change audited
    with the reason, and :class:`ParticipantsMigrated` is notified on behalf of
    ``actor``. Returns the plan that was applied.
    """
    if not reason.strip():
        raise MigrationError(
            f"Give a reason for moving {participant.code} to version {target.label}"
        )
    plan = plan_migration(db, participant, target, today)
    if plan.blocked:
        raise MigrationError(
            f"{participant.code} cannot be moved to protocol version {target.label}: "
            + "; ".join(plan.blocked)
        )
    with acting_as(db, actor), change_reason(db, reason):
        for move in plan.moves:
            move.visit.protocol_version_id = target.id
        if participant.protocol_version_id != target.id:
            participant.protocol_version_id = target.id
    db.expire(participant, ["protocol_version"])
    # A session made outside the application (a script's, a test's) belongs to no
    # request, and has no subscribers to tell.
    request = db.info.get("request")
    if request is not None:
        with acting_as(db, actor):
            request.registry.notify(
                ParticipantsMigrated(
                    request,
                    participant.study_id,
                    target.id,
                    target.label,
                    (participant.id,),
                    (participant.code,),
                )
            )
    return plan


# -- what data sits on each version ---------------------------------------------------


def participants_on_versions(db: Session, scope: SiteScope) -> dict[int, int]:
    """How many participants (of the scope's sites) are on each protocol version, by id."""
    statement = (
        select(Participant.protocol_version_id, func.count(Participant.id))
        .where(Participant.study_id == scope.study_id)
        .group_by(Participant.protocol_version_id)
    )
    return {
        version_id: count
        for version_id, count in db.execute(scope.apply(statement, Participant.site_id))
    }


@dataclass(frozen=True)
class ChangeImpact:
    """The existing entries one change of an amendment would affect: for now, the
    visits recorded on the old version at the change's events (the eCRF's form
    entries will join them), and how many participants they belong to."""

    change: DefinitionChange
    visits: int
    participants: int


def amendment_impact(
    db: Session,
    scope: SiteScope,
    version: ProtocolVersion,
    changes: Sequence[DefinitionChange],
) -> list[ChangeImpact]:
    """Each change with the entries on ``version`` it would affect, in the scope's sites.

    One query, whatever the number of changes: the recorded visits on the version per
    event and participant, counted for each change's events here.
    """
    codes = {code for change in changes for code in change.event_codes}
    recorded: dict[str, dict[int, int]] = {}
    if codes:
        statement = (
            select(Visit.event_code, Visit.participant_id, func.count(Visit.id))
            .join(Participant, Participant.id == Visit.participant_id)
            .where(
                Participant.study_id == version.study_id,
                Visit.protocol_version_id == version.id,
                Visit.event_code.in_(codes),
            )
            .group_by(Visit.event_code, Visit.participant_id)
        )
        for event_code, participant_id, visits in db.execute(
            scope.apply(statement, Participant.site_id)
        ):
            recorded.setdefault(event_code, {})[participant_id] = visits
    impacts = []
    for change in changes:
        per_participant: dict[int, int] = {}
        for code in set(change.event_codes):
            for participant_id, visits in recorded.get(code, {}).items():
                per_participant[participant_id] = per_participant.get(participant_id, 0) + visits
        impacts.append(ChangeImpact(change, sum(per_participant.values()), len(per_participant)))
    return impacts
