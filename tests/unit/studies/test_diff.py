"""Comparing two versions of a study definition."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from hypothesis import given, settings

from bhp_ctms.studies.definition import (
    Criterion,
    Event,
    FormFile,
    StudyDefinition,
    read_study,
)
from bhp_ctms.studies.diff import DefinitionChange, diff_definitions
from tests.unit.studies.test_definition import DEMO_FOLDER, FORMS, TRIAL, definitions

VITALS = FormFile("vitals", "forms/vitals.yaml", "1" * 64)
AE = FormFile("ae", "forms/ae.yaml", "2" * 64)
DEMO = replace(read_study(DEMO_FOLDER), forms=(VITALS, AE))


def with_event(definition: StudyDefinition, code: str, **changes: Any) -> StudyDefinition:
    events = tuple(
        replace(event, **changes) if event.code == code else event for event in definition.events
    )
    return replace(definition, events=events)


def test_identical_definitions_have_no_changes():
    assert diff_definitions(read_study(DEMO_FOLDER), read_study(DEMO_FOLDER)) == []


@settings(max_examples=30, deadline=None)
@given(definitions)
def test_a_definition_does_not_differ_from_itself(definition):
    assert diff_definitions(definition, definition) == []


def test_a_window_change_names_the_event():
    new = with_event(DEMO, "week_12", window_after=14)

    assert diff_definitions(DEMO, new) == [
        DefinitionChange(
            "event",
            "week_12",
            "changed",
            "Week 12 visit: window after changed from 7 to 14 days",
            ("week_12",),
        )
    ]


def test_events_added_and_removed():
    week_52 = Event("week_52", "Week 52 visit", 364, 28, 28, False, ("vitals",), None)
    new = replace(DEMO, events=(*DEMO.events[:5], week_52, *DEMO.events[6:]))

    assert diff_definitions(DEMO, new) == [
        DefinitionChange(
            "event",
            "week_26",
            "removed",
            "Event Week 26 visit (end of study) (week_26) removed",
            ("week_26",),
        ),
        DefinitionChange(
            "event",
            "week_52",
            "added",
            "Event Week 52 visit (week_52) added, on day 364",
            ("week_52",),
        ),
    ]


def test_a_changed_form_file_names_every_event_that_lists_it():
    new = replace(DEMO, forms=(replace(VITALS, sha256="3" * 64), AE))

    assert diff_definitions(DEMO, new) == [
        DefinitionChange(
            "form",
            "vitals",
            "changed",
            "Form vitals changed (file forms/vitals.yaml)",
            ("baseline", "week_2", "week_6", "week_12", "week_26", "unscheduled"),
        )
    ]


def test_a_removed_form_names_the_events_of_the_old_definition():
    new = replace(with_event(DEMO, "adverse_event", forms=()), forms=(VITALS,))

    assert diff_definitions(DEMO, new)[-1] == DefinitionChange(
        "form", "ae", "removed", "Form ae removed (file forms/ae.yaml)", ("adverse_event",)
    )


def test_a_form_added_to_and_removed_from_an_event():
    new = with_event(DEMO, "week_6", forms=("vitals", "ae", "walking_diary"))

    assert [change.description for change in diff_definitions(DEMO, new)] == [
        "Form ae added to event Week 6 visit",
        "Form hip_score removed from event Week 6 visit",
    ]
    assert {change.event_codes for change in diff_definitions(DEMO, new)} == {("week_6",)}


def test_a_criterion_text_change():
    criteria = list(DEMO.criteria)
    criteria[0] = Criterion("age_18_or_over", "inclusion", "Aged 16 years or over.")
    new = replace(DEMO, criteria=tuple(criteria))

    assert diff_definitions(DEMO, new) == [
        DefinitionChange(
            "criterion",
            "age_18_or_over",
            "changed",
            "Inclusion criterion age_18_or_over: text changed from “Aged 18 years or over.”"
            " to “Aged 16 years or over.”",
        )
    ]


def test_consent_document_versions():
    new = replace(
        DEMO,
        children=True,
        consent=replace(DEMO.consent, information_sheet="2.2", assent_form="1.0"),
    )

    assert diff_definitions(DEMO, new) == [
        DefinitionChange(
            "study", "children", "changed", "Recruits children changed from no to yes"
        ),
        DefinitionChange(
            "consent",
            "information_sheet",
            "changed",
            "Participant information sheet version changed from 2.1 to 2.2",
        ),
        DefinitionChange("consent", "assent_form", "added", "Assent form version 1.0 added"),
    ]


def test_changes_come_in_a_stable_order():
    new = replace(
        with_event(DEMO, "baseline", name="Baseline visit"),
        protocol_version="2.0",
        effective_on=date(2026, 6, 1),
        arms=(replace(DEMO.arms[0], ratio=2), DEMO.arms[1]),
        forms=(VITALS,),
        randomisation=replace(
            DEMO.randomisation, settings={**DEMO.randomisation.settings, "block_sizes": [6]}
        ),
    )

    assert [str(change) for change in diff_definitions(DEMO, new)] == [
        "Protocol version changed from 1.0 to 2.0",
        "Effective date changed from 2026-01-05 to 2026-06-01",
        "Arm Daily walking programme: allocation ratio changed from 1 to 2",
        "Event baseline: name changed from “Baseline (randomisation)” to “Baseline visit”",
        "Form ae removed (file forms/ae.yaml)",
        "Randomisation setting block_sizes changed from [4, 6] to [6]",
    ]


def write_study(folder: Path, vitals: str) -> Path:
    (folder / "forms").mkdir(parents=True)
    (folder / "study.yaml").write_text(TRIAL, encoding="utf-8")
    for name, content in {**FORMS, "vitals.yaml": vitals}.items():
        (folder / "forms" / name).write_text(content, encoding="utf-8")
    return folder


def test_form_files_are_compared_by_their_bytes(tmp_path):
    old = read_study(write_study(tmp_path / "v1", FORMS["vitals.yaml"]))
    changed = FORMS["vitals.yaml"].replace('version: "1.0"', 'version: "2.0"')
    new = read_study(write_study(tmp_path / "v2", changed))

    [change] = diff_definitions(old, new)

    assert change.description == "Form vitals changed (file forms/vitals.yaml)"
    assert change.event_codes == ("baseline", "week_2", "week_6", "week_12", "week_26")
