"""Queries through their services: what may happen to a query in which state, the
system queries that follow the soft checks, and how long queries have waited."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.crf.evaluation import CheckFailure, evaluate_entry, item_at, item_label
from bhp_ctms.crf.models import FormStatus, Query, QueryAction, QueryOrigin, QueryStatus
from bhp_ctms.crf.queries import (
    AGE_BANDS,
    SYSTEM_AUTHOR,
    SYSTEM_CLOSING_TEXT,
    QueryError,
    age_band,
    answer_query,
    close_query,
    comment_on_query,
    days_open,
    open_query_counts,
    queries_by_item,
    raise_query,
    reopen_query,
    sync_system_queries,
)
from bhp_ctms.crf.query_forms import WorklistFilterForm
from bhp_ctms.participants.models import Participant
from tests.factories import ParticipantFactory, UserFactory
from tests.factories.crf import (
    DBP_BELOW_SBP,
    SOFT_WEIGHT,
    form_entry,
    store_form_version,
    vitals_definition,
)

WEIGHT_CHECK = "soft_range:weight"


def _weight(value: str) -> CheckFailure:
    return CheckFailure("weight", WEIGHT_CHECK, SOFT_WEIGHT, value)


def _bp(value: str) -> CheckFailure:
    return CheckFailure("dbp", "dbp_below_sbp", DBP_BELOW_SBP, value)


@pytest.fixture
def entry(db_session):
    participant = ParticipantFactory()
    version = store_form_version(participant.study_id)
    return form_entry(
        participant,
        version,
        {"weight": "35", "sbp": "80", "dbp": "90", "medications[1].drug": "Aspirin"},
    )


@pytest.fixture
def monitor(db_session):
    user = UserFactory(username="mo", full_name="Mo Monitor")
    return AuditActor(user_id=user.id, name=user.full_name)


@pytest.fixture
def coordinator(db_session):
    user = UserFactory(username="cora", full_name="Cora Coordinator")
    return AuditActor(user_id=user.id, name=user.full_name)


def _queries(db_session, entry) -> list[Query]:
    return list(
        db_session.scalars(select(Query).where(Query.form_entry_id == entry.id).order_by(Query.id))
    )


def _thread(query: Query) -> list[tuple[QueryAction, str, str]]:
    return [(m.action, m.author_name, m.text) for m in query.messages]


# -- items and ages, without a database -----------------------------------------------------


def test_item_labels_name_the_group_row_and_unknown_paths_are_refused():
    definition = vitals_definition()
    assert item_at(definition, "weight").label == "Weight"
    assert item_at(definition, "medications[3].drug").label == "Drug (Medications, row 3)"
    for path in ("height", "drug", "weight[1].drug", "note", "vitals[1].drug"):
        with pytest.raises(KeyError):
            item_at(definition, path)
    assert item_label(definition, "height") == "height"


def test_values_are_shown_as_people_read_them():
    definition = vitals_definition()
    weight = item_at(definition, "weight")
    assert weight.show("72.5") == "72.5 kg"
    assert weight.show(None, "ND") == "Not done"
    assert weight.show("ND") == "Not done"
    assert weight.show("") == ""
    assert item_at(definition, "position").show("2") == "Lying (2)"


@pytest.mark.parametrize(
    ("days", "band"),
    [
        (0, "0-7"),
        (7, "0-7"),
        (8, "8-14"),
        (14, "8-14"),
        (15, "15-30"),
        (30, "15-30"),
        (31, "over-30"),
    ],
)
def test_ages_fall_in_their_bands(days, band):
    assert age_band(days).code == band
    assert [b.code for b in AGE_BANDS] == ["0-7", "8-14", "15-30", "over-30"]


def test_days_open_count_to_today_or_to_the_closing_day():
    raised = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
    assert days_open(raised, None, date(2026, 3, 1)) == 0
    assert days_open(raised, None, date(2026, 3, 9)) == 8
    assert days_open(raised, datetime(2026, 3, 4, 0, 1, tzinfo=UTC), date(2026, 5, 1)) == 3


def test_the_worklist_filters_default_to_queries_still_waiting():
    from webob.multidict import MultiDict

    form = WorklistFilterForm(MultiDict())
    assert form.validate()
    assert form.statuses == [QueryStatus.OPEN, QueryStatus.ANSWERED]
    assert form.query_origin is None
    form = WorklistFilterForm(MultiDict({"status": "closed", "origin": "system"}))
    assert form.validate()
    assert (form.statuses, form.query_origin) == ([QueryStatus.CLOSED], QueryOrigin.SYSTEM)
    form = WorklistFilterForm(MultiDict({"status": "lost", "origin": "robot"}))
    assert not form.validate()
    assert form.status.errors == ["Choose a status from the list"]
    assert form.statuses == [QueryStatus.OPEN, QueryStatus.ANSWERED]
    assert form.query_origin is None


# -- system queries --------------------------------------------------------------------------


def test_each_soft_failure_raises_exactly_one_query_however_often_it_is_synced(db_session, entry):
    failures = [_weight("35"), _bp("90")]
    for _ in range(3):
        sync_system_queries(db_session, entry, failures)

    queries = _queries(db_session, entry)
    assert [(q.item_path, q.check, q.status, q.origin) for q in queries] == [
        ("weight", WEIGHT_CHECK, QueryStatus.OPEN, QueryOrigin.SYSTEM),
        ("dbp", "dbp_below_sbp", QueryStatus.OPEN, QueryOrigin.SYSTEM),
    ]
    assert [(q.text, q.value_when_raised, q.raised_by_id) for q in queries] == [
        (SOFT_WEIGHT, "35", None),
        (DBP_BELOW_SBP, "90", None),
    ]
    assert _thread(queries[0]) == [(QueryAction.RAISED, SYSTEM_AUTHOR, SOFT_WEIGHT)]
    assert queries[0].messages[0].author_id is None


def test_the_failures_of_a_real_evaluation_raise_their_queries(db_session, entry):
    evaluation = evaluate_entry(
        vitals_definition(), {"weight": "35", "sbp": "80", "dbp": "90"}, today=date(2026, 3, 1)
    )
    sync_system_queries(db_session, entry, evaluation.soft_failures)
    sync_system_queries(db_session, entry, evaluation.soft_failures)

    assert sorted((q.item_path, q.check) for q in _queries(db_session, entry)) == [
        ("dbp", "dbp_below_sbp"),
        ("weight", WEIGHT_CHECK),
    ]


def test_a_query_whose_check_now_passes_is_closed_by_the_system(db_session, entry):
    sync_system_queries(db_session, entry, [_weight("35"), _bp("90")])

    sync_system_queries(db_session, entry, [_bp("90")])
    sync_system_queries(db_session, entry, [_bp("90")])

    weight, bp = _queries(db_session, entry)
    assert weight.status == QueryStatus.CLOSED and weight.closed_at is not None
    assert _thread(weight)[-1] == (QueryAction.CLOSED, SYSTEM_AUTHOR, SYSTEM_CLOSING_TEXT)
    assert len(weight.messages) == 2
    assert bp.status == QueryStatus.OPEN


def test_an_answered_query_waits_for_its_check_and_is_closed_when_it_passes(
    db_session, entry, coordinator
):
    sync_system_queries(db_session, entry, [_weight("35")])
    (query,) = _queries(db_session, entry)
    answer_query(db_session, coordinator, query, "Weighed again: 35 kg is right.")

    sync_system_queries(db_session, entry, [_weight("35")])
    assert len(_queries(db_session, entry)) == 1
    assert query.status == QueryStatus.ANSWERED

    sync_system_queries(db_session, entry, [])
    assert query.status == QueryStatus.CLOSED


def test_a_failure_that_comes_back_after_the_system_closed_its_query_is_raised_again(
    db_session, entry
):
    sync_system_queries(db_session, entry, [_weight("35")])
    sync_system_queries(db_session, entry, [])
    sync_system_queries(db_session, entry, [_weight("35")])

    assert [q.status for q in _queries(db_session, entry)] == [
        QueryStatus.CLOSED,
        QueryStatus.OPEN,
    ]


def test_a_value_a_person_accepted_is_not_queried_again_but_a_new_value_is(
    db_session, entry, monitor
):
    sync_system_queries(db_session, entry, [_weight("35")])
    (query,) = _queries(db_session, entry)
    close_query(db_session, monitor, query, "Confirmed against the clinic scales.")

    sync_system_queries(db_session, entry, [_weight("35")])
    assert len(_queries(db_session, entry)) == 1

    sync_system_queries(db_session, entry, [_weight("34")])
    queries = _queries(db_session, entry)
    assert [(q.status, q.value_when_raised) for q in queries] == [
        (QueryStatus.CLOSED, "35"),
        (QueryStatus.OPEN, "34"),
    ]


def test_manual_queries_are_never_touched_by_the_system(db_session, entry, monitor):
    manual = raise_query(db_session, monitor, entry, "weight", "Is 35 kg right?")

    sync_system_queries(db_session, entry, [_weight("35")])
    sync_system_queries(db_session, entry, [])
    sync_system_queries(db_session, entry, [])

    assert manual.status == QueryStatus.OPEN
    assert _thread(manual) == [(QueryAction.RAISED, "Mo Monitor", "Is 35 kg right?")]
    system = [q for q in _queries(db_session, entry) if q.origin == QueryOrigin.SYSTEM]
    assert [q.status for q in system] == [QueryStatus.CLOSED]


# -- a person's actions -------------------------------------------------------------------


def test_a_query_goes_open_answered_closed_and_back_with_a_thread(
    db_session, entry, monitor, coordinator
):
    query = raise_query(db_session, monitor, entry, "weight", "  Is 35 kg right?  ")
    assert (query.status, query.value_when_raised, query.raised_by_id) == (
        QueryStatus.OPEN,
        "35",
        monitor.user_id,
    )
    comment_on_query(db_session, coordinator, query, "Looking for the clinic notes.")
    answer_query(db_session, coordinator, query, "The notes say 53 kg; corrected.")
    assert query.status == QueryStatus.ANSWERED
    reopen_query(db_session, monitor, query, "The form still says 35.")
    assert query.status == QueryStatus.OPEN
    answer_query(db_session, coordinator, query, "Corrected now.")
    close_query(db_session, monitor, query)
    assert query.status == QueryStatus.CLOSED and query.closed_at is not None
    reopen_query(db_session, monitor, query, "Closed by mistake.")
    assert (query.status, query.closed_at) == (QueryStatus.OPEN, None)

    assert _thread(query) == [
        (QueryAction.RAISED, "Mo Monitor", "Is 35 kg right?"),
        (QueryAction.COMMENTED, "Cora Coordinator", "Looking for the clinic notes."),
        (QueryAction.ANSWERED, "Cora Coordinator", "The notes say 53 kg; corrected."),
        (QueryAction.REOPENED, "Mo Monitor", "The form still says 35."),
        (QueryAction.ANSWERED, "Cora Coordinator", "Corrected now."),
        (QueryAction.CLOSED, "Mo Monitor", ""),
        (QueryAction.REOPENED, "Mo Monitor", "Closed by mistake."),
    ]
    events = db_session.scalars(
        select(AuditEvent).where(
            AuditEvent.entity_type == "query",
            AuditEvent.entity_id == str(query.id),
            AuditEvent.field == "status",
        )
    ).all()
    assert [(e.actor_name, e.new) for e in events] == [
        ("Mo Monitor", "open"),
        ("Cora Coordinator", "answered"),
        ("Mo Monitor", "open"),
        ("Cora Coordinator", "answered"),
        ("Mo Monitor", "closed"),
        ("Mo Monitor", "open"),
    ]


def test_actions_that_do_not_fit_the_query_s_status_are_refused(
    db_session, entry, monitor, coordinator
):
    query = raise_query(db_session, monitor, entry, "weight", "Is 35 kg right?")
    with pytest.raises(QueryError, match="already open"):
        reopen_query(db_session, monitor, query, "Again")
    answer_query(db_session, coordinator, query, "Yes.")
    with pytest.raises(QueryError, match="only an open query can be answered"):
        answer_query(db_session, coordinator, query, "Yes, really.")
    close_query(db_session, monitor, query, "Thanks.")
    with pytest.raises(QueryError, match="already closed"):
        close_query(db_session, monitor, query)
    with pytest.raises(QueryError, match="re-open it"):
        comment_on_query(db_session, coordinator, query, "One more thing")
    assert len(query.messages) == 3


@pytest.mark.parametrize(
    ("path", "text", "message", "field"),
    [
        ("weight", "   ", "Enter your question", "text"),
        ("weight", "x" * 2001, "2,000 characters or fewer", "text"),
        ("height", "Where?", "has no item height", "item"),
        ("note", "Where?", "has no item note", "item"),
        ("medications[2].drug", "Which?", "has no row 2", "item"),
    ],
)
def test_a_query_needs_a_question_and_an_item_of_the_form(
    db_session, entry, monitor, path, text, message, field
):
    with pytest.raises(QueryError, match=message) as refused:
        raise_query(db_session, monitor, entry, path, text)
    assert refused.value.field == field
    assert _queries(db_session, entry) == []


def test_a_query_on_a_table_row_and_on_a_blank_item(db_session, entry, monitor):
    row = raise_query(db_session, monitor, entry, "medications[1].drug", "Dose?")
    blank = raise_query(db_session, monitor, entry, "position", "Please record the position.")
    assert (row.value_when_raised, blank.value_when_raised) == ("Aspirin", "")


def test_nothing_changes_on_a_locked_form(db_session, monitor, coordinator):
    participant = ParticipantFactory()
    version = store_form_version(participant.study_id)
    entry = form_entry(participant, version, {"weight": "35"})
    query = raise_query(db_session, monitor, entry, "weight", "Is 35 kg right?")
    entry.status = FormStatus.LOCKED
    db_session.flush()

    with pytest.raises(QueryError, match="locked"):
        raise_query(db_session, monitor, entry, "weight", "Again?")
    with pytest.raises(QueryError, match="locked"):
        answer_query(db_session, coordinator, query, "Yes")
    with pytest.raises(QueryError, match="locked"):
        close_query(db_session, monitor, query)
    assert query.status == QueryStatus.OPEN


# -- reading queries ------------------------------------------------------------------------


def test_queries_by_item_put_those_still_waiting_first(db_session, entry, monitor):
    first = raise_query(db_session, monitor, entry, "weight", "First")
    second = raise_query(db_session, monitor, entry, "weight", "Second")
    other = raise_query(db_session, monitor, entry, "sbp", "Other")
    close_query(db_session, monitor, first)

    found = queries_by_item(db_session, entry)

    assert found == {"weight": [second, first], "sbp": [other]}


def test_open_query_counts_count_open_and_answered_queries_per_participant(
    db_session, entry, monitor, coordinator
):
    other = ParticipantFactory(site=entry.participant.site)
    quiet = ParticipantFactory(site=entry.participant.site)
    other_entry = form_entry(other, entry.form_version, {"weight": "70"})
    raise_query(db_session, monitor, entry, "weight", "One")
    answered = raise_query(db_session, monitor, entry, "sbp", "Two")
    answer_query(db_session, coordinator, answered, "Answer")
    closed = raise_query(db_session, monitor, other_entry, "weight", "Three")
    close_query(db_session, monitor, closed)
    raise_query(db_session, monitor, other_entry, "sbp", "Four")

    asked = [entry.participant.id, other.id, quiet.id]
    counts = open_query_counts(db_session, select(Participant.id).where(Participant.id.in_(asked)))

    assert {id_: counts.get(id_, 0) for id_ in asked} == {
        entry.participant.id: 2,
        other.id: 1,
        quiet.id: 0,
    }
    nobody = select(Participant.id).where(Participant.id.in_([]))
    assert open_query_counts(db_session, nobody) == {}
