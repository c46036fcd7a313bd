"""The dashboard in a browser: charts drawn, the filter bar applied, a CSV downloaded,
and the page fitting a 375 px phone."""
from __future__ import annotations

import pytest

from .harness import BROWSER_MISSING, screenshot, unique

if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser


def test_dashboard_charts_filters_and_csv(crm, page_as):
    customer = crm.create("rep_north", "customer", {"name": unique("Chart Works"), "industry": "retail",
                                                    "level": "B", "source": "referral"})
    crm.create("rep_north", "opportunity", {"name": unique("Chart deal"), "customer": customer["id"],
                                            "amount": "12000"})
    page = page_as("mgr")
    page.goto("/")
    page.locator(".mc-sidebar a[data-page='metacrm_dashboard.dashboard']").click()
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator("#mc-brief .mc-brief-card[data-metric=new_customers]")).to_be_visible()
    expect(page.locator("#mc-report-funnel svg.mc-chart")).to_be_visible()
    expect(page.locator("#mc-report-customers svg.mc-chart").first).to_be_visible()
    expect(page.locator("#mc-report-customers table")).to_contain_text("Retail")
    page.select_option("select[name=period]", "this_year")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/dashboard?period=this_year**")
    expect(page.locator("select[name=period]")).to_have_value("this_year")
    with page.expect_download() as download:
        page.locator("#mc-report-funnel a[download]").click()
    path = download.value.path()
    text = open(path, encoding="utf-8").read()
    assert text.startswith("\ufeffStage,Count,Amount")
    screenshot(page, "dashboard")


def test_dashboard_fits_a_phone(crm, page_as):
    page = page_as("rep_north", width=375, height=812)
    page.goto("/dashboard?period=this_year")
    expect(page.locator("#mc-report-trend svg.mc-chart").first).to_be_visible()
    assert page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]") == [375, 375]
    screenshot(page, "phone-dashboard")
