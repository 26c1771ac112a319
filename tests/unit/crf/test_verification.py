"""Source data verification: marks on items and whole forms, superseded when the data
change; the SDV sample's selection (all, first N, a percentage spread evenly); and a
site's SDV worklist."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bhp_ctms.audit.capture import acting_as, change_reason
from bhp_ctms.crf.models import (
    FormStatus,
    SamplingMethod,
    SourceVerification,
    SourceVerificationPlan,
)
from bhp_ctms.crf.verification import (
    VerificationRefused,
    current_verifications,
    describe_plan,
    in_sample,
    item_content_sha256,
    plan_selection,
    sample_size,
    set_plan,
    site_sdv_worklist,
    verify_form,
    verify_item,
)
from bhp_ctms.participants.models import Participant
from bhp_ctms.permissions import Role
from bhp_ctms.sites.services import SiteScope
from tests.factories import ParticipantFactory
from tests.functional.test_participant_registration import actor, demo_trial, staff
from tests.unit.crf.test_signatures import change_value, form_entry

# -- which participants the sample holds ---------------------------------------------------------

FIRST_TWELVE = range(1, 13)


def _selected(method: SamplingMethod, **limits: int) -> list[int]:
    return [position for position in FIRST_TWELVE if in_sample(method, position, **limits)]


@pytest.mark.parametrize(
    ("method", "limits", "selected"),
    [
        (SamplingMethod.ALL, {}, list(FIRST_TWELVE)),
        (SamplingMethod.FIRST, {"count": 1}, [1]),
        (SamplingMethod.FIRST, {"count": 3}, [1, 2, 3]),
        (SamplingMethod.FIRST, {"count": 20}, list(FIRST_TWELVE)),
        (SamplingMethod.PERCENTAGE, {"percentage": 100}, list(FIRST_TWELVE)),
        (SamplingMethod.PERCENTAGE, {"percentage": 50}, [2, 4, 6, 8, 10, 12]),
        (SamplingMethod.PERCENTAGE, {"percentage": 25}, [4, 8, 12]),
        (SamplingMethod.PERCENTAGE, {"percentage": 30}, [4, 7, 10]),
        (SamplingMethod.PERCENTAGE, {"percentage": 10}, [10]),
        (SamplingMethod.PERCENTAGE, {"percentage": 75}, [2, 3, 4, 6, 7, 8, 10, 11, 12]),
        (SamplingMethod.PERCENTAGE, {"percentage": 1}, []),
    ],
)
def test_the_sample_of_the_first_twelve_participants_at_a_site(method, limits, selected):
    assert _selected(method, **limits) == selected


@pytest.mark.parametrize("percentage", range(1, 101))
def test_a_percentage_sample_holds_that_share_of_every_prefix(percentage):
    # However many have registered so far, the sample holds floor(n * P / 100) of them:
    # spread evenly, never bunched at the start or the end.
    taken = 0
    for registered in range(1, 201):
        taken += in_sample(SamplingMethod.PERCENTAGE, registered, percentage=percentage)
        assert taken == registered * percentage // 100
        assert taken == sample_size(SamplingMethod.PERCENTAGE, registered, percentage=percentage)


@pytest.mark.parametrize(("registered", "count", "expected"), [(0, 3, 0), (2, 3, 2), (9, 3, 3)])
def test_the_first_n_sample_size(registered, count, expected):
    assert sample_size(SamplingMethod.FIRST, registered, count=count) == expected
    assert sample_size(SamplingMethod.ALL, registered) == registered


def test_a_plan_is_validated_and_described(db_session):
    trial = demo_trial()
    dm = staff("dana", Role.DATA_MANAGER, study=trial.study)
    with pytest.raises(ValueError, match="at least 1"):
        set_plan(db_session, actor(dm), trial.study, SamplingMethod.FIRST, count=0)
    with pytest.raises(ValueError, match="from 1 to 100"):
        set_plan(db_session, actor(dm), trial.study, SamplingMethod.PERCENTAGE, percentage=101)
    plan = set_plan(db_session, actor(dm), trial.study, SamplingMethod.FIRST, count=2)
    assert describe_plan(plan) == (
        "The forms of the first 2 participants registered at each site are verified."
    )
    again = set_plan(
        db_session, actor(dm), trial.study, SamplingMethod.PERCENTAGE, count=5, percentage=20
    )
    assert again.id == plan.id
    assert (again.count, again.percentage) == (None, 20)
    assert describe_plan(None) == "Every participant's forms are verified against source."


def test_the_plan_selection_per_site(db_session):
    trial = demo_trial()
    dm = staff("dana", Role.DATA_MANAGER, study=trial.study)
    for _ in range(5):
        ParticipantFactory(site=trial.site)
    ParticipantFactory(site=trial.other_site)
    plan = set_plan(db_session, actor(dm), trial.study, SamplingMethod.PERCENTAGE, percentage=40)
    scope = SiteScope(trial.study.id, True, frozenset())
    selection = {
        s.site.code: (s.registered, s.selected) for s in plan_selection(db_session, plan, scope)
    }
    assert selection == {"CHH": (1, 0), "NTH": (5, 2)}
    only_nth = SiteScope(trial.study.id, False, frozenset({trial.site.id}))
    assert [s.site.code for s in plan_selection(db_session, plan, only_nth)] == ["NTH"]


# -- marking items and forms ---------------------------------------------------------------------


def _trial_with_entry(db_session, **entry_values):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    monitor = staff("mo", Role.MONITOR, study=trial.study)
    monitor.full_name = "Mo Khan"
    entry = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora, **entry_values)
    return trial, cora, monitor, entry


def test_a_monitor_verifies_an_item_until_it_changes(db_session):
    _, cora, monitor, entry = _trial_with_entry(db_session)
    mark = verify_item(db_session, actor(monitor), monitor, entry, "weight")
    assert (mark.item_path, mark.verified_by_name) == ("weight", "Mo Khan")
    assert mark.content_sha256 == item_content_sha256(entry, "weight")
    assert entry.status == FormStatus.COMPLETE
    assert set(current_verifications(db_session, entry)) == {"weight"}

    # Another item changing leaves the mark current ...
    change_value(db_session, entry, "height", "175", by=cora)
    assert set(current_verifications(db_session, entry)) == {"weight"}
    assert mark.superseded_at is None
    # ... its own item changing supersedes it.
    change_value(db_session, entry, "weight", "71.0", by=cora)
    assert current_verifications(db_session, entry) == {}
    assert mark.superseded_at is not None

    again = verify_item(db_session, actor(monitor), monitor, entry, "weight")
    assert current_verifications(db_session, entry) == {"weight": again}


def test_items_of_group_rows_and_blank_items_can_be_verified(db_session):
    _, _, monitor, entry = _trial_with_entry(db_session)
    verify_item(db_session, actor(monitor), monitor, entry, "readings[1].sbp")
    verify_item(db_session, actor(monitor), monitor, entry, "note")
    assert set(current_verifications(db_session, entry)) == {"readings[1].sbp", "note"}
    with pytest.raises(VerificationRefused, match="no item 'pulse'"):
        verify_item(db_session, actor(monitor), monitor, entry, "pulse")
    with pytest.raises(VerificationRefused, match=r"no item 'readings\[2\]\.sbp'"):
        verify_item(db_session, actor(monitor), monitor, entry, "readings[2].sbp")


def test_a_whole_form_verified_is_sdvd_until_any_item_changes(db_session):
    _, cora, monitor, entry = _trial_with_entry(db_session)
    item_mark = verify_item(db_session, actor(monitor), monitor, entry, "weight")
    form_mark = verify_form(db_session, actor(monitor), monitor, entry)
    assert form_mark.item_path == ""
    assert entry.status == FormStatus.VERIFIED
    with pytest.raises(VerificationRefused, match="This form was already verified by Mo Khan"):
        verify_form(db_session, actor(monitor), monitor, entry)

    change_value(db_session, entry, "smoker", "1", by=cora)
    assert entry.status == FormStatus.COMPLETE
    assert form_mark.superseded_at is not None
    assert item_mark.superseded_at is None
    assert set(current_verifications(db_session, entry)) == {"weight"}


def test_a_mark_over_data_changed_around_the_hook_is_not_current(db_session):
    _, cora, monitor, entry = _trial_with_entry(db_session)
    verify_item(db_session, actor(monitor), monitor, entry, "weight")
    with acting_as(db_session, actor(cora)), change_reason(db_session, "Fixed directly"):
        entry.values[0].value = "99.0"
    assert current_verifications(db_session, entry) == {}


def test_an_in_progress_form_cannot_be_verified(db_session):
    _, _, monitor, entry = _trial_with_entry(db_session, status=FormStatus.IN_PROGRESS)
    for verify in (
        lambda: verify_form(db_session, actor(monitor), monitor, entry),
        lambda: verify_item(db_session, actor(monitor), monitor, entry, "weight"),
    ):
        with pytest.raises(VerificationRefused, match="This form is still in progress"):
            verify()
    assert db_session.scalars(select(SourceVerification)).all() == []
    assert entry.status == FormStatus.IN_PROGRESS


def test_a_signed_form_verified_stays_signed(db_session):
    _, _, monitor, entry = _trial_with_entry(db_session, status=FormStatus.SIGNED)
    verify_form(db_session, actor(monitor), monitor, entry)
    assert entry.status == FormStatus.SIGNED


# -- a site's worklist ---------------------------------------------------------------------------


def test_the_worklist_holds_the_sampled_participants_complete_unverified_forms(db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    monitor = staff("mo", Role.MONITOR, study=trial.study)
    dm = staff("dana", Role.DATA_MANAGER, study=trial.study)
    people: list[Participant] = [ParticipantFactory(site=trial.site) for _ in range(4)]
    first, second, third, _ = people
    verified = form_entry(db_session, first, by=cora)
    awaiting = form_entry(db_session, first, by=cora, event="week_2")
    form_entry(db_session, second, by=cora, status=FormStatus.IN_PROGRESS)
    signed = form_entry(db_session, second, by=cora, event="week_2", status=FormStatus.SIGNED)
    form_entry(db_session, third, by=cora)  # not in the sample
    form_entry(db_session, ParticipantFactory(site=trial.other_site), by=cora)  # another site
    verify_form(db_session, actor(monitor), monitor, verified)
    verify_item(db_session, actor(monitor), monitor, awaiting, "weight")
    set_plan(db_session, actor(dm), trial.study, SamplingMethod.FIRST, count=2)

    scope = SiteScope(trial.study.id, True, frozenset())
    worklist = site_sdv_worklist(db_session, trial.site, scope)
    assert (worklist.registered, worklist.sampled) == (4, 2)
    assert [(row.entry.id, row.items_verified) for row in worklist.awaiting] == [
        (awaiting.id, 1),
        (signed.id, 0),
    ]
    assert (worklist.verified, worklist.in_progress) == (1, 1)
    assert isinstance(worklist.plan, SourceVerificationPlan)

    nobody = SiteScope(trial.study.id, False, frozenset({trial.other_site.id}))
    assert site_sdv_worklist(db_session, trial.site, nobody).awaiting == []
