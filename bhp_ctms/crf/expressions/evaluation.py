"""Evaluating an expression: its tree is compiled once into nested Python closures, so
that working out a show-if condition costs a few microseconds."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from typing import Any

from bhp_ctms.crf.expressions.functions import FUNCTIONS, Scope
from bhp_ctms.crf.expressions.nodes import (
    Arithmetic,
    Boolean,
    Call,
    Comparison,
    Conjunction,
    Disjunction,
    ItemValue,
    Negation,
    Node,
    Number,
    Power,
    Reference,
    Text,
)
from bhp_ctms.crf.expressions.parser import parse_tree
from bhp_ctms.crf.expressions.values import (
    Value,
    as_number,
    as_text,
    finite,
    parse_moment,
    truth,
)

Compiled = Callable[[Scope], Value]


class Expression:
    """A parsed expression, ready to evaluate against an entry's values.

    ``values`` map item codes (``event.item`` for ``[event][item]``) to their
    canonical text; see the package's docstring for the rules.
    """

    __slots__ = ("_run", "references", "source", "tree")

    def __init__(self, source: str, tree: Node) -> None:
        self.source = source
        self.tree = tree
        self.references = frozenset(_references(tree))
        self._run = _compile(tree)

    def evaluate(self, values: Mapping[str, object], *, today: date | None = None) -> Value:
        """The expression's value: text, a number, True/False, or None when it
        cannot be worked out (a calculation then leaves its item blank).

        ``today`` is the day ``today`` stands for in datediff (a datetime also sets
        ``now``); the computer's clock when not given.
        """
        return self._run(Scope(values, today))

    def holds(self, values: Mapping[str, object], *, today: date | None = None) -> bool | None:
        """Whether the condition holds: True, False, or None when it cannot be worked
        out. An item shows only on True; an edit check fails only on False."""
        return truth(self._run(Scope(values, today)))

    def to_json(self) -> dict[str, Any]:
        """The syntax tree as JSON, which ``crf-expressions.js`` evaluates."""
        return self.tree.to_json()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def parse_expression(text: str) -> Expression:
    """Parse ``text``; raises :class:`ExpressionError` with what is wrong and where."""
    return Expression(text, parse_tree(text))


@functools.lru_cache(maxsize=4096)
def compiled(text: str) -> Expression:
    """:func:`parse_expression`, remembered: each form's expressions are parsed once."""
    return parse_expression(text)


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, Negation):
        yield node.operand
    elif isinstance(node, Arithmetic):
        yield node.first
        for _, operand in node.rest:
            yield operand
    elif isinstance(node, Power):
        yield node.base
        yield node.exponent
    elif isinstance(node, Comparison):
        yield node.left
        yield node.right
    elif isinstance(node, Conjunction | Disjunction):
        yield from node.operands
    elif isinstance(node, Call):
        yield from node.arguments


def _references(tree: Node) -> Iterator[Reference]:
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ItemValue):
            yield node.reference
        pending.extend(_children(node))


def _compile(node: Node) -> Compiled:
    if isinstance(node, Number | Text | Boolean):
        constant: Value = node.value
        return lambda scope: constant
    if isinstance(node, ItemValue):
        return _compile_item(node.reference)
    if isinstance(node, Negation):
        return _compile_negation(_compile(node.operand))
    if isinstance(node, Arithmetic):
        return _compile_arithmetic(node)
    if isinstance(node, Power):
        return _compile_power(_compile(node.base), _compile(node.exponent))
    if isinstance(node, Comparison):
        return _compile_comparison(node.operator, _compile(node.left), _compile(node.right))
    if isinstance(node, Conjunction):
        return _compile_conjunction(tuple(_compile(operand) for operand in node.operands))
    if isinstance(node, Disjunction):
        return _compile_disjunction(tuple(_compile(operand) for operand in node.operands))
    return _compile_call(node)


def _compile_item(reference: Reference) -> Compiled:
    key, choice = reference.key, reference.choice
    if choice is None:
        return lambda scope: scope.value(key)

    def ticked(scope: Scope) -> Value:
        return "1" if choice in scope.value(key).split("|") else "0"

    return ticked


def _compile_negation(operand: Compiled) -> Compiled:
    def negation(scope: Scope) -> Value:
        number = as_number(operand(scope))
        return None if number is None else -number

    return negation


def _add(left: float, right: float) -> float | None:
    return finite(left + right)


def _subtract(left: float, right: float) -> float | None:
    return finite(left - right)


def _multiply(left: float, right: float) -> float | None:
    return finite(left * right)


def _divide(left: float, right: float) -> float | None:
    return None if right == 0 else finite(left / right)


_ARITHMETIC: Mapping[str, Callable[[float, float], float | None]] = {
    "+": _add,
    "-": _subtract,
    "*": _multiply,
    "/": _divide,
}


def _compile_arithmetic(node: Arithmetic) -> Compiled:
    first = _compile(node.first)
    rest = tuple((_ARITHMETIC[operator], _compile(operand)) for operator, operand in node.rest)

    def arithmetic(scope: Scope) -> Value:
        total = as_number(first(scope))
        for operation, operand in rest:
            if total is None:
                return None
            number = as_number(operand(scope))
            if number is None:
                return None
            total = operation(total, number)
        return total

    return arithmetic


def power(base: float, exponent: float) -> float | None:
    """``base ^ exponent``. A whole exponent multiplies by squaring, step for step as
    the browser does, so both give the same double; others use the C library's pow."""
    if exponent.is_integer():
        remaining = abs(exponent)
        result, factor = 1.0, base
        while remaining > 0:
            if remaining % 2 == 1:
                result *= factor
            remaining = math.floor(remaining / 2)
            if remaining > 0:
                factor *= factor
        if exponent < 0:
            if result == 0:
                return None
            result = 1 / result
        return finite(result)
    try:
        return finite(math.pow(base, exponent))
    except (ValueError, OverflowError):
        return None


def _compile_power(base: Compiled, exponent: Compiled) -> Compiled:
    def raised(scope: Scope) -> Value:
        number = as_number(base(scope))
        if number is None:
            return None
        times = as_number(exponent(scope))
        return None if times is None else power(number, times)

    return raised


def _family(text: str) -> tuple[str, int] | None:
    moment = parse_moment(text)
    if moment is None:
        return None
    kind, seconds = moment
    return ("time" if kind == "time" else "date"), seconds


def compare(operator: str, left: Value, right: Value) -> bool | None:
    """Compare two values: as numbers when both are numbers, as moments when both
    are dates (or datetimes, or times); otherwise ``=`` and ``<>`` compare the texts
    and an ordering cannot be worked out."""
    if left is None or right is None:
        return None
    left_number, right_number = as_number(left), as_number(right)
    if left_number is not None and right_number is not None:
        first, second = left_number, right_number
    else:
        left_text, right_text = as_text(left), as_text(right)
        left_moment = _family(left_text) if left_number is None else None
        right_moment = _family(right_text) if right_number is None else None
        if left_moment and right_moment and left_moment[0] == right_moment[0]:
            first, second = left_moment[1], right_moment[1]
        elif operator == "=":
            return left_text == right_text
        elif operator == "<>":
            return left_text != right_text
        else:
            return None
    if operator == "=":
        return first == second
    if operator == "<>":
        return first != second
    if operator == "<":
        return first < second
    if operator == "<=":
        return first <= second
    if operator == ">":
        return first > second
    return first >= second


def _compile_comparison(operator: str, left: Compiled, right: Compiled) -> Compiled:
    return lambda scope: compare(operator, left(scope), right(scope))


def _compile_conjunction(operands: tuple[Compiled, ...]) -> Compiled:
    def conjunction(scope: Scope) -> Value:
        result: bool | None = True
        for operand in operands:
            holds = truth(operand(scope))
            if holds is False:
                return False
            if holds is None:
                result = None
        return result

    return conjunction


def _compile_disjunction(operands: tuple[Compiled, ...]) -> Compiled:
    def disjunction(scope: Scope) -> Value:
        result: bool | None = False
        for operand in operands:
            holds = truth(operand(scope))
            if holds is True:
                return True
            if holds is None:
                result = None
        return result

    return disjunction


def _compile_call(node: Call) -> Compiled:
    arguments = tuple(_compile(argument) for argument in node.arguments)
    if node.function == "if":
        condition, when_true, when_false = arguments

        def choose(scope: Scope) -> Value:
            holds = truth(condition(scope))
            if holds is None:
                return None
            return when_true(scope) if holds else when_false(scope)

        return choose
    implementation = FUNCTIONS[node.function].implementation

    def call(scope: Scope) -> Value:
        return implementation([argument(scope) for argument in arguments], scope)

    return call
