"""The site's participant grid: its participants (rows) by the scheduled events of
their protocol versions (columns), each cell the state of one visit.

A grid of thousands of participants renders fast because every cell is worked out
once in Python, as markup, and cells alike are made only once (:func:`cell_key`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from urllib.parse import quote

from markupsafe import Markup, escape
from sqlalchemy.orm import Session

from bhp_ctms.db import utc_today
from bhp_ctms.participants.models import Participant, ParticipantStatus, Visit
from bhp_ctms.participants.schedule import (
    ScheduledVisit,
    VisitState,
    baseline_of,
    event_timings,
    expects_visits,
    scheduled_events,
    visit_state,
)
from bhp_ctms.participants.worklists.counts import CountColumn, ParticipantCounts, count_columns
from bhp_ctms.participants.worklists.schedules import load_schedules, participant_ids
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.definition import Event, StudyDefinition
from bhp_ctms.templating import ukdate


def schedule_columns(definitions: Sequence[StudyDefinition]) -> list[Event]:
    """The scheduled events of several protocol versions (oldest first), in the order of
    the newest; an event only older versions have goes among them by its day."""
    if not definitions:
        return []
    newest, *older = reversed(definitions)
    columns = [event for event in newest.events if not event.repeating]
    for definition in older:
        for event in definition.events:
            if event.repeating or any(column.code == event.code for column in columns):
                continue
            day = event.day_offset if event.day_offset is not None else 0
            position = next(
                (
                    index
                    for index, column in enumerate(columns)
                    if column.day_offset is not None and column.day_offset > day
                ),
                len(columns),
            )
            columns.insert(position, event)
    return columns


# The short text of a cell in each state, which the grid's key explains (the full label
# is in the cell for screen readers).
CELL_ABBREVIATIONS = {
    VisitState.AWAITING_BASELINE: "AB",
    VisitState.UPCOMING: "UP",
    VisitState.DUE: "DUE",
    VisitState.OVERDUE: "OD",
    VisitState.DONE: "DONE",
    VisitState.DONE_OUT_OF_WINDOW: "OOW",
    VisitState.NOT_DONE: "ND",
    VisitState.NOT_EXPECTED: "NE",
}
NOT_IN_VERSION_LABEL = "Not in this participant's protocol version"


def cell_class(state: VisitState) -> str:
    """The CSS class of a grid cell, and of its entry in the legend."""
    return f"app-visit--{state.value}"


@lru_cache(maxsize=4096)
def _shown(day: date) -> str:
    """A date as the pages show it (``12 Mar 2025``); a grid shows the same few often."""
    return ukdate(day)


@dataclass(frozen=True, slots=True)
class GridCell:
    """What one participant's event shows in the grid: its state, a short text the key
    explains, and the full label for screen readers.

    Everything a cell shows is worked out here, once, rather than in the template, so
    that a grid of tens of thousands of cells renders fast: ``html`` is the cell's
    whole ``<td>``. Cells are made by :func:`grid_cell`, the one place that decides
    what a cell says; the states of the visit's forms join the visit's own there when
    there are forms to enter.
    """

    state: VisitState | None
    css: str
    short: str
    label: str
    html: str = ""

    def __post_init__(self) -> None:
        # css, short and label are our own words and dates, and escaped text.
        html = (
            f'<td class="{self.css}"><span aria-hidden="true">{self.short}</span>'
            f'<span class="nhsuk-u-visually-hidden">{self.label}</span></td>'
        )
        object.__setattr__(self, "html", html)


NOT_IN_VERSION = GridCell(None, "app-visit--none", "\N{EM DASH}", NOT_IN_VERSION_LABEL)

# What decides a cell, on one day: the event (its protocol version and place in the
# schedule), the participant's baseline and whether visits are still expected of them,
# and the visit's status, date and why it was not done. When visits have forms, their
# states belong here too.
CellKey = tuple[int, int, date | None, bool, str | None, date | None, str]


def cell_key(
    version_id: int, index: int, baseline: date | None, expecting: bool, visit: Visit | None
) -> CellKey:
    if visit is None:
        return (version_id, index, baseline, expecting, None, None, "")
    return (
        version_id,
        index,
        baseline,
        expecting,
        visit.status,
        visit.visit_on,
        visit.not_done_reason,
    )


def grid_cell(scheduled: ScheduledVisit | None) -> GridCell:
    """The cell of one scheduled visit (None: the event is not in the participant's
    protocol version). Cells with the same :func:`cell_key` are alike."""
    if scheduled is None:
        return NOT_IN_VERSION
    state = scheduled.state
    visit = scheduled.visit
    opens, closes = scheduled.window_opens, scheduled.window_closes
    shown_on: date | None = None
    if state in (VisitState.DONE, VisitState.DONE_OUT_OF_WINDOW):
        shown_on = visit.visit_on if visit is not None else None
        label = f"{state.label} on {_shown(shown_on)}" if shown_on else state.label
        if state == VisitState.DONE_OUT_OF_WINDOW and opens and closes:
            label += f" (window {_shown(opens)} to {_shown(closes)})"
    elif state in (VisitState.UPCOMING, VisitState.DUE, VisitState.OVERDUE):
        shown_on = scheduled.expected_on
        if shown_on is None:
            label = f"{state.label} now"
        else:
            label = f"{state.label}: expected {_shown(shown_on)}"
            if state == VisitState.UPCOMING and opens and opens != shown_on:
                label += f", window opens {_shown(opens)}"
            elif state != VisitState.UPCOMING and closes and closes != shown_on:
                verb = "closed" if state == VisitState.OVERDUE else "closes"
                label += f", window {verb} {_shown(closes)}"
    elif state == VisitState.NOT_DONE and visit is not None and visit.not_done_reason:
        label = f"{state.label}: {escape(visit.not_done_reason)}"
    else:
        label = state.label
    abbreviation = CELL_ABBREVIATIONS[state]
    short = f"{abbreviation} {_shown(shown_on)}" if shown_on else abbreviation
    return GridCell(state, cell_class(state), short, label)


@dataclass(frozen=True, slots=True)
class GridRow:
    participant: Participant
    cells: tuple[GridCell, ...]

    def html(self, link: str, counts: Sequence[CountColumn] = ()) -> str:
        """The row: the participant's study ID (linked), their status, their counts
        (open queries...), their cells."""
        code = escape(self.participant.code)
        participant_id = self.participant.id
        return (
            f'<tr><th scope="row"><a href="{escape(link)}">{code}</a></th>'
            f"<td>{escape(self.participant.status.label)}</td>"
            + "".join(column.cell_html(participant_id) for column in counts)
            + "".join(cell.html for cell in self.cells)
            + "</tr>"
        )


@dataclass(frozen=True)
class Grid:
    """A site's participants (rows) by scheduled events (columns), with the counts
    other domains keep for each participant (``counts``: open queries...) before the
    events."""

    columns: list[Event]
    rows: list[GridRow]
    # Participants matching the status filter, before "overdue only".
    matching: int
    counts: list[CountColumn] = field(default_factory=list)

    def rows_html(self, participant_link: str, placeholder: str) -> Markup:
        """Every row as one piece of markup, for the template to place at once (a grid
        holds tens of thousands of cells). ``participant_link`` is a participant page's
        path with ``placeholder`` where the study ID goes."""
        rows = (
            row.html(
                participant_link.replace(placeholder, quote(row.participant.code, safe="")),
                self.counts,
            )
            for row in self.rows
        )
        # Safe: the markup is our own, around escaped codes, labels and dates.
        return Markup("\n".join(rows))  # noqa: S704


def site_grid(
    db: Session,
    scope: SiteScope,
    site: Site,
    *,
    status: ParticipantStatus | None = None,
    overdue_only: bool = False,
    today: date | None = None,
    counts: Sequence[tuple[ParticipantCounts, str]] = (),
) -> Grid:
    """The participant grid of one site, by study ID; filtered by status and to
    participants with an overdue visit. ``counts`` are the counts other domains keep
    (open queries...) to show for each participant, each with the link to the site's
    page of them; each is read in one query."""
    today = today or utc_today()
    loaded = load_schedules(db, scope, site.study_id, today, site_id=site.id, status=status)
    columns = schedule_columns(list(loaded.definitions.values()))
    # Where each column's event is in the schedule of each protocol version.
    positions = {
        version_id: _positions(columns, definition)
        for version_id, definition in loaded.definitions.items()
    }
    # Participants share many cells. A cell is worked out once for what decides it
    # (CellKey), and made once for what it shows (the scheduled visit's dates, state
    # and visit), so that cells alike are one object whose markup is built once.
    decided: dict[CellKey, GridCell] = {}
    shown: dict[tuple[object, ...], GridCell] = {}
    rows = []
    for participant, visits in loaded.each_with_visits():
        version_id = participant.protocol_version_id
        definition = loaded.definitions[version_id]
        timings = event_timings(definition)
        baseline = baseline_of(definition, participant)
        expecting = expects_visits(participant)
        recorded = {visit.event_code: visit for visit in visits}
        cells = []
        for index in positions[version_id]:
            if index is None:
                cells.append(NOT_IN_VERSION)
                continue
            timing = timings[index]
            visit = recorded.get(timing.event.code) if recorded else None
            key = cell_key(version_id, index, baseline, expecting, visit)
            cell = decided.get(key)
            if cell is None:
                scheduled = visit_state(timing, baseline, visit, expecting, today)
                looks = (*scheduled[1:4], scheduled.state, *key[4:])
                cell = shown.get(looks)
                if cell is None:
                    cell = shown[looks] = grid_cell(scheduled)
                decided[key] = cell
            cells.append(cell)
        if overdue_only and not any(cell.state == VisitState.OVERDUE for cell in cells):
            continue
        rows.append(GridRow(participant, tuple(cells)))
    counted = participant_ids(scope, site.study_id, site_id=site.id, status=status)
    return Grid(columns, rows, len(loaded.participants), count_columns(db, counts, counted))


def _positions(columns: Sequence[Event], definition: StudyDefinition) -> list[int | None]:
    """Each column's index in a participant's schedule on ``definition`` (None: the
    version has no such event)."""
    codes = [event.code for event in scheduled_events(definition)]
    return [codes.index(column.code) if column.code in codes else None for column in columns]
