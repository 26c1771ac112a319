"""Set-ups for randomisation tests: eligible participants and allocation lists."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from bhp_ctms.accounts.models import User
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.participants.models import ConsentGivenBy, ConsentKind, Participant
from bhp_ctms.participants.services import ParticipantService
from bhp_ctms.randomisation import allocation_lists
from bhp_ctms.randomisation.models import AllocationList
from bhp_ctms.randomisation.schemes import study_scheme
from bhp_ctms.randomisation.services import active_list
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.loading import definition_sha256
from bhp_ctms.studies.models import Study
from tests.conftest import make_settings
from tests.factories import PASSWORD, ProtocolVersionFactory, demo_definition

SETTINGS = make_settings("sqlite://")
ELIGIBLE_ANSWERS = {
    "age_18_or_over": "yes",
    "primary_hip_replacement": "yes",
    "walks_10_metres": "yes",
    "revision_or_fracture": "no",
    "unsafe_to_walk": "no",
    "other_trial": "no",
}


def actor_of(user: User) -> AuditActor:
    return AuditActor(user_id=user.id, name=user.full_name)


def eligible_participant(
    db: Session, site: Site, coordinator: User, pi: User, *, confirmed: bool = True
) -> Participant:
    """A participant registered, consented and assessed eligible at ``site``; the PI
    confirms the assessment unless ``confirmed`` is false."""
    service = ParticipantService(db, SETTINGS)
    participant = service.register(
        actor_of(coordinator), site, registered_on=date(2026, 2, 2), is_child=False
    )
    service.record_consent(
        actor_of(coordinator),
        participant,
        consented_on=date(2026, 2, 3),
        kind=ConsentKind.CONSENT,
        given_by=ConsentGivenBy.PARTICIPANT,
        information_sheet_version="2.1",
        form_version="2.0",
        taken_by="Nurse Nia Jones",
    )
    assessment = service.assess_eligibility(
        actor_of(coordinator), participant, ELIGIBLE_ANSWERS, date(2026, 2, 10), coordinator.id
    )
    if confirmed:
        service.confirm_eligibility(actor_of(pi), participant, assessment, pi, PASSWORD)
    return participant


def with_randomisation(study: Study, randomisation: dict[str, Any], **changes: Any) -> None:
    """Give the study a protocol version 2 whose randomisation section is
    ``randomisation`` (and other top-level ``changes``, e.g. ``blinding="open"``)."""
    definition = copy.deepcopy(demo_definition())
    definition["randomisation"] = {
        "method": randomisation["method"],
        "settings": {k: v for k, v in randomisation.items() if k != "method"},
    }
    definition["protocol_version"] = "2.0"
    definition.update(changes)
    ProtocolVersionFactory(
        study=study,
        number=2,
        label="2.0",
        definition=definition,
        definition_sha256=definition_sha256(definition),
    )


def generated_list(
    db: Session, study: Study, statistician: User, *, seed: str = "walk-2026", per_stratum: int = 12
) -> AllocationList:
    bound = study_scheme(db, study)
    assert bound is not None
    return allocation_lists.generate(
        db,
        actor_of(statistician),
        bound,
        active_list(db, study.id),
        seed=seed,
        per_stratum=per_stratum,
    )
