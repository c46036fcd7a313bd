"""The shell in a real browser: signing in, switching language, and what a rep may see.

Issue 4's "Done when": login; switching language to zh shows Chinese labels; a rep
cannot see another team's customer anywhere in the UI (list, search, the record's
address, the lookup picker).
"""
from __future__ import annotations

import re

import pytest

from .harness import BROWSER_MISSING, unique

if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser


def test_wrong_password_shows_the_error_and_the_right_one_opens_the_workbench(crm, page_as):
    page = page_as()
    page.goto("/r/customer")  # a page behind sign-in sends the visitor to the login form
    expect(page).to_have_url(re.compile(r"/login\?next=/r/customer$"))
    page.fill("#username", "rep_north")
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("Wrong username or password")
    expect(page.locator("#username")).to_have_value("rep_north")  # the username is kept
    expect(page.locator("#password")).to_have_value("")

    page.fill("#password", "rep_north-pass-1")
    page.click("button[type=submit]")
    expect(page).to_have_url(crm.base_url + "/r/customer")  # back where the visitor was going
    expect(page.locator(".mc-topbar")).to_contain_text("Nora North")

    page.goto("/logout")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))  # signed out for real
    page.goto("/login")  # signing in from the login page itself lands on the workbench
    page.fill("#username", "rep_north")
    page.fill("#password", "rep_north-pass-1")
    page.click("button[type=submit]")
    expect(page).to_have_url(crm.base_url + "/")
    expect(page.locator("main h1")).to_have_text("Workbench")
    expect(page.locator("#login-error")).to_have_count(0)
    expect(page.locator(".mc-sidebar .mc-nav-link[data-entity=customer]")).to_have_text(re.compile("Customer"))


def test_switching_language_to_zh_shows_chinese_labels(crm, page_as):
    # rep_lang exists for this test alone: the language is kept on the account.
    page = page_as("rep_lang")
    page.goto("/r/customer")
    nav = page.locator(".mc-sidebar .mc-nav-link[data-entity=customer]")
    expect(nav).to_contain_text("Customer")
    expect(page.locator("#mc-lang")).to_have_text("中文")

    page.click("#mc-lang")
    expect(page).to_have_url(re.compile(r"/r/customer$"))  # stays on the same page
    expect(nav).to_contain_text("客户")
    expect(page.locator(".mc-sidebar")).to_contain_text("客户管理")  # the app group
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#mc-new")).to_contain_text("新建")
    expect(page.locator("#mc-filter-toggle")).to_have_text("筛选")
    expect(page.locator("#mc-lang")).to_have_text("English")

    page.goto("/r/customer/new")  # field labels come from metadata, in the user's language
    expect(page.locator(".mc-field[data-field=name] label")).to_contain_text("客户名称")
    page.reload()  # kept on the account, not just for one page
    expect(page.locator("#mc-save")).to_have_text("保存")

    page.click("#mc-lang")
    expect(nav).to_contain_text("Customer")


def test_a_rep_cannot_see_another_teams_customer_anywhere(crm, page_as):
    theirs = crm.create("rep_east", "customer", {"name": unique("Easterly Hidden")})
    mine = crm.create("rep_north", "customer", {"name": unique("Northwind Visible")})
    page = page_as("rep_north")

    # The list (every view, and its search box)
    page.goto("/r/customer?view=all")
    expect(page.locator(f"tr[data-id='{mine['id']}']")).to_be_visible()
    expect(page.locator(f"tr[data-id='{theirs['id']}']")).to_have_count(0)
    page.goto("/r/customer?view=all&q=" + theirs["name"].split()[1])
    expect(page.locator(".mc-empty")).to_be_visible()

    # Global search
    page.fill(".mc-search input[name=q]", theirs["name"])
    page.press(".mc-search input[name=q]", "Enter")
    expect(page.locator("#mc-no-results")).to_be_visible()
    expect(page.locator(".mc-search-group")).to_have_count(0)

    # The record's own address, and its edit form: a 404 page, not the record
    response = page.goto(f"/r/customer/{theirs['id']}")
    assert response.status == 404
    expect(page.locator("h1")).to_contain_text("Not found")
    expect(page.locator("main")).not_to_contain_text(theirs["name"])
    assert page.goto(f"/r/customer/{theirs['id']}/edit").status == 404

    # The lookup picker behind every customer field (API) and its type-ahead in a form
    found = page.request.get("/api/v1/lookup/records/customer", params={"q": theirs["name"]}).json()
    assert found == {"items": []}
    found = page.request.get("/api/v1/lookup/records/customer", params={"q": "Northwind"}).json()
    assert mine["id"] in [i["id"] for i in found["items"]]
    assert theirs["id"] not in [i["id"] for i in found["items"]]
    page.goto("/r/contact/new")
    picker = page.locator(".mc-field[data-field=customer] .mc-lookup-text")
    with page.expect_response(lambda r: "/api/v1/lookup/records/customer" in r.url and "Easterly" in r.url):
        picker.fill("Easterly")
    expect(page.locator(".mc-field[data-field=customer] .mc-lookup-menu .dropdown-item")).to_have_count(0)
    picker.fill("Northwind")
    expect(page.locator(".mc-field[data-field=customer] .mc-lookup-menu .dropdown-item",
                        has_text=mine["name"])).to_be_visible()

    # ...while its owner's manager sees it (the scope is real, not an empty table)
    manager = page_as("mgr")
    manager.goto("/search?q=" + theirs["name"])
    expect(manager.locator(".mc-search-group[data-entity=customer]")).to_contain_text(theirs["name"])
    assert manager.goto(f"/r/customer/{theirs['id']}").status == 200
