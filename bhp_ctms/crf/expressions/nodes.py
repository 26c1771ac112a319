"""The syntax tree of an expression: frozen nodes, and the error a bad expression gives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bhp_ctms.crf.expressions.values import MISSING_VALUES


class ExpressionError(ValueError):
    """An expression that cannot be parsed: what is wrong, and where.

    ``position`` is the 0-based offset of the fault in the expression's text, ``line``
    and ``column`` (1-based) the same place as a person counts it.
    """

    def __init__(self, message: str, position: int, line: int, column: int) -> None:
        super().__init__(message, position, line, column)
        self.message = message
        self.position = position
        self.line = line
        self.column = column

    @classmethod
    def at(cls, message: str, text: str, position: int) -> ExpressionError:
        """The error ``message`` at offset ``position`` of ``text``."""
        position = max(0, min(position, len(text)))
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return cls(message, position, line, column)

    def __str__(self) -> str:
        return f"{self.message} (at line {self.line}, column {self.column})"


@dataclass(frozen=True)
class Reference:
    """An item an expression refers to: ``[weight]``, the checkbox term ``[race(3)]``
    (``choice`` "3"), or ``[baseline][weight]`` (``event`` "baseline")."""

    item: str
    choice: str | None = None
    event: str | None = None

    @property
    def key(self) -> str:
        """The key of the item's value in the values an expression is evaluated with:
        the item code, or ``event.item`` for an event-qualified reference."""
        return f"{self.event}.{self.item}" if self.event else self.item

    def __str__(self) -> str:
        event = f"[{self.event}]" if self.event else ""
        choice = f"({self.choice})" if self.choice is not None else ""
        return f"{event}[{self.item}{choice}]"


# Each node keeps the offset where it starts in the source (not compared), so that
# problems found after parsing (a function's arguments) can say where they are.


@dataclass(frozen=True)
class Number:
    value: float
    position: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"t": "num", "v": self.value}


@dataclass(frozen=True)
class Text:
    value: str
    position: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"t": "str", "v": self.value}


@dataclass(frozen=True)
class Boolean:
    value: bool
    position: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"t": "bool", "v": self.value}


@dataclass(frozen=True)
class ItemValue:
    """An item's value, or for a checkbox term whether the choice is ticked."""

    reference: Reference
    position: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"t": "ref", "key": self.reference.key, "choice": self.reference.choice}


@dataclass(frozen=True)
class Negation:
    operand: Node
    position: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"t": "neg", "a": self.operand.to_json()}


@dataclass(frozen=True)
class Arithmetic:
    """Operands joined left to right by operators of one precedence level:
    ``a - b + c`` is ``first`` a and ``rest`` ((-, b), (+, c)). Kept flat so that a
    scoring sum of a hundred items does not nest a hundred deep."""

    first: Node
    rest: tuple[tuple[str, Node], ...]
    position: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "t": "arith",
            "a": self.first.to_json(),
            "rest": [[operator, operand.to_json()] for operator, operand in self.rest],
        }


@dataclass(frozen=True)
class Power:
    base: Node
    exponent: Node
    position: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"t": "pow", "a": self.base.to_json(), "b": self.exponent.to_json()}


@dataclass(frozen=True)
class Comparison:
    """``operator`` is one of ``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=`` (``!=`` and
    ``==`` are read as ``<>`` and ``=``)."""

    operator: str
    left: Node
    right: Node
    position: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "t": "cmp",
            "op": self.operator,
            "a": self.left.to_json(),
            "b": self.right.to_json(),
        }


@dataclass(frozen=True)
class Conjunction:
    operands: tuple[Node, ...]
    position: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"t": "and", "args": [operand.to_json() for operand in self.operands]}


@dataclass(frozen=True)
class Disjunction:
    operands: tuple[Node, ...]
    position: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"t": "or", "args": [operand.to_json() for operand in self.operands]}


@dataclass(frozen=True)
class Call:
    """A function call; ``function`` is the function's name in lower case."""

    function: str
    arguments: tuple[Node, ...]
    position: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        tree: dict[str, Any] = {
            "t": "call",
            "f": self.function,
            "args": [argument.to_json() for argument in self.arguments],
        }
        if self.function == "isblankormissingcode":
            # The browser learns the study's missing-data codes from the tree.
            tree["codes"] = list(MISSING_VALUES)
        return tree


Node = (
    Number
    | Text
    | Boolean
    | ItemValue
    | Negation
    | Arithmetic
    | Power
    | Comparison
    | Conjunction
    | Disjunction
    | Call
)
