"""The dashboards: a site's recruitment, participants by status, the counts other
domains keep (open queries...), overdue visits and visits due soon; and the
study's, one row per site across the sites a scope holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bhp_ctms.participants.models import (
    ConsentKind,
    ConsentRecord,
    Participant,
    ParticipantStatus,
)
from bhp_ctms.participants.schedule import ScheduledVisit, VisitState
from bhp_ctms.participants.worklists.counts import CountColumn, ParticipantCounts, count_columns
from bhp_ctms.participants.worklists.schedules import load_schedules, participant_ids
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteScope, visible_sites
from bhp_ctms.studies.models import Study

# Visits due within this many days are listed on the site dashboard.
DUE_SOON_DAYS = 14


def percentage(count: int, target: int | None) -> int | None:
    """``count`` as a whole percentage of ``target`` (None when there is no target)."""
    if not target:
        return None
    return round(100 * count / target)


@dataclass(frozen=True)
class OverdueVisit:
    participant_code: str
    event_name: str
    expected_on: date | None
    window_closes: date
    days_overdue: int


@dataclass(frozen=True)
class DueVisit:
    participant_code: str
    event_name: str
    state: VisitState
    expected_on: date | None
    window_opens: date | None
    window_closes: date | None


ParticipantSchedules = Sequence[tuple[Participant, list[ScheduledVisit]]]


def overdue_visits(schedules: ParticipantSchedules, today: date) -> list[OverdueVisit]:
    """Every overdue visit, the longest overdue first."""
    found = []
    for participant, schedule in schedules:
        for scheduled in schedule:
            if scheduled.state == VisitState.OVERDUE and scheduled.window_closes is not None:
                found.append(
                    OverdueVisit(
                        participant.code,
                        scheduled.event.name,
                        scheduled.expected_on,
                        scheduled.window_closes,
                        (today - scheduled.window_closes).days,
                    )
                )
    found.sort(key=lambda visit: (-visit.days_overdue, visit.participant_code))
    return found


def visits_due_soon(
    schedules: ParticipantSchedules, today: date, days: int = DUE_SOON_DAYS
) -> list[DueVisit]:
    """Visits due now, and those whose window opens within ``days`` days, soonest first."""
    horizon = today + timedelta(days=days)
    found = []
    for participant, schedule in schedules:
        for scheduled in schedule:
            due_now = scheduled.state == VisitState.DUE
            opening = (
                scheduled.state == VisitState.UPCOMING
                and scheduled.window_opens is not None
                and scheduled.window_opens <= horizon
            )
            if due_now or opening:
                found.append(
                    DueVisit(
                        participant.code,
                        scheduled.event.name,
                        scheduled.state,
                        scheduled.expected_on,
                        scheduled.window_opens,
                        scheduled.window_closes,
                    )
                )
    found.sort(key=lambda visit: (visit.expected_on or today, visit.participant_code))
    return found


@dataclass(frozen=True)
class Recruitment:
    registered: int
    consented: int
    randomised: int
    target: int | None

    @property
    def percent(self) -> int | None:
        """Randomised participants as a percentage of the target."""
        return percentage(self.randomised, self.target)


@dataclass(frozen=True)
class SiteDashboard:
    site: Site
    recruitment: Recruitment
    by_status: list[tuple[ParticipantStatus, int]]
    overdue: list[OverdueVisit]
    due_soon: list[DueVisit]
    # The counts other domains keep, for the site's participants (their totals).
    counts: list[CountColumn] = field(default_factory=list)


def _status_counts(participants: Iterable[Participant]) -> list[tuple[ParticipantStatus, int]]:
    counts = Counter(participant.status for participant in participants)
    return [(status, counts[status]) for status in ParticipantStatus if counts[status]]


def site_dashboard(
    db: Session,
    scope: SiteScope,
    site: Site,
    today: date,
    counts: Sequence[tuple[ParticipantCounts, str]] = (),
) -> SiteDashboard:
    """Recruitment against the site's target, participants by status, overdue visits
    and the visits due in the next two weeks; read through the user's ``scope``.
    ``counts`` are the counts other domains keep (open queries...) to total over the
    site's participants, each with the link to the site's page of them."""
    consented = db.scalar(
        scope.apply(
            select(func.count(func.distinct(ConsentRecord.participant_id)))
            .join(Participant, Participant.id == ConsentRecord.participant_id)
            .where(Participant.site_id == site.id, ConsentRecord.kind == ConsentKind.CONSENT),
            Participant.site_id,
        )
    )
    loaded = load_schedules(db, scope, site.study_id, today, site_id=site.id)
    schedules = list(loaded.each())
    recruitment = Recruitment(
        registered=len(loaded.participants),
        consented=consented or 0,
        randomised=sum(1 for p in loaded.participants if p.randomised_on is not None),
        target=site.recruitment_target,
    )
    return SiteDashboard(
        site=site,
        recruitment=recruitment,
        by_status=_status_counts(loaded.participants),
        overdue=overdue_visits(schedules, today),
        due_soon=visits_due_soon(schedules, today),
        counts=count_columns(db, counts, participant_ids(scope, site.study_id, site_id=site.id)),
    )


@dataclass(frozen=True)
class SiteRow:
    site: Site
    registered: int
    randomised: int
    overdue: int

    @property
    def percent(self) -> int | None:
        return percentage(self.randomised, self.site.recruitment_target)


@dataclass(frozen=True)
class StudyDashboard:
    study: Study
    rows: list[SiteRow]
    all_sites: bool

    @property
    def registered(self) -> int:
        return sum(row.registered for row in self.rows)

    @property
    def randomised(self) -> int:
        return sum(row.randomised for row in self.rows)

    @property
    def overdue(self) -> int:
        return sum(row.overdue for row in self.rows)

    @property
    def target(self) -> int | None:
        return self.study.target_sample_size

    @property
    def percent(self) -> int | None:
        return percentage(self.randomised, self.target)


def study_dashboard(db: Session, scope: SiteScope, study: Study, today: date) -> StudyDashboard:
    """One row per site the scope holds: status, target, registered, randomised and
    overdue visits; totals of those rows against the study's target sample size."""
    loaded = load_schedules(db, scope, study.id, today)
    registered: Counter[int] = Counter()
    randomised: Counter[int] = Counter()
    overdue: Counter[int] = Counter()
    for participant, schedule in loaded.each():
        registered[participant.site_id] += 1
        if participant.randomised_on is not None:
            randomised[participant.site_id] += 1
        overdue[participant.site_id] += sum(
            1 for scheduled in schedule if scheduled.state == VisitState.OVERDUE
        )
    rows = [
        SiteRow(site, registered[site.id], randomised[site.id], overdue[site.id])
        for site in visible_sites(db, scope)
    ]
    return StudyDashboard(study, rows, scope.all_sites)
