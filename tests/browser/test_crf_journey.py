"""A coordinator fills the baseline vital signs in Chromium: the show-if logic and the
calculated BMI work live, a hard error is fixed in place, the form is completed and
later changed with a reason. A monitor raises a query on the weight and the
coordinator answers it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.test_participant_journey import date_group, fill_date

pytestmark = pytest.mark.browser


def register_participant(page: Page) -> str:
    page.goto("/studies/DEMO/sites/NTH/register")
    fill_date(date_group(page, "Date of registration"), date.today())
    page.get_by_role("button", name="Register participant").click()
    expect(page).to_have_url(re.compile(r"/participants/DEMO-NTH-\d{4}/$"))
    return page.url


def item_input(page: Page, label: str) -> Locator:
    """An item's box, by its label (which says "(required)" after required items)."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}( \(required\))?$"))


def open_vitals(page: Page, participant_url: str) -> None:
    page.goto(participant_url)
    page.get_by_test_id("casebook-link").click()
    page.get_by_test_id("casebook-baseline-1").get_by_role("link", name="Vital signs").click()
    expect(page.locator("h1")).to_contain_text("Vital signs")


def test_coordinator_fills_fixes_completes_and_corrects_vital_signs_and_answers_a_query(
    page: Page, browser: Browser, live_server: str, log_in: Callable[..., None]
) -> None:
    log_in(page, "coordinator")
    participant_url = register_participant(page)
    open_vitals(page, participant_url)

    # Show-if: the measurements appear once "measured" is answered yes, the reason
    # for not measuring only when it is answered no.
    weight = page.get_by_test_id("item-weight")
    expect(weight).to_be_hidden()
    measured = page.get_by_test_id("item-measured")
    measured.get_by_label("No", exact=True).check()
    expect(page.get_by_test_id("item-not_measured_reason")).to_be_visible()
    measured.get_by_label("Yes", exact=True).check()
    expect(page.get_by_test_id("item-not_measured_reason")).to_be_hidden()
    expect(weight).to_be_visible()

    fill_date(date_group(page, "Date of assessment"), date.today())
    item_input(page, "Height").fill("175")
    item_input(page, "Weight").fill("700")
    item_input(page, "Systolic blood pressure").fill("120")
    item_input(page, "Diastolic blood pressure").fill("80")
    # The BMI is worked out as the values are typed.
    bmi = page.get_by_test_id("item-bmi").locator("output")
    expect(bmi).to_have_text("228.6")
    page.get_by_test_id("save-complete").click()

    # The hard error is shown beside the weight, with everything typed kept.
    expect(page.get_by_test_id("error-summary")).to_contain_text(
        "Weight must be between 20 and 300 kg."
    )
    expect(item_input(page, "Weight")).to_have_value("700")
    expect(page.get_by_label("Height", exact=True)).to_have_value("175")
    item_input(page, "Weight").fill("70")
    expect(bmi).to_have_text("22.9")
    page.get_by_test_id("save-complete").click()
    expect(page.get_by_test_id("flash")).to_contain_text("Vital signs has been saved (complete)")
    expect(page.get_by_test_id("entry-status")).to_contain_text("Complete")
    expect(bmi).to_have_text("22.9")

    # Later, a correction: the reason box appears beside the changed value.
    item_input(page, "Weight").fill("72")
    reason = page.get_by_label("Reason for changing Weight")
    expect(reason).to_be_visible()
    reason.fill("Transcribed wrongly from the scales")
    page.get_by_test_id("save-changes").click()
    expect(page.get_by_test_id("flash")).to_contain_text("has been saved")
    expect(item_input(page, "Weight")).to_have_value("72")
    expect(bmi).to_have_text("23.5")
    form_url = page.url

    # A monitor raises a query on the weight.
    monitor_context = browser.new_context(base_url=live_server, locale="en-GB")
    monitor = monitor_context.new_page()
    log_in(monitor, "monitor")
    monitor.goto(form_url)
    monitor.get_by_test_id("item-weight").get_by_role("link", name="Raise a query").click()
    monitor.get_by_label("Your question").fill(
        "Please confirm the weight against the clinic scales."
    )
    monitor.get_by_role("button", name="Raise query").click()
    expect(monitor.get_by_test_id("query-weight")).to_contain_text("Please confirm the weight")
    monitor_context.close()

    # The coordinator sees it on the form and answers it.
    page.goto(form_url)
    query = page.get_by_test_id("query-weight")
    expect(query).to_contain_text("Query open")
    query.get_by_role("link", name=re.compile("View query")).click()
    page.get_by_label("Your answer").fill("Checked against the clinic scales: 72 kg is right.")
    page.get_by_role("button", name="Send answer").click()
    expect(page.get_by_test_id("status")).to_have_text("Answered")
