"""factory_boy factories for the models, bound to each test's database session."""

from __future__ import annotations

import copy
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import factory
from sqlalchemy import select
from sqlalchemy.orm import Session

from bhp_ctms.accounts.models import Membership, User
from bhp_ctms.accounts.services import hash_password
from bhp_ctms.participants.models import Participant, ParticipantSequence, ParticipantStatus
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site, SiteStatus
from bhp_ctms.studies.definition import read_study
from bhp_ctms.studies.loading import definition_sha256
from bhp_ctms.studies.models import Blinding, ProtocolVersion, Study, StudyStatus

PASSWORD = "plinth-marigold-viaduct"
DEMO_FOLDER = Path(__file__).resolve().parents[2] / "forms" / "demo"


@lru_cache(maxsize=1)
def _password_hash() -> str:
    # argon2id is deliberately slow; hash the shared test password once.
    return hash_password(PASSWORD)


class _Base(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_persistence = "flush"


class UserFactory(_Base):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    full_name = factory.Faker("name", locale="en_GB")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.org")
    password_hash = factory.LazyFunction(_password_hash)
    is_active = True


class StudyFactory(_Base):
    class Meta:
        model = Study

    code = factory.Sequence(lambda n: f"ST{n:03d}")
    title = factory.LazyAttribute(lambda study: f"Study {study.code}")
    status = StudyStatus.RECRUITING
    blinding = Blinding.DOUBLE
    target_sample_size = 100


class SiteFactory(_Base):
    class Meta:
        model = Site

    study = factory.SubFactory(StudyFactory)
    code = factory.Sequence(lambda n: f"S{n:02d}")
    name = factory.LazyAttribute(lambda site: f"Site {site.code}")
    status = SiteStatus.OPEN
    recruitment_target = 50


class MembershipFactory(_Base):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    role = Role.SITE_COORDINATOR
    study_id = None
    site_id = None


@lru_cache(maxsize=1)
def _demo_definition() -> dict[str, Any]:
    return read_study(DEMO_FOLDER).to_json()


def demo_definition() -> dict[str, Any]:
    """The demo study's definition (forms/demo) as a protocol version stores it."""
    return copy.deepcopy(_demo_definition())


class ProtocolVersionFactory(_Base):
    """A protocol version of the demo study's definition (schedule, arms, criteria)."""

    class Meta:
        model = ProtocolVersion

    study = factory.SubFactory(StudyFactory)
    number = 1
    label = "1.0"
    effective_on = date(2026, 1, 5)
    summary = ""
    definition = factory.LazyFunction(demo_definition)
    definition_sha256 = factory.LazyAttribute(lambda version: definition_sha256(version.definition))


def _protocol_version_of(participant: Any) -> ProtocolVersion:
    """The study's latest protocol version, made if the study has none yet."""
    session: Session = ParticipantFactory._meta.sqlalchemy_session  # type: ignore[attr-defined]
    version = session.scalars(
        select(ProtocolVersion)
        .where(ProtocolVersion.study_id == participant.study.id)
        .order_by(ProtocolVersion.number.desc())
    ).first()
    if version is None:
        version = ProtocolVersionFactory.create(study=participant.study)
    return version


def _next_sequence(participant: Any) -> int:
    """The site's next number, kept in step with the counter registration uses."""
    session: Session = ParticipantFactory._meta.sqlalchemy_session  # type: ignore[attr-defined]
    counter = session.get(ParticipantSequence, participant.site.id)
    if counter is None:
        counter = ParticipantSequence(site_id=participant.site.id, last_sequence=0)
        session.add(counter)
    counter.last_sequence += 1
    session.flush()
    return counter.last_sequence


class ParticipantFactory(_Base):
    class Meta:
        model = Participant

    site = factory.SubFactory(SiteFactory)
    study = factory.SelfAttribute("site.study")
    protocol_version = factory.LazyAttribute(_protocol_version_of)
    sequence = factory.LazyAttribute(_next_sequence)
    code = factory.LazyAttribute(
        lambda participant: (
            f"{participant.study.code}-{participant.site.code}-{participant.sequence:04d}"
        )
    )
    status = ParticipantStatus.SCREENED
    registered_on = date(2026, 2, 2)
    randomised_on = None
    is_child = False

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        study = kwargs.pop("study")
        return super()._create(model_class, *args, study_id=study.id, **kwargs)


ALL_FACTORIES = (
    UserFactory,
    StudyFactory,
    SiteFactory,
    MembershipFactory,
    ProtocolVersionFactory,
    ParticipantFactory,
)


def bind_factories(session: Session) -> None:
    for model_factory in ALL_FACTORIES:
        model_factory._meta.sqlalchemy_session = session  # type: ignore[attr-defined]
