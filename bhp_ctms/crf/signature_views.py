"""The signing pages: the site PI signs one form entry, or a participant's whole
casebook, re-entering their password (and TOTP code).

Thin: each view shows what is signed with the hash of what it shows, reads the
:class:`~bhp_ctms.crf.signature_forms.SignForm`, and calls
:mod:`bhp_ctms.crf.signatures`. A refusal is shown beside the field it names, with the
chosen meaning kept and the password never sent back.
"""

from __future__ import annotations

import abc
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config, view_defaults

from bhp_ctms.crf.models import FormEntry
from bhp_ctms.crf.sdv_views import form_page_path
from bhp_ctms.crf.signature_forms import SignForm
from bhp_ctms.crf.signatures import (
    SignatureRefused,
    casebook_content_sha256,
    casebook_entries,
    casebook_signatures,
    casebook_signing_problem,
    describe_entry,
    entry_content_sha256,
    entry_signatures,
    entry_signing_problem,
    shown_values,
    sign_casebook,
    sign_entry,
    signature_states,
    signing_role,
)
from bhp_ctms.forms import attach_error
from bhp_ctms.locks.state import ActiveLock, active_locks, lock_covering, locked_data
from bhp_ctms.permissions import Permissions
from bhp_ctms.studies.services import study_access


class _SignViews(abc.ABC):
    """What both signing pages share: the signer, their form, and refusals."""

    # The lock over what is signed: the page says so, and a post is refused.
    lock: ActiveLock | None = None

    def __init__(self, context: Any, request: Any) -> None:
        self.request = request
        self.study = context.study
        self.site = context.site
        self.participant = context.participant
        self.signer = request.identity
        self.settings = request.registry.settings["bhp_ctms"]

    def form(self, formdata: Any = None) -> SignForm:
        return SignForm(formdata, second_factor=self.signer.has_totp)

    def common(self, form: SignForm, shown_sha256: str) -> dict[str, Any]:
        # The hidden hash is always that of the content this page shows now.
        form.shown_sha256.data = shown_sha256
        return {
            "study": self.study,
            "site": self.site,
            "participant": self.participant,
            "access": study_access(self.request, self.study.id),
            "signer_name": self.signer.full_name,
            "signer_role": signing_role(self.request.db, self.signer, self.participant),
            "can_see_identifiers": bool(self.request.has_permission(Permissions.IDENTIFIERS_VIEW)),
            "lock": self.lock,
            "form": form,
        }

    @abc.abstractmethod
    def page(self, form: SignForm) -> dict[str, Any]:
        """The signing page's values."""

    @abc.abstractmethod
    def sign_with(self, form: SignForm) -> None:
        """Sign what the page shows; raises :class:`SignatureRefused`."""

    @abc.abstractmethod
    def signed(self) -> tuple[str, str]:
        """What to tell the signer, and where to send them, once signed."""

    def submit(self) -> Any:
        if self.lock is not None:
            raise locked_data(self.lock, self.participant.code)
        form = self.form(self.request.POST)
        if not form.validate():
            return self.page(self.refused(form))
        try:
            self.sign_with(form)
        except SignatureRefused as refusal:
            return self.page(self.refused(form, refusal))
        message, path = self.signed()
        self.request.session.flash(message, "success")
        return HTTPSeeOther(path)

    def refused(self, form: SignForm, refusal: SignatureRefused | None = None) -> SignForm:
        if refusal is not None:
            attach_error(form, refusal.message, refusal.field)
        form.forget_secrets()
        self.request.response.status_int = 400
        return form


@view_defaults(
    route_name="crf_entry_sign", renderer="crf/sign.html", permission=Permissions.CRF_SIGN
)
class EntrySignViews(_SignViews):
    """Signing one form entry."""

    def __init__(self, context: Any, request: Any) -> None:
        super().__init__(context, request)
        self.entry: FormEntry = context.entry
        self.lock = lock_covering(request.db, self.participant, self.entry.form_key)

    def page(self, form: SignForm) -> dict[str, Any]:
        db = self.request.db
        return {
            **self.common(form, entry_content_sha256(self.entry)),
            "signing_casebook": False,
            "entry": self.entry,
            "title": describe_entry(self.entry),
            "values": shown_values(self.entry),
            "problem": entry_signing_problem(self.entry),
            "signatures": signature_states(db, entry_signatures(db, self.entry)),
            "form_path": form_page_path(self.request, self.study.code, self.entry),
            "action": self.request.route_path(
                "crf_entry_sign", code=self.study.code, entry=self.entry.id
            ),
        }

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(self.form())

    @view_config(request_method="POST")
    def sign(self) -> Any:
        return self.submit()

    def sign_with(self, form: SignForm) -> None:
        sign_entry(
            self.request.db,
            self.settings,
            self.request.audit_actor,
            self.signer,
            self.entry,
            meaning=form.chosen_meaning,
            proof=form.proof(),
            shown_sha256=form.shown_sha256.data or "",
        )

    def signed(self) -> tuple[str, str]:
        message = (
            f"You have signed {describe_entry(self.entry)} for participant {self.participant.code}."
        )
        return message, form_page_path(self.request, self.study.code, self.entry)


@view_defaults(
    route_name="crf_casebook_sign", renderer="crf/sign.html", permission=Permissions.CRF_SIGN
)
class CasebookSignViews(_SignViews):
    """Signing a participant's whole casebook: every form of it, each complete."""

    def __init__(self, context: Any, request: Any) -> None:
        super().__init__(context, request)
        # The casebook is locked with its participant, or with any form of it.
        locks = active_locks(request.db, self.study.id)
        self.lock = locks.of_participant(self.participant)
        if self.lock is None and locks:
            self.lock = next(
                (
                    lock
                    for entry in casebook_entries(request.db, self.participant)
                    if (lock := locks.of_participant(self.participant, entry.form_key))
                ),
                None,
            )

    def page(self, form: SignForm) -> dict[str, Any]:
        db = self.request.db
        entries = casebook_entries(db, self.participant)
        return {
            **self.common(form, casebook_content_sha256(db, self.participant)),
            "signing_casebook": True,
            "title": f"Casebook of participant {self.participant.code}",
            "entries": [(entry, describe_entry(entry)) for entry in entries],
            "problem": casebook_signing_problem(entries),
            "signatures": signature_states(db, casebook_signatures(db, self.participant)),
            "form_path": lambda entry: form_page_path(self.request, self.study.code, entry),
            "action": self.request.route_path(
                "crf_casebook_sign", code=self.study.code, participant=self.participant.code
            ),
        }

    @view_config(request_method="GET")
    def show(self) -> dict[str, Any]:
        return self.page(self.form())

    @view_config(request_method="POST")
    def sign(self) -> Any:
        return self.submit()

    def sign_with(self, form: SignForm) -> None:
        sign_casebook(
            self.request.db,
            self.settings,
            self.request.audit_actor,
            self.signer,
            self.participant,
            meaning=form.chosen_meaning,
            proof=form.proof(),
            shown_sha256=form.shown_sha256.data or "",
        )

    def signed(self) -> tuple[str, str]:
        message = f"You have signed the casebook of participant {self.participant.code}."
        path = self.request.route_path(
            "participant", code=self.study.code, participant=self.participant.code
        )
        return message, str(path)
