"""A participant's schedule: expected dates and windows from their baseline, and each
visit's state (upcoming, due, overdue, done, done out of window, not done, awaiting
baseline, not expected once their participation has ended).

The demo study's schedule counts from randomisation: screening on day -14 (window 14
days before, none after), baseline on day 0, week 2 on day 14 (± 3 days), week 6 on
day 42 (± 7), week 12 on day 84 (± 7), week 26 on day 182 (± 14); adverse events and
unscheduled visits repeat and are not scheduled.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest

from bhp_ctms.participants.models import (
    Participant,
    ParticipantStatus,
    Visit,
    VisitStatus,
    WithdrawalType,
)
from bhp_ctms.participants.schedule import (
    ScheduledVisit,
    VisitState,
    baseline_of,
    expects_visits,
    participant_schedule,
    scheduled_events,
)
from bhp_ctms.studies.definition import StudyDefinition
from tests.factories import demo_definition

RANDOMISED_ON = date(2026, 3, 2)
REGISTERED_ON = date(2026, 2, 9)


@pytest.fixture(scope="module")
def demo() -> StudyDefinition:
    return StudyDefinition.from_json(demo_definition())


def participant(
    status: ParticipantStatus = ParticipantStatus.RANDOMISED,
    randomised_on: date | None = RANDOMISED_ON,
    withdrawal_type: WithdrawalType | None = None,
) -> Participant:
    return Participant(
        code="DEMO-NTH-0001",
        status=status,
        registered_on=REGISTERED_ON,
        randomised_on=randomised_on,
        withdrawal_type=withdrawal_type,
    )


def visit(
    event_code: str,
    visit_on: date | None,
    status: VisitStatus = VisitStatus.DONE,
    instance: int = 1,
) -> Visit:
    return Visit(event_code=event_code, instance=instance, status=status, visit_on=visit_on)


def by_event(schedule: list[ScheduledVisit]) -> dict[str, ScheduledVisit]:
    return {scheduled.event.code: scheduled for scheduled in schedule}


def states(schedule: list[ScheduledVisit]) -> dict[str, VisitState]:
    return {scheduled.event.code: scheduled.state for scheduled in schedule}


# -- dates and windows -----------------------------------------------------------------


def test_scheduled_events_come_in_protocol_order_without_repeating_events(demo):
    codes = [event.code for event in scheduled_events(demo)]
    assert codes == ["screening", "baseline", "week_2", "week_6", "week_12", "week_26"]
    schedule = participant_schedule(demo, participant(), [], RANDOMISED_ON)
    assert [scheduled.event.code for scheduled in schedule] == codes


def test_expected_dates_and_windows_count_from_randomisation(demo):
    schedule = by_event(participant_schedule(demo, participant(), [], RANDOMISED_ON))
    dates = {code: (s.window_opens, s.expected_on, s.window_closes) for code, s in schedule.items()}
    assert dates["screening"] == (date(2026, 2, 2), date(2026, 2, 16), date(2026, 2, 16))
    assert dates["baseline"] == (RANDOMISED_ON, RANDOMISED_ON, RANDOMISED_ON)
    assert dates["week_2"] == (date(2026, 3, 13), date(2026, 3, 16), date(2026, 3, 19))
    assert dates["week_6"] == (date(2026, 4, 6), date(2026, 4, 13), date(2026, 4, 20))
    assert dates["week_26"] == (date(2026, 8, 17), date(2026, 8, 31), date(2026, 9, 14))


def test_a_schedule_counting_from_registration_uses_the_registration_date(demo):
    from_registration = dataclasses.replace(demo, schedule_baseline="registration")
    person = participant(ParticipantStatus.SCREENED, randomised_on=None)
    assert baseline_of(from_registration, person) == REGISTERED_ON
    assert baseline_of(demo, person) is None
    week_2 = by_event(participant_schedule(from_registration, person, [], REGISTERED_ON))["week_2"]
    assert week_2.expected_on == REGISTERED_ON + timedelta(days=14)
    assert week_2.state == VisitState.UPCOMING


# -- states of visits not yet recorded ---------------------------------------------------


@pytest.mark.parametrize(
    ("today", "state"),
    [
        (date(2026, 4, 5), VisitState.UPCOMING),  # the day before the window opens
        (date(2026, 4, 6), VisitState.DUE),  # the window opens
        (date(2026, 4, 13), VisitState.DUE),  # the expected day
        (date(2026, 4, 20), VisitState.DUE),  # the last day of the window
        (date(2026, 4, 21), VisitState.OVERDUE),  # the day after it closed
    ],
)
def test_a_visit_is_upcoming_then_due_in_its_window_then_overdue(demo, today, state):
    week_6 = by_event(participant_schedule(demo, participant(), [], today))["week_6"]
    assert week_6.state == state
    assert week_6.visit is None


def test_a_visit_without_a_window_is_due_only_on_its_day(demo):
    schedule = states(participant_schedule(demo, participant(), [], RANDOMISED_ON))
    assert schedule["baseline"] == VisitState.DUE
    day_after = states(
        participant_schedule(demo, participant(), [], RANDOMISED_ON + timedelta(days=1))
    )
    assert day_after["baseline"] == VisitState.OVERDUE


def test_before_randomisation_screening_and_baseline_are_due_and_later_visits_await_it(demo):
    person = participant(ParticipantStatus.CONSENTED, randomised_on=None)
    schedule = participant_schedule(demo, person, [], date(2026, 2, 20))
    assert states(schedule) == {
        "screening": VisitState.DUE,
        "baseline": VisitState.DUE,
        "week_2": VisitState.AWAITING_BASELINE,
        "week_6": VisitState.AWAITING_BASELINE,
        "week_12": VisitState.AWAITING_BASELINE,
        "week_26": VisitState.AWAITING_BASELINE,
    }
    assert all(
        (s.expected_on, s.window_opens, s.window_closes) == (None, None, None) for s in schedule
    )


# -- states of recorded visits -----------------------------------------------------------


@pytest.mark.parametrize(
    ("visit_on", "state"),
    [
        (date(2026, 3, 13), VisitState.DONE),  # the first day of the window
        (date(2026, 3, 16), VisitState.DONE),
        (date(2026, 3, 19), VisitState.DONE),  # the last day of the window
        (date(2026, 3, 12), VisitState.DONE_OUT_OF_WINDOW),  # a day early
        (date(2026, 3, 20), VisitState.DONE_OUT_OF_WINDOW),  # a day late
    ],
)
def test_a_recorded_visit_is_done_in_or_out_of_its_window(demo, visit_on, state):
    recorded = visit("week_2", visit_on)
    week_2 = by_event(participant_schedule(demo, participant(), [recorded], date(2026, 6, 1)))[
        "week_2"
    ]
    assert week_2.state == state
    assert week_2.visit is recorded
    assert week_2.state.needs_attention == (state == VisitState.DONE_OUT_OF_WINDOW)


def test_a_visit_recorded_as_not_done_is_not_done_and_not_overdue(demo):
    missed = visit("week_2", None, VisitStatus.NOT_DONE)
    schedule = states(participant_schedule(demo, participant(), [missed], date(2026, 6, 1)))
    assert schedule["week_2"] == VisitState.NOT_DONE
    assert schedule["week_6"] == VisitState.OVERDUE


def test_a_done_visit_before_randomisation_has_no_window_to_be_out_of(demo):
    person = participant(ParticipantStatus.CONSENTED, randomised_on=None)
    screened = visit("screening", date(2026, 2, 10))
    screening = by_event(participant_schedule(demo, person, [screened], date(2026, 2, 20)))[
        "screening"
    ]
    assert screening.state == VisitState.DONE


def test_only_the_first_instance_of_an_event_is_scheduled(demo):
    second = visit("week_2", date(2026, 3, 16), instance=2)
    week_2 = by_event(participant_schedule(demo, participant(), [second], date(2026, 6, 1)))[
        "week_2"
    ]
    assert week_2.state == VisitState.OVERDUE
    assert week_2.visit is None


# -- once participation has ended ------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    [
        ParticipantStatus.COMPLETED,
        ParticipantStatus.LOST_TO_FOLLOW_UP,
        ParticipantStatus.DIED,
        ParticipantStatus.INELIGIBLE,
        ParticipantStatus.NOT_ENROLLED,
    ],
)
def test_nothing_more_is_expected_once_participation_has_ended(demo, status):
    person = participant(status)
    assert not expects_visits(person)
    done = visit("baseline", RANDOMISED_ON)
    schedule = states(participant_schedule(demo, person, [done], date(2026, 6, 1)))
    assert schedule["baseline"] == VisitState.DONE
    # Past, present and future visits alike: none is overdue, due or upcoming.
    for code in ("week_2", "week_6", "week_12", "week_26"):
        assert schedule[code] == VisitState.NOT_EXPECTED, code


def test_withdrawal_from_follow_up_ends_the_schedule_but_from_treatment_does_not(demo):
    today = date(2026, 6, 1)
    from_follow_up = participant(
        ParticipantStatus.WITHDRAWN, withdrawal_type=WithdrawalType.FOLLOW_UP
    )
    from_data_use = participant(
        ParticipantStatus.WITHDRAWN, withdrawal_type=WithdrawalType.DATA_USE
    )
    from_treatment = participant(
        ParticipantStatus.WITHDRAWN, withdrawal_type=WithdrawalType.TREATMENT
    )
    assert states(participant_schedule(demo, from_follow_up, [], today))["week_26"] == (
        VisitState.NOT_EXPECTED
    )
    assert states(participant_schedule(demo, from_data_use, [], today))["week_6"] == (
        VisitState.NOT_EXPECTED
    )
    continuing = states(participant_schedule(demo, from_treatment, [], today))
    assert continuing["week_6"] == VisitState.OVERDUE
    assert continuing["week_26"] == VisitState.UPCOMING
