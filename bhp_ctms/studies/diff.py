"""What changes between two versions of a study's definition, in a data manager's words.

The changes are listed in a stable order (study, arms, events, forms, criteria,
consent, randomisation), and each names the events whose data already entered it
could affect, so that an amendment can be reviewed before it is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, TypeVar

from bhp_ctms.studies.definition import (
    Arm,
    ConsentDocuments,
    Criterion,
    Event,
    FormFile,
    Randomisation,
    StudyDefinition,
)

Area = Literal["study", "arm", "event", "form", "criterion", "consent", "randomisation"]
ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True)
class DefinitionChange:
    """One difference between two definitions.

    ``code`` is the code of the arm, event, form or criterion; for the study, consent
    and randomisation it is the name of the setting. ``event_codes`` are the events
    (of the old definition) whose existing entries the change could affect.
    """

    area: Area
    code: str
    kind: ChangeKind
    description: str
    event_codes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.description


# The study's own settings, in the order they are compared, with their labels.
STUDY_FIELDS = {
    "code": "Study code",
    "title": "Title",
    "phase": "Phase",
    "status": "Initial status",
    "isrctn": "ISRCTN",
    "eudract": "EudraCT/CTIS number",
    "iras": "IRAS ID",
    "pillar": "Pillar",
    "rare_disease": "Rare disease",
    "sponsor": "Sponsor",
    "organisations": "Organisations",
    "blinding": "Blinding",
    "target_sample_size": "Target sample size",
    "participant_id_pattern": "Participant ID pattern",
    "protocol_version": "Protocol version",
    "effective_on": "Effective date",
    "amendment_summary": "Amendment summary",
    "schedule_baseline": "Schedule baseline",
    "children": "Recruits children",
}
CONSENT_DOCUMENTS = {
    "information_sheet": "Participant information sheet",
    "consent_form": "Consent form",
    "child_information_sheet": "Child information sheet",
    "assent_form": "Assent form",
}
# Text longer than this is reported as changed without quoting it.
LONGEST_QUOTED = 80

Item = TypeVar("Item", Arm, Event, FormFile, Criterion)


def diff_definitions(old: StudyDefinition, new: StudyDefinition) -> list[DefinitionChange]:
    """Every change from ``old`` to ``new``; [] when they define the same study.

    Sites and demo users are not compared: they only seed a study's first load.
    """
    return [
        *_study_changes(old, new),
        *_arm_changes(old.arms, new.arms),
        *_event_changes(old.events, new.events),
        *_form_changes(old, new),
        *_criterion_changes(old.criteria, new.criteria),
        *_consent_changes(old.consent, new.consent),
        *_randomisation_changes(old.randomisation, new.randomisation),
    ]


def _shown(value: Any) -> str:
    if value is None or value in ("", ()):
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ", ".join(str(item) for item in value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and " " in value:
        return f"“{value}”"
    return str(value)


def _from_to(before: Any, after: Any) -> str:
    return f"from {_shown(before)} to {_shown(after)}"


def _long(value: Any) -> bool:
    return isinstance(value, str) and (len(value) > LONGEST_QUOTED or "\n" in value)


def _paired(
    old: Sequence[Item], new: Sequence[Item]
) -> Iterator[tuple[str, Item | None, Item | None]]:
    """Items by code: the old ones in their order (removed or kept), then the added."""
    new_by_code = {item.code: item for item in new}
    old_codes = {item.code for item in old}
    for item in old:
        yield item.code, item, new_by_code.get(item.code)
    for item in new:
        if item.code not in old_codes:
            yield item.code, None, item


def _study_changes(old: StudyDefinition, new: StudyDefinition) -> Iterator[DefinitionChange]:
    for field, label in STUDY_FIELDS.items():
        before, after = getattr(old, field), getattr(new, field)
        if before == after:
            continue
        if _long(before) or _long(after):
            description = f"{label} changed"
        else:
            description = f"{label} changed {_from_to(before, after)}"
        yield DefinitionChange("study", field, "changed", description)


def _arm_changes(old: Sequence[Arm], new: Sequence[Arm]) -> Iterator[DefinitionChange]:
    for code, before, after in _paired(old, new):
        if before is None and after is not None:
            description = f"Arm {after.name} ({code}) added with ratio {after.ratio}"
            yield DefinitionChange("arm", code, "added", description)
        elif after is None and before is not None:
            yield DefinitionChange("arm", code, "removed", f"Arm {before.name} ({code}) removed")
        elif before is not None and after is not None:
            if before.name != after.name:
                description = f"Arm {code}: name changed {_from_to(before.name, after.name)}"
                yield DefinitionChange("arm", code, "changed", description)
            if before.ratio != after.ratio:
                description = (
                    f"Arm {after.name}: allocation ratio changed from {before.ratio}"
                    f" to {after.ratio}"
                )
                yield DefinitionChange("arm", code, "changed", description)


def _days(value: int | None) -> str:
    return "(none)" if value is None else f"day {value}"


def _event_changes(old: Sequence[Event], new: Sequence[Event]) -> Iterator[DefinitionChange]:
    for code, before, after in _paired(old, new):
        affected = (code,)
        if before is None and after is not None:
            when = "repeating" if after.repeating else f"on {_days(after.day_offset)}"
            description = f"Event {after.name} ({code}) added, {when}"
            yield DefinitionChange("event", code, "added", description, affected)
        elif after is None and before is not None:
            description = f"Event {before.name} ({code}) removed"
            yield DefinitionChange("event", code, "removed", description, affected)
        elif before is not None and after is not None:
            for description in _event_descriptions(before, after):
                yield DefinitionChange("event", code, "changed", description, affected)


def _event_descriptions(before: Event, after: Event) -> Iterator[str]:
    name = after.name
    if before.name != after.name:
        yield f"Event {after.code}: name changed {_from_to(before.name, after.name)}"
    if before.repeating != after.repeating:
        yield (
            f"{name}: changed from a scheduled to a repeating event"
            if after.repeating
            else f"{name}: changed from a repeating to a scheduled event"
        )
    if before.day_offset != after.day_offset:
        yield f"{name}: changed from {_days(before.day_offset)} to {_days(after.day_offset)}"
    for field, label in (("window_before", "window before"), ("window_after", "window after")):
        was, now = getattr(before, field), getattr(after, field)
        if was != now:
            yield f"{name}: {label} changed from {was} to {now} days"
    if before.max_repeats != after.max_repeats:
        was = before.max_repeats or "no limit"
        now = after.max_repeats or "no limit"
        yield f"{name}: maximum repeats changed from {was} to {now}"
    removed = [form for form in before.forms if form not in after.forms]
    added = [form for form in after.forms if form not in before.forms]
    for form in added:
        yield f"Form {form} added to event {name}"
    for form in removed:
        yield f"Form {form} removed from event {name}"
    kept_before = [form for form in before.forms if form in after.forms]
    kept_after = [form for form in after.forms if form in before.forms]
    if kept_before != kept_after:
        yield f"{name}: forms reordered to {', '.join(after.forms)}"


def _form_changes(old: StudyDefinition, new: StudyDefinition) -> Iterator[DefinitionChange]:
    for code, before, after in _paired(old.forms, new.forms):
        if before is None and after is not None:
            description = f"Form {code} added (file {after.path})"
            yield DefinitionChange("form", code, "added", description)
        elif after is None and before is not None:
            description = f"Form {code} removed (file {before.path})"
            yield DefinitionChange("form", code, "removed", description, old.events_with_form(code))
        elif before is not None and after is not None:
            if before.sha256 != after.sha256:
                description = f"Form {code} changed (file {after.path})"
                affected = old.events_with_form(code)
                yield DefinitionChange("form", code, "changed", description, affected)
            elif before.path != after.path:
                # The same bytes under another name: no entry can be affected.
                description = f"Form {code} moved from {before.path} to {after.path}"
                yield DefinitionChange("form", code, "changed", description)


def _criterion_changes(
    old: Sequence[Criterion], new: Sequence[Criterion]
) -> Iterator[DefinitionChange]:
    def label(criterion: Criterion) -> str:
        return f"{criterion.kind.capitalize()} criterion {criterion.code}"

    for code, before, after in _paired(old, new):
        if before is None and after is not None:
            description = f"{label(after)} added: “{after.text}”"
            yield DefinitionChange("criterion", code, "added", description)
        elif after is None and before is not None:
            description = f"{label(before)} removed: “{before.text}”"
            yield DefinitionChange("criterion", code, "removed", description)
        elif before is not None and after is not None:
            if before.kind != after.kind:
                description = f"Criterion {code} changed from {before.kind} to {after.kind}"
                yield DefinitionChange("criterion", code, "changed", description)
            if before.text != after.text:
                description = f"{label(after)}: text changed from “{before.text}” to “{after.text}”"
                yield DefinitionChange("criterion", code, "changed", description)


def _consent_changes(old: ConsentDocuments, new: ConsentDocuments) -> Iterator[DefinitionChange]:
    for field, label in CONSENT_DOCUMENTS.items():
        before, after = getattr(old, field), getattr(new, field)
        if before == after:
            continue
        if before is None:
            yield DefinitionChange("consent", field, "added", f"{label} version {after} added")
        elif after is None:
            description = f"{label} removed (was version {before})"
            yield DefinitionChange("consent", field, "removed", description)
        else:
            description = f"{label} version changed from {before} to {after}"
            yield DefinitionChange("consent", field, "changed", description)


def _method(randomisation: Randomisation) -> str:
    return randomisation.method.replace("_", " ")


def _randomisation_changes(
    old: Randomisation | None, new: Randomisation | None
) -> Iterator[DefinitionChange]:
    if old is None and new is not None:
        description = f"Randomisation by {_method(new)} added"
        yield DefinitionChange("randomisation", new.method, "added", description)
        return
    if new is None and old is not None:
        description = f"Randomisation by {_method(old)} removed"
        yield DefinitionChange("randomisation", old.method, "removed", description)
        return
    if old is None or new is None:
        return
    if old.method != new.method:
        description = f"Randomisation method changed from {_method(old)} to {_method(new)}"
        yield DefinitionChange("randomisation", "method", "changed", description)
    for key in [*old.settings, *(key for key in new.settings if key not in old.settings)]:
        if key not in new.settings:
            was = json.dumps(old.settings[key])
            description = f"Randomisation setting {key} removed (was {was})"
            yield DefinitionChange("randomisation", key, "removed", description)
        elif key not in old.settings:
            description = f"Randomisation setting {key} added: {json.dumps(new.settings[key])}"
            yield DefinitionChange("randomisation", key, "added", description)
        elif old.settings[key] != new.settings[key]:
            description = (
                f"Randomisation setting {key} changed from {json.dumps(old.settings[key])}"
                f" to {json.dumps(new.settings[key])}"
            )
            yield DefinitionChange("randomisation", key, "changed", description)
