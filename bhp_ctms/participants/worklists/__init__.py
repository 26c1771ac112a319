"""Worklists of participants: the study's participant list and screening log, the
site's participant grid and dashboard, and the study dashboard across sites.

Every query of participant data goes through :meth:`SiteScope.apply`. The schedules
come from :mod:`bhp_ctms.participants.schedule`, computed for a whole site (or
study) from three queries whatever the number of participants: the participants,
their visits and the study's protocol versions; never one query per participant.

The package's modules: ``schedules`` loads many participants' schedules at once
(:func:`load_schedules`); ``grid`` makes the site's participant grid
(:func:`site_grid`); ``dashboards`` the site's and the study's dashboards;
``lists`` the participant list and the screening log; ``counts`` the counts other
domains keep for each participant (open queries...), which they register with
``config.add_participant_counts(...)`` and the grid and the site dashboard show. Import from
this package, not from its modules.
"""

from __future__ import annotations

from bhp_ctms.participants.worklists.counts import (
    CountColumn,
    ParticipantCounts,
    add_participant_counts,
    count_columns,
    registered_counts,
)
from bhp_ctms.participants.worklists.dashboards import (
    DUE_SOON_DAYS,
    DueVisit,
    OverdueVisit,
    ParticipantSchedules,
    Recruitment,
    SiteDashboard,
    SiteRow,
    StudyDashboard,
    overdue_visits,
    percentage,
    site_dashboard,
    study_dashboard,
    visits_due_soon,
)
from bhp_ctms.participants.worklists.grid import (
    CELL_ABBREVIATIONS,
    NOT_IN_VERSION,
    NOT_IN_VERSION_LABEL,
    CellKey,
    Grid,
    GridCell,
    GridRow,
    cell_class,
    cell_key,
    grid_cell,
    schedule_columns,
    site_grid,
)
from bhp_ctms.participants.worklists.lists import (
    ParticipantListing,
    ScreeningEntry,
    ScreeningLog,
    ScreeningOutcome,
    ScreeningTotals,
    participant_list,
    screening_log,
    screening_outcome,
)
from bhp_ctms.participants.worklists.schedules import (
    PARTICIPANT_COLUMNS,
    VISIT_BATCH,
    VISIT_COLUMNS,
    Schedules,
    load_schedules,
    participant_ids,
)

__all__ = [
    "CELL_ABBREVIATIONS",
    "DUE_SOON_DAYS",
    "NOT_IN_VERSION",
    "NOT_IN_VERSION_LABEL",
    "PARTICIPANT_COLUMNS",
    "VISIT_BATCH",
    "VISIT_COLUMNS",
    "CellKey",
    "CountColumn",
    "DueVisit",
    "Grid",
    "GridCell",
    "GridRow",
    "OverdueVisit",
    "ParticipantCounts",
    "ParticipantListing",
    "ParticipantSchedules",
    "Recruitment",
    "Schedules",
    "ScreeningEntry",
    "ScreeningLog",
    "ScreeningOutcome",
    "ScreeningTotals",
    "SiteDashboard",
    "SiteRow",
    "StudyDashboard",
    "add_participant_counts",
    "cell_class",
    "cell_key",
    "count_columns",
    "grid_cell",
    "load_schedules",
    "overdue_visits",
    "participant_ids",
    "participant_list",
    "percentage",
    "registered_counts",
    "schedule_columns",
    "screening_log",
    "screening_outcome",
    "site_dashboard",
    "site_grid",
    "study_dashboard",
    "visits_due_soon",
]
