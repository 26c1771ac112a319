"""A study's definition as data: a folder holding ``study.yaml`` and its CRF files.

Reading a definition is pure (no database, no request) so that a study can be
checked before it is loaded, in CI and by ``ctms``. Every problem is reported at
once, each with the file, line and column of the YAML node at fault, so that whoever
edits the file fixes it in one go. Locations name list entries from 0, as in
``events[2].window_after`` for the third event.

The layout of a study folder::

    study.yaml          the protocol: arms, schedule, eligibility, consent, ...
    codelists.yaml      lists of answers its forms share (optional)
    forms/*.yaml        its case report forms, one a file (optional)

The form files and codelists are read and checked by :mod:`bhp_ctms.crf.definition`,
and a study check reports their problems too.

The package's modules: ``marked_yaml`` reads YAML keeping each node's line and column
and defines :class:`Problem` and :class:`DefinitionError`; ``model`` holds the frozen
dataclasses; ``reader`` reads and checks a study folder (:func:`read_study`,
:func:`check_study`). Import from this package, not from its modules.
"""

from __future__ import annotations

from bhp_ctms.studies.definition.marked_yaml import ISO_DATE, DefinitionError, Problem
from bhp_ctms.studies.definition.model import (
    Arm,
    BlindingLevel,
    ConsentDocuments,
    Criterion,
    CriterionKind,
    Event,
    FormFile,
    Pillar,
    Randomisation,
    RandomisationMethod,
    ScheduleBaseline,
    SiteSeed,
    StudyDefinition,
    StudyStatusValue,
)
from bhp_ctms.studies.definition.reader import (
    ARM_KEYS,
    CONSENT_KEYS,
    CRITERION_KEYS,
    DEFAULT_PARTICIPANT_ID_PATTERN,
    EUDRACT,
    EVENT_KEYS,
    FORMS_FOLDER,
    IRAS,
    ISRCTN,
    ITEM_CODE,
    PHASES,
    REQUIRED_STUDY_KEYS,
    SCHEDULE_KEYS,
    SITE_CODE,
    SITE_KEYS,
    SITE_STATUSES,
    STUDY_CODE,
    STUDY_FILE,
    STUDY_KEYS,
    USER_KEYS,
    check_study,
    read_study,
)

__all__ = [
    "ARM_KEYS",
    "CONSENT_KEYS",
    "CRITERION_KEYS",
    "DEFAULT_PARTICIPANT_ID_PATTERN",
    "EUDRACT",
    "EVENT_KEYS",
    "FORMS_FOLDER",
    "IRAS",
    "ISO_DATE",
    "ISRCTN",
    "ITEM_CODE",
    "PHASES",
    "REQUIRED_STUDY_KEYS",
    "SCHEDULE_KEYS",
    "SITE_CODE",
    "SITE_KEYS",
    "SITE_STATUSES",
    "STUDY_CODE",
    "STUDY_FILE",
    "STUDY_KEYS",
    "USER_KEYS",
    "Arm",
    "BlindingLevel",
    "ConsentDocuments",
    "Criterion",
    "CriterionKind",
    "DefinitionError",
    "Event",
    "FormFile",
    "Pillar",
    "Problem",
    "Randomisation",
    "RandomisationMethod",
    "ScheduleBaseline",
    "SiteSeed",
    "StudyDefinition",
    "StudyStatusValue",
    "check_study",
    "read_study",
]
