"""Allocating participants, exactly once; marking an allocation invalid; emergency
unblinding.

Exactly once, on SQLite and PostgreSQL: an allocation first takes the participant's row
lock (PostgreSQL; SQLite has one writer at a time), then increments its stratum's
counter, which holds that stratum's lock until commit, so concurrent allocations in a
stratum take consecutive list positions. A second request for the same participant
waits, then finds the allocation and is refused. A transaction that started reading
before another committed is refused by the database (serialisation failure or a
stale SQLite snapshot) and retried from the start, as every request is. The unique
constraints on the participant, the list entry and the (stratum, position) pair are
the last line of defence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bhp_ctms.accounts.models import User
from bhp_ctms.accounts.services import (
    AccountService,
    LoginStatus,
    Reauthentication,
    ReauthenticationRefused,
)
from bhp_ctms.audit.capture import AuditContext, acting_as, change_reason
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.db import utc_today, utcnow
from bhp_ctms.mail.models import OutboundEmail
from bhp_ctms.mail.services import queue_email
from bhp_ctms.participants.models import Participant
from bhp_ctms.participants.services import ParticipantService
from bhp_ctms.randomisation.methods.lists import seeded_rng, stratum_key
from bhp_ctms.randomisation.methods.minimisation import choose, imbalance_scores
from bhp_ctms.randomisation.models import (
    Allocation,
    AllocationList,
    ListEntry,
    StratumCounter,
    Unblinding,
)
from bhp_ctms.randomisation.schemes import StudyScheme, participant_levels, study_scheme
from bhp_ctms.settings import Settings
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.models import Study
from bhp_ctms.templating import ukdate

ALREADY_RANDOMISED = "Participant {code} was already randomised on {on}: nothing was done"
NO_SCHEME = "The study's protocol has no randomisation section: participants are not randomised"
NO_LIST = (
    "The study has no allocation list yet: the trial statistician must generate or upload "
    "one before anyone is randomised"
)
NO_SEED = (
    "The trial statistician has not yet recorded the minimisation seed: nobody can be "
    "randomised until they do"
)
LIST_EXHAUSTED = (
    "The allocation list has no position left for {stratum}: nothing was allocated. Ask "
    "the trial statistician to extend it"
)
MINIMISATION_COUNTER = "minimisation"


class RandomisationRefused(Exception):
    """The participant cannot be randomised; ``reasons`` says every reason why, and
    nothing was allocated."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class UnblindingRefused(Exception):
    """Nothing was unblinded; ``field`` names the form field at fault, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Readiness:
    """Whether a participant can be randomised now, and the levels that decide how."""

    refusals: list[str]
    levels: dict[str, str]


def active_list(db: Session, study_id: int) -> AllocationList | None:
    return db.scalars(
        select(AllocationList).where(
            AllocationList.study_id == study_id, AllocationList.active.is_(True)
        )
    ).first()


def allocation_of(db: Session, participant_id: int) -> Allocation | None:
    return db.scalars(select(Allocation).where(Allocation.participant_id == participant_id)).first()


class RandomisationService:
    def __init__(
        self, db: Session, settings: Settings, today: Callable[[], date] | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.today = today or utc_today
        self.participants = ParticipantService(db, settings, self.today)

    # -- allocating ------------------------------------------------------------------------

    def readiness(self, participant: Participant, bound: StudyScheme | None) -> Readiness:
        """Every reason the participant cannot be randomised today, and their levels."""
        existing = allocation_of(self.db, participant.id)
        if existing is not None:
            on = ukdate(existing.allocated_at)
            return Readiness([ALREADY_RANDOMISED.format(code=participant.code, on=on)], {})
        if bound is None:
            return Readiness([NO_SCHEME], {})
        refusals = self.participants.randomisation_refusals(participant, self.today())
        the_list = active_list(self.db, participant.study_id)
        # A minimisation study needs its seed too: its random draws must be concealed
        # from everyone, yet reproducible by the statistician.
        if the_list is None:
            refusals.append(NO_LIST if bound.list_based else NO_SEED)
        site = self.db.get_one(Site, participant.site_id)
        levels, missing = participant_levels(self.db, bound, participant, site)
        return Readiness(refusals + missing, levels)

    def randomise(self, actor: AuditActor, participant: Participant) -> Allocation:
        """Allocate the participant to an arm, exactly once; raises
        :class:`RandomisationRefused` with every reason when they cannot be."""
        # The participant's row lock: a second request for them waits here, then sees
        # the first one's allocation.
        self.db.scalars(
            select(Participant.id).where(Participant.id == participant.id).with_for_update()
        ).first()
        study = self.db.get_one(Study, participant.study_id)
        bound = study_scheme(self.db, study)
        readiness = self.readiness(participant, bound)
        if readiness.refusals or bound is None:
            raise RandomisationRefused(readiness.refusals)
        the_list = active_list(self.db, study.id)
        with self.db.begin_nested():
            if bound.list_based:
                assert the_list is not None
                allocation = self._from_list(bound, the_list, participant, readiness.levels)
            else:
                allocation = self._minimised(bound, the_list, participant, readiness.levels)
            if allocation is None:
                # Leaving the block by the exception rolls the savepoint back: the
                # position taken is given back.
                stratum = bound.describe_stratum(stratum_key(bound.scheme, readiness.levels))
                raise RandomisationRefused([LIST_EXHAUSTED.format(stratum=stratum)])
            allocation.allocated_by_id = actor.user_id
            with acting_as(self.db, actor):
                self.db.add(allocation)
                self.db.flush()
            self.participants.mark_randomised(actor, participant, self.today())
        return allocation

    def _next_position(self, study_id: int, counter: str) -> int:
        """The next position of a counter, in the caller's transaction (see the module's
        docstring): the UPDATE holds the counter's lock until commit."""
        dialect = self.db.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        self.db.execute(
            insert(StratumCounter)
            .values(study_id=study_id, stratum=counter, last_sequence=0)
            .on_conflict_do_nothing(index_elements=["study_id", "stratum"])
        )
        return self.db.execute(
            update(StratumCounter)
            .where(StratumCounter.study_id == study_id, StratumCounter.stratum == counter)
            .values(last_sequence=StratumCounter.last_sequence + 1)
            .returning(StratumCounter.last_sequence)
        ).scalar_one()

    def _from_list(
        self,
        bound: StudyScheme,
        the_list: AllocationList,
        participant: Participant,
        levels: dict[str, str],
    ) -> Allocation | None:
        stratum = stratum_key(bound.scheme, levels)
        position = self._next_position(participant.study_id, f"list {the_list.id}: {stratum}")
        entry = self.db.scalars(
            select(ListEntry).where(
                ListEntry.list_id == the_list.id,
                ListEntry.stratum == stratum,
                ListEntry.sequence == position,
            )
        ).first()
        if entry is None:
            return None
        return Allocation(
            study_id=participant.study_id,
            site_id=participant.site_id,
            participant_id=participant.id,
            method=bound.method,
            list_entry_id=entry.id,
            stratum=stratum,
            sequence=position,
            arm_code=entry.arm_code,
            kit_code=entry.kit_code,
            factor_levels=levels,
        )

    def _minimised(
        self,
        bound: StudyScheme,
        the_list: AllocationList | None,
        participant: Participant,
        levels: dict[str, str],
    ) -> Allocation:
        # Taken first: the history read below then holds every earlier allocation.
        position = self._next_position(participant.study_id, MINIMISATION_COUNTER)
        history = self.db.execute(
            select(Allocation.factor_levels, Allocation.arm_code)
            .where(Allocation.study_id == participant.study_id)
            .order_by(Allocation.sequence)
        ).all()
        # An allocation made before an amendment added a factor has no level of it:
        # it cannot count towards that factor's balance, nor the others' (the
        # scores compare like with like).
        factors = {factor.code for factor in bound.factors}
        earlier = [(dict(row[0]), row[1]) for row in history if factors <= set(row[0])]
        scores = imbalance_scores(bound.scheme, earlier, levels)
        seed = the_list.seed if the_list is not None else ""
        rng = seeded_rng(f"{seed}/{position}")
        choice = choose(bound.scheme, scores, rng, allocated_before=position - 1)
        return Allocation(
            study_id=participant.study_id,
            site_id=participant.site_id,
            participant_id=participant.id,
            method=bound.method,
            stratum=MINIMISATION_COUNTER,
            sequence=position,
            arm_code=choice.arm,
            kit_code=self._kit_code(participant.study_id, seed, position, bound),
            factor_levels=levels,
            scores={**scores.to_json(), "chosen_by": choice.reason},
        )

    def _kit_code(self, study_id: int, seed: str, position: int, bound: StudyScheme) -> str | None:
        """A minimised allocation's pack number: random from the seed, unique in the
        study, saying nothing of the arm or the order."""
        if not bound.scheme.kit_codes:
            return None
        rng = seeded_rng(f"{seed}/kit/{position}")
        while True:
            code = f"{rng.randrange(100000, 1000000)}"
            taken = self.db.scalar(
                select(func.count(Allocation.id)).where(
                    Allocation.study_id == study_id, Allocation.kit_code == code
                )
            )
            if not taken:
                return code

    # -- after allocation --------------------------------------------------------------------

    def invalidate(self, actor: AuditActor, allocation: Allocation, reason: str) -> None:
        """Mark a randomisation done in error as invalid; its list position stays used
        and the participant is not randomised again."""
        reason = reason.strip()
        if not reason:
            raise ValueError("Enter why the randomisation was done in error")
        if not allocation.valid:
            raise ValueError("This randomisation is already marked invalid")
        with acting_as(self.db, actor), change_reason(self.db, reason):
            allocation.invalidated_at = utcnow()
            allocation.invalidated_by_id = actor.user_id
            allocation.invalid_reason = reason

    def unblind(
        self,
        actor: AuditActor,
        user: User,
        allocation: Allocation,
        *,
        role_label: str,
        reason: str,
        proof: Reauthentication,
    ) -> OutboundEmail:
        """Record an emergency unblinding after checking the requester's password (and
        code), and tell the trials unit by email. The caller shows the arm to the
        requester only. Raises :class:`UnblindingRefused` with nothing recorded but the
        refused attempt."""
        reason = reason.strip()
        if not reason:
            raise UnblindingRefused("Enter why the participant's arm must be known", "reason")
        participant = allocation.participant
        context = AuditContext(
            study_id=participant.study_id,
            site_id=participant.site_id,
            participant_id=participant.id,
        )
        try:
            AccountService(self.db, self.settings).reauthenticate(
                actor,
                user,
                proof,
                refused_action="unblinding.refused",
                context=context,
                details={"participant": participant.code},
            )
        except ReauthenticationRefused as refusal:
            raise UnblindingRefused(_refusal_message(refusal), refusal.field) from None
        with acting_as(self.db, actor):
            unblinding = Unblinding(
                allocation=allocation,
                user_id=user.id,
                user_name=user.full_name,
                user_role=role_label,
                reason=reason,
            )
            self.db.add(unblinding)
            self.db.flush()
        study = self.db.get_one(Study, participant.study_id)
        site = self.db.get_one(Site, participant.site_id)
        return queue_email(
            self.db,
            self.settings,
            kind="unblinding",
            study_id=study.id,
            to=[self.settings.ctu_email],
            subject=f"{study.code}: emergency unblinding of participant {participant.code}",
            body=(
                f"Participant {participant.code} of study {study.code} at site {site.code} "
                f"({site.name}) was unblinded in an emergency by {user.full_name} "
                f"({role_label}) on {ukdate(unblinding.unblinded_at, with_time=True)} UTC.\n\n"
                f"Reason given: {reason}\n\n"
                "The arm was shown to the person who asked only; it is not in this email. "
                "The unblinding is recorded in the study's audit trail."
            ),
        )


def _refusal_message(refusal: ReauthenticationRefused) -> str:
    if refusal.status == LoginStatus.LOCKED:
        until = ukdate(refusal.locked_until, with_time=True) if refusal.locked_until else ""
        return (
            f"Your account is locked after too many failed attempts, until {until}: nothing "
            "was unblinded. Ask the trials unit to unlock it, or call the emergency "
            "unblinding line"
        )
    if refusal.field == "password":
        return "Your password is not right: nothing was unblinded"
    return "The security code is not right, or it has already been used: nothing was unblinded"
