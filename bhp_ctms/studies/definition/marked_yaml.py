"""Reading YAML with the line and column of every node, and the problems found.

``yaml.compose`` keeps each node's start mark, so every problem a :class:`NodeReader`
notes names the file, line and column (counted from 1) of the node at fault.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

import yaml

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

NULL_TAG = "tag:yaml.org,2002:null"
STR_TAG = "tag:yaml.org,2002:str"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
BOOL_TAG = "tag:yaml.org,2002:bool"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class Problem(NamedTuple):
    """One thing wrong with a definition, where it is."""

    path: Path
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class DefinitionError(ValueError):
    """A study definition cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def is_null(node: yaml.Node | None) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG


def described(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "empty" if is_null(node) else repr(node.value)


class NodeReader:
    """Turns one YAML file's nodes into values, noting each problem where it is.

    Each reader method returns a harmless default after a problem, so reading goes
    on and finds the rest; nothing read from a file with problems is ever used.
    """

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        self._constructor = yaml.constructor.SafeConstructor()

    def problem(self, node: yaml.Node, where: str, message: str) -> None:
        mark = node.start_mark
        text = f"{where}: {message}" if where else message
        self.problems.append(Problem(self.path, mark.line + 1, mark.column + 1, text))

    def compose(self) -> tuple[bytes, yaml.Node | None]:
        """The file's bytes and YAML node tree; no tree (and a problem) if it is not YAML."""
        path = self.path
        try:
            source = path.read_bytes()
            text = source.decode("utf-8-sig")
        except OSError as error:
            self.problems.append(Problem(path, None, None, f"cannot be read: {error.strerror}"))
            return b"", None
        except UnicodeDecodeError as error:
            message = f"is not UTF-8 text (byte {error.start})"
            self.problems.append(Problem(path, None, None, message))
            return source, None
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
            message = f"YAML syntax error: {error.problem or error.context}"
            if error.problem and error.context:
                message += f" ({error.context})"
            self.problems.append(Problem(path, line, column, message))
            return source, None
        except yaml.reader.ReaderError as error:
            line = text.count("\n", 0, error.position) + 1
            self.problems.append(Problem(path, line, None, f"YAML syntax error: {error.reason}"))
            return source, None
        if root is None:
            self.problems.append(Problem(path, None, None, "is empty"))
        return source, root

    def check_duplicate_keys(self, node: yaml.Node, where: str = "") -> None:
        if isinstance(node, yaml.MappingNode):
            self.mapping(node, where, None)
            for key, value in node.value:
                self.check_duplicate_keys(value, at(where, str(key.value)))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.check_duplicate_keys(item, f"{where}[{index}]")

    def mapping(
        self,
        node: yaml.Node | None,
        where: str,
        allowed: Sequence[str] | None,
        required: Sequence[str] = (),
    ) -> dict[str, yaml.Node] | None:
        """A mapping's values by key, or None when ``node`` is not a mapping.

        Unknown keys (any is allowed when ``allowed`` is None), repeated keys and
        missing ``required`` keys are problems. Optional keys given an empty value
        are left out, as if absent.
        """
        if node is None:
            return None
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, where, f"must be a mapping, not {described(node)}")
            return None
        entries: dict[str, yaml.Node] = {}
        key_nodes: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or is_null(key_node):
                self.problem(key_node, where, f"{described(key_node)} cannot be a key")
                continue
            key = key_node.value
            if key in key_nodes:
                first = key_nodes[key].start_mark.line + 1
                self.problem(key_node, where, f"key {key!r} given twice (first on line {first})")
                continue
            key_nodes[key] = key_node
            if allowed is not None and key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                message = f"unknown key {key!r}{hint}; allowed keys: {', '.join(allowed)}"
                self.problem(key_node, where, message)
                continue
            if allowed is not None and key not in required and is_null(value_node):
                continue
            entries[key] = value_node
        for key in required:
            if key not in key_nodes:
                self.problem(node, where, f"missing required key {key!r}")
        return entries

    def sequence(self, node: yaml.Node | None, where: str) -> list[yaml.Node]:
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, where, f"must be a list, not {described(node)}")
            return []
        return list(node.value)

    def _scalar(self, node: yaml.Node, where: str, expected: str) -> yaml.ScalarNode | None:
        if isinstance(node, yaml.ScalarNode) and not is_null(node):
            return node
        self.problem(node, where, f"must be {expected}, not {described(node)}")
        return None

    def text(
        self,
        node: yaml.Node | None,
        where: str,
        *,
        default: str = "",
        expected: str = "text",
        allow_empty: bool = False,
        max_length: int | None = None,
    ) -> str:
        """A scalar as written: ``1.10`` stays "1.10" and ``no`` stays "no".
        ``max_length`` is the most the database column it is stored in holds."""
        if node is None:
            return default
        scalar = self._scalar(node, where, expected)
        if scalar is None:
            return default
        value = str(scalar.value).strip()
        if not value and not allow_empty:
            self.problem(node, where, f"must be {expected}, not empty")
        if max_length is not None and len(value) > max_length:
            self.problem(node, where, f"must be at most {max_length} characters, not {len(value)}")
        return value

    def texts(self, node: yaml.Node | None, where: str, expected: str) -> tuple[str, ...]:
        items = self.sequence(node, where)
        return tuple(
            self.text(item, f"{where}[{index}]", expected=expected)
            for index, item in enumerate(items)
        )

    def choice(
        self, node: yaml.Node | None, where: str, choices: Sequence[str], default: str
    ) -> str:
        if node is None:
            return default
        value = self.text(node, where, expected=f"one of {', '.join(choices)}")
        if value and value not in choices:
            self.problem(node, where, f"must be one of {', '.join(choices)}, not {value!r}")
            return default
        return value or default

    def code(self, node: yaml.Node | None, where: str, pattern: re.Pattern[str], rule: str) -> str:
        """A code, or "" when it is missing or malformed."""
        value = self.text(node, where, expected="a code")
        if value and not pattern.fullmatch(value):
            self.problem(node, where, f"{value!r} is not a valid code ({rule})")
            return ""
        return value

    def pattern(
        self, node: yaml.Node | None, where: str, pattern: re.Pattern[str], expected: str
    ) -> str:
        """Optional text of a given form, such as a registry number; "" when absent."""
        value = self.text(node, where, allow_empty=True)
        if value and not pattern.fullmatch(value):
            self.problem(node, where, f"must be {expected}, not {value!r}")
        return value

    def integer(
        self,
        node: yaml.Node | None,
        where: str,
        expected: str,
        *,
        minimum: int | None = None,
        default: int = 0,
    ) -> int:
        if node is None:
            return default
        if not isinstance(node, yaml.ScalarNode) or node.tag != INT_TAG:
            self.problem(node, where, f"must be {expected}")
            return default
        value = int(self._constructor.construct_yaml_int(node))
        if minimum is not None and value < minimum:
            self.problem(node, where, f"must be {expected}")
        return value

    def boolean(self, node: yaml.Node | None, where: str, default: bool = False) -> bool:
        if node is None:
            return default
        if not isinstance(node, yaml.ScalarNode) or node.tag != BOOL_TAG:
            self.problem(node, where, f"must be true or false, not {described(node)}")
            return default
        return bool(self._constructor.construct_yaml_bool(node))

    def date(self, node: yaml.Node | None, where: str) -> date:
        if node is None:
            return date.min
        expected = "a date written YYYY-MM-DD"
        if (
            not isinstance(node, yaml.ScalarNode)
            or node.tag not in (TIMESTAMP_TAG, STR_TAG)
            or not ISO_DATE.fullmatch(node.value)
        ):
            self.problem(node, where, f"must be {expected}, not {described(node)}")
            return date.min
        try:
            return date.fromisoformat(node.value)
        except ValueError:
            self.problem(node, where, f"{node.value} is not a real date")
            return date.min

    def data(self, node: yaml.Node, where: str) -> Any:
        """Plain data (text, numbers, true/false, lists, mappings); dates stay text."""
        if isinstance(node, yaml.MappingNode):
            entries = self.mapping(node, where, None) or {}
            return {key: self.data(value, at(where, key)) for key, value in entries.items()}
        if isinstance(node, yaml.SequenceNode):
            return [self.data(item, f"{where}[{index}]") for index, item in enumerate(node.value)]
        if node.tag in (STR_TAG, INT_TAG, FLOAT_TAG, BOOL_TAG, NULL_TAG):
            return self._constructor.construct_object(node)
        return node.value
