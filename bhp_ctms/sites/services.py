"""Site scoping: the one place that decides which sites' rows a user may see.

Every query of site-owned data goes through :meth:`SiteScope.apply`, so a list,
search, dashboard or export can never include rows of a site the user has no
role at.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, false, select
from sqlalchemy.orm import Session

from bhp_ctms.accounts.models import Membership
from bhp_ctms.sites.models import Site

T = TypeVar("T", bound=Any)


@dataclass(frozen=True)
class SiteScope:
    """Which sites of one study a user may see: all of them, or some."""

    study_id: int
    all_sites: bool
    site_ids: frozenset[int]

    @classmethod
    def for_memberships(cls, study_id: int, memberships: Iterable[Membership]) -> SiteScope:
        site_ids: set[int] = set()
        for membership in memberships:
            if membership.study_id is None or (
                membership.study_id == study_id and membership.site_id is None
            ):
                return cls(study_id, True, frozenset())
            if membership.study_id == study_id and membership.site_id is not None:
                site_ids.add(membership.site_id)
        return cls(study_id, False, frozenset(site_ids))

    def apply(self, statement: Select[T], site_id_column: Any) -> Select[T]:
        """Restrict a query to this scope's sites."""
        if self.all_sites:
            return statement
        if not self.site_ids:
            return statement.where(false())
        return statement.where(site_id_column.in_(self.site_ids))

    def allows(self, site_id: int) -> bool:
        return self.all_sites or site_id in self.site_ids


def memberships_of(db: Session, user_id: int) -> list[Membership]:
    return list(db.scalars(select(Membership).where(Membership.user_id == user_id)))


def site_scope(db: Session, user_id: int, study_id: int) -> SiteScope:
    return SiteScope.for_memberships(study_id, memberships_of(db, user_id))


def visible_sites(db: Session, scope: SiteScope) -> list[Site]:
    statement = select(Site).where(Site.study_id == scope.study_id).order_by(Site.code)
    return list(db.scalars(scope.apply(statement, Site.id)))
