"""Planning a study folder from an ODM file's metadata: codes, events, forms, items.

ODM names things by OIDs (``ODM.IT.VS.VSORRES``) where a study folder wants codes
(``vs_vsorres``): each code is the alias ``BHP-CTMS:code`` when the file has one (our
own exports do), else made from the OID, its leading ``ODM.``, ``SE.``, ``F.``, ``IG.``,
``IT.``... left out. What ODM does not say and a study needs is filled in and said so
in ``study.yaml``'s comments: one arm, one eligibility criterion, consent documents
"1.0", scheduled events one day apart. Every definition the file refers to but does
not define, and every definition that cannot become part of a form, is a warning at
its line, and the rest is imported.

When the file has no metadata (clinical data only, or reference data only), the forms
and events are made from the data: each item a text item named by its OID.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from bhp_ctms.crf.definition.model import (
    FormDefinition,
    Item,
    ItemGroup,
)
from bhp_ctms.odm.items import Codelists, plan_item
from bhp_ctms.odm.plan import (
    DEFAULT_EVENT,
    EVENT_CODE_LENGTH,
    FORM_CODE_LENGTH,
    ITEM_CODE_LENGTH,
    EventPlan,
    FormPlan,
    ItemPlace,
    StudyPlan,
    code_of,
    oid_words,
    own_code,
    site_code_of,
    study_code_of,
)
from bhp_ctms.odm.reader import (
    ItemGroupData,
    MetaDataVersion,
    OdmFile,
    StudyDef,
)
from bhp_ctms.odm.vocabulary import (
    ALIAS_CODE,
    ALIAS_VERSION,
    ARM_CODELIST,
    RANDOMISATION_ARM,
    RANDOMISATION_DATE,
    RANDOMISATION_EVENT,
    RANDOMISATION_FORM,
)
from bhp_ctms.studies.definition import Arm, Problem, SiteSeed

# -- forms and events ---------------------------------------------------------------------


def _plan_form(
    plan: StudyPlan,
    version: MetaDataVersion,
    study: StudyDef | None,
    codelists: Codelists,
    oid: str,
    taken: set[str],
) -> FormPlan | None:
    form = version.forms[oid]
    code = own_code(form.aliases, r"[a-z][a-z0-9_]*", FORM_CODE_LENGTH, taken) or code_of(
        oid_words(oid), kind="form", length=FORM_CODE_LENGTH, taken=taken
    )
    if form.repeating:
        plan.warn(
            form.line,
            f"form {oid} repeats within an event (FormRepeatKey): BHP CTMS keeps one entry of "
            "a form at each occurrence of an event, so only the first repeat's data are "
            "imported",
        )
    codes: set[str] = set()
    entries: list[Item | ItemGroup] = []
    places: dict[str, dict[str, ItemPlace]] = {}
    used_items: set[str] = set()
    plain_groups = [
        ref
        for ref in form.group_refs
        if ref.oid in version.groups and not version.groups[ref.oid].repeating
    ]
    for ref in form.group_refs:
        group = version.groups.get(ref.oid)
        if group is None:
            plan.warn(
                ref.line,
                f"form {oid} refers to item group {ref.oid!r}, which the file does not "
                "define: left out",
            )
            continue
        group_code: str | None = None
        if group.repeating:
            group_code = own_code(
                group.aliases, r"[a-z][a-z0-9_]*", ITEM_CODE_LENGTH, codes
            ) or code_of(oid_words(group.oid), kind="group", length=ITEM_CODE_LENGTH, taken=codes)
        items: list[Item] = []
        group_places: dict[str, ItemPlace] = {}
        for item_ref in group.item_refs:
            item_def = version.items.get(item_ref.oid)
            if item_def is None:
                plan.warn(
                    item_ref.line,
                    f"item group {group.oid} refers to item {item_ref.oid!r}, which the file "
                    "does not define: left out",
                )
                continue
            if item_ref.oid in used_items:
                plan.warn(
                    item_ref.line,
                    f"item {item_ref.oid} is in form {oid} twice: its second place is left out",
                )
                continue
            used_items.add(item_ref.oid)
            item_code = own_code(
                item_def.aliases, r"[a-z][a-z0-9_]*", ITEM_CODE_LENGTH, codes
            ) or code_of(
                item_def.name if _is_code(item_def.name) else oid_words(item_def.oid),
                kind="item",
                length=ITEM_CODE_LENGTH,
                taken=codes,
            )
            item = plan_item(
                plan, version, study, codelists, item_def, item_code, item_ref.mandatory
            )
            if not items and group_code is None and len(plain_groups) > 1 and group.name:
                item = replace(item, section=group.name)
            items.append(item)
            group_places[item_ref.oid] = ItemPlace(item, group_code)
        places[ref.oid] = group_places
        if not items:
            continue
        if group_code is None:
            entries.extend(items)
        else:
            entries.append(
                ItemGroup(group_code, group.name or group_code, tuple(items), line=group.line)
            )
    if not entries:
        plan.warn(form.line, f"form {oid} has no items to import: it is left out")
        taken.discard(code)
        return None
    definition = FormDefinition(
        code=code,
        title=(form.name or code)[:200],
        version=(form.aliases.get(ALIAS_VERSION) or "1.0")[:32],
        description=form.description,
        entries=tuple(entries),
    )
    return FormPlan(code, oid, definition, places, form.repeating, form.line)


def _plan_forms(
    plan: StudyPlan, version: MetaDataVersion, study: StudyDef | None, codelists: Codelists
) -> None:
    """Each FormDef as a form; several versions of one form (FormDefs with the same
    code, as our exports give each version) as its last version, the values of the
    earlier ones placed in it by item code."""
    versions: dict[str, list[str]] = {}
    for oid, definition in version.forms.items():
        if oid != RANDOMISATION_FORM:
            versions.setdefault(definition.aliases.get(ALIAS_CODE) or oid, []).append(oid)
    form_codes: set[str] = set()
    for oids in versions.values():
        form = _plan_form(plan, version, study, codelists, oids[-1], form_codes)
        if form is None:
            continue
        plan.forms[form.code] = form
        plan.form_oids[oids[-1]] = form.code
        for older in oids[:-1]:
            earlier = _plan_form(plan, version, study, codelists, older, set())
            if earlier is not None:
                _place_in(plan, form, earlier)
                plan.form_oids[older] = form.code


def _place_in(plan: StudyPlan, form: FormPlan, earlier: FormPlan) -> None:
    """Place the values of an earlier version of ``form`` by their items' codes."""
    latest = {
        (place.group, place.item.code): place
        for places in form.places.values()
        for place in places.values()
    }
    for group_oid, places in earlier.places.items():
        kept = form.places.setdefault(group_oid, {})
        for item_oid, place in places.items():
            found = latest.get((place.group, place.item.code))
            if found is None:
                plan.left_out[item_oid] = (
                    f"not in the latest version of form {form.code} ({form.oid})"
                )
            else:
                kept.setdefault(item_oid, found)


def _is_code(name: str) -> bool:
    """Whether an ItemDef's Name is already a code (as our exports and REDCap write it)."""
    return bool(re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name))


def _plan_events(plan: StudyPlan, version: MetaDataVersion, taken: set[str]) -> None:
    order = [ref.oid for ref in version.event_refs]
    for ref in version.event_refs:
        if ref.oid not in version.events and ref.oid != RANDOMISATION_EVENT:
            plan.warn(
                ref.line,
                f"the protocol refers to event {ref.oid!r}, which the file does not define: "
                "left out",
            )
    order += [oid for oid in version.events if oid not in order]
    day = 0
    for oid in order:
        event = version.events.get(oid)
        if event is None or oid == RANDOMISATION_EVENT:
            continue
        code = own_code(event.aliases, r"[a-z][a-z0-9_]*", EVENT_CODE_LENGTH, taken) or code_of(
            oid_words(oid), kind="event", length=EVENT_CODE_LENGTH, taken=taken
        )
        forms: list[str] = []
        for form_ref in event.form_refs:
            form_code = plan.form_oids.get(form_ref.oid)
            if form_code is None:
                if form_ref.oid != RANDOMISATION_FORM:
                    plan.warn(
                        form_ref.line,
                        f"event {oid} lists form {form_ref.oid!r}, which is not imported (see "
                        "above, or the file does not define it): left out of the event",
                    )
                continue
            if form_code not in forms:
                forms.append(form_code)
        plan_event = EventPlan(
            code, (event.name or code)[:200], event.repeating, forms, line=event.line
        )
        if not event.repeating:
            plan_event.day_offset = day
            day += 1
        plan.events.append(plan_event)
        plan.event_oids[oid] = code


def ensure_scheduled_event(plan: StudyPlan, taken: set[str]) -> None:
    """A study needs a scheduled event: when the file gives none, one is added, holding
    the forms that no event of the file lists."""
    listed = {form for event in plan.events for form in event.forms}
    loose = [code for code in plan.forms if code not in listed]
    if any(not event.repeating for event in plan.events):
        if loose:
            plan.notes.append(f"form(s) {', '.join(loose)} are in no event of the file")
        return
    code = code_of(DEFAULT_EVENT, kind="event", length=EVENT_CODE_LENGTH, taken=taken)
    name = "Record (the project's instruments)" if plan.redcap else "Forms imported from ODM"
    plan.events.insert(0, EventPlan(code, name, False, loose, day_offset=0))
    plan.event_oids.setdefault("", code)
    if plan.events[1:] and not loose:
        plan.notes.append(
            f"every event of the file repeats: a scheduled event {code!r} is added, as every "
            "BHP CTMS study needs one"
        )


def _arms(plan: StudyPlan, version: MetaDataVersion) -> None:
    """The arms of our own unblinded exports (code list CL.ARM), else one arm."""
    plan.quiet.update({RANDOMISATION_ARM, RANDOMISATION_DATE})
    arms = version.codelists.get(ARM_CODELIST)
    if arms is not None:
        taken: set[str] = set()
        for code, label in arms.choices:
            if re.fullmatch(r"[a-z][a-z0-9_]{0,31}", code) and code not in taken:
                taken.add(code)
                plan.arms.append(Arm(code, label or code, 1))
        plan.notes.append("participants' arms are not imported: allocations are made by BHP CTMS")


def plan_sites(plan: StudyPlan, odm: OdmFile) -> None:
    """A site for each Location the subjects refer to (or that is a site)."""
    taken = {site.code for site in plan.sites}
    referred = {
        subject.site_oid
        for clinical in odm.clinical
        for subject in clinical.subjects
        if subject.site_oid
    }
    for oid, location in odm.locations.items():
        if oid not in referred and location.type != "Site":
            continue
        code = site_code_of(oid_words(oid), taken)
        plan.site_oids[oid] = code
        plan.sites.append(SiteSeed(code, (location.name or oid)[:200], "open", None, ""))
    for oid in sorted(referred - set(odm.locations)):
        code = site_code_of(oid_words(oid), taken)
        plan.site_oids[oid] = code
        plan.sites.append(SiteSeed(code, oid[:200], "open", None, ""))


# -- a file's metadata, or its data alone --------------------------------------------------


def _chosen_version(plan: StudyPlan, study: StudyDef) -> MetaDataVersion | None:
    if not study.versions:
        return None
    if len(study.versions) > 1:
        last = study.versions[-1]
        plan.warn(
            last.line,
            f"study {study.oid} has {len(study.versions)} metadata versions: the last, "
            f"{last.oid}, is imported",
        )
    return study.versions[-1]


def plan_study(odm: OdmFile) -> StudyPlan:
    """The study folder an ODM file's metadata (or, without metadata, its data) makes."""
    study = odm.studies[0] if odm.studies else None
    oids = [data.study_oid for data in odm.clinical] + [data.study_oid for data in odm.reference]
    fallback = oids[0] if oids else odm.path.stem
    if len(odm.studies) > 1:
        odm.warnings.append(
            Problem(
                odm.path,
                odm.studies[1].line,
                None,
                "the file holds several studies: only the first is imported",
            )
        )
    title = ""
    if study is not None:
        title = study.description or study.protocol_name or study.name
    code = study_code_of(study, fallback)
    plan = StudyPlan(odm.path, code, (title or code)[:500], redcap=odm.redcap)
    event_codes: set[str] = set()
    version = _chosen_version(plan, study) if study is not None else None
    if version is not None:
        uses: dict[str, int] = {}
        for item in version.items.values():
            if item.codelist_oid:
                uses[item.codelist_oid] = uses.get(item.codelist_oid, 0) + 1
        codelists = Codelists(plan, version, uses)
        _plan_forms(plan, version, study, codelists)
        _plan_events(plan, version, event_codes)
        _arms(plan, version)
    else:
        plan_from_data(plan, odm, event_codes)
    ensure_scheduled_event(plan, event_codes)
    plan_sites(plan, odm)
    return plan


def plan_from_data(plan: StudyPlan, odm: OdmFile, event_codes: set[str]) -> None:
    """Events, forms and text items made from the data of a file without metadata."""
    plan.notes.append(
        "the file has no metadata (MetaDataVersion): its forms and items are made from its "
        "data, each item a text item named by its OID"
    )
    forms: dict[str, dict[str, list[str]]] = {}
    form_lines: dict[str, int] = {}
    repeating_groups: set[str] = set()
    events: dict[str, list[str]] = {}
    event_repeats: dict[str, bool] = {}
    for clinical in odm.clinical:
        for subject in clinical.subjects:
            for event in subject.events:
                listed = events.setdefault(event.oid, [])
                event_repeats[event.oid] = event_repeats.get(
                    event.oid, False
                ) or event.repeat_key not in ("", "1")
                for form in event.forms:
                    if form.oid not in listed:
                        listed.append(form.oid)
                    _collect(forms, form.oid, form.groups, repeating_groups)
                    form_lines.setdefault(form.oid, form.line)
    for reference in odm.reference:
        oid = f"REFERENCE.{reference.study_oid}"
        _collect(forms, oid, reference.groups, repeating_groups)
        form_lines.setdefault(oid, reference.line)
        plan.warn(
            reference.line,
            "reference data (ReferenceData) belong to no participant: their item groups "
            "become a form, their values are not imported",
        )
    form_codes: set[str] = set()
    for oid, groups in forms.items():
        code = code_of(oid_words(oid), kind="form", length=FORM_CODE_LENGTH, taken=form_codes)
        codes: set[str] = set()
        entries: list[Item | ItemGroup] = []
        places: dict[str, dict[str, ItemPlace]] = {}
        for group_oid, item_oids in groups.items():
            group_code = None
            if group_oid in repeating_groups:
                group_code = code_of(
                    oid_words(group_oid), kind="group", length=ITEM_CODE_LENGTH, taken=codes
                )
            items = []
            for item_oid in item_oids:
                item_code = code_of(
                    oid_words(item_oid), kind="item", length=ITEM_CODE_LENGTH, taken=codes
                )
                items.append(Item(item_code, item_oid[:1000], "text"))
            places[group_oid] = {
                item_oid: ItemPlace(item, group_code)
                for item_oid, item in zip(item_oids, items, strict=True)
            }
            if group_code is None:
                entries.extend(items)
            else:
                entries.append(ItemGroup(group_code, oid_words(group_oid), tuple(items)))
        if not entries:
            continue
        definition = FormDefinition(code, oid_words(oid)[:200], "1.0", "", tuple(entries))
        plan.forms[code] = FormPlan(code, oid, definition, places, line=form_lines.get(oid, 0))
        plan.form_oids[oid] = code
    day = 0
    for oid, form_oids in events.items():
        if not oid:
            continue
        code = code_of(oid_words(oid), kind="event", length=EVENT_CODE_LENGTH, taken=event_codes)
        forms_listed = [plan.form_oids[form] for form in form_oids if form in plan.form_oids]
        planned = EventPlan(code, oid_words(oid)[:200], event_repeats[oid], forms_listed)
        if not planned.repeating:
            planned.day_offset = day
            day += 1
        plan.events.append(planned)
        plan.event_oids[oid] = code


def _collect(
    forms: dict[str, dict[str, list[str]]],
    form_oid: str,
    groups: Iterable[ItemGroupData],
    repeating: set[str],
) -> None:
    found = forms.setdefault(form_oid, {})
    for group in groups:
        items = found.setdefault(group.oid, [])
        if group.repeat_key not in ("", "1"):
            repeating.add(group.oid)
        for item in group.items:
            if item.oid not in items:
                items.append(item.oid)
