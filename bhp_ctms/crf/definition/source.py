"""A form file's source: its YAML composed quickly, and the place in the file of any
character of a scalar, so that a fault inside an expression is shown where it is."""

from __future__ import annotations

import yaml

from bhp_ctms.studies.definition.marked_yaml import NodeReader, Problem

# libyaml composes a long form (thousands of items) many times faster than PyYAML's
# own parser; PyYAML is used when libyaml is not installed.
_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


class FormNodeReader(NodeReader):
    """A :class:`NodeReader` that composes with libyaml when it can, and keeps the
    file's text to place problems inside its scalars."""

    source_text = ""

    def compose(self) -> tuple[bytes, yaml.Node | None]:
        if _FAST_LOADER is not None:
            try:
                source = self.path.read_bytes()
                text = source.decode("utf-8-sig")
                root = yaml.compose(text, Loader=_FAST_LOADER)
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                # Read again below, which reports the fault in PyYAML's words, as the
                # study file's faults are reported.
                pass
            else:
                if root is not None:
                    self.source_text = text
                    return source, root
        source, root = super().compose()
        self.source_text = source.decode("utf-8-sig", errors="replace")
        return source, root


def position_in(text: str, node: yaml.ScalarNode, offset: int) -> tuple[int, int]:
    """The line and column (from 1) in ``text``, the file, of character ``offset`` of a
    scalar's value, allowing for quotes, escapes and lines folded by YAML."""
    start = node.start_mark
    value = node.value
    raw = text[start.index : node.end_mark.index]
    if not raw or not value:
        return start.line + 1, start.column + 1
    index = 0
    if node.style in ("|", ">"):
        index = raw.find("\n") + 1  # past the block's indicator line
    elif node.style in ("'", '"'):
        index = 1
    target = min(offset, len(value) - 1)
    # Each character of the value is the next matching one in the source: quotes,
    # escapes and indentation that the value lacks are passed over.
    for position, character in enumerate(value[: target + 1]):
        while index < len(raw) and raw[index] != character:
            index += 1
        if index == len(raw):
            return start.line + 1, start.column + 1
        if position < target:
            index += 1
    if offset >= len(value):
        index += 1  # just after the last character
    line = start.line + raw.count("\n", 0, index)
    newline = raw.rfind("\n", 0, index)
    column = start.column + index if newline < 0 else index - newline - 1
    return line + 1, column + 1


def problem_inside(
    reader: FormNodeReader, node: yaml.ScalarNode, offset: int, where: str, message: str
) -> None:
    """Note a problem at character ``offset`` of a scalar's value (inside an expression
    or a regular expression)."""
    line, column = position_in(reader.source_text, node, offset)
    message = f"{where}: {message}" if where else message
    reader.problems.append(Problem(reader.path, line, column, message))
