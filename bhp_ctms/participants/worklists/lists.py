"""The study's participant list and its screening log: everyone the scope's sites
registered, each screened person's place on the CONSORT flow and the flow's totals.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from bhp_ctms.participants.models import ExclusionReason, Participant, ParticipantStatus
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.models import Study


@dataclass(frozen=True)
class ParticipantListing:
    participant: Participant
    site_code: str


def participant_list(
    db: Session,
    scope: SiteScope,
    study: Study,
    *,
    search: str = "",
    status: ParticipantStatus | None = None,
) -> list[ParticipantListing]:
    """The scope's participants of a study by study ID, with their site; ``search``
    matches any part of the study ID, whatever its case."""
    statement = (
        select(Participant, Site.code)
        .join(Site, Site.id == Participant.site_id)
        .where(Participant.study_id == study.id)
        .order_by(Participant.code)
    )
    search = search.strip()
    if search:
        statement = statement.where(Participant.code.icontains(search, autoescape=True))
    if status is not None:
        statement = statement.where(Participant.status == status)
    return [
        ParticipantListing(participant, site_code)
        for participant, site_code in db.execute(scope.apply(statement, Participant.site_id))
    ]


class ScreeningOutcome(StrEnum):
    """Where a screened person is on the CONSORT flow, unless not enrolled."""

    IN_SCREENING = "in_screening"
    ELIGIBLE = "eligible"
    RANDOMISED = "randomised"


def screening_outcome(participant: Participant) -> str | ExclusionReason:
    """One place on the CONSORT flow for each person screened: still in screening,
    not enrolled (with the reason), eligible and awaiting randomisation, or randomised."""
    if participant.randomised_on is not None or participant.status == ParticipantStatus.RANDOMISED:
        return ScreeningOutcome.RANDOMISED
    if participant.status == ParticipantStatus.ELIGIBLE:
        return ScreeningOutcome.ELIGIBLE
    if participant.status in (ParticipantStatus.SCREENED, ParticipantStatus.CONSENTED):
        return ScreeningOutcome.IN_SCREENING
    if participant.status == ParticipantStatus.INELIGIBLE:
        return ExclusionReason.NOT_ELIGIBLE
    if participant.status == ParticipantStatus.NOT_ENROLLED:
        return participant.exclusion_reason or ExclusionReason.OTHER
    # Left the study before being randomised (withdrew, lost, died): not enrolled.
    return ExclusionReason.OTHER


@dataclass(frozen=True)
class ScreeningEntry:
    participant: Participant
    site_code: str
    exclusion: ExclusionReason | None

    @property
    def details(self) -> str:
        """What was recorded about why the person was not enrolled."""
        return self.participant.status_details if self.exclusion is not None else ""


@dataclass(frozen=True)
class ScreeningTotals:
    """The screening figures of a CONSORT flow diagram."""

    screened: int
    not_enrolled: list[tuple[ExclusionReason, int]]
    in_screening: int
    eligible: int
    randomised: int

    @property
    def not_enrolled_total(self) -> int:
        return sum(count for _reason, count in self.not_enrolled)


@dataclass(frozen=True)
class ScreeningLog:
    entries: list[ScreeningEntry]
    totals: ScreeningTotals


def screening_log(db: Session, scope: SiteScope, study: Study) -> ScreeningLog:
    """Everyone the scope's sites registered, in order of registration, each with why
    they were not enrolled if they were not; and the totals CONSORT reports."""
    statement = (
        select(Participant, Site.code)
        .join(Site, Site.id == Participant.site_id)
        .where(Participant.study_id == study.id)
        .order_by(Participant.registered_on, Participant.code)
    )
    entries = []
    outcomes: Counter[str | ExclusionReason] = Counter()
    for participant, site_code in db.execute(scope.apply(statement, Participant.site_id)):
        outcome = screening_outcome(participant)
        outcomes[outcome] += 1
        exclusion = outcome if isinstance(outcome, ExclusionReason) else None
        entries.append(ScreeningEntry(participant, site_code, exclusion))
    totals = ScreeningTotals(
        screened=len(entries),
        not_enrolled=[(reason, outcomes[reason]) for reason in ExclusionReason],
        in_screening=outcomes[ScreeningOutcome.IN_SCREENING],
        # Eligible: found eligible, whether or not randomised yet.
        eligible=outcomes[ScreeningOutcome.ELIGIBLE] + outcomes[ScreeningOutcome.RANDOMISED],
        randomised=outcomes[ScreeningOutcome.RANDOMISED],
    )
    return ScreeningLog(entries, totals)
