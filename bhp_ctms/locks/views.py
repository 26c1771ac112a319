"""The data manager's lock pages: the study's locks and what is outstanding before a
lock, site by site; locking the study, a site, a participant or a form entry; unlocking;
the participant page's Lock section; and the page every refused write to locked data
gets.

Thin: each view finds what to lock within the user's sites, reads the form, and calls
:class:`~bhp_ctms.locks.services.LockService`. A refusal is shown beside the field it
names, with the reason kept and the password never sent back.
"""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.view import exception_view_config, view_config, view_defaults
from sqlalchemy import select

from bhp_ctms.accounts.models import User
from bhp_ctms.crf.models import FormEntry
from bhp_ctms.db import utc_today
from bhp_ctms.forms import attach_error
from bhp_ctms.locks.forms import LockForm, UnlockForm
from bhp_ctms.locks.models import LOCK_MEANING, UNLOCK_MEANING, Lock, LockScope
from bhp_ctms.locks.readiness import StudyReadiness, study_readiness
from bhp_ctms.locks.services import (
    LockRefused,
    LockService,
    LockTarget,
    find_lock,
    study_locks,
)
from bhp_ctms.locks.state import DataLocked, active_locks, lock_covering
from bhp_ctms.participants.models import Participant
from bhp_ctms.permissions import Permissions
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.models import Study
from bhp_ctms.studies.services import study_access


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and len(text) <= 12 else None


def _role_label(request: Any, study_id: int) -> str:
    access = study_access(request, study_id)
    return access.role_labels if access else ""


def entry_page_path(request: Any, study: Study, participant: Participant, entry: Any) -> str:
    """The data entry page of a form entry."""
    return str(
        request.route_path(
            "crf_form",
            code=study.code,
            participant=participant.code,
            event=entry.event_code,
            instance=entry.event_instance,
            form=entry.form_code,
        )
    )


def where_locked_data_are(request: Any, study: Study, lock: Lock | LockTarget) -> str:
    """The page a lock is made from: the form's, the participant's, or the study's locks."""
    participant = lock.participant
    if isinstance(lock, LockTarget):
        entry = lock.entry
    else:
        entry = request.db.get(FormEntry, lock.form_entry_id) if lock.form_entry_id else None
    if lock.scope == LockScope.FORM_ENTRY and participant is not None and entry is not None:
        return entry_page_path(request, study, participant, entry)
    if lock.scope == LockScope.PARTICIPANT and participant is not None:
        return str(request.route_path("participant", code=study.code, participant=participant.code))
    return str(request.route_path("locks", code=study.code))


# -- the participant page's section ------------------------------------------------------


def participant_panel(request: Any, context: Any) -> dict[str, Any] | None:
    """The participant page's Lock section, for data managers only (everyone sees the
    page's Locked banner)."""
    if not request.has_permission(Permissions.DATA_LOCK):
        return None
    study = context.study
    participant = context.participant
    lock = lock_covering(request.db, participant)
    query: dict[str, Any] = {"scope": LockScope.PARTICIPANT.value, "participant": participant.code}
    return {
        "lock": lock,
        "lock_url": request.route_path("lock_new", code=study.code, _query=query),
        "unlock_url": request.route_path("lock_unlock", code=study.code, _query={"lock": lock.id})
        if lock is not None
        else "",
        "locks_url": request.route_path("locks", code=study.code),
    }


# -- the study's locks -----------------------------------------------------------------


@view_config(
    route_name="locks",
    renderer="locks/locks.html",
    request_method="GET",
    permission=Permissions.DATA_LOCK,
)
def study_locks_page(context: Any, request: Any) -> dict[str, Any]:
    """Every lock of the study, active first, and what is outstanding at each site."""
    study = context.study
    db = request.db
    scope = SiteScope.for_memberships(study.id, request.memberships)
    locks = [lock for lock in study_locks(db, study.id) if _in_scope(lock, scope)]
    current = active_locks(db, study.id)
    return {
        "study": study,
        "access": study_access(request, study.id),
        "all_sites": scope.all_sites,
        "readiness": study_readiness(db, scope, study, utc_today()),
        "study_lock": current.study_lock,
        "site_locks": {
            lock.site_id: lock for lock in current.locks if lock.scope == LockScope.SITE
        },
        "active": [lock for lock in locks if lock.active],
        "lifted": [lock for lock in locks if not lock.active],
        "lock_path": lambda **query: request.route_path("lock_new", code=study.code, _query=query),
        "unlock_path": lambda lock_id: request.route_path(
            "lock_unlock", code=study.code, _query={"lock": lock_id}
        ),
        "where": lambda lock: where_locked_data_are(request, study, lock),
    }


def _in_scope(lock: Lock, scope: SiteScope) -> bool:
    """A site-scoped data manager sees the locks of their sites (and the study's)."""
    return lock.site_id is None or scope.allows(lock.site_id)


# -- locking ---------------------------------------------------------------------------


def _target(request: Any, study: Study) -> LockTarget:
    """What the request asks to lock (``scope``, with ``site``, ``participant`` or
    ``entry``), found only within the user's sites: anything else is a 404."""
    db = request.db
    params = request.params
    scope = SiteScope.for_memberships(study.id, request.memberships)
    try:
        kind = LockScope(params.get("scope", ""))
    except ValueError:
        raise HTTPNotFound() from None
    if kind == LockScope.STUDY:
        # Locking every site is for those who hold the study at all its sites.
        if not scope.all_sites:
            raise HTTPNotFound()
        return LockTarget.of_study(study)
    if kind == LockScope.SITE:
        site = db.scalars(
            scope.apply(
                select(Site).where(Site.study_id == study.id, Site.code == params.get("site", "")),
                Site.id,
            )
        ).first()
        if site is None:
            raise HTTPNotFound()
        return LockTarget.of_site(study, site)
    if kind == LockScope.PARTICIPANT:
        participant = db.scalars(
            scope.apply(
                select(Participant).where(
                    Participant.study_id == study.id,
                    Participant.code == params.get("participant", ""),
                ),
                Participant.site_id,
            )
        ).first()
        if participant is None:
            raise HTTPNotFound()
        return LockTarget.of_participant(study, participant.site, participant)
    entry_id = _number(str(params.get("entry", "")))
    found = (
        db.execute(
            scope.apply(
                select(FormEntry, Participant)
                .join(Participant, FormEntry.participant_id == Participant.id)
                .where(FormEntry.id == entry_id, Participant.study_id == study.id),
                Participant.site_id,
            )
        ).first()
        if entry_id is not None
        else None
    )
    if found is None:
        raise HTTPNotFound()
    entry, participant = found
    return LockTarget.of_entry(study, participant.site, participant, entry)


class _SigningPage:
    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        self.study: Study = context.study
        self.user: User = request.identity
        self.settings = request.registry.settings["bhp_ctms"]
        self.service = LockService(request.db, self.settings)

    def common(self, **values: Any) -> dict[str, Any]:
        return {
            "study": self.study,
            "access": study_access(self.request, self.study.id),
            "signer_name": self.user.full_name,
            "signer_role": _role_label(self.request, self.study.id),
            **values,
        }

    def refused(self, form: Any, refusal: LockRefused | None = None) -> Any:
        if refusal is not None:
            attach_error(form, refusal.message, refusal.field)
        form.forget_secrets()
        self.request.response.status_int = 400
        return form


@view_defaults(route_name="lock_new", renderer="locks/lock.html", permission=Permissions.DATA_LOCK)
class LockViews(_SigningPage):
    def __init__(self, context: Any, request: Any) -> None:
        super().__init__(context, request)
        self.target = _target(request, self.study)

    def form(self, formdata: Any = None) -> LockForm:
        return LockForm(formdata, second_factor=self.user.has_totp)

    def page(self, form: LockForm) -> dict[str, Any]:
        target = self.target
        db = self.request.db
        readiness = None
        if target.scope in (LockScope.STUDY, LockScope.SITE):
            scope = SiteScope.for_memberships(self.study.id, self.request.memberships)
            readiness = study_readiness(db, scope, self.study, utc_today())
            if target.site is not None:
                site_id = target.site.id
                readiness = StudyReadiness([s for s in readiness.sites if s.site.id == site_id])
        return self.common(
            form=form,
            meaning=LOCK_MEANING,
            target=target,
            readiness=readiness,
            hidden={
                "scope": target.scope.value,
                "site": target.site.code if target.site is not None else "",
                "participant": target.participant.code if target.participant is not None else "",
                "entry": target.entry.id if target.entry is not None else "",
            },
            back=where_locked_data_are(self.request, self.study, target),
        )

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(self.form())

    @view_config(request_method="POST")
    def lock(self) -> Any:
        form = self.form(self.request.POST)
        if not form.validate():
            return self.page(self.refused(form))
        try:
            self.service.lock(
                self.request.audit_actor,
                self.user,
                self.target,
                role_label=_role_label(self.request, self.study.id),
                reason=form.reason.data or "",
                proof=form.proof(),
            )
        except LockRefused as refusal:
            return self.page(self.refused(form, refusal))
        what = self.target.what
        self.request.session.flash(
            f"{what[:1].upper()}{what[1:]} is locked: nothing in it can change until it is "
            "unlocked.",
            "success",
        )
        return HTTPSeeOther(where_locked_data_are(self.request, self.study, self.target))


# -- unlocking -------------------------------------------------------------------------


@view_defaults(
    route_name="lock_unlock", renderer="locks/unlock.html", permission=Permissions.DATA_LOCK
)
class UnlockViews(_SigningPage):
    def __init__(self, context: Any, request: Any) -> None:
        super().__init__(context, request)
        lock_id = _number(str(request.params.get("lock", "")))
        lock = find_lock(request.db, self.study.id, lock_id) if lock_id is not None else None
        scope = SiteScope.for_memberships(self.study.id, request.memberships)
        if lock is None or not _in_scope(lock, scope):
            raise HTTPNotFound()
        if lock.scope == LockScope.STUDY and not scope.all_sites:
            raise HTTPNotFound()
        self.lock = lock

    def form(self, formdata: Any = None) -> UnlockForm:
        return UnlockForm(formdata, second_factor=self.user.has_totp)

    def page(self, form: UnlockForm) -> dict[str, Any]:
        return self.common(
            form=form,
            meaning=UNLOCK_MEANING,
            lock=self.lock,
            back=where_locked_data_are(self.request, self.study, self.lock),
        )

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(self.form())

    @view_config(request_method="POST")
    def unlock(self) -> Any:
        form = self.form(self.request.POST)
        if not form.validate():
            return self.page(self.refused(form))
        try:
            self.service.unlock(
                self.request.audit_actor,
                self.user,
                self.lock,
                role_label=_role_label(self.request, self.study.id),
                reason=form.reason.data or "",
                proof=form.proof(),
            )
        except LockRefused as refusal:
            return self.page(self.refused(form, refusal))
        what = self.lock.what
        self.request.session.flash(
            f"{what[:1].upper()}{what[1:]} is unlocked: its data can change again.", "success"
        )
        return HTTPSeeOther(where_locked_data_are(self.request, self.study, self.lock))


# -- a write refused ---------------------------------------------------------------------


@exception_view_config(DataLocked, renderer="locks/locked.html")
def data_locked(context: DataLocked, request: Any) -> dict[str, Any]:
    """Any write to locked data, from any page: 409, what is locked, by whom, since
    when and why, and that nothing was saved. The transaction is already doomed; the
    refused change is dropped from the session so that the page's own queries do not
    try to write it again."""
    request.db.rollback()
    request.response.status_int = 409
    return {"refusal": context, "lock": context.lock, "back": request.path_qs}
