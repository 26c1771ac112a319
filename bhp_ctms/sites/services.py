"""Site scoping, the one place that decides which sites' rows a user may see; and the
management of a study's sites and their staff.

Every query of site-owned data goes through :meth:`SiteScope.apply`, so a list,
search, dashboard or export can never include rows of a site the user has no
role at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVarTuple

from sqlalchemy import Select, false, select
from sqlalchemy.orm import Session, contains_eager

from bhp_ctms.accounts.models import Membership, User
from bhp_ctms.accounts.services import AccountService
from bhp_ctms.audit.capture import acting_as, change_reason
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.db import utc_today, utcnow
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site, SiteStatus

# The columns a statement selects, whatever their number.
Ts = TypeVarTuple("Ts")


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

    def apply(self, statement: Select[*Ts], site_id_column: Any) -> Select[*Ts]:
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


# -- managing a study's sites -----------------------------------------------------

# Where a site's status may go from each status. Leaving "closed" needs a reason for
# change, which the audit capture enforces for every change to a closed site.
STATUS_TRANSITIONS: dict[SiteStatus, frozenset[SiteStatus]] = {
    SiteStatus.PENDING: frozenset({SiteStatus.OPEN, SiteStatus.CLOSED}),
    SiteStatus.OPEN: frozenset({SiteStatus.SUSPENDED, SiteStatus.CLOSED}),
    SiteStatus.SUSPENDED: frozenset({SiteStatus.OPEN, SiteStatus.CLOSED}),
    SiteStatus.CLOSED: frozenset({SiteStatus.OPEN}),
}


class SiteError(ValueError):
    """A change to a site that cannot be made; ``field`` names the value at fault
    (empty when the problem is with the site as a whole)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def status_change_problem(current: SiteStatus, new: SiteStatus) -> str | None:
    """Why a site cannot go from ``current`` to ``new`` status, or None if it can."""
    if new == current or new in STATUS_TRANSITIONS[current]:
        return None
    allowed = sorted(STATUS_TRANSITIONS[current], key=list(SiteStatus).index)
    return (
        f"Status cannot change from {current.label.lower()} to {new.label.lower()}: "
        f"a {current.label.lower()} site can only become "
        + " or ".join(status.label.lower() for status in allowed)
    )


@dataclass(frozen=True)
class SiteDetails:
    """The values of a site a CTU admin types in."""

    name: str
    principal_investigator: str = ""
    recruitment_target: int | None = None
    activated_on: date | None = None


class SiteService:
    """Creating, changing and removing a study's sites, and their staff.

    Every change is attributed to the actor given and reaches the audit trail through
    its automatic capture; changes that need a reason raise
    :class:`~bhp_ctms.audit.capture.ReasonRequired` before anything is written.
    """

    def __init__(self, db: Session, today: Callable[[], date] | None = None) -> None:
        self.db = db
        self._today = today or utc_today

    def find_site(self, study_id: int, code: str) -> Site | None:
        return self.db.scalars(
            select(Site).where(Site.study_id == study_id, Site.code == code)
        ).first()

    def code_problem(self, study_id: int, code: str) -> str | None:
        """Why ``code`` cannot be a new site's code in this study, or None."""
        if self.find_site(study_id, code) is not None:
            return f"Site code {code} is already used in this study: choose another code"
        return None

    def create_site(
        self, actor: AuditActor, study_id: int, code: str, details: SiteDetails
    ) -> Site:
        """Add a pending site to a study."""
        problem = self.code_problem(study_id, code)
        if problem:
            raise SiteError("code", problem)
        site = Site(
            study_id=study_id,
            code=code,
            name=details.name,
            principal_investigator=details.principal_investigator,
            status=SiteStatus.PENDING,
            recruitment_target=details.recruitment_target,
            activated_on=details.activated_on,
            created_at=utcnow(),
        )
        with acting_as(self.db, actor):
            self.db.add(site)
        return site

    def update_site(
        self,
        actor: AuditActor,
        site: Site,
        details: SiteDetails,
        status: SiteStatus,
        reason: str = "",
    ) -> list[str]:
        """Change a site's details and status; returns the names of the values changed.

        Opening a site that has no activation date sets it to today (UTC).
        """
        problem = status_change_problem(site.status, status)
        if problem:
            raise SiteError("status", problem)
        activated_on = details.activated_on
        if status == SiteStatus.OPEN and site.status != SiteStatus.OPEN and activated_on is None:
            activated_on = self._today()
        values = {
            "name": details.name,
            "principal_investigator": details.principal_investigator,
            "status": status,
            "recruitment_target": details.recruitment_target,
            "activated_on": activated_on,
        }
        changed = [name for name, value in values.items() if getattr(site, name) != value]
        with acting_as(self.db, actor), change_reason(self.db, reason):
            for name in changed:
                setattr(site, name, values[name])
        return changed

    def staff_of(self, site: Site) -> list[Membership]:
        """The roles held at this site, with their users, by name then role."""
        return list(
            self.db.scalars(
                select(Membership)
                .join(Membership.user)
                .options(contains_eager(Membership.user))
                .where(Membership.site_id == site.id)
                .order_by(User.full_name, User.username, Membership.role)
            )
        )

    def membership_at(self, site: Site, membership_id: int) -> Membership | None:
        """One role held at this site; None if it is not this site's."""
        return self.db.scalars(
            select(Membership).where(Membership.id == membership_id, Membership.site_id == site.id)
        ).first()

    def deletion_problem(self, site: Site) -> str | None:
        """Why a site cannot be deleted, or None: only a pending site without staff can."""
        if site.status != SiteStatus.PENDING:
            return (
                f"Site {site.code} cannot be deleted because it is {site.status.label.lower()}: "
                "only a pending site can be deleted. Close it instead."
            )
        if self.staff_of(site):
            return (
                f"Site {site.code} cannot be deleted because staff have roles at it: "
                "revoke their roles first."
            )
        return None

    def delete_site(self, actor: AuditActor, site: Site, reason: str) -> None:
        """Delete a pending site that has no staff; like every deletion, it needs a reason."""
        problem = self.deletion_problem(site)
        if problem:
            raise SiteError("", problem)
        with acting_as(self.db, actor), change_reason(self.db, reason):
            self.db.delete(site)

    def grant_role(
        self, accounts: AccountService, actor: AuditActor, site: Site, username: str, role: Role
    ) -> Membership:
        """Give a user a role at this site."""
        user = accounts.find_user(username)
        if user is None:
            raise SiteError(
                "username", f"No user is called {username!r}: check the user name and try again"
            )
        if not user.is_active:
            raise SiteError(
                "username", f"The account {user.username!r} is disabled: it cannot be given a role"
            )
        if accounts.find_membership(user, role, study_id=site.study_id, site_id=site.id):
            raise SiteError(
                "role", f"{user.full_name} already has the role {role.label} at site {site.code}"
            )
        return accounts.grant_role(actor, user, role, study_id=site.study_id, site_id=site.id)
