"""Keeping a study's form files as form versions when its protocol is loaded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bhp_ctms.crf.definition import read_forms
from bhp_ctms.crf.models import FormVersion
from bhp_ctms.studies.definition import FormFile


def store_form_versions(
    db: Session, study_id: int, folder: Path, forms: Sequence[FormFile]
) -> list[FormVersion]:
    """Add a form version for each form file whose content the study has not kept
    yet; return the versions added. A file loaded unchanged with a later protocol
    version keeps its version, so data entered on it stay on it."""
    known = {
        (code, sha256)
        for code, sha256 in db.execute(
            select(FormVersion.form_code, FormVersion.sha256).where(
                FormVersion.study_id == study_id
            )
        )
    }
    new_files = [form for form in forms if (form.code, form.sha256) not in known]
    if not new_files:
        return []
    form_set = read_forms(folder)
    numbers: dict[str, int] = {
        code: number
        for code, number in db.execute(
            select(FormVersion.form_code, func.max(FormVersion.number))
            .where(FormVersion.study_id == study_id)
            .group_by(FormVersion.form_code)
        )
    }
    added = []
    for form in new_files:
        definition = form_set.forms[form.code]
        version = FormVersion(
            study_id=study_id,
            form_code=form.code,
            number=numbers.get(form.code, 0) + 1,
            label=definition.version,
            title=definition.title,
            definition=definition.to_json(),
            sha256=form.sha256,
        )
        db.add(version)
        added.append(version)
    db.flush()
    return added
