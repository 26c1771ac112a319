"""Reading a study folder: what loads, and every problem reported where it is."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings

from bhp_ctms.studies.definition import (
    DEFAULT_PARTICIPANT_ID_PATTERN,
    Arm,
    ConsentDocuments,
    Criterion,
    DefinitionError,
    Event,
    FormFile,
    Problem,
    Randomisation,
    StudyDefinition,
    check_study,
    read_study,
)
from tests.unit.studies.examples import DEMO_FOLDER, FORMS, TRIAL, definitions


def study_folder(tmp_path: Path, text: str = TRIAL, forms: dict[str, str] | None = None) -> Path:
    folder = tmp_path / "walk"
    folder.mkdir()
    (folder / "study.yaml").write_text(text, encoding="utf-8")
    if forms is not None:
        (folder / "forms").mkdir()
        for name, content in forms.items():
            (folder / "forms" / name).write_text(content, encoding="utf-8")
    return folder


def changed(old: str, new: str, text: str = TRIAL) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def line_of(snippet: str, text: str) -> int:
    [line] = [number for number, line in enumerate(text.splitlines(), 1) if snippet in line]
    return line


def test_the_demo_study_loads():
    definition = read_study(DEMO_FOLDER)

    assert (definition.code, definition.blinding, definition.status) == (
        "DEMO",
        "double",
        "recruiting",
    )
    assert definition.target_sample_size == 120
    assert [arm.ratio for arm in definition.arms] == [1, 1]
    assert [event.day_offset for event in definition.events if event.scheduled] == [
        -14,
        0,
        14,
        42,
        84,
        182,
    ]
    assert definition.event("week_12").window_after == 7
    assert {event.code for event in definition.events if event.repeating} == {
        "adverse_event",
        "unscheduled",
    }
    assert definition.randomisation == Randomisation(
        "permuted_blocks",
        {"block_sizes": [4, 6], "stratify_by": ["site"], "seed_required": True},
    )
    assert [site.code for site in definition.sites] == ["NTH", "CHH"]
    assert definition.users[3] == {
        "username": "pi",
        "full_name": "Priya Investigator",
        "role": "site_pi",
        "site": "NTH",
    }
    # Every form an event lists has its file, in file-name order.
    assert [(form.code, form.path) for form in definition.forms] == [
        (code, f"forms/{code}.yaml")
        for code in (
            "ae",
            "demographics",
            "eligibility",
            "end_of_study",
            "hip_score",
            "unscheduled_visit",
            "vitals",
            "walking_diary",
        )
    ]
    assert check_study(DEMO_FOLDER) == []


def test_a_two_arm_six_event_study_with_adverse_events_loads(tmp_path):
    folder = study_folder(tmp_path, forms=FORMS)

    definition = read_study(folder)

    assert definition.arms == (
        Arm("walking", "Walking programme", 1),
        Arm("usual_care", "Usual care", 2),
    )
    assert definition.event("screening") == Event(
        "screening", "Screening", -28, 0, 28, False, ("eligibility",), None
    )
    assert definition.event("adverse_event") == Event(
        "adverse_event", "Adverse event", None, 0, 0, True, ("ae",), 50
    )
    assert len([event for event in definition.events if event.scheduled]) == 6
    assert definition.criteria[1] == Criterion(
        "pregnant", "exclusion", "Pregnant or breastfeeding."
    )
    assert [criterion.eligible_answer for criterion in definition.criteria] == ["yes", "no"]
    assert definition.consent == ConsentDocuments("1.0", "1.1", None, None)
    assert definition.forms == tuple(
        FormFile(
            name.removesuffix(".yaml"),
            f"forms/{name}",
            hashlib.sha256(content.encode()).hexdigest(),
        )
        for name, content in sorted(FORMS.items())
    )
    # What a study need not say.
    assert definition.participant_id_pattern == DEFAULT_PARTICIPANT_ID_PATTERN
    assert definition.schedule_baseline == "registration"
    assert (definition.isrctn, definition.eudract, definition.iras) == ("", "", "")
    assert definition.randomisation is None
    assert definition.status is None
    assert definition.effective_on == date(2026, 3, 2)
    with pytest.raises(KeyError):
        definition.event("week_52")


def test_version_labels_and_registry_numbers_are_kept_as_written(tmp_path):
    text = changed(
        'protocol_version: "2.0"',
        "protocol_version: 2.10\niras: 0123456\neudract: 2024-512345-12-00",
    )
    definition = read_study(study_folder(tmp_path, text))

    assert definition.protocol_version == "2.10"
    assert definition.iras == "0123456"
    assert definition.eudract == "2024-512345-12-00"


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        pytest.param(
            "name: Week 2\n",
            "name: Week 2: visit\n",
            "Week 2: visit",
            "YAML syntax error: mapping values are not allowed here",
            id="syntax error",
        ),
        pytest.param(
            "window_after: 5",
            "windw_after: 5",
            "windw_after",
            "events[3]: unknown key 'windw_after' (did you mean 'window_after'?); allowed keys:",
            id="unknown key",
        ),
        pytest.param(
            "target_sample_size: 60",
            "target_sample_size: sixty",
            "sixty",
            "target_sample_size: must be a whole number of participants ≥ 1",
            id="text for a number",
        ),
        pytest.param(
            "max_repeats: 50",
            "max_repeats: 2.5",
            "2.5",
            "events[6].max_repeats: must be a whole number ≥ 1",
            id="fraction for a number",
        ),
        pytest.param(
            "effective_on: 2026-03-02",
            "effective_on: 2026-02-30",
            "2026-02-30",
            "effective_on: 2026-02-30 is not a real date",
            id="impossible date",
        ),
        pytest.param(
            "effective_on: 2026-03-02",
            "effective_on: 2 March 2026",
            "2 March",
            "effective_on: must be a date written YYYY-MM-DD, not '2 March 2026'",
            id="date not ISO",
        ),
        pytest.param(
            "window_after: 3",
            "window_after: -3",
            "-3",
            "events[2].window_after: must be a whole number of days ≥ 0",
            id="negative window",
        ),
        pytest.param(
            "day_offset: 42",
            "day_offset: 10",
            "day_offset: 10",
            "events[3].day_offset: scheduled events must be listed in time order: "
            "day 10 is not after day 14 (week_2)",
            id="schedule out of order",
        ),
        pytest.param(
            "    max_repeats: 50",
            "    day_offset: 3",
            "day_offset: 3",
            "events[6].day_offset: a repeating event has no day offset",
            id="repeating event with a day",
        ),
        pytest.param(
            "code: WALK-2",
            "code: walk-2",
            "walk-2",
            "code: 'walk-2' is not a valid code (capital letters, digits, '-' and '_',"
            " starting with a letter, at most 32)",
            id="study code",
        ),
        pytest.param(
            "phase: III",
            "phase: 3",
            "phase: 3",
            "phase: must be one of I, I/II, II, II/III, III, IV, N/A, not '3'",
            id="phase",
        ),
        pytest.param(
            "kind: exclusion",
            "kind: excluded",
            "excluded",
            "eligibility[1].kind: must be one of inclusion, exclusion, not 'excluded'",
            id="criterion kind",
        ),
        pytest.param(
            "title: A trial",
            "isrctn: 1234\ntitle: A trial",
            "1234",
            "isrctn: must be ISRCTN and 8 digits, not '1234'",
            id="ISRCTN",
        ),
        pytest.param(
            "pillar: chronic_disease",
            "pillar: chronic",
            "chronic",
            "pillar: must be one of cancer, chronic_disease, health_wellbeing,"
            " womens_childrens, not 'chronic'",
            id="pillar",
        ),
        pytest.param(
            "    ratio: 2",
            "    ratio: 0",
            "ratio: 0",
            "arms[1].ratio: must be a whole number ≥ 1",
            id="ratio",
        ),
        pytest.param(
            "title: A trial of walking after hip replacement\n",
            "title: A trial of walking after hip replacement\ntitle: Walking\n",
            "title: Walking",
            "key 'title' given twice (first on line 2)",
            id="repeated YAML key",
        ),
        pytest.param(
            "    name: Week 12\n",
            "",
            "code: week_12",
            "events[4]: missing required key 'name'",
            id="missing key",
        ),
        pytest.param(
            "    day_offset: 84\n",
            "",
            "code: week_12",
            "events[4]: missing required key 'day_offset' (or set repeating: true)",
            id="scheduled event without a day",
        ),
    ],
)
def test_a_malformed_study_is_refused_where_it_is_wrong(tmp_path, old, new, where, message):
    text = changed(old, new)
    folder = study_folder(tmp_path, text)

    problems = check_study(folder)

    assert len(problems) == 1, problems
    [problem] = problems
    assert problem.path == folder / "study.yaml"
    assert problem.line == line_of(where, text)
    assert problem.message.startswith(message)
    with pytest.raises(DefinitionError) as refused:
        read_study(folder)
    assert refused.value.problems == problems


def test_duplicate_codes_are_refused_on_the_line_of_the_second(tmp_path):
    text = changed("code: usual_care", "code: walking")
    text = changed("code: week_26", "code: week_12", text)

    problems = check_study(study_folder(tmp_path, text))

    walking, week_12 = line_of("code: walking", TRIAL), line_of("code: week_12", TRIAL)
    assert [(problem.line, problem.message) for problem in problems] == [
        (
            line_of("code: usual_care", TRIAL),
            f"arms[1].code: arm code 'walking' given twice (first on line {walking})",
        ),
        (
            line_of("code: week_26", TRIAL),
            f"events[5].code: event code 'week_12' given twice (first on line {week_12})",
        ),
    ]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("{study}-{site}", "must contain {seq}"),
        ("{study}-{ward}-{seq}", "may use only the fields {study}, {site} and {seq}, not {ward}"),
        ("{study}-{seq!r}", "may use only the fields {study}, {site} and {seq}, each with"),
        ("{study}-{site}-{seq:%Y}", "cannot be used: Invalid format specifier"),
        ("{study}-{seq:04d}", "must contain {site}: participants are numbered per site"),
        ("{study}-{site}-" + "x" * 60 + "-{seq}", "makes study IDs up to 116 characters long"),
        ("{study}-{seq", "is not a valid pattern"),
        ("{}-{seq}", "may use only the fields"),
    ],
)
def test_a_participant_id_pattern_uses_only_known_fields(tmp_path, pattern, message):
    text = changed("phase: III", f'phase: III\nparticipant_id_pattern: "{pattern}"')

    [problem] = check_study(study_folder(tmp_path, text))

    assert problem.line == line_of("participant_id_pattern", text)
    assert problem.message.startswith(f"participant_id_pattern: {message}")


def test_a_participant_id_pattern_may_format_its_fields(tmp_path):
    text = changed("phase: III", 'phase: III\nparticipant_id_pattern: "{site}/{seq:05d}"')

    assert read_study(study_folder(tmp_path, text)).participant_id_pattern == "{site}/{seq:05d}"


def test_an_event_form_needs_a_file_when_the_study_has_forms(tmp_path):
    forms = {name: content for name, content in FORMS.items() if name != "vitals.yaml"}
    folder = study_folder(tmp_path, forms=forms)

    problems = check_study(folder)

    lines = [number for number, line in enumerate(TRIAL.splitlines(), 1) if "[vitals]" in line]
    column = len("    forms: [") + 1
    assert [(problem.line, problem.column, problem.message) for problem in problems] == [
        (
            line,
            column,
            f"events[{index}].forms[0]: no form file has code 'vitals' (in forms/*.yaml)",
        )
        for index, line in enumerate(lines, 1)
    ]


def test_form_files_are_checked(tmp_path):
    forms = {
        **FORMS,
        "broken.yaml": "code: broken\ntitle: [unclosed\n",
        "nameless.yaml": FORMS["ae.yaml"].replace("code: ae\n", ""),
        "vitals_v2.yaml": FORMS["vitals.yaml"],
        "listed.yaml": "- code: listed\n",
        "old.yml": "code: old\n",
    }
    folder = study_folder(tmp_path, forms=forms)

    problems = check_study(folder)

    assert [str(problem).removeprefix(f"{folder}/") for problem in problems] == [
        "forms/broken.yaml:3:1: YAML syntax error: expected ',' or ']', but got '<stream end>'"
        " (while parsing a flow sequence)",
        "forms/listed.yaml:1:1: a form file must be a mapping with a 'code'",
        "forms/nameless.yaml:1:1: missing required key 'code'",
        "forms/old.yml: form files are named *.yaml",
        "forms/vitals_v2.yaml:1:7: code: form 'vitals' is also in forms/vitals.yaml",
    ]


def test_every_problem_is_reported_at_once(tmp_path):
    text = changed("blinding: single", "blinding: triple")
    text = changed("window_after: 3", "windw_after: 3", text)
    text = changed("    ratio: 2", "    ratio: two", text)
    text = changed('consent_form: "1.1"\n', "", text)
    text = changed("effective_on: 2026-03-02", "effective_on: soon", text)

    with pytest.raises(DefinitionError) as refused:
        read_study(study_folder(tmp_path, text))

    problems = refused.value.problems
    assert [(problem.line, problem.message.split(":")[0]) for problem in problems] == [
        (line_of("triple", text), "blinding"),
        (line_of("soon", text), "effective_on"),
        (line_of("two", text), "arms[1].ratio"),
        (line_of("windw_after", text), "events[2]"),
        (line_of("information_sheet", text), "consent"),
    ]
    assert str(refused.value).splitlines() == [str(problem) for problem in problems]


def test_cross_checks_between_sections(tmp_path):
    text = changed("blinding: single", "blinding: double\nchildren: true")
    text = changed(
        "  - code: usual_care\n    name: Usual care\n    ratio: 2\n",
        "",
        text,
    )
    text += "schedule_baseline: randomisation\n"
    text += "sites:\n  - {code: nth, name: Northern General, status: opened}\n"
    text += "users:\n  - {username: pi, full_name: Priya Investigator, role: site_pi, site: CHH}\n"

    problems = check_study(study_folder(tmp_path, text))

    assert [problem.message for problem in problems] == [
        "arms: a double-blind study needs at least two arms",
        "consent: child_information_sheet is required when children: true",
        "consent: assent_form is required when children: true",
        "schedule_baseline: is randomisation, but the study has no randomisation section",
        "sites[0].code: 'nth' is not a valid code (capital letters and digits, at most 16)",
        "sites[0].status: must be one of pending, open, suspended, closed, not 'opened'",
        "users[0].site: no site has code 'CHH'",
    ]


def test_randomisation_settings_are_kept_as_data(tmp_path):
    text = TRIAL + (
        "randomisation:\n"
        "  method: minimisation\n"
        "  factors: [{code: site, weight: 2}]\n"
        "  total: weighted_sum\n"
        "  preferred_p: 0.8\n"
    )

    definition = read_study(study_folder(tmp_path, text))

    assert definition.randomisation == Randomisation(
        "minimisation",
        {"factors": [{"code": "site", "weight": 2}], "total": "weighted_sum", "preferred_p": 0.8},
    )


def test_randomisation_needs_a_known_method_and_a_list_of_factors(tmp_path):
    text = TRIAL + "randomisation:\n  method: coin\n  stratify_by: site\n"

    problems = check_study(study_folder(tmp_path, text))

    assert [problem.message for problem in problems] == [
        "randomisation.method: must be one of simple, permuted_blocks, big_stick,"
        " minimisation, not 'coin'",
        "randomisation.stratify_by: must be a list such as [site, sex], not 'site'",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("- code: WALK\n", "a study file must be a mapping of study settings"),
        ("code: [WALK\n", "YAML syntax error"),
    ],
)
def test_a_study_file_must_be_a_mapping(tmp_path, text, message):
    [problem] = check_study(study_folder(tmp_path, text))

    assert problem.message.startswith(message)


def test_a_folder_without_a_study_file_is_refused(tmp_path):
    assert check_study(tmp_path) == [
        Problem(tmp_path / "study.yaml", None, None, "not found: a study folder needs one")
    ]


def test_a_problem_reads_as_file_line_and_column():
    path = Path("forms/demo/study.yaml")
    message = "events[2].window_after: must be a whole number of days ≥ 0"

    assert str(Problem(path, 12, 5, message)) == f"forms/demo/study.yaml:12:5: {message}"
    assert str(Problem(path, 12, None, message)) == f"forms/demo/study.yaml:12: {message}"
    assert str(Problem(path, None, None, message)) == f"forms/demo/study.yaml: {message}"


def test_the_demo_study_survives_a_round_trip_through_json():
    definition = read_study(DEMO_FOLDER)

    data = json.loads(json.dumps(definition.to_json()))

    assert data["effective_on"] == "2026-01-05"
    assert data["events"][0]["forms"] == ["eligibility", "demographics"]
    assert StudyDefinition.from_json(data) == definition


@settings(max_examples=50, deadline=None)
@given(definitions)
def test_any_definition_survives_a_round_trip_through_json(definition):
    data = json.loads(json.dumps(definition.to_json()))

    assert StudyDefinition.from_json(data) == definition


def test_a_title_longer_than_the_database_holds_is_refused_with_its_line(tmp_path):
    title = "A" * 501
    text = changed("title: A trial of walking after hip replacement", f"title: {title}")

    [problem] = check_study(study_folder(tmp_path, text))

    assert problem.line == line_of("title:", text)
    assert problem.message == "title: must be at most 500 characters, not 501"


def test_a_demo_user_with_an_unknown_role_is_refused_with_its_line(tmp_path):
    demo = (DEMO_FOLDER / "study.yaml").read_text(encoding="utf-8")
    text = demo.replace("role: monitor", "role: monitr")

    [problem] = check_study(study_folder(tmp_path, text))

    assert problem.line == line_of("role: monitr", text)
    assert problem.message.startswith("users[4].role: no role is called 'monitr'; roles: ")
