"""Recording a participant's visits: which instance of an event may be recorded next.

Pure rules of the study definition and the visits recorded; the service records them,
and :mod:`bhp_ctms.participants.schedule` says when each is expected.
"""

from __future__ import annotations

from datetime import date

from bhp_ctms.participants.models import Participant, Visit, VisitStatus
from bhp_ctms.participants.registration import recorded_date_problem
from bhp_ctms.studies.definition import Event, StudyDefinition


def repeating_visits(
    definition: StudyDefinition, participant: Participant
) -> list[tuple[Event, list[Visit], int | None]]:
    """Each repeating event with its recorded instances, and the next instance to add
    (None once ``max_repeats`` are recorded)."""
    result: list[tuple[Event, list[Visit], int | None]] = []
    for event in definition.events:
        if not event.repeating:
            continue
        visits = sorted(
            (visit for visit in participant.visits if visit.event_code == event.code),
            key=lambda visit: visit.instance,
        )
        following = max((visit.instance for visit in visits), default=0) + 1
        if event.max_repeats is not None and following > event.max_repeats:
            result.append((event, visits, None))
        else:
            result.append((event, visits, following))
    return result


def visit_instance_problem(
    participant: Participant, definition: StudyDefinition, event_code: str, instance: int
) -> tuple[str, str] | None:
    """Why instance ``instance`` of the event cannot be recorded for the participant, as
    (message, field at fault); None if it can. The event must be in the definition of
    their protocol version; a scheduled event happens once, a repeating one at most
    ``max_repeats`` times, each instance recorded after the one before."""
    try:
        event = definition.event(event_code)
    except KeyError:
        version = participant.protocol_version.label
        return f"Protocol version {version} has no event {event_code}", "event"
    if not event.repeating:
        if instance == 1:
            return None
        return f"{event.name} is a scheduled visit: it happens once", "instance"
    if instance < 1:
        return f"{event.name}: the first occurrence is number 1", "instance"
    if event.max_repeats is not None and instance > event.max_repeats:
        return f"{event.name} can be recorded at most {event.max_repeats} times", "instance"
    recorded = [visit.instance for visit in participant.visits if visit.event_code == event_code]
    if instance not in recorded and instance > len(recorded) + 1:
        return f"Record {event.name} {len(recorded) + 1} before {event.name} {instance}", "instance"
    return None


def visit_entry_problem(
    participant: Participant,
    status: VisitStatus,
    visit_on: date | None,
    not_done_reason: str,
    today: date,
) -> tuple[str, str] | None:
    """What a visit being recorded as done (on a day) or not done (with the reason, already
    trimmed) lacks, as (message, field at fault); None when it lacks nothing."""
    if status == VisitStatus.DONE:
        if visit_on is None:
            return "Enter the date of the visit", "visit_on"
        problem = recorded_date_problem(participant, visit_on, today, "The date of the visit")
        return None if problem is None else (problem, "visit_on")
    if not not_done_reason:
        return "Enter why the visit was not done", "not_done_reason"
    return None
