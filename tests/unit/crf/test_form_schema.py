"""The JSON Schemas that document form files and codelists: every file under forms/
meets them, they name exactly the keys the reader allows, and what they refuse the
reader refuses too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from bhp_ctms.crf.definition import (
    ANNOTATION_KEYS,
    CHECK_KEYS,
    CHOICE_KEYS,
    CODELIST_KEYS,
    CODELISTS_FILE,
    CODELISTS_FILE_KEYS,
    FORM_KEYS,
    GROUP_KEYS,
    ITEM_KEYS,
    ITEM_TYPES,
    MISSING_CODES,
    PATTERN_KEYS,
    RANGE_KEYS,
    REQUIRED_CHECK_KEYS,
    REQUIRED_FORM_KEYS,
    REQUIRED_GROUP_KEYS,
    REQUIRED_ITEM_KEYS,
    TYPES_OF_KEY,
    WIDGETS_OF_TYPE,
    check_forms,
)

FORMS = Path(__file__).resolve().parents[3] / "forms"
FORM_SCHEMA = json.loads((FORMS / "schema" / "form.schema.json").read_text(encoding="utf-8"))
CODELISTS_SCHEMA = json.loads(
    (FORMS / "schema" / "codelists.schema.json").read_text(encoding="utf-8")
)


class _PlainLoader(yaml.SafeLoader):
    """YAML as JSON sees it: dates stay text, as the reader keeps them."""


_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def plain(text: str) -> Any:
    return yaml.load(text, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader


def form_errors(data: Any) -> list[str]:
    return [error.message for error in Draft202012Validator(FORM_SCHEMA).iter_errors(data)]


def definition_files() -> Iterator[Path]:
    for path in sorted(FORMS.rglob("*.yaml")):
        if path.name != "study.yaml":
            yield path


def test_the_schemas_are_valid_draft_2020_12_schemas():
    Draft202012Validator.check_schema(FORM_SCHEMA)
    Draft202012Validator.check_schema(CODELISTS_SCHEMA)
    assert FORM_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(
    "path", list(definition_files()), ids=lambda path: str(path.relative_to(FORMS))
)
def test_every_form_and_codelists_file_meets_its_schema(path):
    schema = CODELISTS_SCHEMA if path.name == CODELISTS_FILE else FORM_SCHEMA
    data = plain(path.read_text(encoding="utf-8"))

    errors = [
        f"{list(error.absolute_path)}: {error.message}"
        for error in Draft202012Validator(schema).iter_errors(data)
    ]

    assert errors == []


def test_the_demo_study_has_files_to_check():
    names = {path.relative_to(FORMS).as_posix() for path in definition_files()}

    assert {"demo/codelists.yaml", "demo/forms/vitals.yaml", "demo/forms/ae.yaml"} <= names


def properties(schema: dict[str, Any]) -> tuple[list[str], list[str]]:
    return list(schema["properties"]), schema.get("required", [])


def test_the_schemas_and_the_reader_allow_the_same_keys():
    defs = FORM_SCHEMA["$defs"]
    codelist = CODELISTS_SCHEMA["properties"]["codelists"]["items"]

    assert properties(FORM_SCHEMA) == (list(FORM_KEYS), list(REQUIRED_FORM_KEYS))
    assert properties(defs["item"]) == (list(ITEM_KEYS), list(REQUIRED_ITEM_KEYS))
    assert properties(defs["group"]) == (list(GROUP_KEYS), list(REQUIRED_GROUP_KEYS))
    assert properties(defs["check"]) == (list(CHECK_KEYS), list(REQUIRED_CHECK_KEYS))
    assert properties(defs["choice"]) == (list(CHOICE_KEYS), list(CHOICE_KEYS))
    assert list(defs["range"]["properties"]) == list(RANGE_KEYS)
    assert properties(defs["pattern"]) == (list(PATTERN_KEYS), list(PATTERN_KEYS))
    assert list(defs["annotations"]["properties"]) == list(ANNOTATION_KEYS)
    assert properties(CODELISTS_SCHEMA) == (list(CODELISTS_FILE_KEYS), list(CODELISTS_FILE_KEYS))
    assert properties(codelist) == (list(CODELIST_KEYS), list(CODELIST_KEYS))
    assert CODELISTS_SCHEMA["$defs"]["choice"] == defs["choice"]
    for schema in (FORM_SCHEMA, *defs.values(), CODELISTS_SCHEMA, codelist):
        assert schema.get("additionalProperties", False) is False


def test_the_schema_and_the_reader_agree_on_types_and_what_each_allows():
    item = FORM_SCHEMA["$defs"]["item"]
    assert item["properties"]["type"]["enum"] == list(ITEM_TYPES)
    assert item["properties"]["missing_codes"]["items"]["enum"] == list(MISSING_CODES)
    # Each rule "an item not of these types has no <key>" in the schema.
    types_of_key = {
        rule["then"]["not"]["required"][0]: tuple(rule["if"]["properties"]["type"]["not"]["enum"])
        for rule in item["allOf"]
        if "not" in rule["then"]
    }
    assert types_of_key == dict(TYPES_OF_KEY)
    widgets = {
        rule["if"]["properties"]["type"]["const"]: tuple(
            rule["then"]["properties"]["widget"]["enum"]
        )
        for rule in item["allOf"]
        if "properties" in rule["then"]
    }
    assert widgets == dict(WIDGETS_OF_TYPE)


def described(schema: dict[str, Any], where: str) -> Iterator[str]:
    """The places of properties without a description, in a schema and its parts."""
    for name, value in schema.get("properties", {}).items():
        if not value.get("description"):
            yield f"{where}.{name}"
        yield from described(value, f"{where}.{name}")
        if isinstance(value.get("items"), dict):
            yield from described(value["items"], f"{where}.{name}[]")


def test_every_property_is_described_for_people_writing_forms():
    undescribed = [
        *described(FORM_SCHEMA, "form"),
        *described(CODELISTS_SCHEMA, "codelists"),
    ]
    for name, definition in FORM_SCHEMA["$defs"].items():
        assert definition.get("description"), name
        undescribed.extend(described(definition, name))

    assert undescribed == []


FORM = """\
code: vitals
title: Vital signs
version: "1.0"
items:
  - {code: weight, label: Weight, type: decimal, units: kg}
"""

# Each changes FORM in a way the schema refuses.
REFUSED = [
    pytest.param(("title: Vital signs", "titel: Vital signs"), id="unknown form key"),
    pytest.param(('version: "1.0"\n', ""), id="no version"),
    pytest.param(("code: vitals", "code: Vitals"), id="code not lower case"),
    pytest.param(("units: kg", "unit: kg"), id="unknown item key"),
    pytest.param(("units: kg", "required: maybe"), id="required not true or false"),
    pytest.param(("units: kg", "precision: -1"), id="negative precision"),
    pytest.param(("type: decimal, units: kg", "type: number"), id="unknown type"),
    pytest.param(
        ("type: decimal, units: kg", "type: text, precision: 1"), id="key of another type"
    ),
    pytest.param(("type: decimal, units: kg", "type: calculated"), id="calculation missing"),
    pytest.param(("type: decimal, units: kg", "type: single_choice"), id="choices missing"),
    pytest.param(
        ("type: decimal, units: kg", "type: single_choice, choices: [{code: a}]"),
        id="choice without label",
    ),
    pytest.param(
        ("type: decimal, units: kg", "type: single_choice, widget: slider, codelist: sex"),
        id="widget of another type",
    ),
    pytest.param(("units: kg", "missing_codes: [not_known]"), id="unknown missing code"),
    pytest.param(("units: kg", "hard_range: {message: Too heavy.}"), id="range without limits"),
    pytest.param(("units: kg", "annotations: {sdtm_domain: VS}"), id="unknown annotation"),
    pytest.param(
        ("items:\n  - {code: weight, label: Weight, type: decimal, units: kg}\n", "items: []\n"),
        id="no items",
    ),
    pytest.param(
        (
            "  - {code: weight, label: Weight, type: decimal, units: kg}",
            "  - group: meds\n    label: Medicines\n    items:\n"
            "      - group: doses\n        label: Doses\n"
            "        items: [{code: dose, label: Dose, type: decimal}]",
        ),
        id="nested group",
    ),
    pytest.param(
        ("units: kg}", "units: kg}\nchecks:\n  - {code: c, condition: '[weight] > 0'}"),
        id="check without message, severity and items",
    ),
]


@pytest.mark.parametrize("change", REFUSED)
def test_what_the_schema_refuses_the_reader_refuses(tmp_path, change):
    old, new = change
    assert FORM.count(old) == 1
    text = FORM.replace(old, new)
    folder = tmp_path / "forms"
    folder.mkdir()
    (folder / "vitals.yaml").write_text(text, encoding="utf-8")
    (folder / CODELISTS_FILE).write_text(
        'codelists:\n  - {code: sex, name: Sex, choices: [{code: "F", label: Female}]}\n',
        encoding="utf-8",
    )

    assert form_errors(plain(text)) != []
    assert check_forms(folder) != []


def test_the_unchanged_sample_meets_both(tmp_path):
    (tmp_path / "vitals.yaml").write_text(FORM, encoding="utf-8")

    assert form_errors(plain(FORM)) == []
    assert check_forms(tmp_path) == []


@pytest.mark.parametrize(
    "text",
    [
        "codelist: []\n",
        "codelists:\n  - {code: sex, choices: [{code: F, label: Female}]}\n",
        "codelists:\n  - {code: Sex, name: Sex, choices: [{code: F, label: Female}]}\n",
        "codelists:\n  - {code: sex, name: Sex, choices: []}\n",
        "codelists:\n  - {code: sex, name: Sex, choices: [{code: F, label: Female}], order: 1}\n",
    ],
    ids=["unknown key", "no name", "code not lower case", "no choices", "unknown codelist key"],
)
def test_what_the_codelists_schema_refuses_the_reader_refuses(tmp_path, text):
    (tmp_path / CODELISTS_FILE).write_text(text, encoding="utf-8")
    (tmp_path / "vitals.yaml").write_text(FORM, encoding="utf-8")

    assert list(Draft202012Validator(CODELISTS_SCHEMA).iter_errors(plain(text))) != []
    assert check_forms(tmp_path) != []
