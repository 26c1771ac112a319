"""Every sample REDCap dictionary, imported, becomes forms a coordinator can open and
save a record on: the imported items render and accept values of their types."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from bhp_ctms.audit.services import AuditActor
from bhp_ctms.crf.definition import read_forms
from bhp_ctms.crf.definition.model import Item
from bhp_ctms.crf.models import FormEntry, ItemValue
from bhp_ctms.crf.redcap import import_dictionary
from bhp_ctms.participants.models import ParticipantStatus
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.loading import load_study
from tests.factories import ParticipantFactory
from tests.functional.helpers import form_posting_to, login
from tests.functional.test_participant_registration import staff
from tests.functional.test_study_loading import DEMO_FOLDER

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "redcap"
NAMES = sorted(path.name for path in SAMPLES.iterdir() if (path / "dictionary.csv").is_file())


def study_of_imported_forms(tmp_path: Path, name: str) -> tuple[Path, list[str]]:
    """A copy of the demo study whose one visit lists the forms imported from a sample."""
    folder = tmp_path / "study"
    import_dictionary(SAMPLES / name / "dictionary.csv", folder)
    codes = sorted(read_forms(folder).forms)
    study = yaml.safe_load((DEMO_FOLDER / "study.yaml").read_text(encoding="utf-8"))
    study["code"] = "REDCAP"
    study["schedule_baseline"] = "registration"
    study["events"] = [{"code": "visit", "name": "Visit", "day_offset": 0, "forms": codes}]
    study.pop("randomisation", None)
    (folder / "study.yaml").write_text(yaml.safe_dump(study), encoding="utf-8")
    shutil.copy(DEMO_FOLDER / "codelists.yaml", folder / "codelists.yaml")
    return folder, codes


def typed_value(item: Item) -> dict[str, Any] | None:
    """A value of the item's type that its checks accept, as form fields; None to leave
    it blank."""
    if item.show_if or not item.entered or item.pattern is not None:
        return None
    low = item.hard_range.minimum if item.hard_range else None
    if item.type == "integer":
        return {item.code: low or "1"}
    if item.type == "decimal":
        return {item.code: low or "1.5"}
    if item.type == "date":
        return {f"{item.code}-day": "12", f"{item.code}-month": "3", f"{item.code}-year": "2025"}
    if item.type == "time":
        return {item.code: "14:30"}
    if item.type == "datetime":
        return {item.code: "2025-03-12 14:30"}
    if item.type in ("single_choice", "yes_no"):
        return {item.code: item.choices[0].code}
    if item.type in ("text", "long_text"):
        return {item.code: "x"}
    return None


@pytest.mark.parametrize("name", NAMES)
def test_imported_forms_render_and_save_a_record(app, db_session, tmp_path, name):
    folder, codes = study_of_imported_forms(tmp_path, name)
    study = load_study(db_session, AuditActor.system("test"), folder).study
    site = db_session.scalars(select(Site).where(Site.study_id == study.id)).first()
    participant = ParticipantFactory(
        site=site, status=ParticipantStatus.RANDOMISED, registered_on=date(2026, 2, 2)
    )
    staff("coordinator", Role.SITE_COORDINATOR, site)
    login(app, "coordinator")
    definitions = read_forms(folder).forms
    for code in codes:
        path = f"/studies/REDCAP/participants/{participant.code}/events/visit/1/forms/{code}"
        page = app.get(path)
        form = form_posting_to(page, path)
        typed = 0
        for _, item in definitions[code].iter_items():
            fields = typed_value(item)
            if fields is None or any(name not in form.fields for name in fields):
                continue
            for field, value in fields.items():
                form[field] = value
            typed += 1
        saved = form.submit("action", value="save")
        assert saved.status_int == 303, f"{code}: {saved.status}"
        entry = db_session.scalars(
            select(FormEntry).where(
                FormEntry.participant_id == participant.id, FormEntry.form_code == code
            )
        ).one()
        stored = db_session.scalar(
            select(func.count(ItemValue.id)).where(ItemValue.form_entry_id == entry.id)
        )
        assert typed > 0, f"{code}: no item could be typed into"
        assert stored >= typed, f"{code}: {stored} values stored of {typed} typed"
