"""A participant's schedule: the expected date and window of each scheduled event,
from their baseline (randomisation or registration date), and each visit's state.

Pure functions of the definition, the participant and their visits, so the participant
page, the site grid and the dashboards all compute the same flags the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from bhp_ctms.participants.models import (
    Participant,
    ParticipantStatus,
    Visit,
    VisitStatus,
    WithdrawalType,
)
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

# Statuses after which no further visit is expected. Withdrawal from treatment alone
# keeps follow-up going, so it is not here.
_ENDED = frozenset(
    {
        ParticipantStatus.INELIGIBLE,
        ParticipantStatus.NOT_ENROLLED,
        ParticipantStatus.COMPLETED,
        ParticipantStatus.LOST_TO_FOLLOW_UP,
        ParticipantStatus.DIED,
    }
)


@dataclass(frozen=True)
class ScheduledVisit:
    """One scheduled event of one participant: when it is expected and what happened."""

    event: Event
    expected_on: date | None
    window_opens: date | None
    window_closes: date | None
    visit: Visit | None
    state: VisitState


def baseline_of(definition: StudyDefinition, participant: Participant) -> date | None:
    """The day the schedule counts from: registration or randomisation, as defined."""
    if definition.schedule_baseline == "registration":
        return participant.registered_on
    return participant.randomised_on


def expects_visits(participant: Participant) -> bool:
    if participant.status in _ENDED:
        return False
    return not (
        participant.status == ParticipantStatus.WITHDRAWN
        and participant.withdrawal_type != WithdrawalType.TREATMENT
    )


def visit_state(
    event: Event,
    baseline: date | None,
    visit: Visit | None,
    expecting: bool,
    today: date,
) -> tuple[VisitState, date | None, date | None, date | None]:
    """The state of one scheduled event, with its expected date and window."""
    expected = opens = closes = None
    if baseline is not None and event.day_offset is not None:
        expected = baseline + timedelta(days=event.day_offset)
        opens = expected - timedelta(days=event.window_before)
        closes = expected + timedelta(days=event.window_after)
    if visit is not None:
        if visit.status == VisitStatus.NOT_DONE:
            return VisitState.NOT_DONE, expected, opens, closes
        outside = (
            opens is not None
            and closes is not None
            and visit.visit_on is not None
            and not opens <= visit.visit_on <= closes
        )
        state = VisitState.DONE_OUT_OF_WINDOW if outside else VisitState.DONE
        return state, expected, opens, closes
    if not expecting:
        return VisitState.NOT_EXPECTED, expected, opens, closes
    if opens is None or closes is None:
        # Events before the baseline (screening) are due as soon as the person is screened.
        if event.day_offset is not None and event.day_offset <= 0:
            return VisitState.DUE, expected, opens, closes
        return VisitState.AWAITING_BASELINE, expected, opens, closes
    if today > closes:
        return VisitState.OVERDUE, expected, opens, closes
    if today >= opens:
        return VisitState.DUE, expected, opens, closes
    return VisitState.UPCOMING, expected, opens, closes


def scheduled_events(definition: StudyDefinition) -> list[Event]:
    return [event for event in definition.events if not event.repeating]


def participant_schedule(
    definition: StudyDefinition,
    participant: Participant,
    visits: Iterable[Visit],
    today: date | None = None,
) -> list[ScheduledVisit]:
    """The participant's scheduled events in protocol order, each with its state."""
    today = today or date.today()
    recorded = {visit.event_code: visit for visit in visits if visit.instance == 1}
    baseline = baseline_of(definition, participant)
    expecting = expects_visits(participant)
    schedule = []
    for event in scheduled_events(definition):
        visit = recorded.get(event.code)
        state, expected, opens, closes = visit_state(event, baseline, visit, expecting, today)
        schedule.append(ScheduledVisit(event, expected, opens, closes, visit, state))
    return schedule
