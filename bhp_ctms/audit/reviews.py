"""Reviews of the audit trail: recording a monitor's signed-off review, and what is not
reviewed since its last change (ICH E6(R3): the trail is reviewed, not only kept).

A review covers a study, optionally narrowed to a site, a participant and a form, over
a period of days. It remembers the newest event it covered (``last_event_id``), so a
later event in the same scope shows the scope as "not reviewed since its last change".

Events about reviewing the trail itself (reviews, verification runs) are not changes
to review: otherwise every review would leave its own scope unreviewed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from bhp_ctms.audit.capture import acting_as
from bhp_ctms.audit.models import AuditEvent, AuditReview
from bhp_ctms.audit.services import AuditActor, record_event
from bhp_ctms.db import utcnow
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteScope, visible_sites

if TYPE_CHECKING:
    from bhp_ctms.accounts.models import User

#: What the reviewer's electronic signature means; shown beside the signature and
#: kept in the trail with it.
SIGNATURE_MEANING = "I have reviewed the audit trail in this scope and sign off these findings"

# Entity types whose events record the review of the trail, not changes to trial data.
REVIEW_ACTIVITY = ("audit_review", "audit_verification")


class ReviewError(ValueError):
    """A review that cannot be recorded; ``field`` names the value at fault ("": none)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """A period of whole days as UTC times: from the start of ``start`` to the end of ``end``."""
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end, time.max, tzinfo=UTC),
    )


def _changes_in_study(study_id: int) -> list[ColumnElement[bool]]:
    return [AuditEvent.study_id == study_id, AuditEvent.entity_type.not_in(REVIEW_ACTIVITY)]


def _changes_in_scope(
    study_id: int,
    site_id: int | None,
    participant_id: int | None,
    form_key: str,
    start: datetime,
    end: datetime,
) -> list[ColumnElement[bool]]:
    conditions = _changes_in_study(study_id)
    conditions += [AuditEvent.occurred_at >= start, AuditEvent.occurred_at <= end]
    if site_id is not None:
        conditions.append(AuditEvent.site_id == site_id)
    if participant_id is not None:
        conditions.append(AuditEvent.participant_id == participant_id)
    if form_key:
        conditions.append(AuditEvent.form == form_key)
    return conditions


def record_review(
    db: Session,
    actor: AuditActor,
    *,
    study_id: int,
    sites: SiteScope,
    reviewer: User,
    period_start: date | None,
    period_end: date | None,
    findings: str,
    site_id: int | None = None,
    participant_id: int | None = None,
    form_key: str = "",
) -> AuditReview:
    """Record a reviewer's signed-off review of the study's events in a scope and period.

    The caller has re-authenticated the reviewer. Raises :class:`ReviewError` (naming
    the field) before anything is written when the scope is not the reviewer's, the
    period is missing or ends before it starts, there are no findings, or no event
    falls in the scope and period. The review's own events (``audit_review.created``
    by the automatic capture, and ``audit_review.signed`` with the signature's
    meaning) are written in the same transaction.
    """
    if site_id is None and not sites.all_sites:
        raise ReviewError("site_id", "Choose one of your sites")
    if site_id is not None:
        site = db.get(Site, site_id)
        if site is None or site.study_id != study_id or not sites.allows(site_id):
            raise ReviewError("site_id", "Choose a site of this study")
    if period_start is None:
        raise ReviewError("period_start", "Enter the start of the period you reviewed")
    if period_end is None:
        raise ReviewError("period_end", "Enter the end of the period you reviewed")
    if period_end < period_start:
        raise ReviewError(
            "period_end", "The end of the period must be the same as or after its start"
        )
    findings = findings.strip()
    if not findings:
        raise ReviewError("findings", "Enter your findings")
    start, end = period_bounds(period_start, period_end)
    events_reviewed, last_event_id = db.execute(
        select(func.count(AuditEvent.id), func.max(AuditEvent.id)).where(
            *_changes_in_scope(study_id, site_id, participant_id, form_key, start, end)
        )
    ).one()
    if not events_reviewed:
        raise ReviewError(
            "",
            "There are no audit events in this scope and period. "
            "Check the site, participant, form and dates",
        )
    review = AuditReview(
        study_id=study_id,
        site_id=site_id,
        participant_id=participant_id,
        form=form_key,
        period_start=start,
        period_end=end,
        events_reviewed=int(events_reviewed),
        last_event_id=last_event_id,
        findings=findings,
        reviewer_id=reviewer.id,
        reviewer_name=reviewer.full_name,
        signed_at=utcnow(),
    )
    with acting_as(db, actor):
        db.add(review)
    record_event(
        db,
        actor,
        "audit_review.signed",
        entity_type="audit_review",
        entity_id=review.id,
        study_id=study_id,
        site_id=site_id,
        participant_id=participant_id,
        details={
            "meaning": SIGNATURE_MEANING,
            "signer_id": reviewer.id,
            "signer_name": reviewer.full_name,
            "signed_at": review.signed_at.isoformat(),
        },
    )
    return review


@dataclass(frozen=True)
class UnreviewedScope:
    """A scope (the whole study, or one site) with events newer than any review covering it."""

    site: Site | None
    newest_event_id: int
    newest_event_at: datetime
    reviewed_up_to: int | None
    unreviewed_events: int

    @property
    def label(self) -> str:
        if self.site is None:
            return "Whole study"
        return f"{self.site.code} \N{EN DASH} {self.site.name}"


def _reviewed_up_to(db: Session, study_id: int) -> dict[int | None, int]:
    """The newest event covered by the study's whole-site reviews, by site (None: all sites).

    A review narrowed to a participant or a form covers only those events, not the
    site, so it does not count here.
    """
    rows = db.execute(
        select(AuditReview.site_id, func.max(AuditReview.last_event_id))
        .where(
            AuditReview.study_id == study_id,
            AuditReview.participant_id.is_(None),
            AuditReview.form == "",
            AuditReview.last_event_id.is_not(None),
        )
        .group_by(AuditReview.site_id)
    )
    return {site_id: last for site_id, last in rows if last is not None}


def unreviewed_scopes(db: Session, study_id: int, scope: SiteScope) -> list[UnreviewedScope]:
    """The whole study (for users who see every site) and each site in ``scope`` whose
    newest event is newer than the newest event any review covering it covered.

    A review of all sites covers every site; a review of one site covers that site.
    """
    reviewed = _reviewed_up_to(db, study_id)
    study_wide = reviewed.get(None)
    newest_by_site = dict(
        db.execute(
            select(AuditEvent.site_id, func.max(AuditEvent.id))
            .where(*_changes_in_study(study_id))
            .group_by(AuditEvent.site_id)
        ).all()
    )
    candidates: list[tuple[Site | None, int, int | None]] = []
    if scope.all_sites and newest_by_site:
        candidates.append((None, max(newest_by_site.values()), study_wide))
    for site in visible_sites(db, scope):
        newest = newest_by_site.get(site.id)
        if newest is not None:
            covered = [up_to for up_to in (study_wide, reviewed.get(site.id)) if up_to is not None]
            candidates.append((site, newest, max(covered) if covered else None))
    unreviewed = [c for c in candidates if c[2] is None or c[1] > c[2]]
    if not unreviewed:
        return []
    times = dict(
        db.execute(
            select(AuditEvent.id, AuditEvent.occurred_at).where(
                AuditEvent.id.in_({newest for _, newest, _ in unreviewed})
            )
        ).all()
    )
    result = []
    for scope_site, newest, up_to in unreviewed:
        conditions: list[Any] = _changes_in_study(study_id)
        if scope_site is not None:
            conditions.append(AuditEvent.site_id == scope_site.id)
        if up_to is not None:
            conditions.append(AuditEvent.id > up_to)
        count = db.scalar(select(func.count(AuditEvent.id)).where(*conditions)) or 0
        result.append(UnreviewedScope(scope_site, newest, times[newest], up_to, int(count)))
    return result


def reviews_for_study(db: Session, study_id: int, scope: SiteScope) -> list[AuditReview]:
    """The study's review log, newest first; site staff see only the reviews of their sites."""
    statement = (
        select(AuditReview)
        .where(AuditReview.study_id == study_id)
        .order_by(AuditReview.signed_at.desc(), AuditReview.id.desc())
    )
    return list(db.scalars(scope.apply(statement, AuditReview.site_id)))
