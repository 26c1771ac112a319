"""REDCap's branching logic and calculations as our expressions, or why they cannot be.

Our expression language reads REDCap's syntax as it is (``<>``, ``and``/``or`` in any
case, either quote, checkbox terms ``[race(3)]``). What it has no counterpart for is
refused here with a reason a person can act on: REDCap's smart variables
(``[event-name]``), piping (``[sex:label]``), references to a REDCap event
(``[visit_1_arm_1][weight]``) or to an instance of a repeating instrument
(``[weight][2]``), and references to fields that are not imported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from bhp_ctms.crf.definition.model import Item
from bhp_ctms.crf.expressions import ExpressionError, compiled

Use = Literal["show_if", "calculation"]
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")
_INSTANCE = re.compile(r"[0-9]+|[a-z]+(-[a-z]+)*-instance")


class UnsupportedLogic(ValueError):
    """Logic that cannot be imported; the message says why."""


@dataclass(frozen=True)
class _Bracket:
    start: int
    end: int
    content: str


def _brackets(source: str) -> Iterator[_Bracket]:
    """Each ``[...]`` of ``source`` outside quoted text."""
    index = 0
    while index < len(source):
        character = source[index]
        if character in "'\"":
            closing = source.find(character, index + 1)
            index = len(source) if closing < 0 else closing + 1
        elif character == "[":
            closing = source.find("]", index + 1)
            if closing < 0:
                return
            yield _Bracket(index, closing + 1, source[index + 1 : closing].strip())
            index = closing + 1
        else:
            index += 1


def _refuse_redcap_only(source: str) -> None:
    """Raise :class:`UnsupportedLogic` for what only REDCap has."""
    previous: _Bracket | None = None
    for bracket in _brackets(source):
        content = bracket.content
        name = content.split("(", 1)[0]
        adjacent = previous is not None and not source[previous.end : bracket.start].strip()
        if adjacent and previous is not None:
            if _INSTANCE.fullmatch(content):
                raise UnsupportedLogic(
                    f"[{previous.content}][{content}] refers to an instance of a repeating "
                    "instrument, which is not supported"
                )
            raise UnsupportedLogic(
                f"[{previous.content}][{content}] refers to the REDCap event "
                f"{previous.content!r}, and REDCap's events are not imported"
            )
        if ":" in name:
            raise UnsupportedLogic(f"REDCap piping such as [{content}] is not supported")
        if "-" in name:
            raise UnsupportedLogic(
                f"[{content}] is a REDCap smart variable, which BHP CTMS does not have"
            )
        previous = bracket


def imported_logic(source: str, owner: Item, use: Use, items: Mapping[str, Item]) -> str:
    """``source`` (REDCap's logic of ``owner``) as the expression to write in its form
    file; ``items`` are the items imported so far, by code.

    Raises :class:`UnsupportedLogic` saying why it cannot be imported.
    """
    text = source.replace("\r\n", "\n").replace("\r", "\n").strip()
    _refuse_redcap_only(text)
    try:
        expression = compiled(text)
    except ExpressionError as error:
        raise UnsupportedLogic(f"cannot be read: {error}") from None
    for reference in sorted(expression.references, key=str):
        item = items.get(reference.item)
        if reference.event is not None:
            raise UnsupportedLogic(
                f"{reference} refers to the REDCap event {reference.event!r}, and REDCap's "
                "events are not imported"
            )
        if item is None:
            raise UnsupportedLogic(f"it uses [{reference.item}], which is not imported")
        if not item.holds_value:
            raise UnsupportedLogic(
                f"it uses [{reference.item}], descriptive text which holds no value"
            )
        if use == "show_if" and reference.item == owner.code:
            raise UnsupportedLogic("it uses the field's own value")
        if reference.choice is not None:
            if item.type != "multiple_choice":
                raise UnsupportedLogic(
                    f"{reference} is a checkbox term, but {reference.item} is not a checkbox field"
                )
            if reference.choice not in {choice.code for choice in item.choices}:
                raise UnsupportedLogic(f"{reference.item} has no choice {reference.choice!r}")
    return text


def calculation_uses(source: str) -> frozenset[str]:
    """The items a calculation that :func:`imported_logic` accepted uses."""
    return frozenset(reference.item for reference in compiled(source).references)
