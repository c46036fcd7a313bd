"""The view designer in a real browser: columns dragged into a new order, a filter from
the list page's own filter builder, and the draft keeps both."""
from __future__ import annotations

import pytest

from .harness import BROWSER_MISSING

if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

from metacrm.designer import drafts  # noqa: E402

pytestmark = pytest.mark.browser


def test_admin_drags_a_column_first_and_adds_a_filter(crm, page_as):
    page = page_as("admin")
    page.goto("/designer/views/product/all")
    columns = page.locator("#ed-columns li")
    first, last = columns.first, columns.last
    moved = last.locator("select").input_value()
    last.drag_to(first, source_position={"x": 12, "y": 12}, target_position={"x": 12, "y": 12})  # by the ⋮⋮ handle
    expect(page.locator("select[data-path='/columns/0']")).to_have_value(moved)

    second = page.locator("select[data-path='/columns/1']").input_value()
    page.locator("#ed-columns li").nth(1).get_by_role("button", name="Move up").click()  # the keyboard's way
    expect(page.locator("select[data-path='/columns/0']")).to_have_value(second)
    page.locator("#ed-columns li").nth(1).get_by_role("button", name="Move up").click()
    expect(page.locator("select[data-path='/columns/0']")).to_have_value(moved)

    page.locator("#ed-add-filter").click()
    row = page.locator("#ed-filter-box .mc-condition").last
    row.locator(".mc-cond-field").select_option("name")
    row.locator(".mc-cond-op").select_option("contains")
    row.locator(".mc-cond-value").fill("CRM")
    page.locator("#ed-save").click()
    expect(page.locator("#ed-status")).to_have_text("Saved to the draft.")
    with crm.engine.connect() as conn:
        doc = drafts.get_document(conn, "view", "product/all")
    assert doc["columns"][0] == moved
    assert ["name", "contains", "CRM"] in doc["filters"]
