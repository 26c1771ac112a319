"""The trials unit's portfolio: every study by research pillar and status, with its
recruitment against target.

Only roles held for all studies see it (``PORTFOLIO_VIEW`` is granted by them alone),
so the recruitment counts cover every site. Two queries, whatever the number of
studies: the studies, and their participants counted by study.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from bhp_ctms.participants.models import Participant
from bhp_ctms.studies.models import ResearchPillar, Study, StudyStatus

NOT_SET_LABEL = "Not set"


@dataclass(frozen=True)
class PortfolioStudy:
    study: Study
    registered: int
    randomised: int

    @property
    def percent(self) -> int | None:
        """Randomised participants as a percentage of the target sample size."""
        target = self.study.target_sample_size
        if not target:
            return None
        return round(100 * self.randomised / target)

    @property
    def registry_numbers(self) -> list[tuple[str, str]]:
        """(registry, number) of each registry the study is in."""
        numbers = [
            ("ISRCTN", self.study.isrctn),
            ("EudraCT/CTIS", self.study.eudract),
            ("IRAS", self.study.iras),
        ]
        return [(registry, number) for registry, number in numbers if number]


@dataclass(frozen=True)
class PillarGroup:
    """The studies of one pillar (``pillar`` None: not set), with counts by status."""

    pillar: ResearchPillar | None
    studies: list[PortfolioStudy]

    @property
    def label(self) -> str:
        return self.pillar.label if self.pillar is not None else NOT_SET_LABEL

    @property
    def slug(self) -> str:
        return self.pillar.value if self.pillar is not None else "not_set"

    @property
    def by_status(self) -> list[tuple[StudyStatus, int]]:
        counts = Counter(entry.study.status for entry in self.studies)
        return [(status, counts[status]) for status in StudyStatus if counts[status]]

    @property
    def registered(self) -> int:
        return sum(entry.registered for entry in self.studies)

    @property
    def randomised(self) -> int:
        return sum(entry.randomised for entry in self.studies)


def portfolio(db: Session) -> list[PillarGroup]:
    """Every study, grouped by pillar in the pillars' order ("not set" last); within a
    pillar by status, then code. Pillars without studies are left out."""
    counts = {
        study_id: (registered, randomised or 0)
        for study_id, registered, randomised in db.execute(
            select(
                Participant.study_id,
                func.count(Participant.id),
                func.sum(case((Participant.randomised_on.is_not(None), 1), else_=0)),
            ).group_by(Participant.study_id)
        )
    }
    by_pillar: dict[ResearchPillar | None, list[PortfolioStudy]] = {}
    for study in db.scalars(select(Study).order_by(Study.code)):
        registered, randomised = counts.get(study.id, (0, 0))
        by_pillar.setdefault(study.pillar, []).append(PortfolioStudy(study, registered, randomised))
    status_order = list(StudyStatus)
    groups = []
    for pillar in [*ResearchPillar, None]:
        studies = by_pillar.get(pillar)
        if studies:
            studies.sort(
                key=lambda entry: (status_order.index(entry.study.status), entry.study.code)
            )
            groups.append(PillarGroup(pillar, studies))
    return groups
