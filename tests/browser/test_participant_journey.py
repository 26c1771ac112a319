"""A coordinator registers a participant in Chromium, records their consent and
eligibility, the site PI confirms it, and the coordinator sees the schedule of visits
and records the screening visit."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.deployment import Deployment

pytestmark = pytest.mark.browser

VALID_NHS_NUMBER = "943 476 5919"


def fill_date(group: Locator, day: date) -> None:
    group.get_by_label("Day", exact=True).fill(str(day.day))
    group.get_by_label("Month", exact=True).fill(str(day.month))
    group.get_by_label("Year", exact=True).fill(str(day.year))


def date_group(page: Page, legend: str) -> Locator:
    return page.get_by_role("group", name=re.compile(legend))


def test_coordinator_registers_consents_and_assesses_a_participant_and_sees_the_schedule(
    page: Page,
    browser: Browser,
    live_server: str,
    deployment: Deployment,
    log_in: Callable[..., None],
) -> None:
    today = date.today()
    log_in(page, "coordinator")
    page.goto("/studies/DEMO/sites/NTH/")
    page.get_by_role("link", name="Register a participant").click()
    expect(page.locator("h1")).to_have_text("Register a participant")

    fill_date(date_group(page, "Date of registration"), today)
    page.get_by_label("Full name").fill("Jane Example")
    fill_date(date_group(page, "Date of birth"), date(1961, 5, 14))
    page.get_by_label("NHS number").fill(VALID_NHS_NUMBER)
    page.get_by_role("button", name="Register participant").click()

    expect(page).to_have_url(re.compile(r"/studies/DEMO/participants/DEMO-NTH-\d{4}/$"))
    flash = page.get_by_test_id("flash")
    expect(flash).to_contain_text(re.compile(r"Participant DEMO-NTH-\d{4} has been registered"))
    participant_url = page.url
    expect(page.get_by_test_id("participant-status")).to_contain_text("Screened")
    # Her own site's coordinator sees her identifiers; the page shows them formatted.
    expect(page.get_by_test_id("identifiers")).to_contain_text("Jane Example")
    expect(page.get_by_test_id("identifiers")).to_contain_text(VALID_NHS_NUMBER)

    # Consent: the document versions come filled in from the protocol.
    page.get_by_test_id("consent-actions").get_by_role("link", name="Record consent").click()
    # An adult gives their own consent: the form asks nothing about who gave it.
    expect(page.get_by_role("group", name="Who gave it?")).to_have_count(0)
    expect(page.get_by_label("Information sheet version")).not_to_have_value("")
    fill_date(date_group(page, "Date of consent"), today)
    page.get_by_label("Taken by").fill("Cora Coordinator")
    page.get_by_role("button", name="Record consent").click()

    expect(page.get_by_test_id("participant-status")).to_contain_text("Consented")
    expect(page.get_by_test_id("consent-status")).to_have_text("Consent is current.")

    # Eligibility: every inclusion criterion yes, every exclusion criterion no.
    page.get_by_test_id("assess-eligibility").click()
    for answer in page.get_by_test_id("inclusion-criteria").get_by_label("Yes", exact=True).all():
        answer.check()
    for answer in page.get_by_test_id("exclusion-criteria").get_by_label("No", exact=True).all():
        answer.check()
    fill_date(date_group(page, "Date of the assessment"), today)
    page.get_by_role("button", name="Save assessment").click()

    expect(page.get_by_test_id("eligibility-outcome")).to_have_text("Eligible")
    expect(page.get_by_test_id("eligibility-confirmation")).to_contain_text("Awaiting confirmation")
    expect(page.get_by_test_id("participant-status")).to_contain_text("Consented")

    # The site PI confirms with their password, as an electronic signature.
    pi_context = browser.new_context(base_url=live_server)
    try:
        pi_page = pi_context.new_page()
        log_in(pi_page, "pi")
        pi_page.goto(participant_url)
        pi_page.get_by_test_id("eligibility").get_by_role("link", name="Confirm").click()
        pi_page.get_by_label("Your password").fill(deployment.password)
        pi_page.get_by_role("button", name=re.compile("Confirm: eligible")).click()
        expect(pi_page.get_by_test_id("participant-status")).to_contain_text("Eligible")
    finally:
        pi_context.close()

    # Back to the coordinator: eligible, and the schedule counts from randomisation.
    page.goto(participant_url)
    expect(page.get_by_test_id("participant-status")).to_contain_text("Eligible")
    expect(page.get_by_test_id("eligibility-confirmation")).to_contain_text(
        "Confirmed by Priya Investigator"
    )
    schedule = page.get_by_test_id("schedule")
    expect(page.get_by_test_id("schedule-screening")).to_contain_text("Due")
    expect(page.get_by_test_id("schedule-week_12")).to_contain_text("Awaiting baseline")
    expect(schedule.locator("tbody tr")).to_have_count(6)

    page.get_by_test_id("schedule-screening").get_by_role("link", name="Record").click()
    page.get_by_role("group", name="Was the visit done?").get_by_label("Yes").check()
    fill_date(date_group(page, "Date of the visit"), today)
    page.get_by_role("button", name="Save visit").click()
    expect(page).to_have_url(participant_url)
    expect(page.get_by_test_id("schedule-screening")).to_contain_text("Done")
    expect(page.get_by_test_id("schedule-screening")).to_contain_text(
        f"{today.day} {today.strftime('%b %Y')}"
    )
