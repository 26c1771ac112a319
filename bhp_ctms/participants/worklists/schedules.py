"""The schedules of many participants at once, for the worklists: a whole site's (or
study's) participants, their visits and the protocol versions they follow, read in
three queries whatever the number of participants; never one query per participant.
Each participant's schedule is then worked out by
:func:`bhp_ctms.participants.schedule.participant_schedule`.

Every query of participant data goes through :meth:`SiteScope.apply`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from typing import cast

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from bhp_ctms.participants.models import Participant, ParticipantStatus, Visit
from bhp_ctms.participants.schedule import ScheduledVisit, participant_schedule
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.definition import StudyDefinition
from bhp_ctms.studies.models import ProtocolVersion
from bhp_ctms.studies.services import protocol_definition

# What the schedules and the worklists read of participants and visits.
PARTICIPANT_COLUMNS = (
    Participant.id,
    Participant.site_id,
    Participant.code,
    Participant.status,
    Participant.protocol_version_id,
    Participant.registered_on,
    Participant.randomised_on,
    Participant.withdrawal_type,
)
VISIT_COLUMNS = (
    Visit.id,
    Visit.participant_id,
    Visit.event_code,
    Visit.instance,
    Visit.status,
    Visit.visit_on,
    Visit.not_done_reason,
)
# Visits are read this many at a time.
VISIT_BATCH = 500


def participant_ids(
    scope: SiteScope,
    study_id: int,
    *,
    site_id: int | None = None,
    status: ParticipantStatus | None = None,
) -> Select[int]:
    """The select of the ids of the participants :func:`load_schedules` reads with the
    same arguments, for other queries to use as a subquery."""
    return scope.apply(
        select(Participant.id).where(*_participant_filters(study_id, site_id, status)),
        Participant.site_id,
    )


def _participant_filters(
    study_id: int, site_id: int | None, status: ParticipantStatus | None
) -> list[ColumnElement[bool]]:
    filters = [Participant.study_id == study_id]
    if site_id is not None:
        filters.append(Participant.site_id == site_id)
    if status is not None:
        filters.append(Participant.status == status)
    return filters


class Schedules:
    """Participants, their visits and the protocol definitions they follow, from which
    :meth:`each` works out each participant's schedule in turn.

    Nothing is held longer than it is needed: each participant's visits are read as
    their schedule is worked out, and the schedule is freed once used, rather than a
    site's tens of thousands of visits and scheduled visits all held until the page
    is done (and scanned again and again by the garbage collector meanwhile).
    """

    def __init__(
        self,
        participants: list[Participant],
        visits: Iterable[Visit],
        definitions: dict[int, StudyDefinition],
        today: date,
    ) -> None:
        self.participants = participants
        # Each protocol version the participants are on, oldest first.
        self.definitions = definitions
        self.today = today
        self._visits = visits

    def each_with_visits(self) -> Iterator[tuple[Participant, list[Visit]]]:
        """Each participant with their recorded visits (first instances). Once only:
        the visits are read as it goes."""
        visits = iter(self._visits)
        self._visits = ()
        pending = next(visits, None)
        for participant in self.participants:
            # The visits come in the participants' order, each participant's together.
            own = []
            while pending is not None and pending.participant_id == participant.id:
                own.append(pending)
                pending = next(visits, None)
            yield participant, own

    def each(self) -> Iterator[tuple[Participant, list[ScheduledVisit]]]:
        """Each participant with their scheduled visits, in protocol order, with their
        states. Once only: the visits are read as it goes."""
        for participant, own in self.each_with_visits():
            definition = self.definitions[participant.protocol_version_id]
            yield participant, participant_schedule(definition, participant, own, self.today)


def load_schedules(
    db: Session,
    scope: SiteScope,
    study_id: int,
    today: date,
    *,
    site_id: int | None = None,
    status: ParticipantStatus | None = None,
) -> Schedules:
    """The scope's participants of a study (or of one site), by study ID, with what
    their schedules on ``today`` need: three queries, whatever their number."""
    filters = _participant_filters(study_id, site_id, status)
    # The same order for participants and their visits, so they can be read in step.
    order = (Participant.code, Participant.id)
    # Participants and visits are read as rows of their columns, which the schedule and
    # the pages read by the same names as the models' attributes: thousands of rows
    # load several times faster than ORM objects, and leave the garbage collector far
    # fewer objects to scan. They are for reading only.
    participants = [
        cast(Participant, row)
        for row in db.execute(
            scope.apply(
                select(*PARTICIPANT_COLUMNS).where(*filters).order_by(*order),
                Participant.site_id,
            )
        )
    ]
    if not participants:
        return Schedules([], (), {}, today)
    used = {participant.protocol_version_id for participant in participants}
    definitions = {
        version.id: protocol_definition(version)
        for version in db.scalars(
            select(ProtocolVersion)
            .where(ProtocolVersion.study_id == study_id, ProtocolVersion.id.in_(used))
            .order_by(ProtocolVersion.number)
        )
    }
    # Only the first instance of an event is scheduled; repeats (adverse events,
    # unscheduled visits) have no place in a schedule. Read through the connection (the
    # session has just flushed, for the participants), whose rows are made a batch at
    # a time as they are used, not all at once as the ORM session's are.
    result = db.connection().execute(
        scope.apply(
            select(*VISIT_COLUMNS)
            .join(Participant, Participant.id == Visit.participant_id)
            .where(*filters, Visit.instance == 1)
            .order_by(*order),
            Participant.site_id,
        )
    )
    visits = (visit for batch in result.partitions(VISIT_BATCH) for visit in batch)
    return Schedules(participants, cast(Iterable[Visit], visits), definitions, today)
