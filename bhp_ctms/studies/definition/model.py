"""A study's definition as frozen data, and its round trip through plain JSON."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, cast

Pillar = Literal["cancer", "chronic_disease", "health_wellbeing", "womens_childrens"]
BlindingLevel = Literal["open", "single", "double"]
ScheduleBaseline = Literal["registration", "randomisation"]
CriterionKind = Literal["inclusion", "exclusion"]
RandomisationMethod = Literal["simple", "permuted_blocks", "big_stick", "minimisation"]
StudyStatusValue = Literal[
    "set_up", "recruiting", "closed_to_recruitment", "follow_up", "locked", "archived"
]


@dataclass(frozen=True)
class Arm:
    code: str
    name: str
    ratio: int


@dataclass(frozen=True)
class Event:
    """A visit or other point where forms are completed.

    Scheduled events fall ``day_offset`` days after the schedule's baseline (negative
    before it, as screening is) and may be done ``window_before`` days early or
    ``window_after`` days late. Repeating events (adverse events, unscheduled visits)
    have no day and no window, and happen as often as needed, up to ``max_repeats``.
    """

    code: str
    name: str
    day_offset: int | None
    window_before: int
    window_after: int
    repeating: bool
    forms: tuple[str, ...]
    max_repeats: int | None

    @property
    def scheduled(self) -> bool:
        return not self.repeating


@dataclass(frozen=True)
class Criterion:
    """An eligibility criterion: a participant is eligible when every inclusion
    criterion is answered "yes" and every exclusion criterion "no"."""

    code: str
    kind: CriterionKind
    text: str

    @property
    def eligible_answer(self) -> Literal["yes", "no"]:
        return "yes" if self.kind == "inclusion" else "no"


@dataclass(frozen=True)
class ConsentDocuments:
    """The version labels (e.g. "2.1") of the documents a participant is given."""

    information_sheet: str
    consent_form: str
    child_information_sheet: str | None
    assent_form: str | None


@dataclass(frozen=True)
class Randomisation:
    """How participants are allocated to arms; ``settings`` holds the section's other
    keys (block sizes, stratification factors, ...) as plain data."""

    method: RandomisationMethod
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class FormFile:
    code: str
    path: str
    sha256: str


@dataclass(frozen=True)
class SiteSeed:
    """A site created with the study when it is first loaded."""

    code: str
    name: str
    status: str
    recruitment_target: int | None
    principal_investigator: str


@dataclass(frozen=True)
class StudyDefinition:
    """One version of a study's protocol, as read from its folder."""

    code: str
    title: str
    phase: str
    isrctn: str
    eudract: str
    iras: str
    pillar: Pillar
    rare_disease: bool
    sponsor: str
    organisations: tuple[str, ...]
    blinding: BlindingLevel
    target_sample_size: int
    participant_id_pattern: str
    protocol_version: str
    effective_on: date
    amendment_summary: str
    schedule_baseline: ScheduleBaseline
    children: bool
    arms: tuple[Arm, ...]
    events: tuple[Event, ...]
    criteria: tuple[Criterion, ...]
    consent: ConsentDocuments
    randomisation: Randomisation | None = None
    forms: tuple[FormFile, ...] = ()
    sites: tuple[SiteSeed, ...] = ()
    # Demo deployments only: {username, full_name, role, and scope or site}.
    users: tuple[Mapping[str, str], ...] = ()
    # The status a study is created with; None leaves it to the loader.
    status: StudyStatusValue | None = None

    def event(self, code: str) -> Event:
        for event in self.events:
            if event.code == code:
                return event
        raise KeyError(code)

    def arm(self, code: str) -> Arm:
        for arm in self.arms:
            if arm.code == code:
                return arm
        raise KeyError(code)

    def form(self, code: str) -> FormFile:
        for form in self.forms:
            if form.code == code:
                return form
        raise KeyError(code)

    def events_with_form(self, form_code: str) -> tuple[str, ...]:
        """The codes of the events that list a form, in schedule order."""
        return tuple(event.code for event in self.events if form_code in event.forms)

    def to_json(self) -> dict[str, Any]:
        """The definition as plain JSON data: dates as ISO strings, tuples as lists."""
        return cast(dict[str, Any], _plain(self))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StudyDefinition:
        """The definition that :meth:`to_json` gave ``data``."""
        randomisation = data.get("randomisation")
        return cls(
            code=data["code"],
            title=data["title"],
            phase=data["phase"],
            isrctn=data["isrctn"],
            eudract=data["eudract"],
            iras=data["iras"],
            pillar=data["pillar"],
            rare_disease=data["rare_disease"],
            sponsor=data["sponsor"],
            organisations=tuple(data["organisations"]),
            blinding=data["blinding"],
            target_sample_size=data["target_sample_size"],
            participant_id_pattern=data["participant_id_pattern"],
            protocol_version=data["protocol_version"],
            effective_on=date.fromisoformat(data["effective_on"]),
            amendment_summary=data["amendment_summary"],
            schedule_baseline=data["schedule_baseline"],
            children=data["children"],
            arms=tuple(Arm(**arm) for arm in data["arms"]),
            events=tuple(
                Event(**{**event, "forms": tuple(event["forms"])}) for event in data["events"]
            ),
            criteria=tuple(Criterion(**criterion) for criterion in data["criteria"]),
            consent=ConsentDocuments(**data["consent"]),
            randomisation=None
            if randomisation is None
            else Randomisation(randomisation["method"], dict(randomisation["settings"])),
            forms=tuple(FormFile(**form) for form in data.get("forms", ())),
            sites=tuple(SiteSeed(**site) for site in data.get("sites", ())),
            users=tuple(dict(user) for user in data.get("users", ())),
            status=data.get("status"),
        )


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, date):
        return value.isoformat()
    return value
