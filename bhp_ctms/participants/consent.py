"""Consent: who may give it at what age, and whether a participant's consent still
covers them or re-consent is needed.

Pure rules of the participant's records and the documents in use; the service reads
those (the documents of the protocol version in effect, the date of birth from the
encrypted identifiers) and records consents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from bhp_ctms.participants.models import (
    ConsentGivenBy,
    ConsentKind,
    ConsentRecord,
    Participant,
)
from bhp_ctms.participants.registration import recorded_date_problem
from bhp_ctms.participants.status import ENDED
from bhp_ctms.studies.definition import ConsentDocuments
from bhp_ctms.templating import ukdate

CHILD_AGE = 16


@dataclass(frozen=True)
class ConsentStatus:
    """Whether a participant's consent covers them today, and if not, why not."""

    current: bool
    needs_reconsent: bool
    reasons: list[str]


def sixteenth_birthday(born: date) -> date:
    try:
        return born.replace(year=born.year + CHILD_AGE)
    except ValueError:  # born on 29 February
        return date(born.year + CHILD_AGE, 3, 1)


def child_age_problem(
    born: date | None, is_child: bool, on: date, recruits_children: bool
) -> tuple[str, str] | None:
    """Why a date of birth does not fit registering the participant as a child (or an
    adult) on a day, as (message, field at fault); None when it fits."""
    if is_child and born is None:
        return (
            "Enter the child's date of birth: it shows when they reach 16 and must give "
            "their own consent",
            "date_of_birth",
        )
    if born is None:
        return None
    if born > on:
        return "Date of birth cannot be after the date of registration", "date_of_birth"
    if is_child and sixteenth_birthday(born) <= on:
        return (
            f"The participant was 16 or over on {ukdate(on)}: register them as an adult",
            "is_child",
        )
    if not is_child and sixteenth_birthday(born) > on:
        if not recruits_children:
            return (
                f"The participant was under 16 on {ukdate(on)}: this study does not "
                "recruit children",
                "date_of_birth",
            )
        return (
            f"The participant was under 16 on {ukdate(on)}: register them as a child",
            "is_child",
        )
    return None


# The lengths of the consent record's columns.
VERSION_LENGTH = 32
TAKEN_BY_LENGTH = 200


def consent_entry_problem(
    participant: Participant,
    kind: ConsentKind,
    information_sheet_version: str,
    form_version: str,
    consented_on: date | None,
    taken_by: str,
    today: date,
) -> tuple[str, str | None] | None:
    """Why a consent (or assent) cannot be recorded, its values already trimmed, as
    (message, field at fault: None for the participant); None when it can."""
    if participant.status in ENDED:
        return (
            "Consent cannot be recorded for a participant who is "
            f"{participant.status.label.lower()}",
            None,
        )
    document = "assent form" if kind == ConsentKind.ASSENT else "consent form"
    if not information_sheet_version:
        return "Enter the version of the information sheet", "information_sheet_version"
    if len(information_sheet_version) > VERSION_LENGTH:
        return (
            f"The information sheet version must be {VERSION_LENGTH} characters or fewer",
            "information_sheet_version",
        )
    if not form_version:
        return f"Enter the version of the {document}", "form_version"
    if len(form_version) > VERSION_LENGTH:
        return (
            f"The {document} version must be {VERSION_LENGTH} characters or fewer",
            "form_version",
        )
    if consented_on is None:
        return f"Enter the date of {kind.value}", "consented_on"
    problem = recorded_date_problem(participant, consented_on, today, f"The date of {kind.value}")
    if problem:
        return problem, "consented_on"
    if not taken_by:
        return f"Enter the name of the person who took {kind.value}", "taken_by"
    if len(taken_by) > TAKEN_BY_LENGTH:
        return f"The name must be {TAKEN_BY_LENGTH} characters or fewer", "taken_by"
    return None


def consent_giver_problem(
    is_child: bool, born: date | None, kind: ConsentKind, given_by: ConsentGivenBy, on: date
) -> tuple[str, str] | None:
    """Why this consent (or assent) cannot be given by ``given_by`` on a day, as
    (message, field at fault); None when it can. ``born`` is a child's date of birth."""
    if not is_child:
        if kind == ConsentKind.ASSENT:
            return (
                "Assent is given only by a child, beside the consent of a person with "
                "parental responsibility: record an adult's own consent",
                "kind",
            )
        if given_by != ConsentGivenBy.PARTICIPANT:
            return "An adult participant gives their own consent", "given_by"
        return None
    sixteen = sixteenth_birthday(born) if born else None
    grown_up = sixteen is not None and on >= sixteen
    if kind == ConsentKind.ASSENT:
        if given_by != ConsentGivenBy.PARTICIPANT:
            return "Assent is given by the child themself", "given_by"
        if grown_up:
            return (
                f"The participant was 16 or over on {ukdate(on)}: they give their own "
                "consent, not assent",
                "kind",
            )
    elif given_by == ConsentGivenBy.PARTICIPANT and not grown_up:
        return (
            "A child under 16 does not give their own consent: record the consent of a "
            "person with parental responsibility (or a legal representative), and the "
            "child's assent",
            "given_by",
        )
    elif given_by != ConsentGivenBy.PARTICIPANT and grown_up:
        return (
            f"The participant was 16 or over on {ukdate(on)}: they give their own consent",
            "given_by",
        )
    return None


def reconsent_reasons(
    records: Sequence[ConsentRecord],
    documents: ConsentDocuments,
    *,
    is_child: bool,
    born: date | None,
    today: date,
    with_birthday: bool = True,
) -> list[str]:
    """Why the participant's consent no longer covers them today: documents in use that
    are newer than those signed and, for a child, reaching 16 without giving their own
    consent; [] when it still does.

    ``records`` are the participant's consents and assents, at least one a consent;
    ``born`` is a child's date of birth, when known.
    """
    consents = [c for c in records if c.kind == ConsentKind.CONSENT]
    latest = max(consents, key=lambda c: (c.consented_on, c.id))
    reasons = _newer_documents(
        "consent",
        latest,
        documents.information_sheet,
        documents.consent_form,
        "Consent form",
    )
    sixteen = sixteenth_birthday(born) if is_child and born is not None else None
    if sixteen is not None and today >= sixteen:
        own = [
            c
            for c in consents
            if c.given_by == ConsentGivenBy.PARTICIPANT and c.consented_on >= sixteen
        ]
        if not own:
            when = f" on {ukdate(sixteen)}" if with_birthday else ""
            reasons.append(f"Reached 16{when}: their own consent is needed")
    elif is_child and documents.assent_form:
        assents = [c for c in records if c.kind == ConsentKind.ASSENT]
        if assents:
            reasons += _newer_documents(
                "assent",
                max(assents, key=lambda c: (c.consented_on, c.id)),
                documents.child_information_sheet or "",
                documents.assent_form,
                "Assent form",
                sheet="Child information sheet",
            )
    return reasons


def _newer_documents(
    what: str,
    latest: ConsentRecord,
    information_sheet: str,
    form: str,
    form_label: str,
    sheet: str = "Information sheet",
) -> list[str]:
    """Why the documents in use differ from those a consent (or assent) was given on."""
    reasons = []
    if information_sheet and information_sheet != latest.information_sheet_version:
        reasons.append(
            f"{sheet} version {information_sheet} has been issued: {what} was given on "
            f"version {latest.information_sheet_version}"
        )
    if form and form != latest.form_version:
        reasons.append(
            f"{form_label} version {form} has been issued: {what} was given on version "
            f"{latest.form_version}"
        )
    return reasons
