"""Validation against the ODM 1.3.2 schema that ships with the application, offline."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bhp_ctms.odm import schema
from bhp_ctms.odm.schema import SCHEMA_FOLDER, odm_schema, schema_problems

SAMPLES = Path("/work/shared/samples/odm")
VALID = (
    "odm-data-snapshot.xml",
    "test_clinical_data_01.xml",
    "test_referece_data_01.xml",
    "test_odm_002.xml",
    "test_odm_001-validated.xml",
    "cdash-odm-test.xml",
)

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="the shared ODM samples are absent")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt at a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_the_schema_ships_with_the_application_and_its_licence():
    names = {path.name for path in SCHEMA_FOLDER.iterdir()}
    assert {
        "ODM1-3-2.xsd",
        "ODM1-3-2-foundation.xsd",
        "xml.xsd",
        "xmldsig-core-schema.xsd",
        "LICENSE.cdisc-DataExchange-ODM",
    } <= names


def test_the_schema_is_compiled_once_per_process(no_network):
    schema._compiled.cache_clear()
    first = odm_schema()
    assert odm_schema() is first


@pytest.mark.parametrize("name", VALID)
def test_the_valid_samples_are_valid(name, no_network):
    assert schema_problems(SAMPLES / name) == []


def test_a_file_against_the_schema_is_refused_at_its_line(no_network):
    path = SAMPLES / "cdash-odm-test-invalid.xml"

    problems = schema_problems(path)

    assert [(problem.path, problem.line) for problem in problems] == [(path, 14)]
    assert problems[0].message == (
        "not valid ODM 1.3.2: Element 'studyName': This element is not expected. "
        "Expected is ( StudyName )"
    )


def test_a_file_that_is_not_namespace_well_formed_is_refused_at_its_line_and_column():
    path = SAMPLES / "test_odm_001.xml"

    problems = schema_problems(path)

    assert [(problem.line, problem.column) for problem in problems] == [(2, 325)]
    assert problems[0].message == (
        "not namespace-well-formed XML: Namespace prefix xs for schemaLocation on ODM is not "
        "defined"
    )


def test_text_that_is_not_xml_is_refused_with_where():
    assert [(problem.line, problem.message) for problem in schema_problems(b"<ODM><a></ODM>")] == [
        (1, "not well-formed XML: Opening and ending tag mismatch: a line 1 and ODM")
    ]
    assert schema_problems(b"")[0].message == "not well-formed XML: Document is empty"


def test_an_external_entity_is_neither_fetched_nor_expanded(no_network, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read me")
    document = (
        f'<?xml version="1.0"?><!DOCTYPE ODM [<!ENTITY a SYSTEM "file://{secret}">'
        '<!ENTITY b SYSTEM "http://example.com/b">]>'
        '<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" FileType="Snapshot" FileOID="F" '
        'CreationDateTime="2026-01-01T00:00:00">&a;&b;</ODM>'
    ).encode()

    problems = schema_problems(document)

    assert [problem.message for problem in problems] == [
        "uses the entity &a;: entities are not read",
        "uses the entity &b;: entities are not read",
    ]
