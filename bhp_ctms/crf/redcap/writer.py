"""A form definition as the YAML of its form file, with comments where asked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from bhp_ctms.crf.definition.model import Choice, FormDefinition, Item, Range, TextPattern

_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _FlowMapping(dict[str, Any]):
    """A short mapping written on one line: ``{code: '1', label: Yes}``."""


class _FormDumper(_BaseDumper):  # type: ignore[misc]
    """Short mappings on one line; text of several lines as a literal block."""


def _flow_mapping(dumper: Any, data: _FlowMapping) -> yaml.Node:
    node: yaml.Node = dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
    return node


def _text(dumper: Any, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    node: yaml.Node = dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)
    return node


_FormDumper.add_representer(_FlowMapping, _flow_mapping)
_FormDumper.add_representer(str, _text)

_WIDTH = 100


def _dump(value: Any) -> str:
    text: str = yaml.dump(
        value,
        Dumper=_FormDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=_WIDTH,
    )
    return text


def _range(limits: Range) -> _FlowMapping:
    mapping = _FlowMapping()
    if limits.minimum is not None:
        mapping["min"] = limits.minimum
    if limits.maximum is not None:
        mapping["max"] = limits.maximum
    if limits.message:
        mapping["message"] = limits.message
    return mapping


def _choice(choice: Choice) -> _FlowMapping:
    return _FlowMapping(code=choice.code, label=choice.label)


def _pattern(pattern: TextPattern) -> dict[str, str]:
    return {"regex": pattern.regex, "message": pattern.message}


def item_entry(item: Item) -> dict[str, Any]:
    """The keys of ``item``'s entry in a form file, those left at their default left out."""
    entry: dict[str, Any] = {"code": item.code, "label": item.label, "type": item.type}
    optional: list[tuple[str, Any]] = [
        ("widget", item.widget),
        ("precision", item.precision),
        ("units", item.units),
        ("required", item.required),
        ("identifier", item.identifier),
        ("help", item.help),
        ("section", item.section),
        ("matrix", item.matrix),
        ("codelist", item.codelist),
        ("choices", [_choice(choice) for choice in item.choices]),
        ("slider_labels", list(item.slider_labels)),
        ("hard_range", _range(item.hard_range) if item.hard_range else None),
        ("soft_range", _range(item.soft_range) if item.soft_range else None),
        ("pattern", _pattern(item.pattern) if item.pattern else None),
        ("max_length", item.max_length),
        ("partial_dates", item.partial_dates),
        ("missing_codes", list(item.missing_codes)),
        ("show_if", item.show_if),
        ("calculation", item.calculation),
    ]
    for key, value in optional:
        if value is not None and value is not False and value != "" and value != []:
            entry[key] = value
    return entry


def _comment(lines: Sequence[str], indent: str) -> str:
    return "".join(
        f"{indent}#{' ' if line else ''}{line}\n" for text in lines for line in text.splitlines()
    )


def form_yaml(
    definition: FormDefinition,
    heading: Sequence[str] = (),
    comments: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The form file of ``definition`` (items only, no groups or checks): ``heading``
    as comment lines at the top, and ``comments`` (by item code) above their items."""
    comments = comments or {}
    head: dict[str, Any] = {
        "code": definition.code,
        "title": definition.title,
        "version": definition.version,
    }
    if definition.description:
        head["description"] = definition.description
    parts = [_comment(heading, ""), _dump(head), "items:\n"]
    for item in definition.items:
        parts.append(_comment(comments.get(item.code, ()), "  "))
        for line in _dump([item_entry(item)]).splitlines(keepends=True):
            parts.append(f"  {line}" if line.strip() else line)
    return "".join(parts)
