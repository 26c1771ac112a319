"""Writing a study folder from a plan: ``study.yaml``, ``codelists.yaml`` and the form
files, each item written by the REDCap importer's writer (:func:`item_entry`), which
knows which keys a form file has and leaves out those at their defaults."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from bhp_ctms.crf.definition.model import FormDefinition, Item, ItemGroup
from bhp_ctms.crf.redcap.writer import item_entry
from bhp_ctms.odm.plan import EventPlan, StudyPlan
from bhp_ctms.studies.definition import Arm

PROTOCOL_VERSION = "1.0"
PILLAR = "health_wellbeing"


def _dump(value: Any) -> str:
    text: str = yaml.safe_dump(
        value, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    return text


def _comment(lines: Sequence[str]) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for text in lines for line in text.splitlines())


def _plain(value: Any) -> Any:
    """Mappings and lists as plain ones (the writer's flow mappings are dict subclasses)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _item(item: Item) -> dict[str, Any]:
    # A codelist's choices are written in codelists.yaml, not with the item.
    entry: dict[str, Any] = _plain(item_entry(replace(item, choices=()) if item.codelist else item))
    annotations = {
        key: value
        for key, value in (("cdash", item.annotations.cdash), ("sdtm", item.annotations.sdtm))
        if value
    }
    if annotations and item.holds_value:
        entry["annotations"] = annotations
    return entry


def _group(group: ItemGroup) -> dict[str, Any]:
    entry: dict[str, Any] = {"group": group.code, "label": group.label}
    if group.help:
        entry["help"] = group.help
    if group.min_rows:
        entry["min_rows"] = group.min_rows
    if group.max_rows is not None:
        entry["max_rows"] = group.max_rows
    entry["items"] = [_item(item) for item in group.items]
    return entry


def form_text(definition: FormDefinition, heading: Sequence[str]) -> str:
    """A form file: ``heading`` as comments, then the form, its groups included."""
    head: dict[str, Any] = {
        "code": definition.code,
        "title": definition.title,
        "version": definition.version,
    }
    if definition.description:
        head["description"] = definition.description
    head["items"] = [
        _group(entry) if isinstance(entry, ItemGroup) else _item(entry)
        for entry in definition.entries
    ]
    return _comment(heading) + _dump(head)


def study_text(
    plan: StudyPlan,
    *,
    version_label: str,
    effective_on: date,
    amendment_summary: str,
    participants: int,
) -> str:
    """``study.yaml``: what the file says, and what a study needs that ODM does not say."""
    kind = "REDCap project XML" if plan.redcap else "CDISC ODM file"
    heading = [
        f"Imported by ctms odm import from the {kind} {plan.source.name}.",
        "",
        "ODM says nothing of what follows, so it is filled in for the study to load: check",
        "and change it before the study is used. The phase (N/A), the pillar, the target",
        "sample size (the participants in the file, or 1), one eligibility criterion, the",
        "consent documents' versions (1.0), and the scheduled events' days (one day apart,",
        "in the file's order, unless the file gives them).",
    ]
    study: dict[str, Any] = {
        "code": plan.code,
        "title": plan.title,
        "phase": "N/A",
        "pillar": PILLAR,
        "blinding": "open",
        "target_sample_size": max(1, participants),
        "protocol_version": version_label,
        "effective_on": effective_on,
        "amendment_summary": amendment_summary,
        "arms": [
            {"code": arm.code, "name": arm.name, "ratio": arm.ratio}
            for arm in plan.arms or _one_arm()
        ],
        "events": [_event(event) for event in plan.events],
        "eligibility": [
            {
                "code": "consented",
                "kind": "inclusion",
                "text": "Gave informed consent (imported: the file gives no eligibility criteria).",
            }
        ],
        "consent": {"information_sheet": "1.0", "consent_form": "1.0"},
    }
    if plan.sites:
        study["sites"] = [
            {"code": site.code, "name": site.name, "status": site.status} for site in plan.sites
        ]
    return _comment(heading) + "\n" + _dump(study)


def _one_arm() -> list[Arm]:
    return [Arm("all", "All participants", 1)]


def _event(event: EventPlan) -> dict[str, Any]:
    entry: dict[str, Any] = {"code": event.code, "name": event.name}
    if event.repeating:
        entry["repeating"] = True
    else:
        entry["day_offset"] = event.day_offset or 0
        entry["window_before"] = event.window_before
        entry["window_after"] = event.window_after
    entry["forms"] = list(event.forms)
    return entry


def codelists_text(plan: StudyPlan) -> str:
    codelists = [
        {
            "code": codelist.code,
            "name": codelist.name,
            "choices": [
                {"code": choice.code, "label": choice.label} for choice in codelist.choices
            ],
        }
        for codelist in plan.codelists.values()
    ]
    heading = [f"Code lists imported by ctms odm import from {plan.source.name}."]
    return _comment(heading) + _dump({"codelists": codelists})


def write_study_folder(
    plan: StudyPlan,
    folder: Path,
    *,
    version_label: str = PROTOCOL_VERSION,
    effective_on: date,
    amendment_summary: str = "",
    participants: int = 0,
) -> None:
    """Write ``study.yaml``, ``codelists.yaml`` (when there are codelists) and a file
    for each planned form not written already (the REDCap importer writes its own)."""
    forms = folder / "forms"
    forms.mkdir(parents=True, exist_ok=True)
    (folder / "study.yaml").write_text(
        study_text(
            plan,
            version_label=version_label,
            effective_on=effective_on,
            amendment_summary=amendment_summary,
            participants=participants,
        ),
        encoding="utf-8",
    )
    if plan.codelists:
        (folder / "codelists.yaml").write_text(codelists_text(plan), encoding="utf-8")
    for form in plan.forms.values():
        if form.written:
            continue
        heading = [
            f"Imported by ctms odm import from {plan.source.name}: form {form.oid}"
            + (f" (line {form.line})." if form.line else ".")
        ]
        (forms / f"{form.code}.yaml").write_text(
            form_text(form.definition, heading), encoding="utf-8"
        )
