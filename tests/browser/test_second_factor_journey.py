"""Turning on a second factor from the account page, then logging in with it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.deployment import Deployment

pytestmark = pytest.mark.browser


def test_user_sets_up_an_authenticator_app_and_logs_in_with_it(
    page: Page, log_in: Callable[..., None], deployment: Deployment
) -> None:
    log_in(page, "monitor")
    page.get_by_test_id("current-user").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    expect(page.get_by_test_id("second-factor-status")).to_contain_text("Off")

    page.get_by_role("link", name="Set up a second factor").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up your security code")
    qr_code = page.get_by_role("img", name="QR code to scan with your authenticator app")
    assert qr_code.evaluate("image => image.complete && image.naturalWidth > 0")
    secret = page.get_by_test_id("totp-key").inner_text().replace(" ", "")
    authenticator = pyotp.TOTP(secret)
    page.get_by_label("Security code").fill(authenticator.now())
    page.get_by_role("button", name="Turn on the second factor").click()

    expect(page).to_have_url(re.compile(r"/account$"))
    expect(page.get_by_test_id("flash")).to_contain_text("Your second factor is set up")
    expect(page.get_by_test_id("second-factor-status")).to_contain_text("On")

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_test_id("flash")).to_contain_text("You have logged out")

    page.get_by_label("User name").fill("monitor")
    page.get_by_label("Password", exact=True).fill(deployment.password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/login/security-code$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your security code")

    # A code is accepted once: the one used to set up is spent, so this is the app's
    # next code, which the server accepts a step early (as it does for slow clocks).
    page.get_by_label("Security code").fill(authenticator.at(time.time() + authenticator.interval))
    page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(re.compile(r"/studies/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your studies")
    expect(page.get_by_test_id("current-user")).to_have_text("Mo Monitor")
