"""Reading a form file's ``items``: items, repeating groups and what each type allows.

Every rule that concerns one item alone (its type, choices, ranges, pattern, ...) is
checked here; rules across items (show-if and calculation references, calculation
cycles) are checked once every form of the folder is read, by
:mod:`bhp_ctms.crf.definition.checks`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import cast

import yaml

from bhp_ctms.crf.definition.model import (
    ITEM_TYPES,
    MISSING_CODES,
    YES_NO_CHOICES,
    Annotations,
    Choice,
    Codelist,
    Entry,
    Item,
    ItemGroup,
    ItemType,
    Range,
    TextPattern,
    Widget,
)
from bhp_ctms.crf.definition.source import FormNodeReader, problem_inside
from bhp_ctms.studies.definition.marked_yaml import NodeReader, at

ITEM_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
ITEM_CODE_RULE = "lower-case letters, digits and '_', starting with a letter, at most 64"

# The keys each mapping of a form file may have; any other is a typo to report.
ITEM_KEYS = (
    "code",
    "label",
    "type",
    "required",
    "help",
    "section",
    "units",
    "precision",
    "widget",
    "choices",
    "codelist",
    "slider_labels",
    "hard_range",
    "soft_range",
    "pattern",
    "max_length",
    "partial_dates",
    "missing_codes",
    "show_if",
    "calculation",
    "identifier",
    "matrix",
    "annotations",
)
REQUIRED_ITEM_KEYS = ("code", "label", "type")
GROUP_KEYS = ("group", "label", "help", "section", "show_if", "min_rows", "max_rows", "items")
REQUIRED_GROUP_KEYS = ("group", "label", "items")
CHOICE_KEYS = ("code", "label")
RANGE_KEYS = ("min", "max", "message")
PATTERN_KEYS = ("regex", "message")
ANNOTATION_KEYS = ("cdash", "sdtm")

CHOICE_TYPES = ("single_choice", "multiple_choice")
RANGE_TYPES = ("integer", "decimal", "date", "time", "datetime", "calculated")
VALUE_TYPES = tuple(kind for kind in ITEM_TYPES if kind != "descriptive")
ENTERED_TYPES = tuple(kind for kind in VALUE_TYPES if kind != "calculated")

# The item types each type-specific key is for; a key not listed suits every type.
TYPES_OF_KEY: Mapping[str, tuple[str, ...]] = {
    "required": ENTERED_TYPES,
    "units": ("integer", "decimal", "calculated"),
    "precision": ("decimal", "calculated"),
    "widget": ("single_choice", "multiple_choice", "integer", "decimal"),
    "choices": CHOICE_TYPES,
    "codelist": CHOICE_TYPES,
    "slider_labels": ("integer", "decimal"),
    "hard_range": RANGE_TYPES,
    "soft_range": RANGE_TYPES,
    "pattern": ("text",),
    "max_length": ("text", "long_text"),
    "partial_dates": ("date",),
    "missing_codes": ENTERED_TYPES,
    "calculation": ("calculated",),
    "identifier": VALUE_TYPES,
    "matrix": CHOICE_TYPES,
    "annotations": VALUE_TYPES,
}

WIDGETS_OF_TYPE: Mapping[str, tuple[str, ...]] = {
    "single_choice": ("radio", "dropdown"),
    "multiple_choice": ("checkboxes",),
    "integer": ("slider",),
    "decimal": ("slider",),
}

# A choice's code is stored as the value; several are joined by "|".
CHOICE_SEPARATOR = "|"
MAX_SLIDER_LABELS = 3

_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2})T([01][0-9]|2[0-3]):[0-5][0-9]")
# Limits known only when a value is entered: a date up to today, a datetime up to now.
TODAY = "today"
NOW = "now"


@dataclass(frozen=True)
class ExpressionSite:
    """An expression in a form file: where it is, what it belongs to, and the
    repeating group (if any) whose rows it is worked out in."""

    reader: FormNodeReader
    where: str
    node: yaml.ScalarNode
    kind: str  # "show_if", "calculation" or "condition"
    owner: str  # the item, group or edit check it belongs to
    group: str | None


def listed(words: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def a_type(kind: str) -> str:
    """``a text item``, ``an integer item``."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} item"


def suggestion(word: str, possibilities: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``possibilities``, or ""."""
    close = difflib.get_close_matches(word, possibilities, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class EntryReader:
    """Reads the ``items`` of one form file into items and groups, noting each problem
    and each expression to check once the whole folder is read."""

    def __init__(
        self,
        reader: FormNodeReader,
        codelists: Mapping[str, Codelist],
        sites: list[ExpressionSite],
    ) -> None:
        self.reader = reader
        self.codelists = codelists
        self.sites = sites
        # Item and group codes share one namespace: a value is keyed by either.
        self._codes: dict[str, yaml.Node] = {}

    def entries(self, node: yaml.Node | None, where: str) -> tuple[Entry, ...]:
        r = self.reader
        entries: list[tuple[Entry, yaml.Node, str]] = []
        nodes = r.sequence(node, where)
        if isinstance(node, yaml.SequenceNode) and not nodes:
            r.problem(node, where, "a form needs at least one item")
        for index, entry_node in enumerate(nodes):
            entry_where = f"{where}[{index}]"
            if _has_key(entry_node, "group"):
                group = self._group(entry_node, entry_where)
                if group is not None:
                    entries.append((group, entry_node, entry_where))
            else:
                item = self._item(entry_node, entry_where, None)
                if item is not None:
                    entries.append((item, entry_node, entry_where))
        self._check_matrices(entries)
        return tuple(entry for entry, _, _ in entries)

    def _unique_code(self, code: str, node: yaml.Node | None, where: str) -> None:
        if not code or node is None:
            return
        if code in self._codes:
            first = self._codes[code].start_mark.line + 1
            self.reader.problem(node, where, f"code {code!r} given twice (first on line {first})")
        else:
            self._codes[code] = node

    def _group(self, node: yaml.Node, where: str) -> ItemGroup | None:
        r = self.reader
        values = r.mapping(node, where, GROUP_KEYS, REQUIRED_GROUP_KEYS)
        if values is None:
            return None
        code = r.code(values.get("group"), at(where, "group"), ITEM_CODE, ITEM_CODE_RULE)
        self._unique_code(code, values.get("group"), at(where, "group"))
        items: list[tuple[Item, yaml.Node, str]] = []
        items_where = at(where, "items")
        item_nodes = r.sequence(values.get("items"), items_where)
        if "items" in values and isinstance(values["items"], yaml.SequenceNode) and not item_nodes:
            r.problem(values["items"], items_where, "a group needs at least one item")
        for index, item_node in enumerate(item_nodes):
            item_where = f"{items_where}[{index}]"
            if _has_key(item_node, "group"):
                message = "groups cannot be nested: a group's items are items, not groups"
                r.problem(item_node, item_where, message)
                continue
            item = self._item(item_node, item_where, code)
            if item is not None:
                items.append((item, item_node, item_where))
        self._check_matrices(items)
        min_rows = r.integer(
            values.get("min_rows"), at(where, "min_rows"), "a whole number >= 0", minimum=0
        )
        max_rows = (
            r.integer(
                values.get("max_rows"), at(where, "max_rows"), "a whole number >= 1", minimum=1
            )
            if "max_rows" in values
            else None
        )
        if max_rows is not None and max_rows < min_rows:
            message = f"{max_rows} is fewer than min_rows ({min_rows})"
            r.problem(values["max_rows"], at(where, "max_rows"), message)
        show_if = self._expression(values.get("show_if"), at(where, "show_if"), "show_if", code)
        return ItemGroup(
            code=code,
            label=r.text(values.get("label"), at(where, "label")),
            items=tuple(item for item, _, _ in items),
            help=r.text(values.get("help"), at(where, "help"), allow_empty=True),
            section=r.text(values.get("section"), at(where, "section"), allow_empty=True),
            show_if=show_if,
            min_rows=min_rows,
            max_rows=max_rows,
            line=node.start_mark.line + 1,
        )

    def _item(self, node: yaml.Node, where: str, group: str | None) -> Item | None:
        r = self.reader
        values = r.mapping(node, where, ITEM_KEYS, REQUIRED_ITEM_KEYS)
        if values is None:
            return None
        code = r.code(values.get("code"), at(where, "code"), ITEM_CODE, ITEM_CODE_RULE)
        self._unique_code(code, values.get("code"), at(where, "code"))
        kind = self._type(values.get("type"), at(where, "type"))
        if kind:
            for key, types in TYPES_OF_KEY.items():
                if key in values and kind not in types:
                    message = f"only {listed(types)} items can have {key}; this is {a_type(kind)}"
                    r.problem(values[key], at(where, key), message)
        choices, codelist = self._choices(values, where, kind)
        widget = self._widget(values, where, kind)
        hard_range = self._range(values.get("hard_range"), at(where, "hard_range"), kind)
        soft_range = self._range(values.get("soft_range"), at(where, "soft_range"), kind)
        if hard_range is not None and soft_range is not None:
            self._check_soft_inside_hard(values["soft_range"], where, kind, hard_range, soft_range)
        if widget == "slider" and (
            hard_range is None or hard_range.minimum is None or hard_range.maximum is None
        ):
            message = "a slider needs a hard_range with both min and max (its two ends)"
            r.problem(values["widget"], at(where, "widget"), message)
        slider_labels = r.texts(values.get("slider_labels"), at(where, "slider_labels"), "a label")
        if "slider_labels" in values and kind in TYPES_OF_KEY["slider_labels"]:
            if widget != "slider":
                message = "only a slider has slider_labels: add widget: slider"
                r.problem(values["slider_labels"], at(where, "slider_labels"), message)
            elif not 1 <= len(slider_labels) <= MAX_SLIDER_LABELS:
                message = f"a slider has 1 to {MAX_SLIDER_LABELS} labels (left, middle, right)"
                r.problem(values["slider_labels"], at(where, "slider_labels"), message)
        if kind == "calculated" and "calculation" not in values:
            r.problem(node, where, "a calculated item needs a calculation")
        calculation = self._expression(
            values.get("calculation"), at(where, "calculation"), "calculation", code, group
        )
        show_if = self._expression(
            values.get("show_if"), at(where, "show_if"), "show_if", code, group
        )
        return Item(
            code=code,
            label=r.text(values.get("label"), at(where, "label")),
            type=cast(ItemType, kind or "text"),
            required=r.boolean(values.get("required"), at(where, "required")),
            help=r.text(values.get("help"), at(where, "help"), allow_empty=True),
            units=r.text(values.get("units"), at(where, "units"), allow_empty=True),
            section=r.text(values.get("section"), at(where, "section"), allow_empty=True),
            precision=r.integer(
                values.get("precision"),
                at(where, "precision"),
                "a whole number of decimal places >= 0",
                minimum=0,
            )
            if "precision" in values
            else None,
            choices=choices,
            codelist=codelist,
            widget=cast(Widget, widget),
            slider_labels=slider_labels,
            hard_range=hard_range,
            soft_range=soft_range,
            pattern=self._pattern(values.get("pattern"), at(where, "pattern")),
            max_length=r.integer(
                values.get("max_length"),
                at(where, "max_length"),
                "a whole number of characters >= 1",
                minimum=1,
            )
            if "max_length" in values
            else None,
            partial_dates=r.boolean(values.get("partial_dates"), at(where, "partial_dates")),
            show_if=show_if,
            calculation=calculation,
            missing_codes=self._missing_codes(values.get("missing_codes"), where),
            identifier=r.boolean(values.get("identifier"), at(where, "identifier")),
            matrix=r.code(values.get("matrix"), at(where, "matrix"), ITEM_CODE, ITEM_CODE_RULE)
            if "matrix" in values
            else "",
            annotations=self._annotations(values.get("annotations"), at(where, "annotations")),
            line=node.start_mark.line + 1,
        )

    def _type(self, node: yaml.Node | None, where: str) -> str:
        kind = self.reader.text(node, where, expected="an item type")
        if kind and kind not in ITEM_TYPES and node is not None:
            hint = suggestion(kind, ITEM_TYPES)
            message = f"unknown item type {kind!r}{hint}; types: {', '.join(ITEM_TYPES)}"
            self.reader.problem(node, where, message)
            return ""
        return kind

    def _choices(
        self, values: dict[str, yaml.Node], where: str, kind: str
    ) -> tuple[tuple[Choice, ...], str]:
        r = self.reader
        if kind == "yes_no":
            return tuple(Choice(code, label) for code, label in YES_NO_CHOICES), ""
        if "choices" in values and "codelist" in values:
            message = "give choices or a codelist, not both"
            r.problem(values["codelist"], at(where, "codelist"), message)
        if "codelist" in values:
            code = r.code(values["codelist"], at(where, "codelist"), ITEM_CODE, ITEM_CODE_RULE)
            codelist = self.codelists.get(code)
            if code and codelist is None:
                if self.codelists:
                    hint = suggestion(code, list(self.codelists))
                    message = f"no codelist has code {code!r}{hint}"
                else:
                    message = f"no codelist has code {code!r} (codelists are in codelists.yaml)"
                r.problem(values["codelist"], at(where, "codelist"), message)
            return (codelist.choices if codelist else ()), code
        if "choices" in values:
            return read_choices(r, values["choices"], at(where, "choices")), ""
        if kind in CHOICE_TYPES:
            r.problem(
                values["type"], at(where, "type"), f"a {kind} item needs choices or a codelist"
            )
        return (), ""

    def _widget(self, values: dict[str, yaml.Node], where: str, kind: str) -> str:
        widgets = WIDGETS_OF_TYPE.get(kind)
        if "widget" not in values or widgets is None:
            return ""
        return self.reader.choice(values["widget"], at(where, "widget"), widgets, "")

    def _range(self, node: yaml.Node | None, where: str, kind: str) -> Range | None:
        r = self.reader
        values = r.mapping(node, where, RANGE_KEYS)
        if values is None:
            return None
        if "min" not in values and "max" not in values:
            r.problem(node, where, "needs a min, a max or both")
        limits: dict[str, str | None] = {}
        for key in ("min", "max"):
            limits[key] = None
            if key in values:
                text = r.text(values[key], at(where, key), expected="a limit")
                if text and kind in RANGE_TYPES:
                    problem = _limit_problem(text, cast(ItemType, kind))
                    if problem:
                        r.problem(values[key], at(where, key), problem)
                    else:
                        limits[key] = text
                elif text:
                    limits[key] = text
        minimum, maximum = limits["min"], limits["max"]
        if (
            minimum is not None
            and maximum is not None
            and kind in RANGE_TYPES
            and _compare(minimum, maximum, kind) == 1
        ):
            r.problem(node, where, f"min {minimum} is above max {maximum}")
        message = r.text(values.get("message"), at(where, "message"), allow_empty=True)
        return Range(minimum, maximum, message)

    def _check_soft_inside_hard(
        self, node: yaml.Node, where: str, kind: str, hard: Range, soft: Range
    ) -> None:
        if kind not in RANGE_TYPES:
            return
        outside = (
            soft.minimum is not None
            and hard.minimum is not None
            and _compare(soft.minimum, hard.minimum, kind) == -1
        ) or (
            soft.maximum is not None
            and hard.maximum is not None
            and _compare(soft.maximum, hard.maximum, kind) == 1
        )
        if outside:
            limits = f"{hard.minimum or 'no min'} to {hard.maximum or 'no max'}"
            message = f"must lie inside the hard_range ({limits}): a value outside it is refused"
            self.reader.problem(node, at(where, "soft_range"), message)

    def _pattern(self, node: yaml.Node | None, where: str) -> TextPattern | None:
        r = self.reader
        values = r.mapping(node, where, PATTERN_KEYS, PATTERN_KEYS)
        if values is None:
            return None
        regex = r.text(values.get("regex"), at(where, "regex"), expected="a regular expression")
        regex_node = values.get("regex")
        if regex and isinstance(regex_node, yaml.ScalarNode):
            try:
                re.compile(regex)
            except re.error as error:
                offset = regex_node.value.find(regex) + (error.pos or 0)
                message = f"not a regular expression: {error.msg}"
                problem_inside(r, regex_node, offset, at(where, "regex"), message)
        message = r.text(values.get("message"), at(where, "message"), expected="a message")
        return TextPattern(regex, message)

    def _missing_codes(self, node: yaml.Node | None, where: str) -> tuple[str, ...]:
        r = self.reader
        codes: list[str] = []
        where = at(where, "missing_codes")
        known = list(MISSING_CODES)
        for index, code_node in enumerate(r.sequence(node, where)):
            code_where = f"{where}[{index}]"
            code = r.text(code_node, code_where, expected="a missing-data code")
            if not code:
                continue
            if code not in MISSING_CODES:
                hint = suggestion(code, known)
                message = f"unknown missing-data code {code!r}{hint}; codes: {', '.join(known)}"
                r.problem(code_node, code_where, message)
            elif code in codes:
                r.problem(code_node, code_where, f"{code!r} given twice")
            else:
                codes.append(code)
        return tuple(codes)

    def _annotations(self, node: yaml.Node | None, where: str) -> Annotations:
        r = self.reader
        values = r.mapping(node, where, ANNOTATION_KEYS) or {}
        return Annotations(
            cdash=r.text(values.get("cdash"), at(where, "cdash"), allow_empty=True),
            sdtm=r.text(values.get("sdtm"), at(where, "sdtm"), allow_empty=True),
        )

    def _expression(
        self,
        node: yaml.Node | None,
        where: str,
        kind: str,
        owner: str,
        group: str | None = None,
    ) -> str:
        text = self.reader.text(node, where, expected="an expression")
        if text and isinstance(node, yaml.ScalarNode):
            self.sites.append(ExpressionSite(self.reader, where, node, kind, owner, group))
        return text

    def _check_matrices(self, entries: Sequence[tuple[Entry, yaml.Node, str]]) -> None:
        """The rows of a matrix follow one another and share their type and choices."""
        first_rows: dict[str, Item] = {}
        previous = ""
        for entry, node, where in entries:
            matrix = entry.matrix if isinstance(entry, Item) else ""
            if isinstance(entry, Item) and matrix:
                first = first_rows.setdefault(matrix, entry)
                if first is not entry and previous != matrix:
                    message = f"the rows of matrix {matrix!r} must follow one another"
                    self.reader.problem(node, where, message)
                elif first is not entry and (entry.type, entry.choices) != (
                    first.type,
                    first.choices,
                ):
                    message = (
                        f"the rows of matrix {matrix!r} share one type and one set of choices;"
                        f" {entry.code!r} differs from {first.code!r}"
                    )
                    self.reader.problem(node, where, message)
            previous = matrix


def read_choices(reader: NodeReader, node: yaml.Node | None, where: str) -> tuple[Choice, ...]:
    """A list of ``{code, label}`` mappings, codes unique (an item's or a codelist's)."""
    r = reader
    choices = []
    seen: dict[str, yaml.Node] = {}
    nodes = r.sequence(node, where)
    if isinstance(node, yaml.SequenceNode) and not nodes:
        r.problem(node, where, "needs at least one choice")
    for index, choice_node in enumerate(nodes):
        choice_where = f"{where}[{index}]"
        values = r.mapping(choice_node, choice_where, CHOICE_KEYS, CHOICE_KEYS)
        if values is None:
            continue
        code_node = values.get("code")
        code = r.text(code_node, at(choice_where, "code"), expected="a choice code")
        if code_node is not None and code:
            if CHOICE_SEPARATOR in code:
                message = f"a choice code cannot contain {CHOICE_SEPARATOR!r}"
                r.problem(code_node, at(choice_where, "code"), message)
            if code in seen:
                first = seen[code].start_mark.line + 1
                message = f"choice code {code!r} given twice (first on line {first})"
                r.problem(code_node, at(choice_where, "code"), message)
            else:
                seen[code] = code_node
        label = r.text(values.get("label"), at(choice_where, "label"), expected="a label")
        choices.append(Choice(code, label))
    return tuple(choices)


def _has_key(node: yaml.Node, key: str) -> bool:
    return isinstance(node, yaml.MappingNode) and any(
        isinstance(key_node, yaml.ScalarNode) and key_node.value == key
        for key_node, _ in node.value
    )


def _limit_problem(text: str, kind: ItemType) -> str | None:
    """What is wrong with a range limit for an item of type ``kind``, or None."""
    if kind == "integer":
        return None if _INTEGER.fullmatch(text) else f"must be a whole number, not {text!r}"
    if kind in ("decimal", "calculated"):
        return None if _DECIMAL.fullmatch(text) else f"must be a number such as 2.5, not {text!r}"
    if kind == "time":
        return None if _TIME.fullmatch(text) else f"must be a time written HH:MM, not {text!r}"
    if kind == "date":
        if text == TODAY:
            return None
        if not _DATE.fullmatch(text):
            return f"must be a date written YYYY-MM-DD, or today, not {text!r}"
        day = text
    else:
        if text == NOW:
            return None
        matched = _DATETIME.fullmatch(text)
        if not matched:
            return f"must be a date and time written YYYY-MM-DDTHH:MM, or now, not {text!r}"
        day = matched.group(1)
    try:
        date.fromisoformat(day)
    except ValueError:
        return f"{day} is not a real date"
    return None


def _compare(first: str, second: str, kind: str) -> int | None:
    """-1, 0 or 1 as ``first`` is below, at or above ``second``; None when either is
    ``today`` or ``now`` (not known until the value is entered)."""
    if {first, second} & {TODAY, NOW}:
        return None
    if kind in ("integer", "decimal", "calculated"):
        left, right = Decimal(first), Decimal(second)
        return (left > right) - (left < right)
    # Canonical dates, times and datetimes sort as text.
    return (first > second) - (first < second)
