"""A CRF's values in the audit trail: each saved value is recorded once, with who,
when, old and new value and reason; its form entry and item travel in every event's
details; the hash chain verifies, replay rebuilds the values, a value moved around
the application is found, and a value's history shows its item."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.replay import compare, live_state, replayed_state
from bhp_ctms.audit.verify import verify_audit_trail
from bhp_ctms.crf.models import FormEntry, ItemValue
from tests.conftest import TEST_SECRET_KEY
from tests.functional.helpers import form_posting_to, login
from tests.functional.test_crf_entry import VITALS, crf_trial, fill_vitals, vitals_form
from tests.functional.test_participant_registration import shown

WEEK_2_VITALS = VITALS.replace("/baseline/", "/week_2/")


def _week_2_vitals(app, **values: str) -> None:
    form = form_posting_to(app.get(WEEK_2_VITALS), WEEK_2_VITALS)
    fill_vitals(form, **values)
    form.submit("action", value="save").follow()


def _value_events(db_session: Session, value: ItemValue) -> list[AuditEvent]:
    return list(
        db_session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "item_value", AuditEvent.entity_id == str(value.id))
            .order_by(AuditEvent.id)
        )
    )


def _saved_vitals(app, db_session: Session) -> FormEntry:
    crf_trial(db_session)
    login(app, "coordinator")
    form = vitals_form(app.get(VITALS))
    fill_vitals(form, pulse="64")
    form.submit("action", value="save").follow()
    return db_session.scalars(select(FormEntry)).one()


def test_a_first_save_records_each_value_once_with_its_entry_and_item(app, db_session):
    entry = _saved_vitals(app, db_session)
    values = db_session.scalars(select(ItemValue).order_by(ItemValue.id)).all()
    assert {value.item_path for value in values} >= {"weight", "pulse", "bmi"}
    for value in values:
        events = _value_events(db_session, value)
        recorded = {event.field: event.new for event in events}
        assert recorded == {"item_path": value.item_path, "value": value.value}
        for event in events:
            assert event.action == "item_value.created"
            assert event.old_value is None
            assert event.details == {"form_entry_id": entry.id, "item": value.item_path}
            assert (event.actor_name, event.form) == ("Coordinator", "baseline/vitals")
            assert event.participant_id == entry.participant_id
    assert not db_session.scalars(
        select(AuditEvent).where(AuditEvent.field == "form_entry_id")
    ).first()


def test_a_changed_value_records_old_new_and_reason_with_its_item(app, db_session):
    _saved_vitals(app, db_session)
    page = app.get(VITALS)
    form = vitals_form(page)
    form.submit("action", value="complete").follow()
    form = vitals_form(app.get(VITALS))
    form["weight"] = "72"
    form["weight__reason"] = "Transcription error: scale showed 72.0"
    form.submit("action", value="save").follow()
    weight = db_session.scalars(select(ItemValue).where(ItemValue.item_path == "weight")).one()
    change = _value_events(db_session, weight)[-1]
    assert (change.action, change.field, change.old, change.new) == (
        "item_value.updated",
        "value",
        "70",
        "72",
    )
    assert change.reason == "Transcription error: scale showed 72.0"
    assert change.details == {"form_entry_id": weight.form_entry_id, "item": "weight"}


def test_the_trail_of_crf_saves_verifies_and_replays_to_the_tables(app, db_session):
    _saved_vitals(app, db_session)
    form = vitals_form(app.get(VITALS))
    form.submit("action", value="complete").follow()
    form = vitals_form(app.get(VITALS))
    form["measured"] = "0"  # hides and clears the measurements, with reasons
    form["not_measured_reason"] = "Participant declined"
    for name in form.fields:
        if name.endswith("__reason"):
            form[name] = "Not measured after all"
    form.submit("action", value="save").follow()
    _week_2_vitals(app, weight="71")
    report = verify_audit_trail(db_session, TEST_SECRET_KEY)
    assert report.ok, report.problems
    replayed = replayed_state(db_session)
    assert replayed == live_state(db_session)
    values = db_session.scalars(select(ItemValue)).all()
    assert len({value.form_entry_id for value in values}) == 2
    for value in values:
        rebuilt = replayed[("item_value", str(value.id))]
        assert rebuilt["form_entry_id"] == str(value.form_entry_id)
        assert rebuilt["item_path"] == f'"{value.item_path}"'


def test_a_value_moved_to_another_item_or_entry_in_the_database_is_found(app, db_session):
    first = _saved_vitals(app, db_session)
    _week_2_vitals(app)
    other = db_session.scalars(select(FormEntry).where(FormEntry.id != first.id)).one()
    weight, pulse = (
        db_session.scalars(
            select(ItemValue).where(
                ItemValue.form_entry_id == first.id, ItemValue.item_path == path
            )
        ).one()
        for path in ("weight", "pulse")
    )
    db_session.execute(
        text("UPDATE item_values SET form_entry_id = :other WHERE id = :id"),
        {"other": other.id, "id": pulse.id},
    )
    db_session.execute(
        text("UPDATE item_values SET item_path = 'height_2' WHERE id = :id"), {"id": weight.id}
    )
    found = {(problem.entity_id, problem.field): str(problem) for problem in compare(db_session)}
    assert set(found) == {(str(pulse.id), "form_entry_id"), (str(weight.id), "item_path")}
    assert (
        f"the database holds {other.id} but the audit trail says {first.id}"
        in found[(str(pulse.id), "form_entry_id")]
    )
    assert (
        'the database holds "height_2" but the audit trail says "weight"'
        in found[(str(weight.id), "item_path")]
    )


def test_a_values_history_shows_its_item_and_each_change(app, db_session):
    _saved_vitals(app, db_session)
    weight = db_session.scalars(select(ItemValue).where(ItemValue.item_path == "weight")).one()
    page = app.get(VITALS)
    link = page.html.find("a", href=lambda href: bool(href) and href.endswith(f"={weight.id}"))
    assert link is not None and "History of Weight" in link.get_text(" ", strip=True)
    rows = shown(app.get(link["href"]), "history")
    assert "item_path" in rows and "weight" in rows
    assert "value" in rows and "70" in rows and "Coordinator" in rows
