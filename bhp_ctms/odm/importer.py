"""``ctms odm import``: an ODM file (or REDCap's project XML) as a study, and its data.

The steps, each usable alone:

1. :func:`read_and_plan` reads the file (refusing an invalid one with every problem at
   its line) and plans the study folder; for REDCap's project XML the form files are
   written then, by the REDCap dictionary importer.
2. :func:`write_folder` writes ``study.yaml``, ``codelists.yaml`` and the form files,
   and checks the folder as ``ctms study check`` does. A study already loaded keeps its
   protocol version when the file defines the same; otherwise the folder is its next
   version (an amendment), with a summary saying where it came from.
3. The folder is loaded by :func:`bhp_ctms.studies.loading.load_study`, as ``ctms study
   load`` loads it.
4. :func:`import_clinical_data` makes each subject a participant (the SubjectKey is the
   study ID; the site is the subject's SiteRef, REDCap's data access group, or a site
   ``ODM`` made for subjects without one), and saves each form's values through
   :func:`bhp_ctms.crf.entry.save_entry`, so that every value has its audit event,
   attributed to whoever runs the import and given the reason "Imported from the ODM
   file ...". A value that is not a value of its item (not a date, not one of the
   choices...) is a warning at its line and is not imported; the rest is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bhp_ctms.audit.capture import acting_as, change_reason
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.crf.definition.model import MISSING_CODES, FormDefinition, Item
from bhp_ctms.crf.entry import (
    EntryLocked,
    Submission,
    find_entry,
    form_definition,
    form_version_for,
    save_entry,
)
from bhp_ctms.crf.values import ValueProblem, parse_value
from bhp_ctms.db import utc_today, utcnow
from bhp_ctms.odm.folder import write_study_folder
from bhp_ctms.odm.plan import DEFAULT_SITE, FormPlan, ItemPlace, StudyPlan
from bhp_ctms.odm.planning import plan_study
from bhp_ctms.odm.reader import (
    FormData,
    ItemData,
    OdmFile,
    OdmImportError,
    StudyEventData,
    SubjectData,
    read_odm,
)
from bhp_ctms.odm.redcap import plan_redcap
from bhp_ctms.participants.models import Participant, ParticipantStatus
from bhp_ctms.participants.services import ParticipantService
from bhp_ctms.settings import Settings
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteDetails, SiteService
from bhp_ctms.studies.definition import (
    Problem,
    SiteSeed,
    StudyDefinition,
    check_study,
    read_study,
)
from bhp_ctms.studies.loading import protocol_changes
from bhp_ctms.studies.services import find_study, protocol_definition, protocol_versions

REDCAP_GROUP_ITEM = "redcap_data_access_group"
TRUE_WORDS = frozenset({"1", "true", "yes", "y"})
FALSE_WORDS = frozenset({"0", "false", "no", "n"})
_TIME = re.compile(r"(\d{1,2}:\d{2})(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")
_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{1,2}:\d{2})(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?"
)


def read_and_plan(path: Path, folder: Path) -> tuple[OdmFile, StudyPlan]:
    """Read an ODM file and plan its study folder (raises :class:`OdmImportError`)."""
    odm = read_odm(path)
    plan = plan_redcap(odm, folder) if odm.redcap else plan_study(odm)
    return odm, plan


def subject_count(odm: OdmFile) -> int:
    return len({subject.key for data in odm.clinical for subject in data.subjects})


def add_default_site(plan: StudyPlan, odm: OdmFile) -> None:
    """Seed the site ``ODM`` when some subject has no site the plan knows."""
    if any(site.code == DEFAULT_SITE for site in plan.sites):
        return
    for subject in _subjects(odm):
        if _site_code(plan, subject) is None:
            plan.sites.append(
                SiteSeed(DEFAULT_SITE, "Imported from ODM (no site given)", "open", None, "")
            )
            return


def _subjects(odm: OdmFile) -> Iterator[SubjectData]:
    for data in odm.clinical:
        yield from data.subjects


def _site_code(plan: StudyPlan, subject: SubjectData) -> str | None:
    if subject.site_oid in plan.site_oids:
        return plan.site_oids[subject.site_oid]
    for event in subject.events:
        for form in event.forms:
            for group in form.groups:
                for item in group.items:
                    if item.oid == REDCAP_GROUP_ITEM and item.value in plan.site_oids:
                        return plan.site_oids[item.value]
    return None


def _next_label(label: str, used: set[str]) -> str:
    major = re.match(r"(\d+)", label)
    number = int(major.group(1)) + 1 if major else len(used) + 1
    candidate = f"{number}.0"
    while candidate in used:
        number += 1
        candidate = f"{number}.0"
    return candidate


def write_folder(
    db: Session | None, odm: OdmFile, plan: StudyPlan, folder: Path, *, today: date | None = None
) -> None:
    """Write the study folder and check it; raises :class:`OdmImportError` with the
    folder's problems (nothing is loaded then). With ``db``, a study already loaded
    keeps its latest protocol version if the file defines the same, or gets the next."""
    today = today or utc_today()
    participants = subject_count(odm)
    write_study_folder(plan, folder, effective_on=today, participants=participants)
    study = find_study(db, plan.code) if db is not None else None
    versions = protocol_versions(db, study.id) if db is not None and study is not None else []
    if versions:
        latest = versions[-1]
        write_study_folder(
            plan,
            folder,
            version_label=latest.label,
            effective_on=latest.effective_on,
            amendment_summary=latest.summary,
            participants=participants,
        )
        if _changed(folder, protocol_definition(latest)):
            write_study_folder(
                plan,
                folder,
                version_label=_next_label(latest.label, {version.label for version in versions}),
                effective_on=max(today, latest.effective_on),
                amendment_summary=f"Imported again from the ODM file {odm.path.name}",
                participants=participants,
            )
    problems = check_study(folder)
    if problems:
        raise OdmImportError(problems)


def _changed(folder: Path, latest: StudyDefinition) -> bool:
    try:
        return bool(protocol_changes(latest, read_study(folder)))
    except ValueError:
        return True


# -- clinical data ---------------------------------------------------------------------------


class _Reason(Mapping[str, str]):
    """The reason for change of every item: the import."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __getitem__(self, key: str) -> str:
        return self.reason

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@dataclass
class DataImported:
    """What the clinical data import did."""

    participants_created: int = 0
    participants_found: int = 0
    entries: int = 0
    values: int = 0
    values_left_out: int = 0
    warnings: list[Problem] = field(default_factory=list)


@dataclass
class _Importer:
    db: Session
    settings: Settings
    actor: AuditActor
    odm: OdmFile
    plan: StudyPlan
    study_id: int
    today: date
    result: DataImported = field(default_factory=DataImported)
    sites: dict[str, Site] = field(default_factory=dict)
    left_out: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    # The participants met so far, by study ID (a subject may be in several ClinicalData).
    met: dict[str, Participant] = field(default_factory=dict)

    def warn(self, line: int | None, message: str) -> None:
        self.result.warnings.append(Problem(self.odm.path, line or None, None, message))

    def leave_out(self, item: ItemData, reason: str) -> None:
        """Count a value not imported, told once per item with the first line."""
        if item.oid in self.plan.quiet:
            return
        line, count, _ = self.left_out.get(item.oid, (item.line, 0, reason))
        self.left_out[item.oid] = (line, count + 1, reason)
        self.result.values_left_out += 1

    def run(self) -> DataImported:
        self.version = protocol_versions(self.db, self.study_id)[-1]
        self.definition = protocol_definition(self.version)
        self.sites = {
            site.code: site
            for site in self.db.scalars(select(Site).where(Site.study_id == self.study_id))
        }
        reason = f"Imported from the ODM file {self.odm.path.name}"
        self.reasons = _Reason(reason)
        with acting_as(self.db, self.actor), change_reason(self.db, reason):
            for subject in _subjects(self.odm):
                participant = self.participant(subject)
                if participant is None:
                    continue
                for event in subject.events:
                    for form in event.forms:
                        self.form(participant, event, form)
        for oid, (line, count, why) in self.left_out.items():
            values = "value" if count == 1 else "values"
            self.warn(line, f"{count} {values} of item {oid} not imported: {why}")
        for reference in self.odm.reference:
            count = sum(len(group.items) for group in reference.groups)
            self.result.values_left_out += count
        return self.result

    def site(self, subject: SubjectData) -> Site:
        code = _site_code(self.plan, subject) or DEFAULT_SITE
        site = self.sites.get(code)
        if site is None:
            seed = next((seed for seed in self.plan.sites if seed.code == code), None)
            name = seed.name if seed else "Imported from ODM (no site given)"
            site = SiteService(self.db).create_site(
                self.actor, self.study_id, code, SiteDetails(name=name)
            )
            self.db.flush()
            self.sites[code] = site
        return site

    def participant(self, subject: SubjectData) -> Participant | None:
        key = subject.key.strip()
        if not key or len(key) > 64:
            self.warn(
                subject.line,
                f"subject {key!r}: a study ID has 1 to 64 characters; its data are not imported",
            )
            return None
        if key in self.met:
            return self.met[key]
        found = self.db.scalars(
            select(Participant).where(
                Participant.study_id == self.study_id, Participant.code == key
            )
        ).first()
        if found is not None:
            self.result.participants_found += 1
            self.met[key] = found
            return found
        site = self.site(subject)
        # The site's gap-free counter, as registration uses it, so that a participant
        # registered later gets the next number.
        sequence = ParticipantService(self.db, self.settings)._next_sequence(site.id)
        participant = Participant(
            study_id=self.study_id,
            site=site,
            code=key,
            sequence=sequence,
            status=ParticipantStatus.SCREENED,
            protocol_version=self.version,
            registered_on=self.today,
            is_child=False,
            status_on=self.today,
            status_details="",
            created_at=utcnow(),
        )
        self.db.add(participant)
        self.db.flush()
        self.result.participants_created += 1
        self.met[key] = participant
        return participant

    def _all_left_out(self, form: FormData, reason: str) -> None:
        for group in form.groups:
            for item in group.items:
                self.leave_out(item, reason)

    def _event(
        self, event: StudyEventData, form: FormData, plan: FormPlan
    ) -> tuple[str, int] | None:
        """The event code and occurrence the form's values go to, or None (and a
        warning) when they cannot go anywhere."""
        if plan.repeat_event is not None:
            return plan.repeat_event, _number(form.repeat_key) or 1
        if form.repeat_key not in ("", "1"):
            self._all_left_out(
                form, f"form {form.oid} repeated within an event (FormRepeatKey {form.repeat_key})"
            )
            return None
        code = self.plan.event_oids.get(event.oid) if event.oid else None
        if code is None and not event.oid:
            code = self.plan.event_oids.get("") or self.plan.default_event()
        if code is None:
            self._all_left_out(form, f"event {event.oid} is not part of the study")
            return None
        instance = _number(event.repeat_key) or 1
        try:
            repeating = self.definition.event(code).repeating
        except KeyError:
            self._all_left_out(form, f"event {event.oid} is not part of the study")
            return None
        if instance > 1 and not repeating:
            self._all_left_out(
                form, f"event {event.oid} does not repeat (StudyEventRepeatKey {event.repeat_key})"
            )
            return None
        return code, instance

    def form(self, participant: Participant, event: StudyEventData, form: FormData) -> None:
        form_code = self.plan.form_oids.get(form.oid)
        if form_code is None:
            self._all_left_out(form, f"form {form.oid} is not part of the study")
            return
        plan = self.plan.forms[form_code]
        place = self._event(event, form, plan)
        if place is None:
            return
        event_code, instance = place
        version = form_version_for(self.db, participant, form_code)
        if version is None:
            self._all_left_out(
                form, f"form {form_code} is not part of {participant.code}'s protocol"
            )
            return
        values, missing = self.values(plan, form_definition(version), form)
        if not values and not missing:
            return
        entry = find_entry(self.db, participant, event_code, instance, form_code)
        submission = Submission(
            values=values,
            missing=missing,
            reasons=self.reasons,
            base_version=entry.version if entry is not None else None,
        )
        try:
            saved = save_entry(self.db, participant, event_code, instance, form_code, submission)
        except EntryLocked:
            self.warn(form.line, f"{participant.code}: form {form_code} at {event_code} is locked")
            self.result.values_left_out += len(values) + len(missing)
            return
        if not saved.saved:
            reasons = [
                failure.message
                for failure in (saved.evaluation.hard_failures if saved.evaluation else [])
            ]
            self.warn(
                form.line,
                f"{participant.code}: form {form_code} at {event_code} {instance} is not imported: "
                + ("; ".join(reasons) or "it could not be saved"),
            )
            self.result.values_left_out += len(values) + len(missing)
            return
        self.result.entries += 1
        self.result.values += len(values) + len(missing)

    def values(
        self, plan: FormPlan, definition: FormDefinition, form: FormData
    ) -> tuple[dict[str, str], dict[str, str]]:
        """A form's values and missing-data codes by item path, as ``definition`` (the
        form version loaded) has its items."""
        values: dict[str, str] = {}
        missing: dict[str, str] = {}
        lines: dict[str, int] = {}
        ticked: dict[str, tuple[Item, list[str]]] = {}
        rows: dict[str, dict[str, int]] = {}
        for group in form.groups:
            for item_data in group.items:
                place = plan.place(group.oid, item_data.oid)
                if place is None:
                    why = (
                        self.plan.left_out.get(item_data.oid) or f"not an item of form {plan.code}"
                    )
                    if item_data.value or item_data.missing:
                        self.leave_out(item_data, why)
                    continue
                try:
                    item = definition.item(place.item.code)
                except KeyError:
                    self.leave_out(item_data, f"not an item of form {plan.code}")
                    continue
                path = self._path(place, group.oid, group.repeat_key, rows)
                self._value(replace(place, item=item), item_data, path, values, missing, ticked)
                lines[path] = item_data.line
        for path, (item, codes) in ticked.items():
            try:
                values[path] = parse_value(item, codes)
            except ValueProblem as problem:
                self.warn(lines.get(path), f"{problem.message}: not imported")
        return values, missing

    def _path(
        self, place: ItemPlace, group_oid: str, key: str, rows: dict[str, dict[str, int]]
    ) -> str:
        if place.group is None:
            return place.item.code
        numbered = rows.setdefault(group_oid, {})
        row = _number(key)
        if row is None:
            row = numbered.setdefault(key, len(numbered) + 1)
        return f"{place.group}[{row}].{place.item.code}"

    def _value(
        self,
        place: ItemPlace,
        item_data: ItemData,
        path: str,
        values: dict[str, str],
        missing: dict[str, str],
        ticked: dict[str, tuple[Item, list[str]]],
    ) -> None:
        item = place.item
        if item_data.binary:
            self.leave_out(item_data, "a file: files are not imported")
            return
        if item.type == "calculated":
            return  # worked out again when the form is saved
        if place.choice is not None:
            codes = ticked.setdefault(path, (item, []))[1]
            if (item_data.value or "").strip().lower() in TRUE_WORDS:
                codes.append(place.choice)
            return
        if item_data.missing is not None:
            allowed = {MISSING_CODES[key] for key in item.missing_codes}
            if item_data.missing in allowed:
                missing[path] = item_data.missing
            else:
                self.leave_out(
                    item_data,
                    f"the missing-data code {item_data.missing!r} is not one item {item.code} "
                    "allows",
                )
            return
        raw = item_data.value
        if raw is None or not raw.strip():
            return
        try:
            values[path] = canonical_value(item, raw)
        except ValueProblem as problem:
            self.warn(item_data.line, f"{problem.message} (the file has {raw!r}): not imported")
            self.result.values_left_out += 1


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def canonical_value(item: Item, raw: str) -> str:
    """An ODM value as the canonical text of ``item`` (raises :class:`ValueProblem`)."""
    text = raw.strip() if item.type != "long_text" else raw
    kind = item.type
    if kind == "time":
        match = _TIME.fullmatch(text)
        if match:
            text = match.group(1)
    elif kind == "datetime":
        match = _DATETIME.fullmatch(text)
        if match:
            text = f"{match.group(1)}T{match.group(2)}"
    elif kind == "date":
        text = text.split("T", 1)[0]
        parts = text.split("-")
        if len(parts) == 2:
            text = f"{text}-UN"
        elif len(parts) == 1 and len(text) == 4:
            text = f"{text}-UN-UN"
    elif kind == "yes_no":
        word = text.lower()
        text = "1" if word in TRUE_WORDS else "0" if word in FALSE_WORDS else text
    elif kind == "multiple_choice":
        return parse_value(item, [_code(item, code) for code in text.split("|")])
    elif kind == "single_choice":
        text = _code(item, text)
    return parse_value(item, text)


def _code(item: Item, text: str) -> str:
    """A choice given by its code, or (a file of another system) by its label."""
    codes = {choice.code for choice in item.choices}
    if text in codes:
        return text
    labels = {choice.label.strip().lower(): choice.code for choice in item.choices}
    return labels.get(text.strip().lower(), text)


def import_clinical_data(
    db: Session,
    settings: Settings,
    actor: AuditActor,
    odm: OdmFile,
    plan: StudyPlan,
    *,
    today: date | None = None,
) -> DataImported:
    """Import the file's subjects and their values into the study the plan made (see
    the module's docstring)."""
    study = find_study(db, plan.code)
    if study is None:
        raise OdmImportError([Problem(odm.path, None, None, f"study {plan.code} is not loaded")])
    importer = _Importer(db, settings, actor, odm, plan, study.id, today or utc_today())
    return importer.run()


def summary(result: DataImported) -> str:
    """What the data import did, in a sentence."""
    participants = result.participants_created + result.participants_found
    parts = [
        f"{participants} participant{'' if participants == 1 else 's'}"
        f" ({result.participants_created} new)",
        f"{result.entries} form entr{'y' if result.entries == 1 else 'ies'}",
        f"{result.values} value{'' if result.values == 1 else 's'} imported",
    ]
    if result.values_left_out:
        parts.append(f"{result.values_left_out} not imported (see the warnings)")
    return "Clinical data: " + ", ".join(parts) + "."
