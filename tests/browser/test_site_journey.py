"""A CTU admin sets up a new site in Chromium: adds it, opens it, renames it and gives
it a coordinator, seeing each change on the pages."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

# Page titles and site names use an en dash.
DASH = "\N{EN DASH}"


def expect_one_heading(page: Page, text: str | re.Pattern[str]) -> None:
    expect(page.locator("h1")).to_have_count(1)
    expect(page.locator("h1")).to_have_text(text)


def test_ctu_admin_adds_a_site_renames_it_and_gives_it_a_coordinator(
    page: Page, log_in: Callable[..., None]
) -> None:
    log_in(page, "admin")
    page.goto("/studies/DEMO/sites/")
    expect_one_heading(page, "Sites")
    expect(page.get_by_test_id("sites")).to_contain_text("Northern General Hospital")

    page.get_by_role("button", name="Add a site").click()
    expect_one_heading(page, "Add a site")
    page.get_by_label("Site code").fill("RVH")
    page.get_by_label("Site name").fill("Royal Victoria Hospital")
    page.get_by_label("Principal investigator (PI)").fill("Dr Rhys Evans")
    page.get_by_label("Recruitment target").fill("40")
    page.get_by_label("Day", exact=True).fill("1")
    page.get_by_label("Month", exact=True).fill("4")
    page.get_by_label("Year", exact=True).fill("2025")
    page.get_by_role("button", name="Add site").click()

    expect(page).to_have_url(re.compile(r"/studies/DEMO/sites/RVH/$"))
    expect(page.get_by_test_id("flash")).to_contain_text(
        f"Site RVH {DASH} Royal Victoria Hospital has been added"
    )

    # Open it from the study's list of sites.
    page.get_by_role("link", name="Back to sites").click()
    sites = page.get_by_test_id("sites")
    expect(sites).to_contain_text("Royal Victoria Hospital")
    expect(sites).to_contain_text("Dr Rhys Evans")
    sites.get_by_role("link", name="RVH", exact=True).click()
    expect_one_heading(page, f"RVH {DASH} Royal Victoria Hospital")
    expect(page).to_have_title(f"Site RVH {DASH} DEMO {DASH} BHP CTMS")
    expect(page.get_by_test_id("site-status")).to_have_text("Pending")
    expect(page.get_by_test_id("site-activated_on")).to_have_text("1 Apr 2025")
    expect(page.get_by_test_id("no-staff")).to_be_visible()

    page.get_by_role("button", name="Change site details").click()
    expect_one_heading(page, "Change site RVH")
    expect(page.get_by_label("Status", exact=True)).to_have_value("pending")
    page.get_by_label("Site name").fill("Royal Victoria Infirmary")
    page.get_by_role("button", name="Save changes").click()

    expect(page.get_by_test_id("flash")).to_contain_text("Site RVH has been updated")
    expect_one_heading(page, f"RVH {DASH} Royal Victoria Infirmary")

    page.get_by_label("User name").fill("coordinator")
    page.get_by_label("Role", exact=True).select_option(label="Site coordinator")
    page.get_by_role("button", name="Give role").click()

    expect(page.get_by_test_id("flash")).to_contain_text(
        "Cora Coordinator is now Site coordinator at site RVH"
    )
    staff = page.get_by_test_id("staff")
    expect(staff).to_contain_text("Cora Coordinator")
    expect(staff).to_contain_text("Site coordinator")
    expect(
        staff.get_by_role("link", name="Revoke Site coordinator role of Cora Coordinator")
    ).to_be_visible()

    page.get_by_role("link", name="Back to sites").click()
    expect(page.get_by_test_id("sites")).to_contain_text("Royal Victoria Infirmary")
