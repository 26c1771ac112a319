"""Validating a file against the CDISC ODM 1.3.2 schema, with no network.

The schema ships with the application (``schema-1.3.2/``: CDISC's ODM1-3-2.xsd, its
foundation, and the W3C schemas it imports). Every file the schema names is read from
that folder by a resolver; the parsers are built with ``no_network=True`` and refuse
entities and DTDs, so neither the schema nor a file being validated can make this
process fetch anything. The compiled schema is kept for the life of the process.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from lxml import etree

from bhp_ctms.studies.definition import Problem

SCHEMA_FOLDER = Path(__file__).resolve().parent / "schema-1.3.2"
SCHEMA_FILE = "ODM1-3-2.xsd"

ODM_NAMESPACE = "http://www.cdisc.org/ns/odm/v1.3"

# Problems past this many are summed up in one line: a file that is wrong throughout
# says so without printing a million lines.
MAX_PROBLEMS = 200


class _LocalSchemas(etree.Resolver):  # type: ignore[misc]
    """Resolves every file the schema imports or includes (``xml.xsd``, the XML
    signature schema, ...) to the copy in :data:`SCHEMA_FOLDER`, whatever URL names
    it; anything else is refused rather than fetched."""

    def resolve(self, system_url: str | None, public_id: str | None, context: Any) -> Any:
        name = (system_url or "").replace("\\", "/").rsplit("/", 1)[-1]
        local = SCHEMA_FOLDER / name
        if name and local.is_file():
            return self.resolve_filename(str(local), context)
        return None


def secure_parser(**options: Any) -> etree.XMLParser:
    """A parser that reads no network resource, expands no entity and loads no DTD."""
    parser = etree.XMLParser(
        no_network=True,
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=True,
        **options,
    )
    parser.resolvers.add(_LocalSchemas())
    return parser


_lock = threading.Lock()


@functools.cache
def _compiled() -> etree.XMLSchema:
    document = etree.parse(str(SCHEMA_FOLDER / SCHEMA_FILE), secure_parser())
    return etree.XMLSchema(document)


def odm_schema() -> etree.XMLSchema:
    """The ODM 1.3.2 schema, compiled once per process.

    An ``XMLSchema`` keeps its error log on itself: validate through :func:`validated`,
    which validates one document at a time.
    """
    return _compiled()


def parse(source: Path | IO[bytes] | bytes, path: Path | None = None) -> etree._ElementTree:
    """The XML document in ``source`` (a path, a binary file or bytes), every element
    keeping its line. Raises :class:`OdmSyntaxError` when it is not well-formed XML
    (namespaces included), naming the line and column."""
    name = path or (source if isinstance(source, Path) else Path("<odm>"))
    parser = secure_parser()
    try:
        if isinstance(source, bytes):
            document = etree.ElementTree(etree.fromstring(source, parser))
        elif isinstance(source, Path):
            document = etree.parse(str(source), parser)
        else:
            document = etree.parse(source, parser)
    except etree.XMLSyntaxError as error:
        raise OdmSyntaxError(syntax_problems(name, error, parser.error_log)) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise OdmSyntaxError([Problem(name, None, None, f"cannot be read: {reason}")]) from None
    # Entities are never expanded (an entity can read files or the network): a file
    # that uses one is refused rather than read without it.
    entities = [
        Problem(
            name, entity.sourceline, None, f"uses the entity {entity.text}: entities are not read"
        )
        for entity in document.iter(etree.Entity)
    ]
    if entities:
        raise OdmSyntaxError(_capped(name, entities))
    return document


class OdmSyntaxError(ValueError):
    """A file that is not well-formed XML; ``problems`` says where and why."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def syntax_problems(
    path: Path, error: etree.XMLSyntaxError, log: etree._ListErrorLog
) -> list[Problem]:
    """The problems of a parse that failed (``log``: its parser's), each at its line
    and column."""
    problems = [
        Problem(path, entry.line or None, entry.column or None, _not_well_formed(entry.message))
        for entry in log
        if entry.level_name in ("ERROR", "FATAL")
    ]
    if not problems:
        line, column = error.position if error.position else (None, None)
        problems = [Problem(path, line or None, column or None, _not_well_formed(str(error.msg)))]
    return _capped(path, problems)


def _not_well_formed(message: str) -> str:
    message = message.strip().rstrip(".")
    if "Namespace prefix" in message:
        return f"not namespace-well-formed XML: {message}"
    return f"not well-formed XML: {message}"


def validated(document: etree._ElementTree, path: Path) -> list[Problem]:
    """Every way ``document`` breaks the ODM 1.3.2 schema, each at its line; [] when
    it is valid."""
    schema = odm_schema()
    with _lock:
        try:
            schema.validate(document)
        except etree.XMLSchemaValidateError as error:
            return [Problem(path, None, None, f"cannot be checked against the schema: {error}")]
        entries = list(schema.error_log)
    problems = [
        Problem(path, entry.line or None, None, _schema_message(entry.message)) for entry in entries
    ]
    return _capped(path, problems)


def _schema_message(message: str) -> str:
    """libxml2's message in shorter words: namespaces in ``{...}`` left out."""
    text = message.replace("{" + ODM_NAMESPACE + "}", "")
    return f"not valid ODM 1.3.2: {text.strip().rstrip('.')}"


def _capped(path: Path, problems: list[Problem]) -> list[Problem]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    more = len(problems) - MAX_PROBLEMS
    return [*problems[:MAX_PROBLEMS], Problem(path, None, None, f"... and {more} more problems")]


def schema_problems(source: Path | IO[bytes] | bytes, path: Path | None = None) -> list[Problem]:
    """Every problem that keeps ``source`` from being a valid ODM 1.3.2 file: not
    well-formed XML, or not valid against the schema. [] when it is valid."""
    name = path or (source if isinstance(source, Path) else Path("<odm>"))
    try:
        document = parse(source, name)
    except OdmSyntaxError as error:
        return error.problems
    return validated(document, name)
