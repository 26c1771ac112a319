"""A monitor reads the demo study's audit trail, narrows it and follows one value back."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

DASH = "\N{EN DASH}"


def test_monitor_filters_the_audit_trail_and_opens_a_values_history(
    page: Page, log_in: Callable[..., None]
) -> None:
    log_in(page, "monitor")
    page.goto("/studies/DEMO/audit/")

    expect(page.locator("h1")).to_have_text("Audit trail")
    expect(page).to_have_title(f"Audit trail {DASH} DEMO {DASH} BHP CTMS")
    events = page.get_by_test_id("events")
    expect(events.locator("caption")).to_have_text(re.compile("newest first"))

    page.get_by_label("Action").fill("site.created")
    page.get_by_role("button", name="Apply filters").click()

    expect(page).to_have_url(re.compile(r"action=site\.created"))
    expect(page.get_by_label("Action")).to_have_value("site.created")
    rows = events.locator("tbody tr")
    expect(rows.first).to_be_visible()
    actions = {
        text.removeprefix("Action ").strip()
        for text in rows.locator("td:nth-child(3)").all_inner_texts()
    }
    assert actions == {"site.created"}
    expect(events).to_contain_text("Northern General Hospital")

    page.get_by_role("link", name=re.compile(r"^History of site \d+ name$")).first.click()

    expect(page.locator("h1")).to_have_text(re.compile(r"^History of name of site \d+$"))
    history = page.get_by_test_id("history")
    expect(history.locator("caption")).to_have_text(re.compile("oldest first"))
    first = history.locator("tbody tr").first
    expect(first).to_contain_text("site.created")
    expect(first.get_by_test_id("new-value")).to_have_text(
        re.compile("Northern General Hospital|Children's Hospital")
    )
    expect(first.get_by_test_id("old-value")).to_have_count(0)
    expect(first.locator("time")).to_have_text(
        re.compile(r"^\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} UTC$")
    )

    page.get_by_role("link", name="Back to the audit trail").click()
    expect(page).to_have_url(re.compile(r"/studies/DEMO/audit/$"))
