"""Logging in and out, and finding one's study, as a person does it in Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

# Page titles and site names use an en dash.
DASH = "\N{EN DASH}"


def expect_one_heading(page: Page, text: str | re.Pattern[str]) -> None:
    """Each page has exactly one h1, saying what the page is for."""
    expect(page.locator("h1")).to_have_count(1)
    expect(page.locator("h1")).to_have_text(text)


def test_coordinator_finds_their_study_and_logs_out(
    page: Page, log_in: Callable[..., None]
) -> None:
    log_in(page, "coordinator")

    expect_one_heading(page, "Your studies")
    expect(page.get_by_test_id("current-user")).to_have_text("Cora Coordinator")
    expect(page).to_have_title(f"Your studies {DASH} BHP CTMS")
    studies = page.get_by_test_id("studies")
    expect(studies.get_by_role("link", name="DEMO", exact=True)).to_be_visible()
    expect(studies).to_contain_text("Site coordinator")
    expect(studies).to_contain_text(f"NTH {DASH} Northern General Hospital")
    expect(studies).not_to_contain_text("CHH")

    # The switcher opens the study as soon as it is chosen: its Go button is only
    # for browsers without JavaScript.
    switcher = page.get_by_label("Study", exact=True)
    expect(page.get_by_role("button", name="Go to study")).to_be_hidden()
    switcher.select_option("DEMO")

    expect(page).to_have_url(re.compile(r"/studies/DEMO/$"))
    expect_one_heading(page, re.compile("daily walking programme"))
    expect(page.get_by_test_id("current-role")).to_contain_text("Site coordinator")
    expect(switcher).to_have_value("DEMO")
    sites = page.get_by_test_id("sites")
    expect(sites).to_contain_text(f"NTH {DASH} Northern General Hospital")
    expect(sites).not_to_contain_text("CHH")

    page.get_by_role("button", name="Log out").click()

    expect(page).to_have_url(re.compile(r"/login$"))
    expect_one_heading(page, "Log in to BHP CTMS")
    banner = page.get_by_test_id("flash")
    expect(banner).to_contain_text("You have logged out")
    expect(banner).to_be_focused()
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    # Logged out means logged out: the dashboard asks for a log-in again.
    page.goto("/studies/")
    expect(page).to_have_url(re.compile(r"/login"))


def test_wrong_password_shows_the_error_summary_and_keeps_the_user_name(page: Page) -> None:
    page.goto("/login")
    page.get_by_label("User name").fill("pi")
    page.get_by_label("Password", exact=True).fill("not the right password")
    page.get_by_role("button", name="Log in").click()

    summary = page.get_by_test_id("error-summary")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("heading", name="There is a problem")).to_be_visible()
    expect(summary).to_contain_text("The user name or password is not right")
    expect(page).to_have_title(f"Error: Log in {DASH} BHP CTMS")
    expect_one_heading(page, "Log in to BHP CTMS")
    expect(page.get_by_label("User name")).to_have_value("pi")
    expect(page.get_by_label("Password", exact=True)).to_have_value("")


def test_error_summary_links_move_focus_to_the_fields(page: Page) -> None:
    page.goto("/login")
    page.get_by_role("button", name="Log in").click()

    summary = page.get_by_test_id("error-summary")
    expect(summary).to_be_focused()
    user_name = page.get_by_label("User name")
    # Each field names its error, so a screen reader reads it with the field.
    expect(user_name).to_have_accessible_description(re.compile("Enter your user name"))

    summary.get_by_role("link", name="Enter your password").click()
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    summary.get_by_role("link", name="Enter your user name").click()
    expect(user_name).to_be_focused()


def test_the_skip_link_moves_focus_to_the_main_content(page: Page) -> None:
    page.goto("/login")
    page.keyboard.press("Tab")
    skip_link = page.get_by_role("link", name="Skip to main content")
    expect(skip_link).to_be_focused()
    expect(skip_link).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
