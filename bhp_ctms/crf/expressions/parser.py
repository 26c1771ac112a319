"""Reading an expression: lark parses the text with ``grammar.lark``, and this module
turns lark's tree into our nodes and lark's errors into messages a data manager
understands, each with its line and column."""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections.abc import Sequence
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from bhp_ctms.crf.expressions.functions import DATE_FORMATS, FUNCTIONS, UNIT_SECONDS
from bhp_ctms.crf.expressions.nodes import (
    Arithmetic,
    Boolean,
    Call,
    Comparison,
    Conjunction,
    Disjunction,
    ExpressionError,
    ItemValue,
    Negation,
    Node,
    Number,
    Power,
    Reference,
    Text,
)

GRAMMAR = Path(__file__).with_name("grammar.lark")

# Deeper than any real form's logic; it keeps the evaluator well inside Python's
# recursion limit whatever the caller's stack.
MAX_DEPTH = 100

_ITEM = re.compile(r"([A-Za-z][A-Za-z0-9_]*)(?:\(([A-Za-z0-9_.\-]+)\))?")
_EVENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_COMPARATORS = {"!=": "<>", "==": "="}
# Tokens lark expects only after a complete value (MINUS may also start one).
_AFTER_VALUE = {
    *("PLUS", "TIMES", "DIVIDE", "CARET", "COMPARATOR", "AND", "OR", "RPAR", "COMMA", "$END")
}
_KEYWORDS = {"and", "or", "true", "false"}
_CHARACTER_HINTS = {
    "&": "write 'and' to join conditions",
    "|": "write 'or' to join conditions",
    "!": "write <> for 'is not equal to'",
}
_EXPECT_VALUE = "expected a value: a number, 'text', an item such as [weight], a function or '('"


@functools.cache
def _lark() -> Lark:
    return Lark(
        GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
    )


def parse_tree(text: str) -> Node:
    """The syntax tree of ``text``; raises :class:`ExpressionError`."""
    if not text.strip():
        raise ExpressionError.at("the expression is empty", text, 0)
    _check_brackets(text)
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as error:
        raise _syntax_error(error, text) from None
    return _Reader(text).node(tree, 0)


def _check_brackets(text: str) -> None:
    """Unclosed texts and brackets, found before lark so that the message points at
    the bracket or quote itself rather than where the parser gave up."""
    opened: list[int] = []
    index = 0
    while index < len(text):
        character = text[index]
        if character in "'\"":
            end = text.find(character, index + 1)
            if end < 0:
                raise ExpressionError.at(
                    f"this text is never closed: add a closing {character}", text, index
                )
            index = end + 1
            continue
        if character == "[":
            end = text.find("]", index + 1)
            if end < 0 or any(c in "[\n" for c in text[index + 1 : end]):
                raise ExpressionError.at(
                    "'[' is never closed: an item is written in square brackets, e.g. [weight]",
                    text,
                    index,
                )
            index = end + 1
            continue
        if character == "]":
            raise ExpressionError.at("']' has no matching '['", text, index)
        if character == "(":
            opened.append(index)
            if len(opened) > MAX_DEPTH:
                raise ExpressionError.at(
                    f"brackets are nested more than {MAX_DEPTH} deep", text, index
                )
        elif character == ")":
            if not opened:
                raise ExpressionError.at("')' has no matching '('", text, index)
            opened.pop()
        index += 1
    if opened:
        raise ExpressionError.at("'(' is never closed: add a ')'", text, opened[-1])


def _describe(token: Token | str, kind: str) -> str:
    value = str(token)
    if kind == "NUMBER":
        return f"number {value}"
    if kind == "STRING":
        return f"text {value}"
    if kind == "ITEM":
        return f"item {value}"
    return f"'{value}'"


def _enclosure(text: str, position: int) -> str:
    """Where ``position`` is: "top" level, in a "group" (parentheses) or in a "call"'s
    arguments. (Lark's own list of expected tokens is too wide to say.)"""
    opened: list[str] = []
    index = 0
    while index < position:
        character = text[index]
        if character in "'\"[":
            closing = "]" if character == "[" else character
            index = text.find(closing, index + 1) + 1 or position
            continue
        if character == "(":
            before = text[:index].rstrip()
            opened.append("call" if before[-1:].isalnum() or before[-1:] == "_" else "group")
        elif character == ")" and opened:
            opened.pop()
        index += 1
    return opened[-1] if opened else "top"


def _after_value(text: str, position: int) -> str:
    """What may follow a complete value at ``position``."""
    operator = "an operator (such as +, = or and)"
    enclosure = _enclosure(text, position)
    if enclosure == "call":
        return f"expected {operator}, ',' or ')'"
    if enclosure == "group":
        return f"expected {operator} or ')'"
    return f"expected {operator} or the end of the expression"


_WORD_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\Z")


def _syntax_error(error: UnexpectedInput, text: str) -> ExpressionError:
    if isinstance(error, UnexpectedToken):
        token = error.token
        end = token.type == "$END"
        position = len(text.rstrip()) if end else (token.start_pos or 0)
        expected = set(error.expected)
        if expected == {"LPAR"}:
            # A bare word: lark took it for a function's name and wanted its '('.
            word = _WORD_BEFORE.search(text, 0, position)
            if word is not None:
                return _bare_word(word[1], text, word.start())
        if end:
            if expected & _AFTER_VALUE:
                return ExpressionError.at(
                    "the expression ends too early: " + _after_value(text, position),
                    text,
                    position,
                )
            message = f"the expression ends too early: {_EXPECT_VALUE}"
            return ExpressionError.at(message, text, position)
        message = f"unexpected {_describe(token, token.type)}"
        if token.type == "COMPARATOR" and "COMPARATOR" not in expected and expected & _AFTER_VALUE:
            message += ": comparisons cannot be chained; join two with 'and'"
        elif expected & _AFTER_VALUE:
            message += f": {_after_value(text, position)}"
        else:
            message += f": {_EXPECT_VALUE}"
        return ExpressionError.at(message, text, position)
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream or 0
        character = text[position] if position < len(text) else ""
        message = f"unexpected character {character!r}"
        if character in _CHARACTER_HINTS:
            message += f": {_CHARACTER_HINTS[character]}"
        return ExpressionError.at(message, text, position)
    position = getattr(error, "pos_in_stream", None) or len(text)
    return ExpressionError.at("the expression cannot be read", text, position)


def _bare_word(word: str, text: str, position: int) -> ExpressionError:
    if word.lower() in _KEYWORDS:
        message = f"unexpected '{word}': {_EXPECT_VALUE}"
    elif word.lower() in FUNCTIONS:
        message = f"{word} is a function: write {word}(...)"
    else:
        message = (
            f"unexpected word '{word}': an item is written in square brackets, e.g. "
            f"[{word}], and text in quotes, e.g. '{word}'"
        )
    return ExpressionError.at(message, text, position)


class _Reader:
    """Lark's tree to our nodes, checking what the grammar alone cannot: references,
    function names and their arguments."""

    def __init__(self, text: str) -> None:
        self.text = text

    def fail(self, message: str, position: int) -> ExpressionError:
        return ExpressionError.at(message, self.text, position)

    def node(self, tree: Tree[Token] | Token, depth: int) -> Node:
        if depth >= MAX_DEPTH:
            raise self.fail(f"the expression is nested more than {MAX_DEPTH} deep", _start(tree))
        if isinstance(tree, Token):  # pragma: no cover - the grammar wraps every token
            raise self.fail(f"unexpected {_describe(tree, tree.type)}", tree.start_pos or 0)
        rule = tree.data
        children = tree.children
        position = _start(tree)
        depth += 1
        if rule == "number":
            return self.number(_token(children[0]))
        if rule == "text":
            return Text(str(children[0])[1:-1], position)
        if rule in ("true", "false"):
            return Boolean(rule == "true", position)
        if rule == "reference":
            return self.reference([_token(child) for child in children])
        if rule == "atom":  # ( expression )
            return self.node(_child(children[1]), depth)
        if rule == "negation":
            return Negation(self.node(_child(children[1]), depth), position)
        if rule == "power":
            base = self.node(_child(children[0]), depth)
            return Power(base, self.node(_child(children[2]), depth), position)
        if rule in ("sum", "product"):
            rest = tuple(
                (str(children[index]), self.node(_child(children[index + 1]), depth))
                for index in range(1, len(children), 2)
            )
            return Arithmetic(self.node(_child(children[0]), depth), rest, position)
        if rule == "comparison":
            operator = str(children[1])
            return Comparison(
                _COMPARATORS.get(operator, operator),
                self.node(_child(children[0]), depth),
                self.node(_child(children[2]), depth),
                position,
            )
        if rule in ("conjunction", "disjunction"):
            operands = tuple(self.node(_child(child), depth) for child in children[::2])
            if rule == "conjunction":
                return Conjunction(operands, position)
            return Disjunction(operands, position)
        if rule == "call":
            return self.call(children, depth)
        raise self.fail("the expression cannot be read", position)  # pragma: no cover

    def number(self, token: Token) -> Number:
        value = float(str(token))
        if not math.isfinite(value):
            raise self.fail(f"the number {token} is too large", token.start_pos or 0)
        return Number(value, token.start_pos or 0)

    def reference(self, tokens: list[Token]) -> ItemValue:
        *events, item = tokens
        position = tokens[0].start_pos or 0
        event = None
        for token in events:
            if _EVENT.fullmatch(str(token)[1:-1]) is None:
                raise self.fail(
                    f"{token} is not an event: an event is written as its name in square "
                    "brackets before the item, e.g. [baseline][weight]",
                    token.start_pos or 0,
                )
            event = str(token)[1:-1]
        found = _ITEM.fullmatch(str(item)[1:-1])
        if found is None:
            if str(item) == "[]":
                message = "empty square brackets: write an item code in them, e.g. [weight]"
            else:
                message = (
                    f"{item} is not an item: an item is written as its code in square "
                    "brackets, e.g. [weight], and a checkbox choice as [race(3)]"
                )
            raise self.fail(message, item.start_pos or 0)
        return ItemValue(Reference(found[1], found[2], event), position)

    def call(self, children: Sequence[Tree[Token] | Token | None], depth: int) -> Call:
        name_token = _token(children[0])
        name = str(name_token).lower()
        position = name_token.start_pos or 0
        arguments_tree = children[2]
        arguments: tuple[Node, ...] = ()
        if isinstance(arguments_tree, Tree):
            arguments = tuple(
                self.node(_child(child), depth) for child in arguments_tree.children[::2]
            )
        function = FUNCTIONS.get(name)
        if function is None:
            message = f"unknown function '{name_token}'"
            if name == "not":
                message += " (to say 'not', compare with <> instead of =)"
            close = difflib.get_close_matches(name, FUNCTIONS, n=1, cutoff=0.6)
            if close:
                message += f" (did you mean '{close[0]}'?)"
            raise self.fail(message, position)
        problem = function.arity_problem(name, len(arguments))
        if problem:
            raise self.fail(problem, position)
        self.check_arguments(name, arguments)
        return Call(name, arguments, position)

    def check_arguments(self, name: str, arguments: tuple[Node, ...]) -> None:
        """Arguments written as literals that can never work, found at load time."""
        if name == "datediff":
            units = arguments[2]
            if isinstance(units, Number | Boolean) or (
                isinstance(units, Text) and units.value not in UNIT_SECONDS
            ):
                shown = _literal(units)
                raise self.fail(
                    "datediff() units must be 'y', 'M', 'd', 'h', 'm' or 's' "
                    f"(years, months, days, hours, minutes, seconds), not {shown}",
                    units.position,
                )
            if len(arguments) >= 4:
                fourth = arguments[3]
                allowed = DATE_FORMATS if len(arguments) == 5 else (*DATE_FORMATS, "true", "false")
                if isinstance(fourth, Number) or (
                    isinstance(fourth, Text) and fourth.value.lower() not in allowed
                ):
                    raise self.fail(
                        "datediff() date format must be 'ymd', 'mdy' or 'dmy', "
                        f"not {_literal(fourth)}",
                        fourth.position,
                    )
        if name in ("round", "roundup", "rounddown") and len(arguments) == 2:
            places = arguments[1]
            if isinstance(places, Number) and not places.value.is_integer():
                raise self.fail(
                    f"{name}() decimal places must be a whole number, not {_literal(places)}",
                    places.position,
                )


def _literal(node: Node) -> str:
    if isinstance(node, Text):
        return f"'{node.value}'"
    if isinstance(node, Number):
        return f"{node.value:g}"
    if isinstance(node, Boolean):
        return "true" if node.value else "false"
    return "an expression"


def _start(tree: Tree[Token] | Token) -> int:
    if isinstance(tree, Token):
        return tree.start_pos or 0
    return getattr(tree.meta, "start_pos", 0) or 0


def _token(child: Tree[Token] | Token | None) -> Token:
    assert isinstance(child, Token)
    return child


def _child(child: Tree[Token] | Token | None) -> Tree[Token] | Token:
    assert child is not None
    return child
