"""Log-in, log-out and the user's own security settings."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import segno
from pyramid.httpexceptions import HTTPFound, HTTPSeeOther
from pyramid.security import NO_PERMISSION_REQUIRED, forget, remember
from pyramid.view import view_config, view_defaults

from bhp_ctms.accounts.forms import (
    ChangePasswordForm,
    DisableSecondFactorForm,
    LoginForm,
    SecondFactorForm,
)
from bhp_ctms.accounts.models import User
from bhp_ctms.accounts.services import (
    AccountError,
    AccountService,
    LoginResult,
    LoginStatus,
)
from bhp_ctms.db import utcnow
from bhp_ctms.permissions import Permissions
from bhp_ctms.templating import ukdate

PENDING_LOGIN_KEY = "auth.pending"
# How long the second step of a log-in may follow the first.
PENDING_LOGIN_LIFETIME = timedelta(minutes=5)

FAILED_MESSAGE = "The user name or password is not right"
LOCKED_MESSAGE = (
    "This account is locked after too many failed attempts to log in. "
    "Try again after {until}, or ask a CTU admin to unlock it."
)
DISABLED_MESSAGE = "This account has been disabled. Ask a CTU admin if you need access."


def account_service(request: Any) -> AccountService:
    return AccountService(request.db, request.registry.settings["bhp_ctms"])


def safe_next_url(request: Any, candidate: str | None) -> str:
    """Only ever redirect to a path on this site (no open redirects)."""
    if candidate and candidate.startswith("/") and not candidate.startswith(("//", "/\\")):
        return candidate
    return request.route_path("dashboard")


def _locked_message(until: datetime | None) -> str:
    return LOCKED_MESSAGE.format(until=ukdate(until, with_time=True) if until else "a while")


def _qr_code_data_uri(uri: str) -> str:
    return str(
        segno.make(uri, error="m").svg_data_uri(scale=5, title="QR code for your authenticator app")
    )


class LoginFlow:
    """Carries a half-finished log-in between its steps, in the (unrotated) session."""

    def __init__(self, request: Any) -> None:
        self.request = request
        self.service = account_service(request)

    def start(self, result: LoginResult, next_url: str) -> None:
        assert result.user is not None
        pending: dict[str, Any] = {
            "user_id": result.user.id,
            "since": utcnow().isoformat(),
            "next": next_url,
        }
        if result.status is LoginStatus.ENROLMENT_NEEDED:
            pending["secret"] = self.service.encrypt_totp_secret(self.service.new_totp_secret())
        self.request.session[PENDING_LOGIN_KEY] = pending

    def pending(self) -> dict[str, Any] | None:
        pending = self.request.session.get(PENDING_LOGIN_KEY)
        if not pending:
            return None
        if utcnow() - datetime.fromisoformat(pending["since"]) > PENDING_LOGIN_LIFETIME:
            self.request.session.pop(PENDING_LOGIN_KEY, None)
            return None
        return dict(pending)

    def pending_user(self) -> Any:
        pending = self.pending()
        if pending is None:
            return None
        return self.request.db.get(User, pending["user_id"])

    def finish(self, result: LoginResult, next_url: str) -> HTTPFound:
        assert result.user is not None
        self.request.session.pop(PENDING_LOGIN_KEY, None)
        remember(self.request, result.user.id)
        return HTTPSeeOther(safe_next_url(self.request, next_url))


@view_defaults(route_name="login", renderer="accounts/login.html")
class LoginViews:
    def __init__(self, request: Any) -> None:
        self.request = request
        self.flow = LoginFlow(request)

    @view_config(request_method="GET", permission=NO_PERMISSION_REQUIRED)
    def show(self) -> Any:
        if self.request.identity is not None:
            return HTTPFound(self.request.route_path("dashboard"))
        return {
            "form": LoginForm(),
            "next": self.request.params.get("next", ""),
            "session_expired": self.request.session.expired or "expired" in self.request.GET,
        }

    @view_config(request_method="POST", permission=NO_PERMISSION_REQUIRED)
    def submit(self) -> Any:
        form = LoginForm(self.request.POST)
        next_url = self.request.POST.get("next", "")
        if not form.validate():
            return {"form": form, "next": next_url}
        result = self.flow.service.authenticate(
            form.username.data, form.password.data, self.request.audit_actor
        )
        if result.status is LoginStatus.LOGGED_IN:
            return self.flow.finish(result, next_url)
        if result.status in (LoginStatus.SECOND_FACTOR_NEEDED, LoginStatus.ENROLMENT_NEEDED):
            self.flow.start(result, next_url)
            route = (
                "login_second_factor"
                if result.status is LoginStatus.SECOND_FACTOR_NEEDED
                else "login_enrol"
            )
            return HTTPSeeOther(self.request.route_path(route))
        form.password.data = ""
        if result.status is LoginStatus.LOCKED:
            form.add_form_error(_locked_message(result.locked_until))
        elif result.status is LoginStatus.DISABLED:
            form.add_form_error(DISABLED_MESSAGE)
        else:
            form.add_form_error(FAILED_MESSAGE)
        return {"form": form, "next": next_url}


@view_defaults(route_name="login_second_factor", renderer="accounts/second_factor.html")
class SecondFactorViews:
    def __init__(self, request: Any) -> None:
        self.request = request
        self.flow = LoginFlow(request)

    @view_config(request_method="GET", permission=NO_PERMISSION_REQUIRED)
    def show(self) -> Any:
        if self.flow.pending_user() is None:
            return HTTPFound(self.request.route_path("login"))
        return {"form": SecondFactorForm()}

    @view_config(request_method="POST", permission=NO_PERMISSION_REQUIRED)
    def submit(self) -> Any:
        pending = self.flow.pending()
        user = self.flow.pending_user()
        if pending is None or user is None:
            self.request.session.flash("Your log-in took too long. Please start again.")
            return HTTPSeeOther(self.request.route_path("login"))
        form = SecondFactorForm(self.request.POST)
        if not form.validate():
            return {"form": form}
        result = self.flow.service.verify_second_factor(
            user, form.code.data, self.request.audit_actor
        )
        if result.status is LoginStatus.LOGGED_IN:
            return self.flow.finish(result, pending.get("next", ""))
        form.code.data = ""
        if result.status is LoginStatus.LOCKED:
            self.request.session.pop(PENDING_LOGIN_KEY, None)
            form.add_form_error(_locked_message(result.locked_until))
        else:
            form.code.errors = [
                "The code is not right, or it has already been used. "
                "Wait for the next code and try again."
            ]
        return {"form": form}


class EnrolmentMixin:
    """Showing a new TOTP secret and confirming it, at log-in or from the account page."""

    request: Any

    def enrolment_page(self, encrypted_secret: str, user: Any, form: Any) -> dict[str, Any]:
        service = account_service(self.request)
        secret = service.decrypt_totp_secret(encrypted_secret)
        uri = service.provisioning_uri(user, secret)
        return {
            "form": form,
            "qr_code": _qr_code_data_uri(uri),
            "secret_groups": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        }


@view_defaults(route_name="login_enrol", renderer="accounts/enrol.html")
class LoginEnrolmentViews(EnrolmentMixin):
    def __init__(self, request: Any) -> None:
        self.request = request
        self.flow = LoginFlow(request)

    @view_config(request_method="GET", permission=NO_PERMISSION_REQUIRED)
    def show(self) -> Any:
        pending = self.flow.pending()
        user = self.flow.pending_user()
        if pending is None or user is None or "secret" not in pending:
            return HTTPFound(self.request.route_path("login"))
        return {
            **self.enrolment_page(pending["secret"], user, SecondFactorForm()),
            "at_login": True,
        }

    @view_config(request_method="POST", permission=NO_PERMISSION_REQUIRED)
    def submit(self) -> Any:
        pending = self.flow.pending()
        user = self.flow.pending_user()
        if pending is None or user is None or "secret" not in pending:
            self.request.session.flash("Your log-in took too long. Please start again.")
            return HTTPSeeOther(self.request.route_path("login"))
        form = SecondFactorForm(self.request.POST)
        service = self.flow.service
        secret = service.decrypt_totp_secret(pending["secret"])
        if form.validate() and service.enrol_totp(
            self.request.audit_actor, user, secret, form.code.data
        ):
            result = service.complete_login(user, self.request.audit_actor)
            self.request.session.flash("Your second factor is set up.", "success")
            return self.flow.finish(result, pending.get("next", ""))
        if not form.code.errors:
            form.code.errors = ["The code is not right. Check your app and try again."]
        form.code.data = ""
        return {**self.enrolment_page(pending["secret"], user, form), "at_login": True}


@view_config(route_name="logout", request_method="POST", permission=Permissions.ACCOUNT_MANAGE)
def logout(request: Any) -> HTTPSeeOther:
    account_service(request).record_logout(request.identity, request.audit_actor)
    forget(request)
    request.session.flash("You have logged out.", "success")
    return HTTPSeeOther(request.route_path("login"))


ENROLMENT_SECRET_KEY = "account.new_totp_secret"


@view_defaults(permission=Permissions.ACCOUNT_MANAGE)
class AccountViews(EnrolmentMixin):
    def __init__(self, request: Any) -> None:
        self.request = request
        self.user = request.identity
        self.service = account_service(request)

    @view_config(route_name="account", renderer="accounts/account.html", request_method="GET")
    def overview(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "second_factor_required": self.service.second_factor_required(self.user),
        }

    @view_config(
        route_name="account_password", renderer="accounts/password.html", request_method="GET"
    )
    def password_form(self) -> dict[str, Any]:
        return {"form": ChangePasswordForm(user=self.user)}

    @view_config(
        route_name="account_password", renderer="accounts/password.html", request_method="POST"
    )
    def change_password(self) -> Any:
        form = ChangePasswordForm(self.request.POST, user=self.user)
        valid = form.validate()
        if not self.service.verify_password(self.user, form.current_password.data or ""):
            form.current_password.errors = ["Your current password is not right"]
            valid = False
        if not valid:
            for field in (form.current_password, form.new_password, form.confirm_password):
                field.data = ""
            return {"form": form}
        # Every session of the user ends; this one continues under a fresh identifier.
        self.service.set_password(self.request.audit_actor, self.user, form.new_password.data)
        remember(self.request, self.user.id)
        self.request.session.flash("Your password has been changed.", "success")
        return HTTPSeeOther(self.request.route_path("account"))

    @view_config(route_name="account_enrol", renderer="accounts/enrol.html", request_method="GET")
    def enrol_form(self) -> Any:
        if self.user.has_totp:
            return HTTPFound(self.request.route_path("account"))
        encrypted = self.request.session.get(ENROLMENT_SECRET_KEY)
        if encrypted is None:
            encrypted = self.service.encrypt_totp_secret(self.service.new_totp_secret())
            self.request.session[ENROLMENT_SECRET_KEY] = encrypted
        return {**self.enrolment_page(encrypted, self.user, SecondFactorForm()), "at_login": False}

    @view_config(route_name="account_enrol", renderer="accounts/enrol.html", request_method="POST")
    def enrol(self) -> Any:
        encrypted = self.request.session.get(ENROLMENT_SECRET_KEY)
        if self.user.has_totp or encrypted is None:
            return HTTPSeeOther(self.request.route_path("account"))
        form = SecondFactorForm(self.request.POST)
        secret = self.service.decrypt_totp_secret(encrypted)
        if form.validate() and self.service.enrol_totp(
            self.request.audit_actor, self.user, secret, form.code.data
        ):
            self.request.session.pop(ENROLMENT_SECRET_KEY, None)
            self.request.session.flash("Your second factor is set up.", "success")
            return HTTPSeeOther(self.request.route_path("account"))
        if not form.code.errors:
            form.code.errors = ["The code is not right. Check your app and try again."]
        form.code.data = ""
        return {**self.enrolment_page(encrypted, self.user, form), "at_login": False}

    @view_config(
        route_name="account_disable_second_factor",
        renderer="accounts/disable_second_factor.html",
        request_method="GET",
    )
    def disable_form(self) -> Any:
        if not self.user.has_totp:
            return HTTPFound(self.request.route_path("account"))
        return {"form": DisableSecondFactorForm()}

    @view_config(
        route_name="account_disable_second_factor",
        renderer="accounts/disable_second_factor.html",
        request_method="POST",
    )
    def disable(self) -> Any:
        if not self.user.has_totp:
            return HTTPSeeOther(self.request.route_path("account"))
        form = DisableSecondFactorForm(self.request.POST)
        valid = form.validate()
        if valid and not self.service.verify_password(self.user, form.password.data):
            form.password.errors = ["Your password is not right"]
            valid = False
        if valid and not self.service.check_totp(self.user, form.code.data):
            form.code.errors = ["The code is not right, or it has already been used"]
            valid = False
        if valid:
            try:
                self.service.disable_totp(self.request.audit_actor, self.user)
            except AccountError as error:
                form.add_form_error(str(error))
                valid = False
        if not valid:
            form.password.data = ""
            form.code.data = ""
            return {"form": form}
        self.request.session.flash("Your second factor has been turned off.", "success")
        return HTTPSeeOther(self.request.route_path("account"))
