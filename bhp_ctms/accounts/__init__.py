"""Accounts: users, log-in, second factor, roles and memberships."""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    config.add_route("login", "/login")
    config.add_route("login_second_factor", "/login/security-code")
    config.add_route("login_enrol", "/login/set-up-security-code")
    config.add_route("logout", "/logout")
    config.add_route("account", "/account")
    config.add_route("account_password", "/account/password")
    config.add_route("account_enrol", "/account/security-code/set-up")
    config.add_route("account_disable_second_factor", "/account/security-code/turn-off")
