"""Source data verification (SDV): monitors' marks that items, or whole forms, agree with
the source documents; the study's SDV sample; and each site's SDV worklist.

A mark keeps the SHA-256 of what was verified. When the data change, the save service
supersedes the marks over them (:func:`supersede_verifications`); a mark whose content
no longer hashes the same is not current either, whatever wrote the change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from bhp_ctms.accounts.models import User
from bhp_ctms.audit.capture import acting_as
from bhp_ctms.audit.models import canonical_json
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.crf.models import (
    FormEntry,
    FormStatus,
    SamplingMethod,
    SourceVerification,
    SourceVerificationPlan,
)
from bhp_ctms.crf.signatures import entry_content_sha256, item_label, shown_values
from bhp_ctms.db import utcnow
from bhp_ctms.participants.models import Participant
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteScope, visible_sites
from bhp_ctms.studies.models import Study
from bhp_ctms.templating import ukdate

WHOLE_FORM = ""

# Forms a monitor can verify: complete ones, and signed ones not yet verified.
VERIFIABLE_STATUSES = frozenset({FormStatus.COMPLETE, FormStatus.VERIFIED, FormStatus.SIGNED})


class VerificationRefused(Exception):
    """Why an SDV mark could not be made; nothing was marked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- what a mark is over --------------------------------------------------------------------


def item_content_sha256(entry: FormEntry, item_path: str) -> str:
    """SHA-256 of one item as verified: the form key, the item path, its value and its
    missing-data code."""
    row = next((row for row in entry.values if row.item_path == item_path), None)
    content = {
        "form": entry.form_key,
        "item": item_path,
        "value": (row.value or "") if row is not None else "",
        "missing_code": (row.missing_code or "") if row is not None else "",
    }
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def marked_content_sha256(entry: FormEntry, item_path: str) -> str:
    """What a mark on ``item_path`` (the whole form for ``""``) would record now."""
    if item_path == WHOLE_FORM:
        return entry_content_sha256(entry)
    return item_content_sha256(entry, item_path)


def current_verifications(db: Session, entry: FormEntry) -> dict[str, SourceVerification]:
    """The entry's current SDV marks by item path (``""``: the whole form): not
    superseded, and over content that still hashes the same."""
    with db.no_autoflush:
        marks = db.scalars(
            select(SourceVerification)
            .where(
                SourceVerification.form_entry_id == entry.id,
                SourceVerification.superseded_at.is_(None),
            )
            .order_by(SourceVerification.id)
        )
        return {
            mark.item_path: mark
            for mark in marks
            if mark.content_sha256 == marked_content_sha256(entry, mark.item_path)
        }


def latest_verifications(db: Session, entry: FormEntry) -> dict[str, SourceVerification]:
    """The latest SDV mark of each item path, current or not (to say an item changed
    since it was verified)."""
    marks = db.scalars(
        select(SourceVerification)
        .where(SourceVerification.form_entry_id == entry.id)
        .order_by(SourceVerification.id)
    )
    return {mark.item_path: mark for mark in marks}


# -- marking ------------------------------------------------------------------------------------


def verification_problem(entry: FormEntry) -> str | None:
    """Why a form entry cannot be source-data-verified now; None when it can."""
    if entry.status == FormStatus.IN_PROGRESS:
        return (
            "This form is still in progress: it can be verified against source once it is complete"
        )
    if entry.status == FormStatus.LOCKED:
        return "This form is locked: its SDV can no longer change"
    return None


def _mark(
    db: Session, actor: AuditActor, monitor: User, entry: FormEntry, item_path: str
) -> SourceVerification:
    problem = verification_problem(entry)
    if problem:
        raise VerificationRefused(problem)
    current = current_verifications(db, entry).get(item_path)
    what = "This form" if item_path == WHOLE_FORM else item_label(entry, item_path)
    if current is not None:
        raise VerificationRefused(
            f"{what} was already verified by {current.verified_by_name} on "
            f"{ukdate(current.verified_at, with_time=True)}, and has not changed since"
        )
    with acting_as(db, actor):
        mark = SourceVerification(
            entry=entry,
            item_path=item_path,
            content_sha256=marked_content_sha256(entry, item_path),
            verified_by_id=monitor.id,
            verified_by_name=monitor.full_name,
            verified_at=utcnow(),
        )
        db.add(mark)
        if item_path == WHOLE_FORM and entry.status == FormStatus.COMPLETE:
            entry.status = FormStatus.VERIFIED
    return mark


def verify_item(
    db: Session, actor: AuditActor, monitor: User, entry: FormEntry, item_path: str
) -> SourceVerification:
    """A monitor marks one item of a complete form as agreeing with the source."""
    if item_path not in {value.path for value in shown_values(entry)}:
        raise VerificationRefused(f"This form has no item {item_path!r} to verify")
    return _mark(db, actor, monitor, entry, item_path)


def verify_form(
    db: Session, actor: AuditActor, monitor: User, entry: FormEntry
) -> SourceVerification:
    """A monitor marks a whole complete form as agreeing with the source; a complete
    form becomes SDV'd (a signed one stays signed)."""
    return _mark(db, actor, monitor, entry, WHOLE_FORM)


def supersede_verifications(db: Session, entry: FormEntry, changed_paths: set[str]) -> None:
    """Data of a form entry changed: the current marks of the changed items, and any
    whole-form mark, stop being current; an SDV'd form is complete again."""
    if not changed_paths:
        return
    now = utcnow()
    with db.no_autoflush:
        marks = db.scalars(
            select(SourceVerification).where(
                SourceVerification.form_entry_id == entry.id,
                SourceVerification.superseded_at.is_(None),
            )
        )
        for mark in marks:
            if mark.item_path == WHOLE_FORM or mark.item_path in changed_paths:
                mark.superseded_at = now
        if entry.status == FormStatus.VERIFIED:
            entry.status = FormStatus.COMPLETE
    db.flush()


# -- the SDV sample ------------------------------------------------------------------------------


def study_plan(db: Session, study_id: int) -> SourceVerificationPlan | None:
    """The study's SDV plan; None means every participant is verified."""
    return db.scalars(
        select(SourceVerificationPlan).where(SourceVerificationPlan.study_id == study_id)
    ).first()


def in_sample(
    method: SamplingMethod,
    position: int,
    *,
    count: int | None = None,
    percentage: int | None = None,
) -> bool:
    """Whether the participant registered ``position``-th at their site (from 1) is in
    the sample. A percentage is spread evenly through the order of registration: the
    ``s``-th is in when ``floor(s*P/100) > floor((s-1)*P/100)``, so exactly
    ``floor(n*P/100)`` of the first ``n`` are, at every ``n``."""
    if method == SamplingMethod.FIRST:
        return position <= (count or 0)
    if method == SamplingMethod.PERCENTAGE:
        share = percentage or 0
        return position * share // 100 > (position - 1) * share // 100
    return True


def plan_includes(plan: SourceVerificationPlan | None, position: int) -> bool:
    """Whether a study's plan samples the participant registered ``position``-th."""
    if plan is None:
        return True
    return in_sample(plan.method, position, count=plan.count, percentage=plan.percentage)


def sample_size(
    method: SamplingMethod,
    registered: int,
    *,
    count: int | None = None,
    percentage: int | None = None,
) -> int:
    """How many of a site's ``registered`` participants the sample holds."""
    if method == SamplingMethod.FIRST:
        return min(count or 0, registered)
    if method == SamplingMethod.PERCENTAGE:
        return registered * (percentage or 0) // 100
    return registered


def describe_plan(plan: SourceVerificationPlan | None) -> str:
    """A plan as a sentence for its page."""
    if plan is None or plan.method == SamplingMethod.ALL:
        return "Every participant's forms are verified against source."
    if plan.method == SamplingMethod.FIRST:
        count = plan.count or 0
        people = "participant" if count == 1 else "participants"
        return f"The forms of the first {count} {people} registered at each site are verified."
    return (
        f"The forms of {plan.percentage}% of each site's participants are verified, spread "
        f"evenly through the order they were registered."
    )


def set_plan(
    db: Session,
    actor: AuditActor,
    study: Study,
    method: SamplingMethod,
    *,
    count: int | None = None,
    percentage: int | None = None,
) -> SourceVerificationPlan:
    """Set the study's SDV sample. Raises ``ValueError`` for a count below 1 or a
    percentage outside 1 to 100 (the form says so first)."""
    if method == SamplingMethod.FIRST and (count is None or count < 1):
        raise ValueError("the number of participants must be at least 1")
    if method == SamplingMethod.PERCENTAGE and (percentage is None or not 1 <= percentage <= 100):
        raise ValueError("the percentage must be from 1 to 100")
    plan = study_plan(db, study.id)
    with acting_as(db, actor):
        if plan is None:
            plan = SourceVerificationPlan(study_id=study.id, method=method)
            db.add(plan)
        plan.method = method
        plan.count = count if method == SamplingMethod.FIRST else None
        plan.percentage = percentage if method == SamplingMethod.PERCENTAGE else None
    return plan


@dataclass(frozen=True)
class SiteSelection:
    """How many of one site's participants a plan selects."""

    site: Site
    registered: int
    selected: int


def plan_selection(
    db: Session, plan: SourceVerificationPlan | None, scope: SiteScope
) -> list[SiteSelection]:
    """For each site in scope, its participants and how many the plan selects."""
    registered = dict(
        db.execute(
            scope.apply(
                select(Participant.site_id, func.count())
                .where(Participant.study_id == scope.study_id)
                .group_by(Participant.site_id),
                Participant.site_id,
            )
        ).all()
    )
    method = plan.method if plan is not None else SamplingMethod.ALL
    count = plan.count if plan is not None else None
    percentage = plan.percentage if plan is not None else None
    selections = []
    for site in visible_sites(db, scope):
        number = registered.get(site.id, 0)
        selected = sample_size(method, number, count=count, percentage=percentage)
        selections.append(SiteSelection(site, number, selected))
    return selections


# -- a site's worklist ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WorklistForm:
    """A complete form of a sampled participant awaiting SDV."""

    entry: FormEntry
    participant: Participant
    items_verified: int


@dataclass
class SiteSdvWorklist:
    """One site's SDV work: the sampled participants' forms awaiting verification, and
    the counts around them."""

    plan: SourceVerificationPlan | None
    registered: int
    sampled: int
    awaiting: list[WorklistForm] = field(default_factory=list)
    verified: int = 0
    in_progress: int = 0


def _positions(participants: Iterable[Participant]) -> dict[int, int]:
    """Each participant's place in their site's order of registration, from 1."""
    ordered = sorted(participants, key=lambda participant: participant.sequence)
    return {participant.id: position for position, participant in enumerate(ordered, start=1)}


def site_sdv_worklist(db: Session, site: Site, scope: SiteScope) -> SiteSdvWorklist:
    """The site's complete forms not yet verified, for the participants in the study's
    SDV sample, in order of registration and then of entry."""
    plan = study_plan(db, site.study_id)
    participants = list(
        db.scalars(
            scope.apply(
                select(Participant).where(
                    Participant.study_id == site.study_id, Participant.site_id == site.id
                ),
                Participant.site_id,
            )
        )
    )
    positions = _positions(participants)
    sampled = {pid for pid, position in positions.items() if plan_includes(plan, position)}
    worklist = SiteSdvWorklist(plan, len(participants), len(sampled))
    if not sampled:
        return worklist
    entries = [
        entry
        for entry in db.scalars(
            scope.apply(
                select(FormEntry)
                .join(Participant, FormEntry.participant_id == Participant.id)
                .where(Participant.site_id == site.id, Participant.study_id == site.study_id)
                .options(selectinload(FormEntry.form_version), selectinload(FormEntry.participant))
                .order_by(FormEntry.id),
                Participant.site_id,
            )
        )
        if entry.participant_id in sampled
    ]
    marks = db.execute(
        select(SourceVerification.form_entry_id, SourceVerification.item_path)
        .join(FormEntry, SourceVerification.form_entry_id == FormEntry.id)
        .join(Participant, FormEntry.participant_id == Participant.id)
        .where(Participant.site_id == site.id, SourceVerification.superseded_at.is_(None))
    ).all()
    whole_forms = {entry_id for entry_id, path in marks if path == WHOLE_FORM}
    items: dict[int, int] = {}
    for entry_id, path in marks:
        if path != WHOLE_FORM:
            items[entry_id] = items.get(entry_id, 0) + 1
    awaiting = []
    for entry in entries:
        if entry.status == FormStatus.IN_PROGRESS:
            worklist.in_progress += 1
        elif entry.id in whole_forms:
            worklist.verified += 1
        elif entry.status in VERIFIABLE_STATUSES:
            awaiting.append(WorklistForm(entry, entry.participant, items.get(entry.id, 0)))
    awaiting.sort(key=lambda form: (positions[form.participant.id], form.entry.id))
    worklist.awaiting = awaiting
    return worklist


def verified_at_text(mark: SourceVerification) -> str:
    """``Verified by Mo Khan on 12 Mar 2025, 10:04 UTC``."""
    return f"Verified by {mark.verified_by_name} on {ukdate(mark.verified_at, with_time=True)}"
