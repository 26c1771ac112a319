"""What an import plans: codes made from OIDs, and the study folder to write with
where each of the file's OIDs goes in it (:class:`StudyPlan`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bhp_ctms.crf.definition.model import (
    Codelist,
    FormDefinition,
    Item,
)
from bhp_ctms.odm.reader import (
    StudyDef,
)
from bhp_ctms.odm.vocabulary import (
    ALIAS_CODE,
)
from bhp_ctms.studies.definition import Arm, Problem, SiteSeed

# Our codes' shapes (study.yaml and form files).
EVENT_CODE_LENGTH = 32
FORM_CODE_LENGTH = 32
ITEM_CODE_LENGTH = 64
STUDY_CODE = re.compile(r"[A-Z][A-Z0-9_-]{0,31}")
SITE_CODE_LENGTH = 16
DEFAULT_SITE = "ODM"
DEFAULT_EVENT = "odm_forms"

# Leading parts of OIDs that say what kind of thing they name, left out of codes.
_KIND_PREFIXES = frozenset(
    {"odm", "se", "f", "form", "forms", "ig", "it", "i", "cl", "mu", "event", "loc", "s"}
)


def code_of(text: str, *, kind: str, length: int, taken: set[str]) -> str:
    """A lower-case code (letters, digits, ``_``; a letter first) made from ``text``,
    unique among ``taken`` (which it joins); ``kind`` starts a code that would not
    start with a letter."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not slug or not slug[0].isalpha():
        slug = f"{kind}_{slug}".rstrip("_")
    slug = slug[:length].rstrip("_")
    code, number = slug, 1
    while code in taken:
        number += 1
        suffix = f"_{number}"
        code = slug[: length - len(suffix)].rstrip("_") + suffix
    taken.add(code)
    return code


def oid_words(oid: str) -> str:
    """An OID without its leading kind parts: ``ODM.IT.VS.VSORRES`` is ``VS.VSORRES``."""
    parts = [part for part in oid.split(".") if part]
    while len(parts) > 1 and parts[0].lower() in _KIND_PREFIXES:
        parts = parts[1:]
    return ".".join(parts) or oid


def own_code(aliases: Mapping[str, str], pattern: str, length: int, taken: set[str]) -> str:
    """The alias BHP-CTMS:code when it is a valid code not taken yet, else ""."""
    code = aliases.get(ALIAS_CODE, "")
    if code and re.fullmatch(pattern, code) and len(code) <= length and code not in taken:
        taken.add(code)
        return code
    return ""


def study_code_of(study: StudyDef | None, fallback: str) -> str:
    """The study's code: its StudyName (else its ProtocolName, else its OID) when that
    is, upper-cased, a study code; else the first of them cut to one; else ``fallback``
    (the StudyOID of its data, or the file's name) made one."""
    candidates = [study.name, study.protocol_name, oid_words(study.oid)] if study else []
    codes = [re.sub(r"[^A-Z0-9_-]+", "_", text.strip().upper()).strip("_-") for text in candidates]
    for code in codes:
        if code and STUDY_CODE.fullmatch(code):
            return code
    for code in [*codes, re.sub(r"[^A-Z0-9_-]+", "_", fallback.strip().upper()).strip("_-")]:
        if code:
            if not code[0].isalpha():
                code = f"S{code}"
            return code[:32].rstrip("_-")
    return "ODM_IMPORT"


def site_code_of(text: str, taken: set[str]) -> str:
    """A site code (capital letters and digits, at most 16) made from ``text``."""
    base = re.sub(r"[^A-Z0-9]", "", text.upper())[:SITE_CODE_LENGTH] or "SITE"
    code, number = base, 1
    while code in taken:
        number += 1
        code = base[: SITE_CODE_LENGTH - len(str(number))] + str(number)
    taken.add(code)
    return code


# -- the plan -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemPlace:
    """Where an ItemDef's values go in a form: its item (in ``group`` when repeating),
    and for one of REDCap's checkbox items, the choice it ticks."""

    item: Item
    group: str | None = None
    choice: str | None = None


@dataclass
class FormPlan:
    """A form to write (``definition``), and where each ItemDef of it goes, by
    ItemGroupDef OID then ItemDef OID."""

    code: str
    oid: str
    definition: FormDefinition
    places: dict[str, dict[str, ItemPlace]] = field(default_factory=dict)
    repeating: bool = False
    line: int = 0
    # Written by the REDCap importer rather than from this plan.
    written: bool = False
    # The repeating event whose occurrences the form's repeats (FormRepeatKey) become,
    # as REDCap's repeating instruments do; None when the form does not repeat so.
    repeat_event: str | None = None

    def place(self, group_oid: str, item_oid: str) -> ItemPlace | None:
        """Where a value goes, by its ItemGroupData and ItemData OIDs (an item found
        in another group of the form is placed all the same)."""
        found = self.places.get(group_oid, {}).get(item_oid)
        if found is not None:
            return found
        for places in self.places.values():
            if item_oid in places:
                return places[item_oid]
        return None


@dataclass
class EventPlan:
    code: str
    name: str
    repeating: bool
    forms: list[str]
    day_offset: int | None = None
    window_before: int = 0
    window_after: int = 0
    line: int = 0


@dataclass
class StudyPlan:
    """A study folder to write from an ODM file, and how the file's OIDs map to it."""

    source: Path
    code: str
    title: str
    events: list[EventPlan] = field(default_factory=list)
    forms: dict[str, FormPlan] = field(default_factory=dict)
    event_oids: dict[str, str] = field(default_factory=dict)
    form_oids: dict[str, str] = field(default_factory=dict)
    codelists: dict[str, Codelist] = field(default_factory=dict)
    arms: list[Arm] = field(default_factory=list)
    sites: list[SiteSeed] = field(default_factory=list)
    site_oids: dict[str, str] = field(default_factory=dict)
    warnings: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # ItemDef OIDs whose values are not imported, with why.
    left_out: dict[str, str] = field(default_factory=dict)
    # ItemDef OIDs whose values are expected not to be imported, and not told: what
    # REDCap keeps as items and BHP CTMS elsewhere (the record ID, the form status).
    quiet: set[str] = field(default_factory=set)
    redcap: bool = False

    def warn(self, line: int | None, message: str) -> None:
        self.warnings.append(Problem(self.source, line or None, None, message))

    def event_for(self, oid: str) -> str | None:
        return self.event_oids.get(oid)

    def default_event(self) -> str:
        """The event that forms given without an event go to: the first scheduled."""
        for event in self.events:
            if not event.repeating:
                return event.code
        return self.events[0].code if self.events else DEFAULT_EVENT
