"""The metadata of an ODM export: the study, its form versions, code lists and units
(``Study``), and the sites, people and signature meanings (``AdminData``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bhp_ctms.crf.definition.model import (
    MISSING_CODES,
    MISSING_LABELS,
    YES_NO_CHOICES,
    FormDefinition,
    Item,
    Range,
)
from bhp_ctms.exports.records import (
    ChangeRecord,
    ExportOptions,
    FormVersionRecord,
    Snapshot,
    SnapshotInfo,
)
from bhp_ctms.odm.vocabulary import (
    ALIAS_CDASH,
    ALIAS_CODE,
    ALIAS_MISSING,
    ALIAS_SDTM,
    ALIAS_TYPE,
    ALIAS_VERSION,
    ARM_CODELIST,
    DATA_TYPES,
    MISSING_CODELIST,
    PARTIAL_DATE_TYPE,
    RANDOMISATION_ARM,
    RANDOMISATION_DATE,
    RANDOMISATION_EVENT,
    RANDOMISATION_FORM,
    RANDOMISATION_GROUP,
    YES_NO_CODELIST,
    event_oid,
    form_oid,
    group_oid,
    item_oid,
    location_oid,
    oid_part,
    study_oid,
    user_oid,
)
from bhp_ctms.odm.writer.xml import Out, escaped, odm_datetime

ORIGINATOR = "BHP CTMS"


def _partial_date(value: str) -> str:
    """``2024-03-UN`` as ODM's partialDate ``2024-03``; ``2024-UN-UN`` as ``2024``."""
    if value.endswith("-UN"):
        value = value[:-3]
        if value.endswith("-UN"):
            value = value[:-3]
    return value


def _time(value: str) -> str:
    return f"{value}:00" if len(value) == 5 else value


def _datetime(value: str) -> str:
    return f"{value}:00" if len(value) == 16 else value


def _converter(item: Item) -> Callable[[str], str] | None:
    """How an item's canonical value is written, when it differs from how it is kept."""
    if item.type == "date" and item.partial_dates:
        return _partial_date
    if item.type == "time":
        return _time
    if item.type == "datetime":
        return _datetime
    return None


def _data_type(item: Item) -> str:
    if item.type == "date" and item.partial_dates:
        return PARTIAL_DATE_TYPE
    if item.type == "calculated" and item.precision is not None:
        return "float"
    return DATA_TYPES.get(item.type, "text")


@dataclass
class Slot:
    """Where an item path's values go: its group's key and the start of its ItemData."""

    group: tuple[int, int] | None  # (group's order in the form, row); None outside groups
    prefix: str
    convert: Callable[[str], str] | None


@dataclass
class FormLayout:
    """A form version's OIDs, and a slot for each item path met (cached as met)."""

    record: FormVersionRecord
    form: FormDefinition
    oid: str
    main_oid: str
    group_oids: dict[str, tuple[int, str]]
    slots: dict[str, Slot] = field(default_factory=dict)

    def slot(self, path: str) -> Slot:
        found = self.slots.get(path)
        if found is not None:
            return found
        group_code, row, item_code = split_path(path)
        record = self.record
        try:
            item: Item | None = self.form.item(item_code)
        except KeyError:
            item = None
        convert = _converter(item) if item is not None else None
        oid = escaped(item_oid(record.form_code, record.number, item_code))
        prefix = f'{"  " * 6}<ItemData ItemOID="{oid}"'
        placed = self.group_oids.get(group_code) if group_code is not None else None
        slot = Slot(None if placed is None else (placed[0], row), prefix, convert)
        self.slots[path] = slot
        return slot


def split_path(path: str) -> tuple[str | None, int, str]:
    """(group, row, item) of ``group[row].item``; (None, 0, item) outside groups."""
    bracket = path.find("[")
    if bracket < 0:
        return None, 0, path
    close = path.find("].", bracket)
    if close < 0:
        return None, 0, path
    try:
        row = int(path[bracket + 1 : close])
    except ValueError:
        return None, 0, path
    return path[:bracket], row, path[close + 2 :]


@dataclass
class Metadata:
    """Everything the clinical data refer to, worked out once from the snapshot's info."""

    info: SnapshotInfo
    forms: tuple[FormVersionRecord, ...]
    layouts: dict[tuple[str, int], FormLayout]
    latest: dict[str, FormVersionRecord]
    units: dict[str, str]
    codelists: dict[tuple[str, tuple[tuple[str, str], ...]], str]
    item_codelists: dict[tuple[str, int, str], str]
    arms: bool
    missing: bool
    study: str
    version: str


def _choices(item: Item) -> tuple[tuple[str, str], ...]:
    if item.type == "yes_no":
        return YES_NO_CHOICES
    return tuple((choice.code, choice.label) for choice in item.choices)


def metadata(snapshot: Snapshot, options: ExportOptions) -> Metadata:
    info = snapshot.info
    wanted = set(options.forms)
    forms = tuple(
        record for record in info.form_versions if not wanted or record.form_code in wanted
    )
    layouts: dict[tuple[str, int], FormLayout] = {}
    latest: dict[str, FormVersionRecord] = {}
    units: dict[str, str] = {}
    codelists: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
    item_codelists: dict[tuple[str, int, str], str] = {}
    used_oids: set[str] = {MISSING_CODELIST, ARM_CODELIST}
    missing = False
    for record in forms:
        form = record.form
        groups = {
            group.code: (index, group_oid(record.form_code, record.number, group.code))
            for index, group in enumerate(form.groups, 1)
        }
        layouts[(record.form_code, record.number)] = FormLayout(
            record,
            form,
            form_oid(record.form_code, record.number),
            group_oid(record.form_code, record.number),
            groups,
        )
        held = latest.get(record.form_code)
        if held is None or record.number > held.number:
            latest[record.form_code] = record
        for _, item in form.iter_items():
            if not item.holds_value:
                continue
            missing = missing or bool(item.missing_codes)
            if item.units:
                units.setdefault(item.units, f"MU.{oid_part(item.units)}")
            choices = _choices(item)
            if not choices:
                continue
            if item.type == "yes_no":
                oid = YES_NO_CODELIST
            else:
                key = (item.codelist or f"{record.form_code}.{item.code}", choices)
                oid = codelists.get(key, "")
                if not oid:
                    base = (
                        f"CL.{oid_part(item.codelist)}"
                        if item.codelist
                        else f"CL.{oid_part(record.form_code)}.{record.number}."
                        f"{oid_part(item.code)}"
                    )
                    oid, number = base, 1
                    while oid in used_oids:
                        number += 1
                        oid = f"{base}.{number}"
                    used_oids.add(oid)
                    codelists[key] = oid
            item_codelists[(record.form_code, record.number, item.code)] = oid
    arms = bool(info.arms) and not snapshot.blinded and not options.blinded
    return Metadata(
        info=info,
        forms=forms,
        layouts=layouts,
        latest=latest,
        units=dict(sorted(units.items())),
        codelists=codelists,
        item_codelists=item_codelists,
        arms=arms,
        missing=missing,
        study=study_oid(info.study_code),
        version=f"MDV.{oid_part(info.study_code)}.{info.kind}",
    )


def file_oid(info: SnapshotInfo, options: ExportOptions, arms: bool) -> str:
    stamp = re.sub(r"[^0-9]", "", odm_datetime(info.taken_at))[:14] or "0"
    variant = ("audit" if options.audit_trail else "data") + (".unblinded" if arms else "")
    return f"BHP-CTMS.{oid_part(info.study_code)}.{info.kind}.{stamp}.{variant}"


def description(info: SnapshotInfo, arms: bool) -> str:
    kind = "INTERIM snapshot" if info.kind == "interim" else "Locked snapshot"
    parts = [
        f"{kind} of study {info.study_code}",
        f"taken {odm_datetime(info.taken_at)} by {info.taken_by}",
        "unblinded" if arms else "blinded: no arm",
    ]
    if info.description:
        parts.append(info.description)
    return "; ".join(parts)


def write_study(out: Out, meta: Metadata) -> None:
    info = meta.info
    out.open(1, "Study", OID=meta.study)
    out.open(2, "GlobalVariables")
    out.text(3, "StudyName", info.study_code)
    out.text(3, "StudyDescription", info.study_title)
    out.text(3, "ProtocolName", info.study_code)
    out.close(2, "GlobalVariables")
    if meta.units:
        out.open(2, "BasicDefinitions")
        for units, oid in meta.units.items():
            out.open(3, "MeasurementUnit", OID=oid, Name=units)
            out.translated(4, "Symbol", units)
            out.close(3, "MeasurementUnit")
        out.close(2, "BasicDefinitions")
    versions = ", ".join(
        f"{version.label} (version {version.number}, effective {version.effective_on})"
        for version in info.protocol_versions
    )
    out.open(
        2,
        "MetaDataVersion",
        OID=meta.version,
        Name=f"{info.study_code} {info.kind} snapshot",
        Description=f"The form versions of the snapshot. Protocol versions: {versions or 'none'}",
    )
    _write_protocol(out, meta)
    _write_events(out, meta)
    for record in meta.forms:
        _write_form_def(out, meta.layouts[(record.form_code, record.number)])
    if meta.arms:
        out.open(3, "FormDef", OID=RANDOMISATION_FORM, Name="Randomisation", Repeating="No")
        out.element(
            4, "ItemGroupRef", ItemGroupOID=RANDOMISATION_GROUP, Mandatory="Yes", OrderNumber=1
        )
        out.close(3, "FormDef")
    for record in meta.forms:
        _write_group_defs(out, meta.layouts[(record.form_code, record.number)])
    if meta.arms:
        out.open(3, "ItemGroupDef", OID=RANDOMISATION_GROUP, Name="Randomisation", Repeating="No")
        out.element(4, "ItemRef", ItemOID=RANDOMISATION_ARM, Mandatory="Yes", OrderNumber=1)
        out.element(4, "ItemRef", ItemOID=RANDOMISATION_DATE, Mandatory="Yes", OrderNumber=2)
        out.close(3, "ItemGroupDef")
    for record in meta.forms:
        _write_item_defs(out, meta, record)
    if meta.arms:
        out.open(3, "ItemDef", OID=RANDOMISATION_ARM, Name="ARM", DataType="text")
        out.translated(4, "Question", "Arm allocated")
        out.element(4, "CodeListRef", CodeListOID=ARM_CODELIST)
        out.close(3, "ItemDef")
        out.open(3, "ItemDef", OID=RANDOMISATION_DATE, Name="RANDOMISED_ON", DataType="date")
        out.translated(4, "Question", "Date of randomisation")
        out.close(3, "ItemDef")
    _write_codelists(out, meta)
    out.close(2, "MetaDataVersion")
    out.close(1, "Study")


def _write_protocol(out: Out, meta: Metadata) -> None:
    events = meta.info.events
    if not events and not meta.arms:
        return
    out.open(3, "Protocol")
    order = 0
    if meta.arms:
        order += 1
        out.element(
            4, "StudyEventRef", StudyEventOID=RANDOMISATION_EVENT, OrderNumber=order, Mandatory="No"
        )
    for event in events:
        order += 1
        mandatory = "No" if event.repeating else "Yes"
        out.element(
            4,
            "StudyEventRef",
            StudyEventOID=event_oid(event.code),
            OrderNumber=order,
            Mandatory=mandatory,
        )
    out.close(3, "Protocol")


def _write_events(out: Out, meta: Metadata) -> None:
    if meta.arms:
        out.open(
            3,
            "StudyEventDef",
            OID=RANDOMISATION_EVENT,
            Name="Randomisation",
            Repeating="No",
            Type="Common",
        )
        out.element(4, "FormRef", FormOID=RANDOMISATION_FORM, OrderNumber=1, Mandatory="No")
        out.close(3, "StudyEventDef")
    for event in meta.info.events:
        kind = "Unscheduled" if event.repeating else "Scheduled"
        repeating = "Yes" if event.repeating else "No"
        out.open(
            3,
            "StudyEventDef",
            OID=event_oid(event.code),
            Name=event.name or event.code,
            Repeating=repeating,
            Type=kind,
        )
        order = 0
        for form_code in event.forms:
            for record in meta.forms:
                if record.form_code == form_code:
                    order += 1
                    oid = form_oid(record.form_code, record.number)
                    out.element(4, "FormRef", FormOID=oid, OrderNumber=order, Mandatory="No")
        out.element(4, "Alias", Context=ALIAS_CODE, Name=event.code)
        out.close(3, "StudyEventDef")


def _write_form_def(out: Out, layout: FormLayout) -> None:
    record, form = layout.record, layout.form
    out.open(
        3,
        "FormDef",
        OID=layout.oid,
        Name=record.title or form.title or record.form_code,
        Repeating="No",
    )
    if form.description:
        out.translated(4, "Description", form.description)
    order = 0
    if _ungrouped(form):
        order += 1
        out.element(
            4, "ItemGroupRef", ItemGroupOID=layout.main_oid, Mandatory="Yes", OrderNumber=order
        )
    for group in form.groups:
        order += 1
        mandatory = "Yes" if group.min_rows else "No"
        oid = layout.group_oids[group.code][1]
        out.element(4, "ItemGroupRef", ItemGroupOID=oid, Mandatory=mandatory, OrderNumber=order)
    out.element(4, "Alias", Context=ALIAS_CODE, Name=record.form_code)
    out.element(4, "Alias", Context=ALIAS_VERSION, Name=record.label or form.version)
    out.close(3, "FormDef")


def _ungrouped(form: FormDefinition) -> list[Item]:
    return [entry for entry in form.entries if isinstance(entry, Item) and entry.holds_value]


def _write_group_defs(out: Out, layout: FormLayout) -> None:
    record, form = layout.record, layout.form
    items = _ungrouped(form)
    if items:
        name = record.title or form.title or record.form_code
        out.open(3, "ItemGroupDef", OID=layout.main_oid, Name=name, Repeating="No")
        _write_item_refs(out, record, items)
        out.close(3, "ItemGroupDef")
    for group in form.groups:
        oid = layout.group_oids[group.code][1]
        out.open(3, "ItemGroupDef", OID=oid, Name=group.label or group.code, Repeating="Yes")
        _write_item_refs(out, record, [item for item in group.items if item.holds_value])
        out.element(4, "Alias", Context=ALIAS_CODE, Name=group.code)
        out.close(3, "ItemGroupDef")


def _write_item_refs(out: Out, record: FormVersionRecord, items: list[Item]) -> None:
    for order, item in enumerate(items, 1):
        oid = item_oid(record.form_code, record.number, item.code)
        mandatory = "Yes" if item.required else "No"
        out.element(4, "ItemRef", ItemOID=oid, Mandatory=mandatory, OrderNumber=order)


def _write_item_defs(out: Out, meta: Metadata, record: FormVersionRecord) -> None:
    for _, item in record.form.iter_items():
        if item.holds_value:
            _write_item_def(out, meta, record, item)


def _write_item_def(out: Out, meta: Metadata, record: FormVersionRecord, item: Item) -> None:
    length = item.max_length if item.type in ("text", "long_text") else None
    digits = item.precision if item.type in ("decimal", "calculated") else None
    out.open(
        3,
        "ItemDef",
        OID=item_oid(record.form_code, record.number, item.code),
        Name=item.code,
        DataType=_data_type(item),
        Length=length,
        SignificantDigits=digits,
    )
    if item.help:
        out.translated(4, "Description", item.help)
    out.translated(4, "Question", item.label or item.code)
    if item.units:
        out.element(4, "MeasurementUnitRef", MeasurementUnitOID=meta.units[item.units])
    _write_ranges(out, item)
    codelist = meta.item_codelists.get((record.form_code, record.number, item.code))
    if codelist:
        out.element(4, "CodeListRef", CodeListOID=codelist)
    if item.annotations.cdash:
        out.element(4, "Alias", Context=ALIAS_CDASH, Name=item.annotations.cdash)
    if item.annotations.sdtm:
        out.element(4, "Alias", Context=ALIAS_SDTM, Name=item.annotations.sdtm)
    out.element(4, "Alias", Context=ALIAS_TYPE, Name=item.type)
    if item.missing_codes:
        out.element(4, "Alias", Context=ALIAS_MISSING, Name=" ".join(item.missing_codes))
    out.close(3, "ItemDef")


def _write_ranges(out: Out, item: Item) -> None:
    """Fixed limits as RangeChecks (a limit of ``today`` or ``now`` is not fixed)."""
    for limits, strength in ((item.hard_range, "Hard"), (item.soft_range, "Soft")):
        if limits is None:
            continue
        for comparator, limit in _limits(limits):
            out.open(4, "RangeCheck", Comparator=comparator, SoftHard=strength)
            out.text(5, "CheckValue", limit)
            if limits.message:
                out.translated(5, "ErrorMessage", limits.message)
            out.close(4, "RangeCheck")


def _limits(limits: Range) -> list[tuple[str, str]]:
    return [
        (comparator, limit)
        for comparator, limit in (("GE", limits.minimum), ("LE", limits.maximum))
        if limit is not None and limit not in ("today", "now")
    ]


def _write_codelists(out: Out, meta: Metadata) -> None:
    used_yes_no = YES_NO_CODELIST in meta.item_codelists.values()
    if used_yes_no:
        _write_codelist(out, YES_NO_CODELIST, "Yes or no", "integer", YES_NO_CHOICES, "")
    for (name, choices), oid in meta.codelists.items():
        code = name if "." not in name else ""
        _write_codelist(out, oid, name, "text", choices, code)
    if meta.missing:
        missing = tuple((code, MISSING_LABELS[code]) for code in MISSING_CODES.values())
        _write_codelist(out, MISSING_CODELIST, "Why a value is missing", "text", missing, "")
    if meta.arms:
        arms = tuple((arm.code, arm.name) for arm in meta.info.arms)
        _write_codelist(out, ARM_CODELIST, "Arm", "text", arms, "")


def _write_codelist(
    out: Out, oid: str, name: str, data_type: str, choices: Iterable[tuple[str, str]], code: str
) -> None:
    out.open(3, "CodeList", OID=oid, Name=name, DataType=data_type)
    for value, label in choices:
        out.open(4, "CodeListItem", CodedValue=value)
        out.translated(5, "Decode", label or value)
        out.close(4, "CodeListItem")
    if code:
        out.element(4, "Alias", Context=ALIAS_CODE, Name=code)
    out.close(3, "CodeList")


LEGAL_REASON = (
    "Electronic signature under 21 CFR Part 11 and EU GMP Annex 11: the signer "
    "re-authenticated to sign"
)


@dataclass
class People:
    """Who appears in the audit trail and the signatures, and what they signed for."""

    users: dict[str, str] = field(default_factory=dict)
    meanings: dict[str, str] = field(default_factory=dict)


def change_user(change: ChangeRecord) -> str:
    """Who made a change, as the key of their User: their user id, or (a command or a
    task, which has none) their name."""
    return change.user or change.user_name or "unknown"


def people(snapshot: Snapshot) -> People:
    people = People()
    for change in snapshot.changes():
        people.users.setdefault(change_user(change), change.user_name or change.user)
    meanings: set[str] = set()
    for signature in snapshot.signatures():
        people.users.setdefault(signature.signer, signature.signer)
        meanings.add(signature.meaning)
    people.users = dict(sorted(people.users.items()))
    people.meanings = {
        meaning: f"SD.{number}" for number, meaning in enumerate(sorted(meanings), 1)
    }
    return people


def _effective_date(info: SnapshotInfo) -> str:
    dates = sorted(
        version.effective_on for version in info.protocol_versions if version.effective_on
    )
    if dates:
        return dates[0][:10]
    return odm_datetime(info.taken_at)[:10]


def write_admin(out: Out, meta: Metadata, people: People | None) -> None:
    info = meta.info
    out.open(1, "AdminData", StudyOID=meta.study)
    if people is not None:
        for user, name in people.users.items():
            out.open(2, "User", OID=user_oid(user))
            out.text(3, "FullName", name)
            out.close(2, "User")
    effective = _effective_date(info)
    locations = [(location_oid(site.code), site.name or site.code, "Site") for site in info.sites]
    if people is not None:
        locations.append((study_location(info), f"Trials unit ({info.study_code})", "Sponsor"))
    for oid, name, kind in locations:
        out.open(2, "Location", OID=oid, Name=name, LocationType=kind)
        out.element(
            3,
            "MetaDataVersionRef",
            StudyOID=meta.study,
            MetaDataVersionOID=meta.version,
            EffectiveDate=effective,
        )
        out.close(2, "Location")
    if people is not None:
        for meaning, oid in people.meanings.items():
            out.open(2, "SignatureDef", OID=oid, Methodology="Electronic")
            out.text(3, "Meaning", meaning)
            out.text(3, "LegalReason", LEGAL_REASON)
            out.close(2, "SignatureDef")
    out.close(1, "AdminData")


def study_location(info: SnapshotInfo) -> str:
    return f"LOC.{oid_part(info.study_code)}.TRIALS_UNIT"
