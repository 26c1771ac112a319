"""Roles, permissions and the role → permission matrix.

This module is the single source of truth for who may do what: the resources'
``__acl__`` lists are built from :data:`MATRIX`, and the README's matrix is printed
from it (``ctms permissions``).

How a membership becomes principals (see :mod:`bhp_ctms.security`):

- a membership for all studies gives ``role:<role>``;
- a membership for one study and all its sites gives ``study:<id>:role:<role>``;
- a membership for one site gives ``site:<id>:role:<role>`` for that site and
  ``study:<id>:site-role:<role>`` for the study around it. Study-level pages open to a
  site role show only that user's sites: that filtering happens in the queries.
"""

from __future__ import annotations

from enum import StrEnum

from pyramid.authorization import Allow, Authenticated


class Role(StrEnum):
    CTU_ADMIN = "ctu_admin"
    DATA_MANAGER = "data_manager"
    SITE_COORDINATOR = "site_coordinator"
    SITE_PI = "site_pi"
    MONITOR = "monitor"
    STATISTICIAN_BLINDED = "statistician_blinded"
    STATISTICIAN_UNBLINDED = "statistician_unblinded"
    AUDITOR = "auditor"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]

    @property
    def is_blinded(self) -> bool:
        """Blinded roles never see an arm, wherever it would appear."""
        return self not in UNBLINDED_ROLES


ROLE_LABELS = {
    Role.CTU_ADMIN: "CTU admin",
    Role.DATA_MANAGER: "Data manager",
    Role.SITE_COORDINATOR: "Site coordinator",
    Role.SITE_PI: "Site PI",
    Role.MONITOR: "Monitor",
    Role.STATISTICIAN_BLINDED: "Statistician (blinded)",
    Role.STATISTICIAN_UNBLINDED: "Statistician (unblinded)",
    Role.AUDITOR: "Auditor (read only)",
}

UNBLINDED_ROLES = frozenset({Role.STATISTICIAN_UNBLINDED})

# Roles whose work is tied to one site; they are normally granted per site.
SITE_ROLES = frozenset({Role.SITE_COORDINATOR, Role.SITE_PI})


class Permissions(StrEnum):
    """Every view names one of these; ``<area>:<action>``."""

    ACCOUNT_MANAGE = "account:manage"
    STUDIES_LIST = "studies:list"
    STUDIES_VIEW = "studies:view"
    PORTFOLIO_VIEW = "portfolio:view"
    PROTOCOL_MIGRATE = "protocol:migrate"
    SITES_MANAGE = "sites:manage"
    PARTICIPANTS_VIEW = "participants:view"
    PARTICIPANTS_REGISTER = "participants:register"
    PARTICIPANTS_EDIT = "participants:edit"
    ELIGIBILITY_CONFIRM = "eligibility:confirm"
    IDENTIFIERS_VIEW = "identifiers:view"
    CRF_VIEW = "crf:view"
    CRF_ENTER = "crf:enter"
    CRF_SIGN = "crf:sign"
    CRF_RECHECK = "crf:recheck"
    QUERIES_RAISE = "queries:raise"
    QUERIES_ANSWER = "queries:answer"
    QUERIES_CLOSE = "queries:close"
    SDV_PERFORM = "sdv:perform"
    SDV_PLAN = "sdv:plan"
    RANDOMISE = "randomisation:randomise"
    UNBLIND = "randomisation:unblind"
    ALLOCATION_INVALIDATE = "randomisation:invalidate"
    RANDOMISATION_LISTS = "randomisation:lists"
    RANDOMISATION_REPORT = "randomisation:report"
    AUDIT_VIEW = "audit:view"
    AUDIT_EXPORT = "audit:export"
    AUDIT_REVIEW = "audit:review"
    AUDIT_VERIFY = "audit:verify"
    DATA_LOCK = "data:lock"
    DATASETS_INTERIM = "datasets:interim"
    DATASETS_EXPORT = "datasets:export"

    @property
    def description(self) -> str:
        return PERMISSION_DESCRIPTIONS[self]


PERMISSION_DESCRIPTIONS = {
    Permissions.ACCOUNT_MANAGE: "manage one's own password and second factor",
    Permissions.STUDIES_LIST: "see the dashboard of one's own studies and sites",
    Permissions.STUDIES_VIEW: "open a study's overview (site staff see their own sites)",
    Permissions.PORTFOLIO_VIEW: "see the trials unit's portfolio of studies by pillar and status",
    Permissions.PROTOCOL_MIGRATE: "move participants' data to a newer protocol version",
    Permissions.SITES_MANAGE: "create, change and remove a study's sites; grant and revoke staff",
    Permissions.PARTICIPANTS_VIEW: (
        "see participants, their schedule, the grid and dashboards (site staff: their sites)"
    ),
    Permissions.PARTICIPANTS_REGISTER: "register (screen) a participant at one's own site",
    Permissions.PARTICIPANTS_EDIT: "record consent, eligibility, visits and status changes",
    Permissions.ELIGIBILITY_CONFIRM: "confirm a participant's eligibility as PI or delegate",
    Permissions.IDENTIFIERS_VIEW: (
        "see and record participants' direct identifiers (only at one's own site)"
    ),
    Permissions.CRF_VIEW: (
        "read CRFs, their queries, SDV marks and signatures (site staff: their sites)"
    ),
    Permissions.CRF_ENTER: (
        "enter and correct CRF data, giving a reason for each change to a complete form"
    ),
    Permissions.CRF_SIGN: "e-sign CRFs and casebooks as the site's PI (only at one's own site)",
    Permissions.CRF_RECHECK: "re-run a study's edit checks over all its stored data",
    Permissions.QUERIES_RAISE: "raise a query on any item",
    Permissions.QUERIES_ANSWER: "answer a query at one's own site",
    Permissions.QUERIES_CLOSE: "close or re-open a query",
    Permissions.SDV_PERFORM: "mark items and forms as source-data-verified",
    Permissions.SDV_PLAN: "set which participants' forms a study's monitors verify",
    Permissions.RANDOMISE: "randomise an eligible participant at one's own site",
    Permissions.UNBLIND: (
        "in an emergency, learn a participant's arm at one's own site (reason and password "
        "needed; the trials unit is told)"
    ),
    Permissions.ALLOCATION_INVALIDATE: "mark a randomisation done in error as invalid",
    Permissions.RANDOMISATION_LISTS: (
        "generate or upload a study's allocation list and see how much of it is used (unblinded)"
    ),
    Permissions.RANDOMISATION_REPORT: "see every allocation with its arm (unblinded)",
    Permissions.AUDIT_VIEW: (
        "read the audit trail and any value's history (site staff: their sites)"
    ),
    Permissions.AUDIT_EXPORT: "export a filtered audit trail as CSV",
    Permissions.AUDIT_REVIEW: "record and sign off audit-trail reviews",
    Permissions.AUDIT_VERIFY: "run the audit trail's verification and see its results",
    Permissions.DATA_LOCK: (
        "lock and unlock a form, a participant, a site or the whole study (reason and "
        "e-signature needed)"
    ),
    Permissions.DATASETS_INTERIM: (
        "take an interim snapshot of a study's data for a data monitoring committee, and "
        "export it blinded"
    ),
    Permissions.DATASETS_EXPORT: (
        "export a study's snapshots (CSV, ODM, SAS, Stata, SPSS); unblinded only for the "
        "unblinded statistician"
    ),
}

# Permissions granted only by a role held at the site itself: no study-wide or
# all-studies role gives them. Registering a person and seeing who they are is the
# work of the site that sees them.
SITE_ONLY_PERMISSIONS = frozenset(
    {
        Permissions.PARTICIPANTS_REGISTER,
        Permissions.IDENTIFIERS_VIEW,
        Permissions.CRF_SIGN,
        Permissions.RANDOMISE,
        Permissions.UNBLIND,
    }
)

# Permissions every signed-in user has, whatever their memberships.
AUTHENTICATED_PERMISSIONS = frozenset({Permissions.ACCOUNT_MANAGE, Permissions.STUDIES_LIST})

_AUDIT_READERS = frozenset(
    {Permissions.AUDIT_VIEW, Permissions.AUDIT_EXPORT, Permissions.AUDIT_VERIFY}
)

_SITE_STAFF = frozenset(
    {
        Permissions.STUDIES_VIEW,
        Permissions.AUDIT_VIEW,
        Permissions.PARTICIPANTS_VIEW,
        Permissions.PARTICIPANTS_REGISTER,
        Permissions.PARTICIPANTS_EDIT,
        Permissions.IDENTIFIERS_VIEW,
        Permissions.CRF_VIEW,
        Permissions.CRF_ENTER,
        Permissions.QUERIES_ANSWER,
        Permissions.RANDOMISE,
    }
)

MATRIX: dict[Role, frozenset[Permissions]] = {
    Role.CTU_ADMIN: frozenset(
        {
            Permissions.STUDIES_VIEW,
            Permissions.PORTFOLIO_VIEW,
            Permissions.SITES_MANAGE,
            Permissions.PARTICIPANTS_VIEW,
        }
    )
    | _AUDIT_READERS,
    Role.DATA_MANAGER: frozenset(
        {
            Permissions.STUDIES_VIEW,
            Permissions.PORTFOLIO_VIEW,
            Permissions.PROTOCOL_MIGRATE,
            Permissions.PARTICIPANTS_VIEW,
            Permissions.AUDIT_REVIEW,
            Permissions.CRF_VIEW,
            Permissions.CRF_RECHECK,
            Permissions.QUERIES_RAISE,
            Permissions.QUERIES_CLOSE,
            Permissions.SDV_PLAN,
            Permissions.ALLOCATION_INVALIDATE,
            Permissions.DATA_LOCK,
            Permissions.DATASETS_INTERIM,
        }
    )
    | _AUDIT_READERS,
    Role.SITE_COORDINATOR: _SITE_STAFF,
    Role.SITE_PI: _SITE_STAFF
    | {Permissions.ELIGIBILITY_CONFIRM, Permissions.CRF_SIGN, Permissions.UNBLIND},
    Role.MONITOR: frozenset(
        {
            Permissions.STUDIES_VIEW,
            Permissions.PORTFOLIO_VIEW,
            Permissions.PARTICIPANTS_VIEW,
            Permissions.AUDIT_REVIEW,
            Permissions.CRF_VIEW,
            Permissions.QUERIES_RAISE,
            Permissions.QUERIES_CLOSE,
            Permissions.SDV_PERFORM,
        }
    )
    | _AUDIT_READERS,
    Role.STATISTICIAN_BLINDED: frozenset({Permissions.STUDIES_VIEW, Permissions.DATASETS_EXPORT}),
    Role.STATISTICIAN_UNBLINDED: frozenset(
        {
            Permissions.STUDIES_VIEW,
            Permissions.RANDOMISATION_LISTS,
            Permissions.RANDOMISATION_REPORT,
            Permissions.DATASETS_EXPORT,
        }
    ),
    Role.AUDITOR: frozenset(
        {
            Permissions.STUDIES_VIEW,
            Permissions.PORTFOLIO_VIEW,
            Permissions.PARTICIPANTS_VIEW,
            Permissions.CRF_VIEW,
        }
    )
    | _AUDIT_READERS,
}


def global_principal(role: Role) -> str:
    return f"role:{role}"


def study_principal(study_id: int, role: Role) -> str:
    return f"study:{study_id}:role:{role}"


def study_site_role_principal(study_id: int, role: Role) -> str:
    return f"study:{study_id}:site-role:{role}"


def site_principal(site_id: int, role: Role) -> str:
    return f"site:{site_id}:role:{role}"


def root_acl() -> list[tuple[str, str, object]]:
    """ACL outside any study: a signed-in user's own pages, and all-studies roles."""
    acl: list[tuple[str, str, object]] = [
        (Allow, Authenticated, permission) for permission in sorted(AUTHENTICATED_PERMISSIONS)
    ]
    for role, permissions in MATRIX.items():
        acl.extend(
            (Allow, global_principal(role), permission)
            for permission in sorted(permissions - SITE_ONLY_PERMISSIONS)
        )
    return acl


def study_acl(study_id: int) -> list[tuple[str, str, str]]:
    """ACL of a study: global, study-wide and site-scoped holders of each role."""
    acl: list[tuple[str, str, str]] = []
    for role, permissions in MATRIX.items():
        for permission in sorted(permissions - SITE_ONLY_PERMISSIONS):
            acl.append((Allow, global_principal(role), permission))
            acl.append((Allow, study_principal(study_id, role), permission))
            acl.append((Allow, study_site_role_principal(study_id, role), permission))
    return acl


def site_acl(study_id: int, site_id: int) -> list[tuple[str, str, str]]:
    """ACL of one site: global and study-wide holders, and that site's own staff."""
    acl: list[tuple[str, str, str]] = []
    for role, permissions in MATRIX.items():
        for permission in sorted(permissions):
            if permission not in SITE_ONLY_PERMISSIONS:
                acl.append((Allow, global_principal(role), permission))
                acl.append((Allow, study_principal(study_id, role), permission))
            acl.append((Allow, site_principal(site_id, role), permission))
    return acl
