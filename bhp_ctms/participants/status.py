"""Where a participant's status may go, and why a move is refused.

Pure rules of the participant and their records: the service applies them inside a
transaction and raises :class:`~bhp_ctms.participants.services.ParticipantError` with
the problems found here.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from bhp_ctms.participants.eligibility import latest_assessment
from bhp_ctms.participants.models import (
    EligibilityOutcome,
    ExclusionReason,
    Participant,
    ParticipantStatus,
    WithdrawalType,
)
from bhp_ctms.participants.registration import recorded_date_problem
from bhp_ctms.sites.models import SiteStatus

if TYPE_CHECKING:  # consent imports ENDED from here: only the type is needed
    from bhp_ctms.participants.consent import ConsentStatus

Status = ParticipantStatus

# Where a participant's status may go from each status. Some moves are made only by
# their own step (STEP_TRANSITIONS), never by changing the status directly.
TRANSITIONS: dict[ParticipantStatus, frozenset[ParticipantStatus]] = {
    Status.SCREENED: frozenset({Status.CONSENTED, Status.NOT_ENROLLED}),
    Status.CONSENTED: frozenset(
        {Status.ELIGIBLE, Status.INELIGIBLE, Status.NOT_ENROLLED, Status.WITHDRAWN}
    ),
    Status.ELIGIBLE: frozenset({Status.RANDOMISED, Status.NOT_ENROLLED, Status.WITHDRAWN}),
    Status.INELIGIBLE: frozenset({Status.NOT_ENROLLED}),
    Status.RANDOMISED: frozenset(
        {Status.COMPLETED, Status.WITHDRAWN, Status.LOST_TO_FOLLOW_UP, Status.DIED}
    ),
    # Only after withdrawal from treatment: follow-up goes on, so these can still follow.
    Status.WITHDRAWN: frozenset(
        {Status.WITHDRAWN, Status.COMPLETED, Status.LOST_TO_FOLLOW_UP, Status.DIED}
    ),
    # Found again only to learn they died: the change needs a reason, as the participant
    # model requires of any change to one whose participation has ended.
    Status.LOST_TO_FOLLOW_UP: frozenset({Status.DIED}),
    Status.DIED: frozenset(),
    Status.COMPLETED: frozenset(),
    Status.NOT_ENROLLED: frozenset(),
}

# Moves made only by their own step, with the step that makes them.
STEP_TRANSITIONS: dict[tuple[ParticipantStatus, ParticipantStatus], str] = {
    (Status.SCREENED, Status.CONSENTED): "when their consent is recorded",
    (Status.CONSENTED, Status.ELIGIBLE): "when the PI confirms their eligibility assessment",
    (Status.CONSENTED, Status.INELIGIBLE): "when the PI confirms their eligibility assessment",
    (Status.ELIGIBLE, Status.RANDOMISED): "when they are randomised",
}

# Statuses whose participation has ended: no consent or eligibility is recorded for them.
ENDED = frozenset(
    {
        Status.INELIGIBLE,
        Status.NOT_ENROLLED,
        Status.COMPLETED,
        Status.LOST_TO_FOLLOW_UP,
        Status.DIED,
    }
)

# Each withdrawal allows less to continue than the one before it.
WITHDRAWAL_ORDER = (WithdrawalType.TREATMENT, WithdrawalType.FOLLOW_UP, WithdrawalType.DATA_USE)


def allowed_transitions(participant: Participant) -> frozenset[ParticipantStatus]:
    """Every status the participant's status may go to next, by any step."""
    if participant.status == Status.WITHDRAWN:
        if participant.withdrawal_type == WithdrawalType.FOLLOW_UP:
            # Still free to withdraw their data from any further use (UK GDPR).
            return frozenset({Status.WITHDRAWN})
        if participant.withdrawal_type == WithdrawalType.DATA_USE:
            return frozenset()
    return TRANSITIONS[participant.status]


def manual_transitions(participant: Participant) -> list[ParticipantStatus]:
    """The statuses a user may change the participant's status to, in protocol order."""
    allowed = allowed_transitions(participant)
    return [
        status
        for status in ParticipantStatus
        if status in allowed and (participant.status, status) not in STEP_TRANSITIONS
    ]


def status_change_problem(participant: Participant, new: ParticipantStatus) -> str | None:
    """Why the participant's status cannot be changed to ``new``, or None if it can."""
    current = participant.status
    if new == current and new != Status.WITHDRAWN:
        return f"The participant is already {current.label.lower()}"
    step = STEP_TRANSITIONS.get((current, new))
    if step is not None:
        return f"A participant becomes {new.label.lower()} only {step}"
    if new in allowed_transitions(participant):
        return None
    refusal = (
        f"A participant whose status is {current.label.lower()} "
        f"cannot be marked {new.label.lower()}"
    )
    possible = manual_transitions(participant)
    if not possible:
        return refusal + ": their participation has ended"
    return (
        refusal
        + ": they can only be marked "
        + " or ".join(status.label.lower() for status in possible)
    )


def status_entry_problem(
    participant: Participant,
    new_status: ParticipantStatus,
    on: date | None,
    details: str,
    withdrawal_type: WithdrawalType | None,
    exclusion_reason: ExclusionReason | None,
    today: date,
) -> tuple[str, str] | None:
    """What a change of status allowed by :func:`status_change_problem` lacks (the date it
    took effect; for a withdrawal or a non-enrolment, what it must record), as (message,
    field at fault); None when it lacks nothing. ``details`` is already trimmed."""
    if on is None:
        return "Enter the date the status took effect", "status_on"
    problem = recorded_date_problem(participant, on, today, "The date")
    if problem:
        return problem, "status_on"
    if new_status == Status.WITHDRAWN:
        if withdrawal_type is None:
            return "Choose what the participant has withdrawn from", "withdrawal_type"
        held = participant.withdrawal_type
        if (
            participant.status == Status.WITHDRAWN
            and held is not None
            and (WITHDRAWAL_ORDER.index(withdrawal_type) <= WITHDRAWAL_ORDER.index(held))
        ):
            return (
                "The participant has already withdrawn from treatment: choose a further "
                "withdrawal, from follow-up or from any further use of their data",
                "withdrawal_type",
            )
        if not details:
            return "Enter the reason for the withdrawal", "details"
    if new_status == Status.NOT_ENROLLED:
        if exclusion_reason is None:
            return "Choose why the participant was not enrolled", "exclusion_reason"
        if exclusion_reason == ExclusionReason.OTHER and not details:
            return "Enter the reason the participant was not enrolled", "details"
    return None


def randomisation_refusals(participant: Participant, consent: ConsentStatus) -> list[str]:
    """Every reason the participant cannot be randomised, given their consent status
    today; [] when they can."""
    refusals = []
    if participant.status != Status.ELIGIBLE:
        refusals.append(
            f"The participant is {participant.status.label.lower()}: only an eligible "
            "participant can be randomised"
        )
    assessment = latest_assessment(participant)
    if assessment is None:
        refusals.append("Eligibility has not been assessed")
    elif assessment.confirmed_at is None:
        refusals.append("Eligibility has not been confirmed by the PI")
    elif assessment.outcome != EligibilityOutcome.ELIGIBLE:
        refusals.append("The PI confirmed the participant is not eligible")
    if not consent.current:
        refusals.append("Consent is not current: " + "; ".join(consent.reasons))
    site = participant.site
    if site.status != SiteStatus.OPEN:
        refusals.append(
            f"Site {site.code} is {site.status.label.lower()}: only open sites can randomise"
        )
    return refusals
