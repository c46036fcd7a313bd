"""List pages and the kanban board in a real browser.

Issue 4's "Done when": filter + sort + save a view; bulk transfer; a kanban drag that
succeeds and one that is refused (the card snaps back with the reason).
"""
from __future__ import annotations

import re
import secrets

import pytest

from .harness import BROWSER_MISSING, screenshot, unique

if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser


def row_ids(page):
    """The ids of the list's rows, top to bottom."""
    return page.locator("table.mc-list tbody tr").evaluate_all("rows => rows.map(r => Number(r.dataset.id))")


def test_filter_sort_and_save_a_view(crm, page_as):
    tag = secrets.token_hex(3)
    made = {}
    for fruit, industry, owner in (("Apple", "it", "rep_north"), ("Banana", "retail", "rep_north"),
                                   ("Cherry", "it", "rep_east"), ("Durian", "it", "mgr")):
        made[fruit] = crm.create("mgr", "customer", {"name": f"{fruit} {tag} Systems", "industry": industry,
                                                     "owner": crm.users[owner]})
    page = page_as("mgr")
    page.goto("/r/customer?view=all")
    expect(page.locator(".mc-view-tabs .nav-link.active")).to_have_text("All customers")

    # Two conditions through the filter builder: name contains the tag, industry = IT
    page.click("#mc-filter-toggle")
    page.click("#mc-add-condition")
    first = page.locator("#mc-conditions .mc-condition").nth(0)
    first.locator(".mc-cond-field").select_option("name")
    first.locator(".mc-cond-op").select_option("contains")
    first.locator(".mc-cond-value").fill(tag)
    page.click("#mc-add-condition")
    second = page.locator("#mc-conditions .mc-condition").nth(1)
    second.locator(".mc-cond-field").select_option("industry")
    second.locator(".mc-cond-op").select_option("=")
    second.locator(".mc-cond-value").select_option("it")  # a select field offers its options
    page.click("#mc-apply-filters")
    expect(page).to_have_url(re.compile(r"filter="))
    expect(page.locator("#mc-total")).to_have_text("3 records")
    assert sorted(row_ids(page)) == sorted(made[f]["id"] for f in ("Apple", "Cherry", "Durian"))
    expect(page.locator("#mc-chips .mc-chip")).to_have_count(2)
    expect(page.locator("#mc-chips")).to_contain_text("Industry = IT / Internet")  # the option's label

    # Sort by name: ascending, then descending
    page.click("a.mc-sort[data-field=name]")
    expect(page.locator("a.mc-sort[data-field=name]")).to_contain_text("▲")
    assert row_ids(page) == [made[f]["id"] for f in ("Apple", "Cherry", "Durian")]
    page.click("a.mc-sort[data-field=name]")
    expect(page.locator("a.mc-sort[data-field=name]")).to_contain_text("▼")
    assert row_ids(page) == [made[f]["id"] for f in ("Durian", "Cherry", "Apple")]
    expect(page.locator("#mc-total")).to_have_text("3 records")  # sorting keeps the filter
    screenshot(page, "list-customers-filtered")

    # Save as a personal view
    label = f"IT {tag}"
    page.click("#mc-save-view-open")
    expect(page.locator("#mc-view-label")).to_be_visible()
    page.fill("#mc-view-label", label)
    page.locator("#mc-save-view-form button[type=submit]").click()
    expect(page.locator(".alert-success")).to_contain_text(f"View “{label}” saved.")
    saved_tab = page.locator(".mc-view-tabs a[data-saved]", has_text=label)
    expect(saved_tab).to_have_class(re.compile("active"))

    # Elsewhere the filter is gone; reopening the saved view brings it (and the sort) back
    page.locator(".mc-view-tabs a[data-view=all]").click()
    expect(page.locator(".mc-view-tabs a[data-view=all]")).to_have_class(re.compile("active"))
    expect(page.locator(f"tr[data-id='{made['Banana']['id']}']")).to_be_visible()
    page.locator(".mc-view-tabs a[data-saved]", has_text=label).click()
    expect(page).to_have_url(re.compile(r"saved=\d+"))
    expect(page.locator("#mc-total")).to_have_text("3 records")
    assert row_ids(page) == [made[f]["id"] for f in ("Durian", "Cherry", "Apple")]
    screenshot(page, "list-customers-saved-view")
    # The view is personal: a rep doesn't get the manager's tab
    rep = page_as("rep_north")
    rep.goto("/r/customer")
    expect(rep.locator(".mc-view-tabs a[data-saved]", has_text=label)).to_have_count(0)


def test_bulk_transfer_of_selected_rows(crm, page_as):
    tag = secrets.token_hex(3)
    made = [crm.create("rep_north", "customer", {"name": f"{word} {tag} Trading"})
            for word in ("Orion", "Lyra", "Vega")]
    page = page_as("mgr")
    page.goto(f"/r/customer?view=all&q={tag}")
    expect(page.locator("table.mc-list tbody tr")).to_have_count(3)
    expect(page.locator("#mc-bulk-bar")).to_be_hidden()

    for record in made[:2]:
        page.locator(f"tr[data-id='{record['id']}'] .mc-row-check").check()
    expect(page.locator("#mc-bulk-bar")).to_be_visible()
    expect(page.locator("#mc-bulk-count")).to_have_text("2 selected")
    east = str(crm.users["rep_east"])
    expect(page.locator(f"#mc-bulk-user option[value='{east}']")).to_have_count(1)  # filled by the user picker
    page.select_option("#mc-bulk-user", east)
    page.click("#mc-bulk-transfer")

    expect(page.locator("#mc-toast")).to_be_visible()  # after the reload
    expect(page.locator("#mc-toast")).to_contain_text("2 done, 0 refused.")
    for record in made[:2]:
        expect(page.locator(f"tr[data-id='{record['id']}']")).to_contain_text("Eddie East")
        assert crm.get("customer", record["id"])["owner"] == crm.users["rep_east"]
    expect(page.locator(f"tr[data-id='{made[2]['id']}']")).to_contain_text("Nora North")
    assert crm.get("customer", made[2]["id"])["owner"] == crm.users["rep_north"]
    screenshot(page, "list-customers-after-transfer")


def _lane(page, value):
    return page.locator(f".mc-lane[data-value={value}]")


def _count(page, value):
    return int(_lane(page, value).locator(".mc-lane-count").inner_text())


def test_kanban_drag_that_succeeds(crm, page_as):
    deal = crm.create("rep_north", "opportunity", {
        "name": unique("Kanban win"), "customer": crm.create("rep_north", "customer", {"name": unique("Pine")})["id"],
        "amount": "12345"})
    page = page_as("rep_north")
    page.goto("/r/opportunity?view=pipeline")
    card = page.locator(f".mc-card[data-id='{deal['id']}']")
    expect(_lane(page, "initial").locator(f".mc-card[data-id='{deal['id']}']")).to_be_visible()
    expect(card).to_contain_text("¥12,345.00")
    expect(card).to_contain_text(deal["name"])
    before = {v: _count(page, v) for v in ("initial", "needs")}
    screenshot(page, "kanban-opportunities")

    with page.expect_response(lambda r: r.url.endswith(f"/records/opportunity/{deal['id']}/move")) as moved:
        card.drag_to(_lane(page, "needs"))
    assert moved.value.status == 200
    expect(_lane(page, "needs").locator(f".mc-card[data-id='{deal['id']}']")).to_be_visible()
    expect(page.locator("#mc-toast")).to_contain_text("Moved to")
    expect(page.locator("#mc-toast")).to_have_class(re.compile("text-bg-success"))
    assert (_count(page, "initial"), _count(page, "needs")) == (before["initial"] - 1, before["needs"] + 1)
    stored = crm.get("opportunity", deal["id"])
    assert stored["stage"] == "needs" and stored["version"] > deal["version"]
    assert card.get_attribute("data-version") == str(stored["version"])  # so the next drag isn't a conflict

    page.reload()  # the board is rebuilt from the database
    expect(_lane(page, "needs").locator(f".mc-card[data-id='{deal['id']}']")).to_be_visible()


def test_kanban_drag_that_is_refused_snaps_back_with_the_reason(crm, page_as):
    # Lost needs a lost reason (required_when "stage == 'lost'"): the record service refuses.
    deal = crm.create("rep_north", "opportunity", {
        "name": unique("Kanban refused"), "amount": "5000",
        "customer": crm.create("rep_north", "customer", {"name": unique("Birch")})["id"]})
    page = page_as("rep_north", width=2100)  # wide enough that the "lost" lane needs no scrolling
    page.goto("/r/opportunity?view=pipeline")
    card = page.locator(f".mc-card[data-id='{deal['id']}']")
    before = {v: _count(page, v) for v in ("initial", "lost")}

    with page.expect_response(lambda r: r.url.endswith(f"/records/opportunity/{deal['id']}/move")) as moved:
        card.drag_to(_lane(page, "lost"))
    assert moved.value.status == 422
    toast = page.locator("#mc-toast")
    expect(toast).to_be_visible()
    expect(toast).to_have_class(re.compile("text-bg-danger"))
    expect(toast).to_contain_text("Move refused")
    expect(toast).to_contain_text("lost_reason")  # the reason, field by field
    expect(_lane(page, "initial").locator(f".mc-card[data-id='{deal['id']}']")).to_be_visible()  # snapped back
    expect(_lane(page, "lost").locator(f".mc-card[data-id='{deal['id']}']")).to_have_count(0)
    expect(card).to_have_class(re.compile("border-danger"))
    assert {v: _count(page, v) for v in ("initial", "lost")} == before
    stored = crm.get("opportunity", deal["id"])
    assert (stored["stage"], stored["version"]) == ("initial", deal["version"])
    screenshot(page, "kanban-refused-move")
