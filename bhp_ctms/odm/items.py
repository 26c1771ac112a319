"""An ODM ItemDef as a form item: its type, choices (a study codelist, or its own),
units, ranges, missing-data codes and CDISC annotations."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

from bhp_ctms.crf.definition.model import (
    ITEM_TYPES,
    MISSING_CODES,
    Annotations,
    Choice,
    Codelist,
    Item,
    ItemType,
    Range,
)
from bhp_ctms.odm.plan import ITEM_CODE_LENGTH, StudyPlan, code_of, oid_words, own_code
from bhp_ctms.odm.reader import (
    CodeListDef,
    ItemDef,
    MetaDataVersion,
    RangeCheck,
    StudyDef,
)
from bhp_ctms.odm.vocabulary import (
    ALIAS_CDASH,
    ALIAS_CODE,
    ALIAS_MISSING,
    ALIAS_SDTM,
    ALIAS_TYPE,
    YES_NO_CODELIST,
)

_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d")

# ODM data types as our item types (a code list makes an item a choice).
_TYPES: Mapping[str, ItemType] = {
    "integer": "integer",
    "float": "decimal",
    "double": "decimal",
    "date": "date",
    "partialDate": "date",
    "incompleteDate": "date",
    "time": "time",
    "partialTime": "time",
    "incompleteTime": "time",
    "datetime": "datetime",
    "partialDatetime": "datetime",
    "incompleteDatetime": "datetime",
    "boolean": "yes_no",
    "text": "text",
    "string": "text",
}
_PARTIAL_TYPES = frozenset({"partialDate", "incompleteDate"})
_NUMERIC = frozenset({"integer", "decimal", "calculated"})


# -- items ----------------------------------------------------------------------------------


@dataclass
class Codelists:
    """The study's codelists, made from the file's CodeLists as items use them."""

    plan: StudyPlan
    version: MetaDataVersion
    uses: dict[str, int]
    codes: dict[str, str] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)

    def choices(self, definition: CodeListDef, item_line: int) -> tuple[Choice, ...]:
        choices: list[Choice] = []
        seen: set[str] = set()
        for code, label in definition.choices:
            code = code.strip()
            if not code or "|" in code or code in seen:
                why = "is empty" if not code else "holds '|'" if "|" in code else "is repeated"
                self.plan.warn(
                    definition.line or item_line,
                    f"code list {definition.oid}: the coded value {code!r} {why}; left out",
                )
                continue
            seen.add(code)
            choices.append(Choice(code, label.strip() or code))
        return tuple(choices)

    def shared(self, definition: CodeListDef, choices: tuple[Choice, ...]) -> str:
        """The code of the study codelist for ``definition`` ("" to give the item its
        own choices: a code list used by one item, with no code of its own)."""
        own = definition.aliases.get(ALIAS_CODE, "")
        if not own and self.uses.get(definition.oid, 0) < 2:
            return ""
        if definition.oid in self.codes:
            return self.codes[definition.oid]
        code = own_code(definition.aliases, r"[a-z][a-z0-9_]*", ITEM_CODE_LENGTH, self.taken)
        if not code:
            words = own or definition.name or oid_words(definition.oid)
            code = code_of(words, kind="cl", length=ITEM_CODE_LENGTH, taken=self.taken)
        self.codes[definition.oid] = code
        self.plan.codelists[code] = Codelist(code, definition.name or code, choices)
        return code


def _label(item: ItemDef, code: str) -> tuple[str, str]:
    """An item's label and help text."""
    label = item.question or item.description or item.text or item.name or code
    label = " ".join(label.split()) if "\n" not in label else label
    help_text = item.description if item.question and item.description != label else ""
    return label[:1000], help_text


def _limit(text: str, kind: str) -> str | None:
    """A range limit in our canonical form for ``kind``, or None when it is not one."""
    text = text.strip()
    if kind == "integer":
        return str(int(text)) if _INTEGER.fullmatch(text) else None
    if kind in ("decimal", "calculated"):
        return text.lstrip("+") if _DECIMAL.fullmatch(text) and text[-1] != "." else None
    if kind == "date":
        return text if _DATE.fullmatch(text) else None
    if kind == "time":
        return text[:5] if _TIME.fullmatch(text[:5]) else None
    if kind == "datetime":
        return text[:16] if _DATETIME.fullmatch(text[:16]) else None
    return None


def _ranges(plan: StudyPlan, item: ItemDef, kind: str) -> tuple[Range | None, Range | None]:
    """The hard and soft ranges of an item's ``GE``/``LE`` range checks; any other check
    is a warning."""
    limits: dict[str, dict[str, str]] = {"Hard": {}, "Soft": {}}
    messages: dict[str, str] = {}
    for check in item.range_checks:
        limit = _limit(check.values[0], kind) if len(check.values) == 1 else None
        bound = {"GE": "min", "LE": "max"}.get(check.comparator)
        if limit is None or bound is None or check.strength not in limits:
            plan.warn(item.line, f"item {item.oid}: {_check_words(check)} is not imported")
            continue
        limits[check.strength][bound] = limit
        if check.message:
            messages[check.strength] = check.message
    found = {
        strength: Range(values.get("min"), values.get("max"), messages.get(strength, ""))
        for strength, values in limits.items()
        if values
    }
    hard, soft = found.get("Hard"), found.get("Soft")
    if hard is not None and soft is not None and not _inside(soft, hard, kind):
        plan.warn(
            item.line, f"item {item.oid}: its soft range lies outside its hard range; left out"
        )
        soft = None
    return hard, soft


def _inside(soft: Range, hard: Range, kind: str) -> bool:
    def below(first: str | None, second: str | None) -> bool:
        if first is None or second is None:
            return False
        if kind in _NUMERIC:
            return float(first) < float(second)
        return first < second

    return not below(soft.minimum, hard.minimum) and not below(hard.maximum, soft.maximum)


def _check_words(check: RangeCheck) -> str:
    values = ", ".join(check.values) or "a formal expression"
    return f"the {check.strength.lower() or ''} range check {check.comparator} {values}".replace(
        "  ", " "
    )


def plan_item(
    plan: StudyPlan,
    version: MetaDataVersion,
    study: StudyDef | None,
    codelists: Codelists,
    item: ItemDef,
    code: str,
    required: bool,
) -> Item:
    """The form item an ItemDef becomes (see the module's docstring)."""
    own = item.aliases.get(ALIAS_TYPE, "")
    codelist = version.codelists.get(item.codelist_oid) if item.codelist_oid else None
    if item.codelist_oid and codelist is None:
        plan.warn(
            item.line,
            f"item {item.oid} refers to code list {item.codelist_oid!r}, which the file does "
            "not define: imported without choices",
        )
    kind: str
    if own in ITEM_TYPES and own not in ("descriptive", "calculated"):
        kind = own
    elif codelist is not None and not codelist.external and item.codelist_oid != YES_NO_CODELIST:
        kind = "single_choice"
    elif item.codelist_oid == YES_NO_CODELIST:
        kind = "yes_no"
    else:
        kind = _TYPES.get(item.data_type, "text")
        if own == "calculated":
            kind = "decimal" if item.significant_digits is not None else "text"
            plan.notes.append(
                f"item {item.oid} is calculated in BHP CTMS: imported as a {kind} item "
                "holding the values in the file"
            )
        elif item.data_type not in _TYPES:
            plan.warn(
                item.line,
                f"item {item.oid}: ODM data type {item.data_type!r} has no BHP CTMS type; "
                "imported as a text item",
            )
    if codelist is not None and codelist.external:
        plan.warn(
            item.line,
            f"item {item.oid}: its code list {codelist.oid} is an external dictionary; "
            "imported as a text item",
        )
    label, help_text = _label(item, code)
    choices: tuple[Choice, ...] = ()
    shared = ""
    if kind in ("single_choice", "multiple_choice"):
        choices = codelists.choices(codelist, item.line) if codelist is not None else ()
        if not choices:
            plan.warn(item.line, f"item {item.oid} has no choices: imported as a text item")
            kind = "text"
        else:
            shared = codelists.shared(cast(CodeListDef, codelist), choices)
    units = ""
    if item.units_oid:
        symbol = (study.units.get(item.units_oid) if study else None) or oid_words(item.units_oid)
        if kind in _NUMERIC:
            units = symbol
        else:
            plan.notes.append(f"item {item.oid}: units ({symbol}) are kept only on numbers")
    hard, soft = (
        _ranges(plan, item, kind)
        if kind in _NUMERIC | {"date", "time", "datetime"}
        else (None, None)
    )
    missing = tuple(
        word for word in item.aliases.get(ALIAS_MISSING, "").split() if word in MISSING_CODES
    )
    length = (
        item.length if kind in ("text", "long_text") and item.length and item.length > 0 else None
    )
    return Item(
        code=code,
        label=label,
        type=cast(ItemType, kind),
        required=required,
        help=help_text,
        units=units,
        precision=item.significant_digits if kind == "decimal" else None,
        choices=() if shared else choices,
        codelist=shared,
        hard_range=hard,
        soft_range=soft,
        max_length=length,
        partial_dates=kind == "date" and item.data_type in _PARTIAL_TYPES,
        missing_codes=missing,
        annotations=Annotations(
            cdash=item.aliases.get(ALIAS_CDASH, ""), sdtm=item.aliases.get(ALIAS_SDTM, "")
        ),
        line=item.line,
    )
