"""Context factories of the CRF pages: a form entry and a query are found only through
the user's site scope, so one of another site is a 404, never a 403."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound
from sqlalchemy import select

from bhp_ctms.crf.models import FormEntry, Query
from bhp_ctms.participants.models import Participant
from bhp_ctms.participants.resources import ParticipantResource
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.resources import StudyFactory


class EntryResource(ParticipantResource):
    """One form entry, with its participant's site's ACL."""

    def __init__(self, participant_resource: ParticipantResource, entry: FormEntry) -> None:
        super().__init__(
            participant_resource.study, participant_resource.site, participant_resource.participant
        )
        self.entry = entry


class QueryResource(EntryResource):
    def __init__(self, entry_resource: EntryResource, query: Query) -> None:
        super().__init__(entry_resource, entry_resource.entry)
        self.query = query


def _scoped_entry(request: Any, entry_id: int) -> EntryResource:
    study = StudyFactory(request).study
    if request.identity is None:
        raise HTTPForbidden()
    scope = SiteScope.for_memberships(study.id, request.memberships)
    statement = (
        select(FormEntry, Participant)
        .join(Participant, FormEntry.participant_id == Participant.id)
        .where(FormEntry.id == entry_id, Participant.study_id == study.id)
    )
    found = request.db.execute(scope.apply(statement, Participant.site_id)).first()
    if found is None:
        raise HTTPNotFound()
    entry, participant = found
    site = request.db.get(Site, participant.site_id)
    return EntryResource(ParticipantResource(study, site, participant), entry)


def _number(request: Any, name: str) -> int:
    text = request.matchdict[name]
    if not text.isdigit():
        raise HTTPNotFound()
    return int(text)


def EntryFactory(request: Any) -> EntryResource:
    """The form entry ``{entry}`` (its id), if the user's scope holds its participant."""
    return _scoped_entry(request, _number(request, "entry"))


def QueryFactory(request: Any) -> QueryResource:
    """The query ``{query}`` (its id), if the user's scope holds its participant."""
    StudyFactory(request)
    if request.identity is None:
        raise HTTPForbidden()
    query = request.db.get(Query, _number(request, "query"))
    if query is None:
        raise HTTPNotFound()
    return QueryResource(_scoped_entry(request, query.form_entry_id), query)
