"""Reading an ODM file into plain records, each with the line it is on.

``read_odm(path)`` refuses, with every problem by line, a file that is not well-formed
XML (namespaces included) or is not valid ODM 1.3.2, and reads a valid one. REDCap's
project XML (recognised by its namespace or its ``SourceSystem``) is not valid ODM: it
is read leniently, each way it breaks the schema becoming a warning at its line. What
the records hold is what the importer needs; anything else in the file is left out.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from bhp_ctms.odm.schema import OdmSyntaxError, parse, validated
from bhp_ctms.odm.vocabulary import ODM_NAMESPACE, REDCAP_NAMESPACE, XML_NAMESPACE
from bhp_ctms.studies.definition import Problem

_ODM = "{" + ODM_NAMESPACE + "}"
_REDCAP = "{" + REDCAP_NAMESPACE + "}"
_LANG = "{" + XML_NAMESPACE + "}lang"

# The typed ItemData elements of ODM 1.3 (ItemDataString...): their value is their text.
_TYPED_ITEM_DATA = _ODM + "ItemData"


class OdmImportError(ValueError):
    """A file that cannot be imported; ``problems`` gives each reason with its line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


@dataclass(frozen=True)
class Ref:
    """A reference to a definition (StudyEventRef, FormRef, ItemGroupRef, ItemRef)."""

    oid: str
    mandatory: bool
    order: int | None
    line: int
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RangeCheck:
    comparator: str
    strength: str
    values: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class ItemDef:
    oid: str
    name: str
    data_type: str
    length: int | None
    significant_digits: int | None
    question: str
    description: str
    text: str
    units_oid: str
    codelist_oid: str
    range_checks: tuple[RangeCheck, ...]
    aliases: Mapping[str, str]
    line: int
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemGroupDef:
    oid: str
    name: str
    repeating: bool
    item_refs: tuple[Ref, ...]
    aliases: Mapping[str, str]
    line: int


@dataclass(frozen=True)
class FormDef:
    oid: str
    name: str
    repeating: bool
    description: str
    group_refs: tuple[Ref, ...]
    aliases: Mapping[str, str]
    line: int
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyEventDef:
    oid: str
    name: str
    repeating: bool
    type: str
    form_refs: tuple[Ref, ...]
    aliases: Mapping[str, str]
    line: int
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CodeListDef:
    oid: str
    name: str
    data_type: str
    choices: tuple[tuple[str, str], ...]
    external: bool
    aliases: Mapping[str, str]
    line: int
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MetaDataVersion:
    oid: str
    name: str
    event_refs: tuple[Ref, ...]
    events: Mapping[str, StudyEventDef]
    forms: Mapping[str, FormDef]
    groups: Mapping[str, ItemGroupDef]
    items: Mapping[str, ItemDef]
    codelists: Mapping[str, CodeListDef]
    line: int
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyDef:
    oid: str
    name: str
    description: str
    protocol_name: str
    units: Mapping[str, str]
    versions: tuple[MetaDataVersion, ...]
    line: int
    # REDCap's data access groups (its sites), by name.
    access_groups: tuple[str, ...] = ()
    # REDCap's repeating instruments: (unique event name, form name).
    repeating_instruments: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Location:
    oid: str
    name: str
    type: str
    line: int


@dataclass(frozen=True)
class ItemData:
    """A value (``value`` None when null or absent), the reason it is missing when a
    Flag of our ``CL.MISSING`` code list says so, and whether it is binary (a file)."""

    oid: str
    value: str | None
    missing: str | None
    binary: bool
    line: int


@dataclass(frozen=True)
class ItemGroupData:
    oid: str
    repeat_key: str
    items: tuple[ItemData, ...]
    line: int


@dataclass(frozen=True)
class FormData:
    oid: str
    repeat_key: str
    groups: tuple[ItemGroupData, ...]
    line: int


@dataclass(frozen=True)
class StudyEventData:
    """An event's data; ``oid`` is "" for forms given straight under SubjectData (as
    REDCap writes a project without events)."""

    oid: str
    repeat_key: str
    forms: tuple[FormData, ...]
    line: int
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SubjectData:
    key: str
    site_oid: str
    events: tuple[StudyEventData, ...]
    line: int


@dataclass(frozen=True)
class ClinicalData:
    study_oid: str
    version_oid: str
    subjects: tuple[SubjectData, ...]
    line: int


@dataclass(frozen=True)
class ReferenceData:
    study_oid: str
    version_oid: str
    groups: tuple[ItemGroupData, ...]
    line: int


@dataclass
class OdmFile:
    """What an ODM file holds, and the warnings reading it gave."""

    path: Path
    redcap: bool
    file_type: str
    studies: tuple[StudyDef, ...]
    locations: Mapping[str, Location]
    clinical: tuple[ClinicalData, ...]
    reference: tuple[ReferenceData, ...]
    warnings: list[Problem]

    @property
    def value_count(self) -> int:
        return sum(
            len(group.items)
            for clinical in self.clinical
            for subject in clinical.subjects
            for event in subject.events
            for form in event.forms
            for group in form.groups
        )


# -- reading the tree ------------------------------------------------------------------


def _children(element: etree._Element, name: str) -> Iterator[etree._Element]:
    return iter(element.iterchildren(_ODM + name))


def _child(element: etree._Element, name: str) -> etree._Element | None:
    return element.find(_ODM + name)


def _line(element: etree._Element) -> int:
    return element.sourceline or 0


def _text(element: etree._Element | None) -> str:
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


def translated(element: etree._Element, name: str) -> str:
    """The English (or else the first) TranslatedText of child ``name``, e.g. the
    Question of an ItemDef; "" when there is none."""
    holder = _child(element, name)
    if holder is None:
        return ""
    texts = list(_children(holder, "TranslatedText"))
    for text in texts:
        if (text.get(_LANG) or "en").lower().startswith("en"):
            return "\n".join(line.strip() for line in (text.text or "").strip().splitlines())
    return (texts[0].text or "").strip() if texts else ""


def _aliases(element: etree._Element) -> dict[str, str]:
    return {
        alias.get("Context", ""): alias.get("Name", "") for alias in _children(element, "Alias")
    }


def _extra(element: etree._Element) -> dict[str, str]:
    """REDCap's attributes of an element, by local name."""
    return {
        name[len(_REDCAP) :]: value
        for name, value in element.attrib.items()
        if name.startswith(_REDCAP)
    }


def _yes(value: str | None) -> bool:
    return (value or "").strip() == "Yes"


def _integer(value: str | None) -> int | None:
    try:
        return int((value or "").strip())
    except ValueError:
        return None


def _refs(element: etree._Element, name: str, attribute: str) -> tuple[Ref, ...]:
    return tuple(
        Ref(
            ref.get(attribute, ""),
            _yes(ref.get("Mandatory")),
            _integer(ref.get("OrderNumber")),
            _line(ref),
            _extra(ref),
        )
        for ref in _children(element, name)
    )


def _ordered(refs: tuple[Ref, ...]) -> tuple[Ref, ...]:
    """References by their OrderNumber, where given, else as written."""
    indexed = list(enumerate(refs))
    indexed.sort(key=lambda pair: pair[1].order if pair[1].order is not None else pair[0])
    return tuple(ref for _, ref in indexed)


class _Reader:
    """Reads the records of one file, noting a warning for each definition given twice."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.warnings: list[Problem] = []

    def warn(self, line: int | None, message: str) -> None:
        self.warnings.append(Problem(self.path, line or None, None, message))

    def _unique(self, found: Mapping[str, object], oid: str, line: int, what: str) -> bool:
        if not oid:
            self.warn(line, f"a {what} without an OID is left out")
            return False
        if oid in found:
            first = getattr(found[oid], "line", 0)
            self.warn(
                line, f"{what} {oid!r} is defined twice (first on line {first}): the first is used"
            )
            return False
        return True

    def study(self, element: etree._Element) -> StudyDef:
        variables = _child(element, "GlobalVariables")
        units: dict[str, str] = {}
        basic = _child(element, "BasicDefinitions")
        if basic is not None:
            for unit in _children(basic, "MeasurementUnit"):
                oid = unit.get("OID", "")
                units.setdefault(oid, translated(unit, "Symbol") or unit.get("Name", "") or oid)
        groups: tuple[str, ...] = ()
        repeating: tuple[tuple[str, str], ...] = ()
        if variables is not None:
            groups = tuple(
                group.get("group_name", "")
                for group in variables.iter(_REDCAP + "DataAccessGroups")
                if group.get("group_name")
            )
            repeating = tuple(
                (
                    node.get(_REDCAP + "UniqueEventName", ""),
                    node.get(_REDCAP + "RepeatInstrument", ""),
                )
                for node in variables.iter(_REDCAP + "RepeatingInstrument")
            )
        return StudyDef(
            oid=element.get("OID", ""),
            name=_text(_child(variables, "StudyName")) if variables is not None else "",
            description=_text(_child(variables, "StudyDescription"))
            if variables is not None
            else "",
            protocol_name=_text(_child(variables, "ProtocolName")) if variables is not None else "",
            units=units,
            versions=tuple(self.version(mdv) for mdv in _children(element, "MetaDataVersion")),
            line=_line(element),
            access_groups=groups,
            repeating_instruments=repeating,
        )

    def version(self, element: etree._Element) -> MetaDataVersion:
        protocol = _child(element, "Protocol")
        event_refs = (
            _ordered(_refs(protocol, "StudyEventRef", "StudyEventOID"))
            if protocol is not None
            else ()
        )
        events: dict[str, StudyEventDef] = {}
        for node in _children(element, "StudyEventDef"):
            oid = node.get("OID", "")
            if self._unique(events, oid, _line(node), "StudyEventDef"):
                events[oid] = StudyEventDef(
                    oid,
                    node.get("Name", ""),
                    _yes(node.get("Repeating")),
                    node.get("Type", ""),
                    _ordered(_refs(node, "FormRef", "FormOID")),
                    _aliases(node),
                    _line(node),
                    _extra(node),
                )
        forms: dict[str, FormDef] = {}
        for node in _children(element, "FormDef"):
            oid = node.get("OID", "")
            if self._unique(forms, oid, _line(node), "FormDef"):
                forms[oid] = FormDef(
                    oid,
                    node.get("Name", ""),
                    _yes(node.get("Repeating")),
                    translated(node, "Description"),
                    _ordered(_refs(node, "ItemGroupRef", "ItemGroupOID")),
                    _aliases(node),
                    _line(node),
                    _extra(node),
                )
        groups: dict[str, ItemGroupDef] = {}
        for node in _children(element, "ItemGroupDef"):
            oid = node.get("OID", "")
            if self._unique(groups, oid, _line(node), "ItemGroupDef"):
                groups[oid] = ItemGroupDef(
                    oid,
                    node.get("Name", ""),
                    _yes(node.get("Repeating")),
                    _ordered(_refs(node, "ItemRef", "ItemOID")),
                    _aliases(node),
                    _line(node),
                )
        items: dict[str, ItemDef] = {}
        for node in _children(element, "ItemDef"):
            oid = node.get("OID", "")
            if self._unique(items, oid, _line(node), "ItemDef"):
                items[oid] = self.item(node)
        codelists: dict[str, CodeListDef] = {}
        for node in _children(element, "CodeList"):
            oid = node.get("OID", "")
            if self._unique(codelists, oid, _line(node), "CodeList"):
                codelists[oid] = self.codelist(node)
        return MetaDataVersion(
            oid=element.get("OID", ""),
            name=element.get("Name", ""),
            event_refs=event_refs,
            events=events,
            forms=forms,
            groups=groups,
            items=items,
            codelists=codelists,
            line=_line(element),
            extra=_extra(element),
        )

    def item(self, node: etree._Element) -> ItemDef:
        unit = _child(node, "MeasurementUnitRef")
        codelist = _child(node, "CodeListRef")
        checks = tuple(
            RangeCheck(
                check.get("Comparator", ""),
                check.get("SoftHard", ""),
                tuple(_text(value) for value in _children(check, "CheckValue")),
                translated(check, "ErrorMessage"),
            )
            for check in _children(node, "RangeCheck")
        )
        return ItemDef(
            oid=node.get("OID", ""),
            name=node.get("Name", ""),
            data_type=node.get("DataType", ""),
            length=_integer(node.get("Length")),
            significant_digits=_integer(node.get("SignificantDigits")),
            question=translated(node, "Question"),
            description=translated(node, "Description"),
            text=" ".join((node.text or "").split()),
            units_oid=unit.get("MeasurementUnitOID", "") if unit is not None else "",
            codelist_oid=codelist.get("CodeListOID", "") if codelist is not None else "",
            range_checks=checks,
            aliases=_aliases(node),
            line=_line(node),
            extra=_extra(node),
        )

    def codelist(self, node: etree._Element) -> CodeListDef:
        choices: list[tuple[str, str]] = []
        for choice in _children(node, "CodeListItem"):
            choices.append((choice.get("CodedValue", ""), translated(choice, "Decode")))
        for choice in _children(node, "EnumeratedItem"):
            choices.append((choice.get("CodedValue", ""), ""))
        return CodeListDef(
            oid=node.get("OID", ""),
            name=node.get("Name", ""),
            data_type=node.get("DataType", ""),
            choices=tuple(choices),
            external=_child(node, "ExternalCodeList") is not None,
            aliases=_aliases(node),
            line=_line(node),
            extra=_extra(node),
        )

    def locations(self, root: etree._Element) -> dict[str, Location]:
        found: dict[str, Location] = {}
        for admin in _children(root, "AdminData"):
            for node in _children(admin, "Location"):
                oid = node.get("OID", "")
                if oid and oid not in found:
                    found[oid] = Location(
                        oid, node.get("Name", ""), node.get("LocationType", ""), _line(node)
                    )
        return found

    def group_data(self, node: etree._Element) -> ItemGroupData:
        items = []
        for item in node:
            tag = item.tag
            if not isinstance(tag, str) or not tag.startswith(_TYPED_ITEM_DATA):
                continue
            items.append(self.item_data(item, tag))
        return ItemGroupData(
            node.get("ItemGroupOID", ""),
            node.get("ItemGroupRepeatKey", ""),
            tuple(items),
            _line(node),
        )

    def item_data(self, node: etree._Element, tag: str) -> ItemData:
        binary = tag.endswith(("Base64Binary", "HexBinary", "Base64Float", "HexFloat"))
        if tag == _TYPED_ITEM_DATA:
            value = node.get("Value")
        else:
            value = None if binary else (node.text or "")
        missing = None
        if _yes(node.get("IsNull")):
            value = None
            for flag in node.iter(_ODM + "FlagValue"):
                missing = (flag.text or "").strip() or None
                break
        return ItemData(node.get("ItemOID", ""), value, missing, binary, _line(node))

    def form_data(self, node: etree._Element) -> FormData:
        return FormData(
            node.get("FormOID", ""),
            node.get("FormRepeatKey", ""),
            tuple(self.group_data(group) for group in _children(node, "ItemGroupData")),
            _line(node),
        )

    def subject(self, node: etree._Element) -> SubjectData:
        site = _child(node, "SiteRef")
        events = [
            StudyEventData(
                event.get("StudyEventOID", ""),
                event.get("StudyEventRepeatKey", ""),
                tuple(self.form_data(form) for form in _children(event, "FormData")),
                _line(event),
                _extra(event),
            )
            for event in _children(node, "StudyEventData")
        ]
        loose = tuple(self.form_data(form) for form in _children(node, "FormData"))
        if loose:
            events.insert(0, StudyEventData("", "", loose, loose[0].line))
        return SubjectData(
            node.get("SubjectKey", ""),
            site.get("LocationOID", "") if site is not None else "",
            tuple(events),
            _line(node),
        )

    def clinical(self, root: etree._Element) -> tuple[ClinicalData, ...]:
        return tuple(
            ClinicalData(
                node.get("StudyOID", ""),
                node.get("MetaDataVersionOID", ""),
                tuple(self.subject(subject) for subject in _children(node, "SubjectData")),
                _line(node),
            )
            for node in _children(root, "ClinicalData")
        )

    def reference(self, root: etree._Element) -> tuple[ReferenceData, ...]:
        return tuple(
            ReferenceData(
                node.get("StudyOID", ""),
                node.get("MetaDataVersionOID", ""),
                tuple(self.group_data(group) for group in _children(node, "ItemGroupData")),
                _line(node),
            )
            for node in _children(root, "ReferenceData")
        )


def is_redcap(root: etree._Element) -> bool:
    """Whether a file is REDCap's project XML: REDCap's namespace, or REDCap named as
    the system that wrote it."""
    if REDCAP_NAMESPACE in (root.nsmap or {}).values():
        return True
    return (root.get("SourceSystem") or "").strip().lower() == "redcap"


def _without_redcap(document: etree._ElementTree) -> tuple[etree._ElementTree, int]:
    """A copy of a REDCap file without REDCap's own elements and attributes (which
    ODM has no place for), and how many there were. Lines are kept."""
    stripped = copy.deepcopy(document)
    count = 0
    for element in list(stripped.iter()):
        tag = element.tag
        if isinstance(tag, str) and tag.startswith(_REDCAP):
            parent = element.getparent()
            if parent is not None:
                parent.remove(element)
                count += 1
            continue
        for name in list(element.attrib):
            if name.startswith(_REDCAP):
                del element.attrib[name]
                count += 1
    return stripped, count


def read_odm(path: Path) -> OdmFile:
    """The records of the ODM file at ``path``.

    Raises :class:`OdmImportError` with every problem, each at its line, when the file
    cannot be read, is not well-formed XML, is not an ODM file, or (unless it is
    REDCap's project XML, read leniently) is not valid ODM 1.3.2.
    """
    try:
        document = parse(path)
    except OdmSyntaxError as error:
        raise OdmImportError(error.problems) from None
    root = document.getroot()
    if root.tag != _ODM + "ODM":
        raise OdmImportError(
            [
                Problem(
                    path,
                    _line(root),
                    None,
                    f"is not a CDISC ODM file: its root element is {root.tag!r}, not ODM in "
                    f"the namespace {ODM_NAMESPACE}",
                )
            ]
        )
    reader = _Reader(path)
    redcap = is_redcap(root)
    if redcap:
        stripped, count = _without_redcap(document)
        if count:
            reader.warn(
                None,
                f"REDCap project XML: its {count} REDCap elements and attributes are not ODM; "
                "they are read for the import and left out of the check against the schema",
            )
        for problem in validated(stripped, path):
            reader.warn(problem.line, problem.message)
    else:
        problems = validated(document, path)
        if problems:
            raise OdmImportError(problems)
    studies = tuple(reader.study(node) for node in _children(root, "Study"))
    result = OdmFile(
        path=path,
        redcap=redcap,
        file_type=root.get("FileType", ""),
        studies=studies,
        locations=reader.locations(root),
        clinical=reader.clinical(root),
        reference=reader.reference(root),
        warnings=reader.warnings,
    )
    return result
