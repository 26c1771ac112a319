"""Randomising with many people at once, on SQLite and PostgreSQL: fifty requests for
one participant allocate them exactly once and refuse the rest, saying why; fifty
participants randomised together take fifty consecutive positions of their stratum's
list, each list entry once.

Each thread randomises through :class:`RandomisationService` in a session and
transaction of its own that really commits, retried from the start on a transient
database failure, as every request is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import argon2
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bhp_ctms.accounts.models import User
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.participants.models import Participant, ParticipantStatus
from bhp_ctms.randomisation.models import Allocation, ListEntry, StratumCounter
from bhp_ctms.randomisation.services import RandomisationRefused, RandomisationService
from bhp_ctms.sites.models import Site, SiteStatus
from bhp_ctms.studies.models import Blinding, ProtocolVersion, Study, StudyStatus
from bhp_ctms.templating import ukdate
from tests.concurrency import all_at_once, committed_engine, retried
from tests.databases import BACKENDS
from tests.factories import PASSWORD, definition_sha256, demo_definition
from tests.factories.randomisation import (
    SETTINGS,
    actor_of,
    eligible_participant,
    generated_list,
)

CROWD = 50
QUICK_HASHER = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
STRATUM = "site=NTH"


@pytest.fixture(params=BACKENDS)
def committed_database(request, tmp_path):
    """A database of its own (an SQLite file, or PostgreSQL) where writers really commit."""
    with committed_engine(request.param, tmp_path, "ctms_randomisation") as engine:
        yield engine


@dataclass(frozen=True)
class CommittedTrial:
    list_id: int
    coordinator: AuditActor
    # The participants' ids and codes, all eligible and not yet randomised.
    participants: list[tuple[int, str]]


def committed_trial(engine: Engine, participants: int) -> CommittedTrial:
    """The demo study (double-blind, permuted blocks stratified by site) with site NTH
    open, an allocation list of at least 60 positions in stratum site=NTH, and
    ``participants`` eligible participants there, committed."""
    with Session(engine) as session, session.begin():
        study = Study(
            code="DEMO",
            title="Daily walking after hip replacement",
            status=StudyStatus.RECRUITING,
            blinding=Blinding.DOUBLE,
        )
        site = Site(study=study, code="NTH", name="Northern General Hospital")
        site.status = SiteStatus.OPEN
        definition = demo_definition()
        version = ProtocolVersion(
            study=study,
            number=1,
            label="1.0",
            effective_on=date(2026, 1, 5),
            definition=definition,
            definition_sha256=definition_sha256(definition),
        )
        # The PI really confirms each participant's eligibility with her password; a
        # hash with argon2's cheapest parameters keeps fifty confirmations quick.
        password_hash = QUICK_HASHER.hash(PASSWORD)
        cora, priya, una = (
            User(username=username, full_name=name, email=f"{username}@example.org")
            for username, name in (
                ("cora", "Cora Coordinator"),
                ("priya", "Priya Investigator"),
                ("una", "Una Unblinded"),
            )
        )
        for user in (cora, priya, una):
            user.password_hash = password_hash
            user.is_active = True
        session.add_all([study, site, version, cora, priya, una])
        session.flush()
        made = generated_list(session, study, una, seed="crowd-2026", per_stratum=60)
        eligible = [eligible_participant(session, site, cora, priya) for _ in range(participants)]
        return CommittedTrial(
            list_id=made.id,
            coordinator=actor_of(cora),
            participants=[(participant.id, participant.code) for participant in eligible],
        )


def randomising(engine: Engine, actor: AuditActor, participant_id: int) -> Callable[[], int]:
    """A job that randomises the participant as one request would: the allocation's id,
    or :class:`RandomisationRefused` raised with nothing allocated."""

    def randomise(session: Session) -> int:
        participant = session.get_one(Participant, participant_id)
        return RandomisationService(session, SETTINGS).randomise(actor, participant).id

    def job() -> int:
        allocation_id, _attempts = retried(engine, randomise)
        return allocation_id

    return job


def allocations_created(session: Session) -> list[int]:
    """The ids of the allocations the audit trail records as made, one per event
    (an event is written per column: counted on the arm's)."""
    recorded = session.scalars(
        select(AuditEvent.entity_id).where(
            AuditEvent.action == "allocation.created", AuditEvent.field == "arm_code"
        )
    )
    return sorted(int(entity_id) for entity_id in recorded)


def test_fifty_requests_for_one_participant_allocate_them_once(committed_database):
    trial = committed_trial(committed_database, 1)
    [(participant_id, code)] = trial.participants

    allocated, raised = all_at_once(
        [randomising(committed_database, trial.coordinator, participant_id)] * CROWD
    )

    assert len(allocated) == 1, raised
    refusals = [error.reasons for error in raised if isinstance(error, RandomisationRefused)]
    assert len(refusals) == len(raised), raised
    with Session(committed_database) as session:
        allocation = session.get_one(Allocation, allocated[0])
        refusal = (
            f"Participant {code} was already randomised on {ukdate(allocation.allocated_at)}: "
            "nothing was done"
        )
        assert refusals == [[refusal]] * (CROWD - 1)
        assert str(raised[0]) == refusal

        assert session.scalars(select(Allocation.id)).all() == [allocation.id]
        assert (allocation.participant_id, allocation.stratum, allocation.sequence) == (
            participant_id,
            STRATUM,
            1,
        )
        entry = session.get_one(ListEntry, allocation.list_entry_id)
        assert (entry.list_id, entry.stratum, entry.sequence) == (trial.list_id, STRATUM, 1)
        assert (allocation.arm_code, allocation.kit_code) == (entry.arm_code, entry.kit_code)
        # The refused requests took no position of the list.
        counter = session.get_one(
            StratumCounter, (allocation.study_id, f"list {trial.list_id}: {STRATUM}")
        )
        assert counter.last_sequence == 1
        assert allocations_created(session) == [allocation.id]
        participant = session.get_one(Participant, participant_id)
        assert participant.status == ParticipantStatus.RANDOMISED


def test_fifty_participants_at_once_take_fifty_consecutive_positions(committed_database):
    trial = committed_trial(committed_database, CROWD)

    allocated, raised = all_at_once(
        [
            randomising(committed_database, trial.coordinator, participant_id)
            for participant_id, _code in trial.participants
        ]
    )

    assert raised == []
    assert len(allocated) == CROWD
    with Session(committed_database) as session:
        allocations = session.scalars(select(Allocation).order_by(Allocation.sequence)).all()
        assert [allocation.sequence for allocation in allocations] == list(range(1, CROWD + 1))
        assert {allocation.stratum for allocation in allocations} == {STRATUM}
        assert sorted(allocation.participant_id for allocation in allocations) == sorted(
            participant_id for participant_id, _code in trial.participants
        )
        # Each allocation took the list entry of its own position, each entry once.
        entries = {
            entry.id: entry
            for entry in session.scalars(
                select(ListEntry).where(
                    ListEntry.list_id == trial.list_id, ListEntry.stratum == STRATUM
                )
            )
        }
        assert len(entries) >= 60
        assert len({allocation.list_entry_id for allocation in allocations}) == CROWD
        for allocation in allocations:
            assert allocation.list_entry_id is not None
            entry = entries[allocation.list_entry_id]
            assert entry.sequence == allocation.sequence
            assert (entry.arm_code, entry.kit_code) == (allocation.arm_code, allocation.kit_code)
        counter = session.get_one(
            StratumCounter, (allocations[0].study_id, f"list {trial.list_id}: {STRATUM}")
        )
        assert counter.last_sequence == CROWD
        assert allocations_created(session) == sorted(allocated)
        statuses = session.scalars(select(Participant.status).distinct()).all()
        assert statuses == [ParticipantStatus.RANDOMISED]
