"""The one security policy: who the user is, and which principals they hold.

Identity comes from the server-side session. Memberships become principals as
described in :mod:`bhp_ctms.permissions`; ACLs live on resources from the context
factories, and the permission check is Pyramid's ACL helper over those principals.
"""

from __future__ import annotations

from typing import Any

from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.csrf import SessionCSRFStoragePolicy

from bhp_ctms.accounts.models import Membership, User
from bhp_ctms.db import utcnow
from bhp_ctms.permissions import (
    global_principal,
    site_principal,
    study_principal,
    study_site_role_principal,
)
from bhp_ctms.sites.services import memberships_of

SESSION_USER_KEY = "auth.user_id"
SESSION_AUTHENTICATED_AT_KEY = "auth.at"


def principals_for_memberships(memberships: list[Membership]) -> set[str]:
    principals: set[str] = set()
    for membership in memberships:
        if membership.study_id is None:
            principals.add(global_principal(membership.role))
        elif membership.site_id is None:
            principals.add(study_principal(membership.study_id, membership.role))
        else:
            principals.add(site_principal(membership.site_id, membership.role))
            principals.add(study_site_role_principal(membership.study_id, membership.role))
    return principals


class SecurityPolicy:
    def __init__(self) -> None:
        self.acl = ACLHelper()

    def identity(self, request: Any) -> User | None:
        # Cached on the request (not the environ, which a retried request reuses);
        # log-in and log-out clear it.
        cached = vars(request).get("_bhp_identity", _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[no-any-return]
        user = None
        user_id = request.session.get(SESSION_USER_KEY)
        if user_id is not None:
            candidate = request.db.get(User, user_id)
            if candidate is not None and candidate.is_active:
                user = candidate
        request._bhp_identity = user
        return user

    def authenticated_userid(self, request: Any) -> str | None:
        user = self.identity(request)
        return None if user is None else str(user.id)

    def effective_principals(self, request: Any) -> set[str]:
        principals = {Everyone}
        user = self.identity(request)
        if user is None:
            return principals
        principals |= {Authenticated, f"user:{user.id}"}
        principals |= principals_for_memberships(request_memberships(request))
        return principals

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        principals = vars(request).get("_bhp_principals")
        if principals is None:
            principals = self.effective_principals(request)
            request._bhp_principals = principals
        return self.acl.permits(context, principals, permission)

    def remember(self, request: Any, userid: Any, **kw: Any) -> list[tuple[str, str]]:
        """Start an authenticated session under a new session identifier."""
        request.session.rotate()
        request.session[SESSION_USER_KEY] = int(userid)
        request.session[SESSION_AUTHENTICATED_AT_KEY] = utcnow().isoformat()
        _forget_cached_identity(request)
        return []

    def forget(self, request: Any, **kw: Any) -> list[tuple[str, str]]:
        request.session.invalidate()
        _forget_cached_identity(request)
        return []


_MISSING = object()


def request_memberships(request: Any) -> list[Membership]:
    """The signed-in user's memberships, loaded once per request (``request.memberships``).

    Both the permission check and the pages' study lists use them.
    """
    cached = vars(request).get("_bhp_memberships")
    if cached is None:
        user = request.identity
        cached = [] if user is None else memberships_of(request.db, user.id)
        request._bhp_memberships = cached
    return cached  # type: ignore[no-any-return]


def _forget_cached_identity(request: Any) -> None:
    vars(request).pop("_bhp_identity", None)
    vars(request).pop("_bhp_principals", None)
    vars(request).pop("_bhp_memberships", None)


def includeme(config: Any) -> None:
    config.set_security_policy(SecurityPolicy())
    config.set_csrf_storage_policy(SessionCSRFStoragePolicy())
    config.set_default_csrf_options(require_csrf=True)
    config.add_request_method(request_memberships, name="memberships", property=True)
