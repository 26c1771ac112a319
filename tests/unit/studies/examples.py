"""Study definitions shared by the tests: a small trial's files and any definition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from bhp_ctms.studies.definition import (
    Arm,
    ConsentDocuments,
    Criterion,
    Event,
    FormFile,
    Randomisation,
    SiteSeed,
    StudyDefinition,
)

DEMO_FOLDER = Path(__file__).resolve().parents[3] / "forms" / "demo"

# Two arms, six scheduled events and a repeating adverse event; every snippet the
# tests below change appears once.
TRIAL = """\
code: WALK-2
title: A trial of walking after hip replacement
phase: III
pillar: chronic_disease
blinding: single
target_sample_size: 60
protocol_version: "2.0"
effective_on: 2026-03-02
arms:
  - code: walking
    name: Walking programme
  - code: usual_care
    name: Usual care
    ratio: 2
events:
  - code: screening
    name: Screening
    day_offset: -28
    window_after: 28
    forms: [eligibility]
  - code: baseline
    name: Baseline
    day_offset: 0
    forms: [vitals]
  - code: week_2
    name: Week 2
    day_offset: 14
    window_before: 3
    window_after: 3
    forms: [vitals]
  - code: week_6
    name: Week 6
    day_offset: 42
    window_before: 5
    window_after: 5
    forms: [vitals]
  - code: week_12
    name: Week 12
    day_offset: 84
    window_before: 7
    window_after: 7
    forms: [vitals]
  - code: week_26
    name: Week 26
    day_offset: 182
    window_before: 14
    window_after: 14
    forms: [vitals]
  - code: adverse_event
    name: Adverse event
    repeating: true
    max_repeats: 50
    forms: [ae]
eligibility:
  - code: adult
    kind: inclusion
    text: Aged 18 or over.
  - code: pregnant
    kind: exclusion
    text: Pregnant or breastfeeding.
consent:
  information_sheet: "1.0"
  consent_form: "1.1"
"""

FORMS = {
    "eligibility.yaml": """\
code: eligibility
title: Eligibility
version: "1.0"
items:
  - {code: hip_replaced_on, label: Date of the hip replacement, type: date}
""",
    "vitals.yaml": """\
code: vitals
title: Vital signs
version: "1.0"
items:
  - {code: weight, label: Weight, type: decimal, units: kg}
""",
    "ae.yaml": """\
code: ae
title: Adverse event
version: "1.0"
items:
  - {code: term, label: Adverse event, type: text}
""",
}


# Any definition, valid or not, with unique codes: what JSON and a diff must handle.
codes = st.sampled_from(["screening", "week_2", "vitals", "ae", "walking", "adult"])
labels = st.text(max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | labels,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(labels, children, max_size=3),
    max_leaves=6,
)


def coded(items: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(items, max_size=3, unique_by=lambda item: item.code).map(tuple)


definitions = st.builds(
    StudyDefinition,
    code=st.sampled_from(["DEMO", "WALK-2"]),
    phase=st.sampled_from(["I", "III", "N/A"]),
    pillar=st.sampled_from(["cancer", "chronic_disease"]),
    organisations=st.lists(labels, max_size=2).map(tuple),
    blinding=st.sampled_from(["open", "single", "double"]),
    effective_on=st.dates(),
    schedule_baseline=st.sampled_from(["registration", "randomisation"]),
    arms=coded(st.builds(Arm, code=codes)),
    events=coded(st.builds(Event, code=codes, forms=st.lists(codes, max_size=3).map(tuple))),
    criteria=coded(
        st.builds(Criterion, code=codes, kind=st.sampled_from(["inclusion", "exclusion"]))
    ),
    consent=st.builds(ConsentDocuments),
    randomisation=st.none()
    | st.builds(
        Randomisation,
        method=st.sampled_from(["simple", "minimisation"]),
        settings=st.dictionaries(labels, json_values, max_size=3),
    ),
    forms=coded(st.builds(FormFile, code=codes)),
    sites=st.lists(st.builds(SiteSeed), max_size=2).map(tuple),
    users=st.lists(st.dictionaries(labels, labels, max_size=3), max_size=2).map(tuple),
    status=st.none() | st.sampled_from(["set_up", "recruiting"]),
)
