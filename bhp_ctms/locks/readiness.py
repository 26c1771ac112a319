"""What is outstanding before a lock, site by site: open queries, forms in progress,
forms the SDV plan needs verified and not yet verified, complete forms not signed, and
overdue visits.

Each count is the one the worklists show: the SDV worklist's forms awaiting SDV
(:func:`bhp_ctms.crf.verification.site_sdv_worklist`) and the study dashboard's overdue
visits (:func:`bhp_ctms.participants.worklists.study_dashboard`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bhp_ctms.crf.models import FormEntry, FormStatus, Query
from bhp_ctms.crf.queries import OUTSTANDING
from bhp_ctms.crf.verification import site_sdv_worklist
from bhp_ctms.participants.models import Participant
from bhp_ctms.participants.worklists import study_dashboard
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.models import Study

# Forms complete (or SDV'd) that no signature covers yet.
UNSIGNED_STATUSES = (FormStatus.COMPLETE, FormStatus.VERIFIED)


@dataclass(frozen=True)
class SiteReadiness:
    """One site's outstanding work before a lock."""

    site: Site
    open_queries: int
    in_progress: int
    awaiting_sdv: int
    unsigned: int
    overdue_visits: int

    @property
    def outstanding(self) -> int:
        return (
            self.open_queries
            + self.in_progress
            + self.awaiting_sdv
            + self.unsigned
            + self.overdue_visits
        )


@dataclass(frozen=True)
class StudyReadiness:
    sites: list[SiteReadiness]

    @property
    def ready(self) -> bool:
        return all(site.outstanding == 0 for site in self.sites)

    def total(self, name: str) -> int:
        return sum(int(getattr(site, name)) for site in self.sites)


def study_readiness(db: Session, scope: SiteScope, study: Study, today: date) -> StudyReadiness:
    """Each site in ``scope`` with its outstanding work (see the module's docstring)."""
    open_queries = dict(
        db.execute(
            scope.apply(
                select(Participant.site_id, func.count(Query.id))
                .join(FormEntry, Query.form_entry_id == FormEntry.id)
                .join(Participant, FormEntry.participant_id == Participant.id)
                .where(Participant.study_id == study.id, Query.status.in_(OUTSTANDING))
                .group_by(Participant.site_id),
                Participant.site_id,
            )
        ).all()
    )
    entries: dict[tuple[int, FormStatus], int] = {
        (site_id, status): count
        for site_id, status, count in db.execute(
            scope.apply(
                select(Participant.site_id, FormEntry.status, func.count(FormEntry.id))
                .join(Participant, FormEntry.participant_id == Participant.id)
                .where(Participant.study_id == study.id)
                .group_by(Participant.site_id, FormEntry.status),
                Participant.site_id,
            )
        ).all()
    }
    sites = []
    # The dashboard's rows: every site in scope, with its overdue visits.
    for row in study_dashboard(db, scope, study, today).rows:
        site = row.site
        sites.append(
            SiteReadiness(
                site=site,
                open_queries=open_queries.get(site.id, 0),
                in_progress=entries.get((site.id, FormStatus.IN_PROGRESS), 0),
                awaiting_sdv=len(site_sdv_worklist(db, site, scope).awaiting),
                unsigned=sum(entries.get((site.id, status), 0) for status in UNSIGNED_STATUSES),
                overdue_visits=row.overdue,
            )
        )
    return StudyReadiness(sites)
