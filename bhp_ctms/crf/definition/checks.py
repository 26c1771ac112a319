"""Checking the expressions of a folder's forms once every form is read.

Each show-if, calculation and edit-check condition must parse, and every item it
refers to must exist: in the same form, or in another form of the same folder (a
value recorded on another form, such as the date of birth). An item of a repeating
group can be used only by that group's own items, and by an edit check on them (worked
out row by row), since outside the group there is no one row to take it from.
Calculated items must not depend on themselves, directly or through others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bhp_ctms.crf.definition.items import ExpressionSite, a_type, listed, suggestion
from bhp_ctms.crf.definition.model import FormDefinition, Item, ItemGroup
from bhp_ctms.crf.definition.source import problem_inside
from bhp_ctms.crf.expressions import Expression, ExpressionError, Reference, compiled


@dataclass(frozen=True)
class _Found:
    """Where an item a reference names is."""

    form: FormDefinition
    group: ItemGroup | None
    item: Item


def check_expressions(forms: Sequence[tuple[FormDefinition, Sequence[ExpressionSite]]]) -> None:
    """Note every problem with the expressions of ``forms`` (each with its expressions,
    in file order) on the reader of the file each is in."""
    everywhere: dict[str, list[_Found]] = {}
    for definition, _ in forms:
        for group, item in definition.iter_items():
            everywhere.setdefault(item.code, []).append(_Found(definition, group, item))
    all_codes = sorted(everywhere)
    for definition, sites in forms:
        own = {
            item.code: _Found(definition, group, item) for group, item in definition.iter_items()
        }
        uses: dict[str, set[str]] = {}
        for site in sites:
            expression = _parsed(site)
            if expression is None:
                continue
            checker = _ReferenceChecker(site, definition, own, everywhere, all_codes)
            # Problems are put in file order later; any fixed order will do here.
            for reference in sorted(expression.references, key=str):
                checker.check(reference)
            if site.kind == "calculation":
                uses[site.owner] = {
                    reference.item
                    for reference in expression.references
                    if reference.event is None
                    and reference.item in own
                    and own[reference.item].item.type == "calculated"
                }
        _check_cycles(
            definition, uses, {site.owner: site for site in sites if site.kind == "calculation"}
        )


def _parsed(site: ExpressionSite) -> Expression | None:
    value = site.node.value
    leading = len(value) - len(value.lstrip())
    try:
        return compiled(value.strip())
    except ExpressionError as error:
        problem_inside(site.reader, site.node, leading + error.position, site.where, error.message)
        return None


class _ReferenceChecker:
    """Checks each item one expression refers to, noting problems where it names it."""

    def __init__(
        self,
        site: ExpressionSite,
        definition: FormDefinition,
        own: Mapping[str, _Found],
        everywhere: Mapping[str, list[_Found]],
        all_codes: Sequence[str],
    ) -> None:
        self.site = site
        self.definition = definition
        self.own = own
        self.everywhere = everywhere
        self.all_codes = all_codes

    def offset(self, reference: Reference) -> int:
        """Where in the expression's value the reference names its item (0 if unseen)."""
        value = self.site.node.value
        name = re.compile(r"\[\s*(" + re.escape(reference.item) + r")\s*[\](]")
        matched = name.search(value)
        return matched.start(1) if matched else 0

    def problem(self, reference: Reference, message: str) -> None:
        site = self.site
        problem_inside(site.reader, site.node, self.offset(reference), site.where, message)

    def check(self, reference: Reference) -> None:
        code = reference.item
        found = self.own.get(code)
        if found is None:
            elsewhere = self.everywhere.get(code)
            if not elsewhere:
                hint = suggestion(code, list(self.own)) or suggestion(code, self.all_codes)
                self.problem(reference, f"unknown item {code!r}{hint}")
                return
            found = elsewhere[0]
        item = found.item
        of_form = "" if found.form is self.definition else f" of form {found.form.code!r}"
        if not item.holds_value:
            self.problem(reference, f"{code!r}{of_form} is {item.type} text and holds no value")
            return
        if self.site.kind == "show_if" and code == self.site.owner:
            self.problem(reference, f"{code!r} cannot be shown or hidden by its own value")
        if found.group is not None:
            self._check_group(reference, found.group, of_form)
        if reference.choice is not None:
            self._check_choice(reference, item, of_form)

    def _check_group(self, reference: Reference, group: ItemGroup, of_form: str) -> None:
        if of_form or group.code != self.site.group:
            message = (
                f"{reference.item!r}{of_form} is in the repeating group {group.code!r}:"
                " only the items of that group, and edit checks on them, can use it"
            )
            self.problem(reference, message)

    def _check_choice(self, reference: Reference, item: Item, of_form: str) -> None:
        term = f"[{reference.item}({reference.choice})]"
        if item.type != "multiple_choice":
            message = (
                f"{term} is a checkbox term, but {reference.item!r}{of_form} is"
                f" {a_type(item.type)} (only multiple_choice items have one value per choice)"
            )
            self.problem(reference, message)
            return
        codes = [choice.code for choice in item.choices]
        if codes and reference.choice not in codes:
            hint = suggestion(str(reference.choice), codes)
            message = (
                f"{reference.item!r} has no choice {reference.choice!r}{hint};"
                f" its choices: {listed(codes)}"
            )
            self.problem(reference, message)


def _check_cycles(
    definition: FormDefinition,
    uses: Mapping[str, set[str]],
    sites: Mapping[str, ExpressionSite],
) -> None:
    """Note each cycle of calculated items once, on the first of its items on the page."""
    order = [item.code for item in definition.items if item.code in uses]
    place = {code: index for index, code in enumerate(order)}
    for cycle in _cycles(order, uses):
        first = min(range(len(cycle)), key=lambda index: place[cycle[index]])
        cycle = [*cycle[first:], *cycle[:first]]
        site = sites[cycle[0]]
        message = f"calculations depend on each other in a cycle: {' -> '.join([*cycle, cycle[0]])}"
        if len(cycle) == 1:
            message = f"the calculation uses the item's own value: {cycle[0]} -> {cycle[0]}"
        site.reader.problem(site.node, site.where, message)


def _cycles(order: Sequence[str], uses: Mapping[str, set[str]]) -> list[list[str]]:
    """The cycles among calculated items that a depth-first walk from each in turn
    finds (without recursion: a chain of calculations may be thousands long)."""
    state: dict[str, str] = {}  # "walking" while on the path, then "done"
    cycles: list[list[str]] = []
    for root in order:
        if root in state:
            continue
        state[root] = "walking"
        path = [root]
        pending = [iter(sorted(uses.get(root, ())))]
        while pending:
            for used in pending[-1]:
                if state.get(used) == "walking":
                    cycles.append(path[path.index(used) :])
                elif used not in state and used in uses:
                    state[used] = "walking"
                    path.append(used)
                    pending.append(iter(sorted(uses[used])))
                    break
            else:
                state[path.pop()] = "done"
                pending.pop()
    return cycles
