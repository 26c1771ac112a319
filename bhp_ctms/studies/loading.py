"""Loading a study folder into the database as a protocol version.

The first load of a folder creates the study, its protocol version 1 and the sites the
folder seeds. Loading it again is harmless: the same definition changes nothing. A
changed definition is an amendment: a new protocol version with its own label,
effective date and summary, beside the versions before it, so that data entered on
an earlier version stays on it. Everything is written through the ORM inside the
caller's transaction, so the audit capture records every value created or changed.

Once a version has been added, :class:`StudyVersionLoaded` is notified to the
application's subscribers (the eCRF domain asks for a data-quality run of the data
already stored), whoever loads it: ``ctms study load``, ``ctms demo``, or any caller
whose session belongs to a request of the application.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from bhp_ctms.audit.capture import acting_as
from bhp_ctms.audit.models import canonical_json
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.db import utc_today
from bhp_ctms.sites.models import Site, SiteStatus
from bhp_ctms.studies.definition import (
    STUDY_FILE,
    DefinitionError,
    FormFile,
    Problem,
    StudyDefinition,
    read_study,
)
from bhp_ctms.studies.diff import DefinitionChange, diff_definitions
from bhp_ctms.studies.models import (
    Blinding,
    ProtocolVersion,
    ResearchPillar,
    Study,
    StudyStatus,
)
from bhp_ctms.studies.services import find_study, protocol_versions
from bhp_ctms.templating import ukdate

# The definition's values that only seed a study the first time it is loaded: a
# change to them alone is not an amendment of the protocol.
SEED_ONLY = frozenset({"status"})


@dataclass(frozen=True)
class LoadResult:
    """What loading a study folder did.

    ``version`` is the version the folder defines: new (``new_version``) or the one
    already loaded with the same content. ``changes`` are the amendment's changes
    from the previous version ([] unless an amendment was loaded).
    """

    study: Study
    version: ProtocolVersion
    created_study: bool
    new_version: bool
    changes: list[DefinitionChange]
    # The definition read from the folder (its sites and users included).
    definition: StudyDefinition

    def describe(self) -> str:
        """What happened, in a sentence, for the person who loaded the folder."""
        study, version = self.study, self.version
        effective = ukdate(version.effective_on)
        if self.created_study:
            return (
                f"Created study {study.code} at protocol version {version.label}"
                f" (effective {effective})."
            )
        if not self.new_version:
            return f"{study.code} is up to date at protocol version {version.label}."
        if version.number == 1:
            return (
                f"Loaded protocol version {version.label} of {study.code} (effective {effective})."
            )
        count = len(self.changes)
        return (
            f"Loaded amendment: {study.code} protocol version {version.label} as version"
            f" {version.number} (effective {effective}), with {count}"
            f" change{'' if count == 1 else 's'}."
        )


def definition_sha256(definition: dict[str, Any]) -> str:
    """The SHA-256 of a definition's canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(canonical_json(definition).encode("utf-8")).hexdigest()


def study_values(definition: StudyDefinition) -> dict[str, Any]:
    """The values of a :class:`Study` that its definition gives, as the model holds them."""
    return {
        "title": definition.title,
        "blinding": Blinding(definition.blinding),
        "target_sample_size": definition.target_sample_size,
        "phase": definition.phase,
        "isrctn": definition.isrctn,
        "eudract": definition.eudract,
        "iras": definition.iras,
        "pillar": ResearchPillar(definition.pillar),
        "rare_disease": definition.rare_disease,
        "sponsor": definition.sponsor,
        "organisations": list(definition.organisations),
        "participant_id_pattern": definition.participant_id_pattern,
    }


def protocol_changes(old: StudyDefinition, new: StudyDefinition) -> list[DefinitionChange]:
    """The changes from ``old`` to ``new`` that amend the protocol: all but the seeds."""
    return [
        change
        for change in diff_definitions(old, new)
        if not (change.area == "study" and change.code in SEED_ONLY)
    ]


@dataclass(frozen=True)
class StudyVersionLoaded:
    """A protocol version of a study has been loaded (``created_study``: with the study
    itself, which has no data yet).

    Notified with the application registry of the request whose session loaded it
    (``request``: a web request, a command's or a task's), inside its transaction:
    what a subscriber writes commits or aborts with the load, and work for later
    goes through ``request.enqueue``, sent only once the load has committed.
    """

    request: Any
    study_id: int
    version_id: int
    version_label: str
    created_study: bool


def load_study(db: Session, actor: AuditActor, folder: Path) -> LoadResult:
    """Load the study definition in ``folder``: a new study, an amendment, or nothing new.

    Raises :class:`~bhp_ctms.studies.definition.DefinitionError` when the folder has
    problems, or when its definition cannot be the study's next protocol version (a
    label already used, an effective date before the latest version's, no amendment
    summary). The study's status is never changed by a reload: the file's status only
    seeds a new study. When a version was added, :class:`StudyVersionLoaded` is
    notified, on behalf of ``actor``.
    """
    with acting_as(db, actor):
        result = _load(db, folder)
        # A session made outside the application (a script's, a test's) belongs to no
        # request, and has no subscribers to tell.
        request = db.info.get("request")
        if result.new_version and request is not None:
            request.registry.notify(
                StudyVersionLoaded(
                    request,
                    result.study.id,
                    result.version.id,
                    result.version.label,
                    result.created_study,
                )
            )
    return result


def _load(db: Session, folder: Path) -> LoadResult:
    definition = read_study(folder)
    data = definition.to_json()
    sha256 = definition_sha256(data)
    study = find_study(db, definition.code)
    if study is None:
        study = _create_study(db, definition)
        version = _add_version(db, study, 1, definition, data, sha256)
        store_form_versions(db, study.id, folder, definition.forms)
        _seed_sites(db, study, definition)
        return LoadResult(study, version, True, True, [], definition)
    versions = protocol_versions(db, study.id)
    if not versions:
        # A study created before protocol versions were kept (an older demo).
        _update_study(study, definition)
        version = _add_version(db, study, 1, definition, data, sha256)
        store_form_versions(db, study.id, folder, definition.forms)
        _seed_sites(db, study, definition)
        return LoadResult(study, version, False, True, [], definition)
    latest = versions[-1]
    if latest.definition_sha256 == sha256:
        _update_study(study, definition)
        return LoadResult(study, latest, False, False, [], definition)
    changes = protocol_changes(StudyDefinition.from_json(latest.definition), definition)
    if not changes:
        # Only the seeds differ (sites, demo users, initial status): nothing to amend.
        _update_study(study, definition)
        return LoadResult(study, latest, False, False, [], definition)
    _check_amendment(folder, definition, versions, sha256)
    if study.status in {StudyStatus.LOCKED, StudyStatus.ARCHIVED}:
        # Its data are final: a new protocol version would change what they mean.
        raise DefinitionError(
            [
                _KeyLocator(folder / STUDY_FILE).problem(
                    "protocol_version",
                    f"{definition.code} is {study.status.label.lower()}: "
                    "no amendment can be loaded",
                )
            ]
        )
    _update_study(study, definition)
    version = _add_version(db, study, latest.number + 1, definition, data, sha256)
    store_form_versions(db, study.id, folder, definition.forms)
    return LoadResult(study, version, False, True, changes, definition)


def store_form_versions(
    db: Session, study_id: int, folder: Path, forms: Sequence[FormFile]
) -> None:
    """Keep each of the study's form files as a form version, unless a version with
    the same content is kept already."""
    if not forms:
        return
    # Imported here: the CRF domain builds on studies, not the other way round, and
    # only loading needs to reach into it.
    from bhp_ctms.crf.loading import store_form_versions as store

    store(db, study_id, folder, forms)


def _create_study(db: Session, definition: StudyDefinition) -> Study:
    study = Study(
        code=definition.code,
        status=StudyStatus(definition.status or StudyStatus.SET_UP.value),
        **study_values(definition),
    )
    db.add(study)
    db.flush()
    return study


def _update_study(study: Study, definition: StudyDefinition) -> None:
    for name, value in study_values(definition).items():
        if getattr(study, name) != value:
            setattr(study, name, value)


def _add_version(
    db: Session,
    study: Study,
    number: int,
    definition: StudyDefinition,
    data: dict[str, Any],
    sha256: str,
) -> ProtocolVersion:
    version = ProtocolVersion(
        study_id=study.id,
        number=number,
        label=definition.protocol_version,
        effective_on=definition.effective_on,
        summary=definition.amendment_summary,
        definition=data,
        definition_sha256=sha256,
    )
    db.add(version)
    db.flush()
    return version


def _seed_sites(db: Session, study: Study, definition: StudyDefinition) -> list[Site]:
    """Create the sites the definition seeds whose codes the study does not have yet."""
    existing = set(db.scalars(select(Site.code).where(Site.study_id == study.id)))
    created = []
    for seed in definition.sites:
        if seed.code in existing:
            continue
        status = SiteStatus(seed.status)
        site = Site(
            study_id=study.id,
            code=seed.code,
            name=seed.name,
            status=status,
            recruitment_target=seed.recruitment_target,
            principal_investigator=seed.principal_investigator,
            # As when a CTU admin opens a site: an open site is active from today.
            activated_on=utc_today() if status == SiteStatus.OPEN else None,
        )
        db.add(site)
        created.append(site)
    db.flush()
    return created


def _check_amendment(
    folder: Path,
    definition: StudyDefinition,
    versions: list[ProtocolVersion],
    sha256: str,
) -> None:
    """Refuse a definition that cannot be the next protocol version, saying where."""
    locate = _KeyLocator(folder / STUDY_FILE)
    latest = versions[-1]
    problems = []
    same = next((version for version in versions if version.definition_sha256 == sha256), None)
    if same is not None:
        problems.append(
            locate.problem(
                "protocol_version",
                f"this is protocol version {same.label} of {definition.code}, already loaded"
                f" as version {same.number}; the latest is {latest.label}: nothing to load",
            )
        )
        raise DefinitionError(problems)
    used = next(
        (version for version in versions if version.label == definition.protocol_version), None
    )
    if used is not None:
        problems.append(
            locate.problem(
                "protocol_version",
                f"version {used.label} of {definition.code} is already loaded with a different"
                " definition: an amendment needs a new version label",
            )
        )
    if definition.effective_on < latest.effective_on:
        problems.append(
            locate.problem(
                "effective_on",
                f"{definition.effective_on.isoformat()} is before"
                f" {latest.effective_on.isoformat()}, when the latest version"
                f" ({latest.label}) took effect: an amendment cannot take effect earlier",
            )
        )
    if not definition.amendment_summary.strip():
        problems.append(
            locate.problem(
                "amendment_summary",
                f"an amendment needs a summary of what changed since version {latest.label}",
                fallback="protocol_version",
            )
        )
    if problems:
        raise DefinitionError(problems)


class _KeyLocator:
    """Where each top-level key of a study file is, to report a problem on its line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: dict[str, tuple[int, int]] = {}
        try:
            root = yaml.compose(path.read_text(encoding="utf-8-sig"), Loader=yaml.SafeLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return
        if isinstance(root, yaml.MappingNode):
            for key, _value in root.value:
                mark = key.start_mark
                self.lines.setdefault(str(key.value), (mark.line + 1, mark.column + 1))

    def problem(self, key: str, message: str, fallback: str = "") -> Problem:
        where = self.lines.get(key) or self.lines.get(fallback)
        if where is None:
            return Problem(self.path, None, None, f"{key}: {message}")
        return Problem(self.path, where[0], where[1], f"{key}: {message}")
