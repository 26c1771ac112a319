"""Counts that other domains keep for each participant (the CRFs' open queries...),
as columns of the site's participant grid and totals of the site dashboard.

A domain registers a :class:`ParticipantCounts` (an
:class:`~bhp_ctms.participants.interfaces.IParticipantCounts`) at start-up with
``config.add_participant_counts(...)``; the pages ask :func:`registered_counts` for them and
show those the user's permissions allow. The counts of a page's participants are
read at once (:func:`count_columns`): the page hands the provider the select of its
participants' ids, kept to the user's sites, for one grouped query whatever the
number of rows. (On PostgreSQL, open queries of 2,000 participants take about 10 ms
so; with the 2,000 ids sent as parameters, 30 to 50 ms.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import escape
from sqlalchemy import Select
from sqlalchemy.orm import Session
from zope.interface import implementer

from bhp_ctms.participants.interfaces import IParticipantCounts


@implementer(IParticipantCounts)
@dataclass(frozen=True)
class ParticipantCounts:
    """A count kept for each participant by another domain; see
    :class:`~bhp_ctms.participants.interfaces.IParticipantCounts`."""

    key: str
    heading: str
    description: str
    singular: str
    plural: str
    permission: str
    route_name: str
    counter: Callable[[Session, Select[int]], Mapping[int, int]] = field(repr=False)

    def count(self, db: Session, participants: Select[int]) -> Mapping[int, int]:
        return self.counter(db, participants)

    def describe(self, number: int) -> str:
        """``1 open query``, ``3 open queries``."""
        return f"{number} {self.singular if number == 1 else self.plural}"


def add_participant_counts(config: Any, counts: ParticipantCounts) -> None:
    """``config.add_participant_counts(counts)``: register ``counts`` with the
    application being configured (in a domain's ``includeme``). Two counts with the
    same key are a configuration conflict."""

    def register() -> None:
        config.registry.registerUtility(counts, IParticipantCounts, name=counts.key)

    config.action(("bhp_ctms.participant_counts", counts.key), register)


def registered_counts(registry: Any) -> list[ParticipantCounts]:
    """Every registered count, by key."""
    return [counts for _key, counts in sorted(registry.getUtilitiesFor(IParticipantCounts))]


@dataclass(frozen=True)
class CountColumn:
    """One kind of count for the participants of a page, and where they are listed
    (``link``: the site's page of them)."""

    counts: ParticipantCounts
    link: str
    by_participant: Mapping[int, int]
    # The markup of a grid cell for each number, made once: a grid has thousands.
    _cells: dict[int, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def of(self, participant_id: int) -> int:
        return self.by_participant.get(participant_id, 0)

    @property
    def total(self) -> int:
        return sum(self.by_participant.values())

    def cell_html(self, participant_id: int) -> str:
        """The grid cell of one participant: their number, linked to the site's page
        of them when there are any, with what it counts for screen readers."""
        number = self.of(participant_id)
        cell = self._cells.get(number)
        if cell is None:
            hidden = escape(f" {self.counts.plural if number != 1 else self.counts.singular}")
            text = f'{number}<span class="nhsuk-u-visually-hidden">{hidden}</span>'
            if number:
                text = f'<a href="{escape(self.link)}">{text}</a>'
            cell = self._cells[number] = (
                f'<td class="app-grid__count" data-count="{escape(self.counts.key)}">{text}</td>'
            )
        return cell


def count_columns(
    db: Session,
    visible: Sequence[tuple[ParticipantCounts, str]],
    participants: Select[int],
) -> list[CountColumn]:
    """The columns of the counts a user may see (``visible``: each with the link to
    the site's page of them) for the participants whose ids ``participants`` selects
    (through the user's site scope)."""
    return [CountColumn(counts, link, counts.count(db, participants)) for counts, link in visible]
