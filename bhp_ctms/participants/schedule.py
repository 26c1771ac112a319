"""A participant's schedule: the expected date and window of each scheduled event,
from their baseline (randomisation or registration date), and each visit's state.

Pure functions of the definition, the participant and their visits, so the participant
page, the site grid and the dashboards all compute the same flags the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from enum import StrEnum
from typing import NamedTuple

from bhp_ctms.db import utc_today
from bhp_ctms.participants.models import (
    Participant,
    ParticipantStatus,
    Visit,
    VisitStatus,
    WithdrawalType,
)
from bhp_ctms.participants.status import ENDED
from bhp_ctms.studies.definition import Event, StudyDefinition


class VisitState(StrEnum):
    # No baseline yet (e.g. not randomised): dates follow once there is one.
    AWAITING_BASELINE = "awaiting_baseline"
    UPCOMING = "upcoming"
    DUE = "due"
    OVERDUE = "overdue"
    DONE = "done"
    DONE_OUT_OF_WINDOW = "done_out_of_window"
    NOT_DONE = "not_done"
    # The participant's participation ended before this visit: nothing is expected.
    NOT_EXPECTED = "not_expected"

    @property
    def label(self) -> str:
        return VISIT_STATE_LABELS[self]

    @property
    def needs_attention(self) -> bool:
        return self in {VisitState.OVERDUE, VisitState.DONE_OUT_OF_WINDOW}


VISIT_STATE_LABELS = {
    VisitState.AWAITING_BASELINE: "Awaiting baseline",
    VisitState.UPCOMING: "Upcoming",
    VisitState.DUE: "Due",
    VisitState.OVERDUE: "Overdue",
    VisitState.DONE: "Done",
    VisitState.DONE_OUT_OF_WINDOW: "Done out of window",
    VisitState.NOT_DONE: "Not done",
    VisitState.NOT_EXPECTED: "Not expected",
}


class ScheduledVisit(NamedTuple):
    """One scheduled event of one participant: when it is expected and what happened.

    A named tuple rather than a dataclass: a site's grid makes tens of thousands of them.
    """

    event: Event
    expected_on: date | None
    window_opens: date | None
    window_closes: date | None
    visit: Visit | None
    state: VisitState


class EventTiming(NamedTuple):
    """A scheduled event's day offset and window as intervals, worked out once per
    protocol version rather than once per participant."""

    event: Event
    offset: timedelta | None
    before: timedelta
    after: timedelta
    # Events before the baseline (screening) are due as soon as the person is screened.
    due_before_baseline: bool


# Timings per definition, keyed by identity (definitions are not hashable); each entry
# keeps its definition alive, so an id is never reused while it is in here.
_TIMINGS: dict[int, tuple[StudyDefinition, tuple[EventTiming, ...]]] = {}
_TIMINGS_KEPT = 64


def event_timings(definition: StudyDefinition) -> tuple[EventTiming, ...]:
    """The timings of the definition's scheduled events, in protocol order."""
    cached = _TIMINGS.get(id(definition))
    if cached is not None and cached[0] is definition:
        return cached[1]
    timings = tuple(
        EventTiming(
            event,
            None if event.day_offset is None else timedelta(days=event.day_offset),
            timedelta(days=event.window_before),
            timedelta(days=event.window_after),
            event.day_offset is not None and event.day_offset <= 0,
        )
        for event in scheduled_events(definition)
    )
    if len(_TIMINGS) >= _TIMINGS_KEPT:
        _TIMINGS.clear()
    _TIMINGS[id(definition)] = (definition, timings)
    return timings


def baseline_of(definition: StudyDefinition, participant: Participant) -> date | None:
    """The day the schedule counts from: registration or randomisation, as defined."""
    if definition.schedule_baseline == "registration":
        return participant.registered_on
    return participant.randomised_on


def expects_visits(participant: Participant) -> bool:
    # Withdrawal from treatment alone keeps follow-up going, so it is not in ENDED.
    if participant.status in ENDED:
        return False
    return not (
        participant.status == ParticipantStatus.WITHDRAWN
        and participant.withdrawal_type != WithdrawalType.TREATMENT
    )


def visit_state(
    timing: EventTiming,
    baseline: date | None,
    visit: Visit | None,
    expecting: bool,
    today: date,
) -> ScheduledVisit:
    """One scheduled event's expected date, window and state: the one place that decides
    whether a visit is upcoming, due, overdue, done (in or out of its window), not done
    or no longer expected."""
    expected = opens = closes = None
    if baseline is not None and timing.offset is not None:
        expected = baseline + timing.offset
        opens = expected - timing.before
        closes = expected + timing.after
    if visit is not None:
        if visit.status == VisitStatus.NOT_DONE:
            state = VisitState.NOT_DONE
        elif (
            opens is not None
            and closes is not None
            and visit.visit_on is not None
            and not opens <= visit.visit_on <= closes
        ):
            state = VisitState.DONE_OUT_OF_WINDOW
        else:
            state = VisitState.DONE
    elif not expecting:
        state = VisitState.NOT_EXPECTED
    elif opens is None or closes is None:
        state = VisitState.DUE if timing.due_before_baseline else VisitState.AWAITING_BASELINE
    elif today > closes:
        state = VisitState.OVERDUE
    elif today >= opens:
        state = VisitState.DUE
    else:
        state = VisitState.UPCOMING
    return ScheduledVisit(timing.event, expected, opens, closes, visit, state)


def scheduled_events(definition: StudyDefinition) -> list[Event]:
    return [event for event in definition.events if not event.repeating]


def participant_schedule(
    definition: StudyDefinition,
    participant: Participant,
    visits: Iterable[Visit],
    today: date | None = None,
) -> list[ScheduledVisit]:
    """The participant's scheduled events in protocol order, each with its state."""
    today = today or utc_today()
    recorded = {visit.event_code: visit for visit in visits if visit.instance == 1}
    baseline = baseline_of(definition, participant)
    expecting = expects_visits(participant)
    return [
        visit_state(timing, baseline, recorded.get(timing.event.code), expecting, today)
        for timing in event_timings(definition)
    ]
