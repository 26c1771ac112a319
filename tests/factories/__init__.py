"""factory_boy factories for the models, bound to each test's database session."""

from __future__ import annotations

from functools import lru_cache

import factory
from sqlalchemy.orm import Session

from bhp_ctms.accounts.models import Membership, User
from bhp_ctms.accounts.services import hash_password
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site, SiteStatus
from bhp_ctms.studies.models import Blinding, Study, StudyStatus

PASSWORD = "plinth-marigold-viaduct"


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


ALL_FACTORIES = (UserFactory, StudyFactory, SiteFactory, MembershipFactory)


def bind_factories(session: Session) -> None:
    for model_factory in ALL_FACTORIES:
        model_factory._meta.sqlalchemy_session = session  # type: ignore[attr-defined]
