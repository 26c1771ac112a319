"""Participants from screening to completion: registration, direct identifiers,
consent, eligibility, status and visits.

Every change goes through the ORM inside :func:`~bhp_ctms.audit.capture.acting_as`,
so the audit capture writes one event per changed value; changes that need a reason
run inside :func:`~bhp_ctms.audit.capture.change_reason` and raise
:class:`~bhp_ctms.audit.capture.ReasonRequired` without one. Nothing here knows about
HTTP; a refusal is a :class:`ParticipantError` naming the value at fault.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bhp_ctms.accounts.models import User
from bhp_ctms.accounts.services import AccountService
from bhp_ctms.audit.capture import acting_as, change_reason
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.db import utc_today, utcnow
from bhp_ctms.participants.consent import (
    ConsentStatus,
    child_age_problem,
    consent_entry_problem,
    consent_giver_problem,
    reconsent_reasons,
)
from bhp_ctms.participants.eligibility import (
    assessment_date_problem,
    confirmation_problem,
    criterion_answers,
    eligibility_outcome,
    unanswered_criterion,
)
from bhp_ctms.participants.identifiers import (
    Identifiers,
    decrypt_identifiers,
    encrypt_identifiers,
    name_dob_digest,
    nhs_number_digest,
)
from bhp_ctms.participants.models import (
    ConsentGivenBy,
    ConsentKind,
    ConsentRecord,
    EligibilityAssessment,
    EligibilityOutcome,
    ExclusionReason,
    Participant,
    ParticipantIdentifiers,
    ParticipantSequence,
    ParticipantStatus,
    Visit,
    VisitStatus,
    WithdrawalType,
)
from bhp_ctms.participants.registration import (
    identifiers_problem,
    recorded_date_problem,
    registered_identifiers_problem,
    where_registered,
)
from bhp_ctms.participants.status import (
    Status,
    randomisation_refusals,
    status_change_problem,
    status_entry_problem,
)
from bhp_ctms.participants.visits import visit_entry_problem, visit_instance_problem
from bhp_ctms.settings import Settings
from bhp_ctms.sites.models import Site, SiteStatus
from bhp_ctms.studies.definition import StudyDefinition
from bhp_ctms.studies.models import Study, StudyStatus
from bhp_ctms.studies.services import current_protocol_version, protocol_definition


class ParticipantError(ValueError):
    """A change to a participant that cannot be made. ``field`` names the value at fault
    (None: the change as a whole); ``reasons`` lists every reason when there are several."""

    def __init__(self, message: str, field: str | None = None, reasons: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.reasons = list(reasons) or [message]


class ParticipantService:
    """Registering participants and recording what happens to them."""

    def __init__(
        self, db: Session, settings: Settings, today: Callable[[], date] | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.today = today or utc_today

    # -- registration -----------------------------------------------------------------

    def register(
        self,
        actor: AuditActor,
        site: Site,
        *,
        registered_on: date,
        is_child: bool,
        identifiers: Identifiers | None = None,
        confirm_not_duplicate: bool = False,
    ) -> Participant:
        """Screen a person at an open site of a recruiting study: they get the site's next
        study ID, gap-free even under concurrent registrations, and the protocol version
        in effect."""
        study = self.db.get_one(Study, site.study_id)
        version = current_protocol_version(self.db, study.id, self.today())
        problem = self.registration_problem(site)
        if problem or version is None:
            raise ParticipantError(problem or "No protocol version is in effect")
        if registered_on > self.today():
            raise ParticipantError("Date of registration cannot be in the future", "registered_on")
        if is_child and not protocol_definition(version).children:
            raise ParticipantError("This study does not recruit children (under 16)", "is_child")
        values = self._checked(identifiers or Identifiers())
        recruits = protocol_definition(version).children
        fault = child_age_problem(values.date_of_birth, is_child, registered_on, recruits)
        if fault:
            raise ParticipantError(*fault)
        self._refuse_duplicates(site, values, confirm_not_duplicate)

        sequence = self._next_sequence(site.id)
        participant = Participant(
            study_id=study.id,
            site=site,
            code=study.participant_id_pattern.format(
                study=study.code, site=site.code, seq=sequence
            ),
            sequence=sequence,
            status=Status.SCREENED,
            protocol_version=version,
            registered_on=registered_on,
            is_child=is_child,
            status_on=registered_on,
            status_details="",
            created_at=utcnow(),
        )
        with acting_as(self.db, actor):
            self.db.add(participant)
            if not values.is_empty:
                self.db.flush()
                self.db.add(self._identifiers_row(participant, values))
        return participant

    def registration_problem(self, site: Site) -> str | None:
        """Why nobody can be registered at this site today, or None if they can."""
        study = self.db.get_one(Study, site.study_id)
        if site.status != SiteStatus.OPEN:
            return f"Site {site.code} is {site.status.label.lower()}: only open sites can recruit"
        if study.status != StudyStatus.RECRUITING:
            return (
                f"Study {study.code} is {study.status.label.lower()}: participants can be "
                "registered only while it is recruiting"
            )
        if current_protocol_version(self.db, study.id, self.today()) is None:
            return (
                f"Study {study.code} has no protocol version in effect yet: participants can "
                "be registered once one is"
            )
        return None

    def _next_sequence(self, site_id: int) -> int:
        """The site's next number, in the caller's transaction: the UPDATE holds the
        counter's row lock (PostgreSQL) or the write lock (SQLite) until commit, and a
        rollback gives the number back."""
        dialect = self.db.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        self.db.execute(
            insert(ParticipantSequence)
            .values(site_id=site_id, last_sequence=0)
            .on_conflict_do_nothing(index_elements=["site_id"])
        )
        return self.db.execute(
            update(ParticipantSequence)
            .where(ParticipantSequence.site_id == site_id)
            .values(last_sequence=ParticipantSequence.last_sequence + 1)
            .returning(ParticipantSequence.last_sequence)
        ).scalar_one()

    # -- identifiers ---------------------------------------------------------------------

    def read_identifiers(self, participant: Participant) -> Identifiers | None:
        """The participant's direct identifiers, decrypted; None if none are held."""
        row = self.db.get(ParticipantIdentifiers, participant.id)
        return None if row is None else decrypt_identifiers(self.settings.secret_key, row)

    def set_identifiers(
        self,
        actor: AuditActor,
        participant: Participant,
        identifiers: Identifiers,
        *,
        confirm_not_duplicate: bool = False,
    ) -> bool:
        """Record the participant's identifiers (blank values clear them); returns whether
        anything changed. Only the values that changed are written again."""
        values = self._checked(identifiers)
        fault = registered_identifiers_problem(participant, values)
        if fault:
            raise ParticipantError(*fault)
        self._refuse_duplicates(participant.site, values, confirm_not_duplicate, participant.id)
        row = self.db.get(ParticipantIdentifiers, participant.id)
        if row is None:
            if values.is_empty:
                return False
            with acting_as(self.db, actor):
                self.db.add(self._identifiers_row(participant, values))
            return True
        held = decrypt_identifiers(self.settings.secret_key, row)
        sealed = encrypt_identifiers(self.settings.secret_key, values)
        # Encryption is randomised: a value is written again only when it changed.
        changes = {
            f"{name}_encrypted": sealed[f"{name}_encrypted"]
            for name in ("full_name", "date_of_birth", "nhs_number")
            if getattr(held, name) != getattr(values, name)
        }
        changes.update(
            {
                name: sealed[name]
                for name in ("nhs_number_hmac", "name_dob_hmac")
                if getattr(row, name) != sealed[name]
            }
        )
        if not changes:
            return False
        with acting_as(self.db, actor):
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
        return True

    def _identifiers_row(
        self, participant: Participant, values: Identifiers
    ) -> ParticipantIdentifiers:
        return ParticipantIdentifiers(
            participant_id=participant.id,
            study_id=participant.study_id,
            site_id=participant.site_id,
            updated_at=utcnow(),
            **encrypt_identifiers(self.settings.secret_key, values),
        )

    def _checked(self, identifiers: Identifiers) -> Identifiers:
        values = identifiers.normalised()
        fault = identifiers_problem(values, self.today())
        if fault:
            raise ParticipantError(*fault)
        return values

    def _refuse_duplicates(
        self,
        site: Site,
        values: Identifiers,
        confirm_not_duplicate: bool,
        participant_id: int | None = None,
    ) -> None:
        """Refuse a person already registered in the study, found by keyed digest.

        The search covers every site of the study, as it must to find duplicates, but
        names the participant found only when they are at the same site.
        """
        secret = self.settings.secret_key
        if values.nhs_number:
            found = self._match(
                site.study_id,
                ParticipantIdentifiers.nhs_number_hmac
                == nhs_number_digest(secret, values.nhs_number),
                participant_id,
            )
            if found is not None:
                raise ParticipantError(
                    "A participant with this NHS number is already registered in this study"
                    + where_registered(found, site),
                    "nhs_number",
                )
        if values.full_name and values.date_of_birth and not confirm_not_duplicate:
            found = self._match(
                site.study_id,
                ParticipantIdentifiers.name_dob_hmac
                == name_dob_digest(secret, values.full_name, values.date_of_birth),
                participant_id,
            )
            if found is not None:
                raise ParticipantError(
                    "A participant with this name and date of birth is already registered in "
                    f"this study{where_registered(found, site)}. If this is a different person, "
                    "tick the box to confirm it",
                    "confirm_not_duplicate",
                )

    def _match(
        self, study_id: int, condition: ColumnElement[bool], participant_id: int | None
    ) -> tuple[str, int] | None:
        statement = (
            select(Participant.code, Participant.site_id)
            .join(ParticipantIdentifiers, ParticipantIdentifiers.participant_id == Participant.id)
            .where(ParticipantIdentifiers.study_id == study_id, condition)
            .order_by(Participant.id)
            .limit(1)
        )
        if participant_id is not None:
            statement = statement.where(Participant.id != participant_id)
        row = self.db.execute(statement).first()
        return None if row is None else (row.code, row.site_id)

    # -- consent ---------------------------------------------------------------------------

    def record_consent(
        self,
        actor: AuditActor,
        participant: Participant,
        *,
        kind: ConsentKind,
        given_by: ConsentGivenBy,
        information_sheet_version: str,
        form_version: str,
        consented_on: date | None,
        taken_by: str,
    ) -> ConsentRecord:
        """Record a consent (or a child's assent) given on named document versions; the
        first consent makes a screened participant consented."""
        information_sheet_version = information_sheet_version.strip()
        form_version = form_version.strip()
        taken_by = " ".join(taken_by.split())
        fault = consent_entry_problem(
            participant,
            kind,
            information_sheet_version,
            form_version,
            consented_on,
            taken_by,
            self.today(),
        )
        if fault:
            raise ParticipantError(*fault)
        assert consented_on is not None  # checked above
        born = self._child_born(participant)
        fault = consent_giver_problem(participant.is_child, born, kind, given_by, consented_on)
        if fault:
            raise ParticipantError(*fault)
        version = current_protocol_version(self.db, participant.study_id, consented_on)
        record = ConsentRecord(
            participant=participant,
            protocol_version_id=(version or participant.protocol_version).id,
            kind=kind,
            given_by=given_by,
            information_sheet_version=information_sheet_version,
            form_version=form_version,
            consented_on=consented_on,
            taken_by=taken_by,
            recorded_at=utcnow(),
        )
        with acting_as(self.db, actor):
            self.db.add(record)
            if kind == ConsentKind.CONSENT and participant.status == Status.SCREENED:
                participant.status = Status.CONSENTED
                participant.status_on = consented_on
        return record

    def _child_born(self, participant: Participant) -> date | None:
        """A child's date of birth, when held; None for an adult."""
        identifiers = self.read_identifiers(participant) if participant.is_child else None
        return identifiers.date_of_birth if identifiers is not None else None

    def consent_status(
        self, participant: Participant, today: date | None = None, *, with_birthday: bool = True
    ) -> ConsentStatus:
        """Whether the participant's latest consent is on the documents in use today and,
        for a child, given by them once they reached 16.

        ``with_birthday=False`` leaves the date they turned 16 out of the reasons, for
        people who may not see the participant's date of birth.
        """
        today = today or self.today()
        consents = [c for c in participant.consents if c.kind == ConsentKind.CONSENT]
        if not consents:
            return ConsentStatus(False, False, ["No consent has been recorded"])
        version = current_protocol_version(self.db, participant.study_id, today)
        documents = protocol_definition(version or participant.protocol_version).consent
        reasons = reconsent_reasons(
            participant.consents,
            documents,
            is_child=participant.is_child,
            born=self._child_born(participant),
            today=today,
            with_birthday=with_birthday,
        )
        return ConsentStatus(current=not reasons, needs_reconsent=bool(reasons), reasons=reasons)

    # -- eligibility ---------------------------------------------------------------------

    def assess_eligibility(
        self,
        actor: AuditActor,
        participant: Participant,
        answers: Mapping[str, str],
        assessed_on: date | None,
        assessor_user_id: int,
    ) -> EligibilityAssessment:
        """Record the answers to every eligibility criterion of the participant's protocol
        version and evaluate them; the PI confirms the outcome separately."""
        if participant.status != Status.CONSENTED:
            raise ParticipantError(
                "Eligibility is assessed once the participant has consented, until it is "
                f"confirmed: this participant is {participant.status.label.lower()}"
            )
        definition = self.definition_of(participant)
        fault = unanswered_criterion(definition, answers)
        if fault:
            raise ParticipantError(*fault)
        recorded = criterion_answers(definition, answers)
        problem = assessment_date_problem(participant, assessed_on, self.today())
        if problem:
            raise ParticipantError(problem, "assessed_on")
        assessment = EligibilityAssessment(
            participant=participant,
            protocol_version_id=participant.protocol_version_id,
            answers=recorded,
            outcome=eligibility_outcome(definition, recorded),
            assessed_on=assessed_on,
            assessed_by_id=assessor_user_id,
        )
        with acting_as(self.db, actor):
            self.db.add(assessment)
        return assessment

    def confirm_eligibility(
        self,
        actor: AuditActor,
        participant: Participant,
        assessment: EligibilityAssessment,
        confirmer: User,
        password: str,
    ) -> None:
        """The PI (or delegate) confirms the latest assessment, re-authenticating with
        their password; the participant becomes eligible or ineligible."""
        problem = confirmation_problem(participant, assessment)
        if problem:
            raise ParticipantError(problem)
        if not AccountService(self.db, self.settings).verify_password(confirmer, password):
            raise ParticipantError("Your password is not right", "password")
        eligible = assessment.outcome == EligibilityOutcome.ELIGIBLE
        with acting_as(self.db, actor):
            assessment.confirmed_by_id = confirmer.id
            assessment.confirmed_at = utcnow()
            participant.status = Status.ELIGIBLE if eligible else Status.INELIGIBLE
            participant.status_on = self.today()

    # -- status --------------------------------------------------------------------------

    def change_status(
        self,
        actor: AuditActor,
        participant: Participant,
        new_status: ParticipantStatus,
        *,
        on: date | None,
        details: str,
        withdrawal_type: WithdrawalType | None = None,
        exclusion_reason: ExclusionReason | None = None,
        reason_for_change: str = "",
    ) -> None:
        """Move the participant to another status, if the move is allowed."""
        problem = status_change_problem(participant, new_status)
        if problem:
            raise ParticipantError(problem, "status")
        details = details.strip()
        fault = status_entry_problem(
            participant, new_status, on, details, withdrawal_type, exclusion_reason, self.today()
        )
        if fault:
            raise ParticipantError(*fault)
        with acting_as(self.db, actor), change_reason(self.db, reason_for_change):
            participant.status = new_status
            participant.status_on = on
            participant.status_details = details
            if new_status == Status.WITHDRAWN:
                participant.withdrawal_type = withdrawal_type
            if new_status == Status.NOT_ENROLLED:
                participant.exclusion_reason = exclusion_reason

    def randomisation_refusals(
        self, participant: Participant, today: date | None = None
    ) -> list[str]:
        """Every reason the participant cannot be randomised today; [] when they can."""
        # Without the 16th birthday: a refusal must never reveal a date of birth.
        consent = self.consent_status(participant, today or self.today(), with_birthday=False)
        return randomisation_refusals(participant, consent)

    def mark_randomised(self, actor: AuditActor, participant: Participant, on: date) -> None:
        """Record that an eligible participant with current consent was randomised on a
        day; refused, with every reason, otherwise."""
        refusals = self.randomisation_refusals(participant)
        if refusals:
            raise ParticipantError(
                f"Participant {participant.code} cannot be randomised: " + "; ".join(refusals),
                reasons=refusals,
            )
        problem = recorded_date_problem(participant, on, self.today(), "The date of randomisation")
        if problem:
            raise ParticipantError(problem, "randomised_on")
        with acting_as(self.db, actor):
            participant.status = Status.RANDOMISED
            participant.randomised_on = on
            participant.status_on = on

    # -- visits ----------------------------------------------------------------------------

    def record_visit(
        self,
        actor: AuditActor,
        participant: Participant,
        event_code: str,
        instance: int,
        *,
        status: VisitStatus,
        visit_on: date | None,
        not_done_reason: str,
        reason_for_change: str = "",
    ) -> Visit:
        """Record one of the participant's events (an instance of a repeating one) as
        done on a day or not done. Changing a recorded visit needs a reason for change."""
        definition = self.definition_of(participant)
        fault = visit_instance_problem(participant, definition, event_code, instance)
        if fault:
            raise ParticipantError(*fault)
        existing = self.visit(participant, event_code, instance)
        not_done_reason = not_done_reason.strip()
        fault = visit_entry_problem(participant, status, visit_on, not_done_reason, self.today())
        if fault:
            raise ParticipantError(*fault)
        if status == VisitStatus.DONE:
            not_done_reason = ""
        else:
            visit_on = None
        if existing is None:
            visit = Visit(
                participant=participant,
                event_code=event_code,
                instance=instance,
                protocol_version_id=participant.protocol_version_id,
                status=status,
                visit_on=visit_on,
                not_done_reason=not_done_reason,
                recorded_at=utcnow(),
            )
            with acting_as(self.db, actor):
                self.db.add(visit)
            return visit
        values = {"status": status, "visit_on": visit_on, "not_done_reason": not_done_reason}
        changed = {
            name: value for name, value in values.items() if getattr(existing, name) != value
        }
        if changed:
            with acting_as(self.db, actor), change_reason(self.db, reason_for_change):
                for name, value in changed.items():
                    setattr(existing, name, value)
        return existing

    def visit(self, participant: Participant, event_code: str, instance: int) -> Visit | None:
        for visit in participant.visits:
            if visit.event_code == event_code and visit.instance == instance:
                return visit
        return None

    # -- shared ------------------------------------------------------------------------------

    def definition_of(self, participant: Participant) -> StudyDefinition:
        """The study definition of the protocol version the participant is on."""
        return protocol_definition(participant.protocol_version)

    def user_names(self, user_ids: Iterable[int | None]) -> dict[int, str]:
        """The full names of users (assessors, confirmers), by id."""
        ids = {user_id for user_id in user_ids if user_id is not None}
        if not ids:
            return {}
        users = self.db.scalars(select(User).where(User.id.in_(ids)))
        return {user.id: user.full_name for user in users}
