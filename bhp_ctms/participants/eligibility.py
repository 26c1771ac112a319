"""Eligibility: the answers to a protocol version's criteria and the outcome they give.

Pure rules of the study definition and the participant's records; the service records
assessments and their confirmation.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from bhp_ctms.participants.models import (
    ConsentKind,
    EligibilityAssessment,
    EligibilityOutcome,
    Participant,
    ParticipantStatus,
)
from bhp_ctms.participants.registration import recorded_date_problem
from bhp_ctms.studies.definition import StudyDefinition
from bhp_ctms.templating import ukdate

ANSWERS = ("yes", "no")


def latest_assessment(participant: Participant) -> EligibilityAssessment | None:
    assessments = participant.eligibility_assessments
    return assessments[-1] if assessments else None


def eligibility_outcome(
    definition: StudyDefinition, answers: Mapping[str, str]
) -> EligibilityOutcome:
    """Eligible when every inclusion criterion is answered yes and every exclusion no."""
    eligible = all(
        answers.get(criterion.code) == ("yes" if criterion.kind == "inclusion" else "no")
        for criterion in definition.criteria
    )
    return EligibilityOutcome.ELIGIBLE if eligible else EligibilityOutcome.INELIGIBLE


def criterion_answers(definition: StudyDefinition, answers: Mapping[str, str]) -> dict[str, str]:
    """The answer given to each criterion, trimmed and in lower case."""
    return {
        criterion.code: (answers.get(criterion.code) or "").strip().lower()
        for criterion in definition.criteria
    }


def unanswered_criterion(
    definition: StudyDefinition, answers: Mapping[str, str]
) -> tuple[str, str] | None:
    """The first criterion not answered yes or no, as (message, criterion code); None
    when every criterion is."""
    recorded = criterion_answers(definition, answers)
    for criterion in definition.criteria:
        if recorded[criterion.code] not in ANSWERS:
            return (
                f"Answer yes or no for the {criterion.kind} criterion: {criterion.text}",
                criterion.code,
            )
    return None


def assessment_date_problem(
    participant: Participant, assessed_on: date | None, today: date
) -> str | None:
    """Why an assessment cannot be dated ``assessed_on``: it falls between consent and
    today. None when it can."""
    if assessed_on is None:
        return "Enter the date of the assessment"
    problem = recorded_date_problem(participant, assessed_on, today, "The date of the assessment")
    if problem:
        return problem
    consented = min(
        (c.consented_on for c in participant.consents if c.kind == ConsentKind.CONSENT),
        default=None,
    )
    if consented is not None and assessed_on < consented:
        return f"The date of the assessment cannot be before consent, given on {ukdate(consented)}"
    return None


def confirmation_problem(participant: Participant, assessment: EligibilityAssessment) -> str | None:
    """Why the PI cannot confirm this assessment of the participant; None when they can."""
    if assessment.participant_id != participant.id:
        return "This assessment is not this participant's"
    if assessment.confirmed_at is not None:
        return "This assessment has already been confirmed"
    latest = latest_assessment(participant)
    if latest is not None and latest.id != assessment.id:
        return "A later assessment has been recorded: confirm that one"
    if participant.status != ParticipantStatus.CONSENTED:
        return (
            "Eligibility is confirmed for a consented participant: this participant is "
            f"{participant.status.label.lower()}"
        )
    return None
