"""Case report form definitions: form files read and checked into frozen data.

A study folder holds its forms beside ``study.yaml``::

    study.yaml          the protocol; its events list the forms by code
    codelists.yaml      choices shared by the forms (optional): sex, CTCAE grade, ...
    forms/*.yaml        one CRF a file: code, title, version, items, checks

A form file lists its items in page order. Each item has a code, a label and a type
(text, long_text, integer, decimal, date, time, datetime, single_choice,
multiple_choice, yes_no, calculated, descriptive) and what suits its type: units,
precision, choices or a codelist, hard and soft ranges, a pattern, partial dates,
missing-data codes, show-if logic, a calculation, CDASH/SDTM annotations. A
``group`` entry is a repeating item group (a table of rows). ``checks`` are edit
checks across items. ``forms/schema/form.schema.json`` documents every key, and
``forms/demo/forms/vitals.yaml`` is a commented example of each feature.

Every problem is reported at once with the file, line and column of the YAML at
fault; a fault in an expression is placed inside the expression. The modules:
``model`` (the dataclasses), ``source`` (composing a file's YAML, and places inside
its scalars), ``items`` (reading items and groups), ``checks`` (expressions across
the folder's forms) and ``reader`` (files and folders: :func:`read_forms`,
:func:`check_forms`, :func:`read_form_file`, :func:`read_codelists`). Import from
this package.
"""

from __future__ import annotations

from bhp_ctms.crf.definition.items import (
    ANNOTATION_KEYS,
    CHOICE_KEYS,
    GROUP_KEYS,
    ITEM_CODE,
    ITEM_KEYS,
    PATTERN_KEYS,
    RANGE_KEYS,
    REQUIRED_GROUP_KEYS,
    REQUIRED_ITEM_KEYS,
    TYPES_OF_KEY,
    WIDGETS_OF_TYPE,
)
from bhp_ctms.crf.definition.model import (
    DISPLAY_ONLY_TYPES,
    ITEM_TYPES,
    MISSING_CODES,
    MISSING_LABELS,
    YES_NO_CHOICES,
    Annotations,
    CheckSeverity,
    Choice,
    Codelist,
    EditCheck,
    Entry,
    FormDefinition,
    Item,
    ItemGroup,
    ItemType,
    Range,
    TextPattern,
    Widget,
)
from bhp_ctms.crf.definition.reader import (
    CHECK_KEYS,
    CODELIST_KEYS,
    CODELISTS_FILE,
    CODELISTS_FILE_KEYS,
    FORM_KEYS,
    REQUIRED_CHECK_KEYS,
    REQUIRED_FORM_KEYS,
    FormSet,
    check_forms,
    read_codelists,
    read_form_file,
    read_form_folder,
    read_forms,
)
from bhp_ctms.studies.definition import DefinitionError, Problem

__all__ = [
    "ANNOTATION_KEYS",
    "CHECK_KEYS",
    "CHOICE_KEYS",
    "CODELISTS_FILE",
    "CODELISTS_FILE_KEYS",
    "CODELIST_KEYS",
    "DISPLAY_ONLY_TYPES",
    "FORM_KEYS",
    "GROUP_KEYS",
    "ITEM_CODE",
    "ITEM_KEYS",
    "ITEM_TYPES",
    "MISSING_CODES",
    "MISSING_LABELS",
    "PATTERN_KEYS",
    "RANGE_KEYS",
    "REQUIRED_CHECK_KEYS",
    "REQUIRED_FORM_KEYS",
    "REQUIRED_GROUP_KEYS",
    "REQUIRED_ITEM_KEYS",
    "TYPES_OF_KEY",
    "WIDGETS_OF_TYPE",
    "YES_NO_CHOICES",
    "Annotations",
    "CheckSeverity",
    "Choice",
    "Codelist",
    "DefinitionError",
    "EditCheck",
    "Entry",
    "FormDefinition",
    "FormSet",
    "Item",
    "ItemGroup",
    "ItemType",
    "Problem",
    "Range",
    "TextPattern",
    "Widget",
    "check_forms",
    "read_codelists",
    "read_form_file",
    "read_form_folder",
    "read_forms",
]
