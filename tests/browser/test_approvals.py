"""Issue 6's browser test: a contract goes through approval on the screens.

A sales rep creates a 150,000 contract with one line and submits it from the record
page; the manager approves it from the approval inbox, then finance does (the shipped
contract_approval workflow: direct manager; finance from 100,000); the contract is then
approved and read-only, and its record page shows the trail.
"""
from __future__ import annotations

import re

import pytest

from .harness import BROWSER_MISSING, screenshot, unique

if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser


def pick(page, box, text):
    """Choose `text` in a type-ahead lookup (`box` is its .mc-lookup container)."""
    box.locator(".mc-lookup-text").fill(text)
    box.locator(".mc-lookup-menu .dropdown-item", has_text=text).first.dispatch_event("mousedown")


def inbox_row(page, title):
    return page.locator(".mc-inbox-row", has=page.locator(".mc-inbox-title", has_text=title))


def test_a_150000_contract_is_approved_by_the_manager_then_finance_from_the_inbox(crm, page_as):
    product = crm.create("admin", "product", {"name": unique("Fleet licence"),
                                              "code": unique("FL").replace(" ", "-"), "price": "50000"})
    customer = crm.create("rep_north", "customer", {"name": unique("Approval Works")})
    name = unique("Fleet contract")

    # The rep creates the contract with one line (3 × 50,000) and submits it.
    rep = page_as("rep_north")
    rep.goto("/r/contract/new")
    rep.fill("input[name=name]", name)
    pick(rep, rep.locator(".mc-field[data-field=customer] .mc-lookup"), customer["name"])
    rep.click(".mc-add-line")
    pick(rep, rep.locator("table.mc-lines .mc-lookup").first, product["name"])
    rep.fill("input[name=lines-0-price]", "50000")
    rep.fill("input[name=lines-0-quantity]", "3")
    expect(rep.locator(".mc-field[data-field=amount] .mc-computed")).to_have_text("¥150,000.00")
    rep.click("#mc-save")
    expect(rep).to_have_url(re.compile(r"/r/contract/\d+$"))
    contract_id = int(rep.url.rsplit("/", 1)[1])
    assert crm.get("contract", contract_id)["amount"] == "150000.00"
    rep.once("dialog", lambda dialog: dialog.accept("Please approve before Friday."))
    rep.click(".mc-transition[data-name=submit]")
    expect(rep.locator(".mc-state")).to_have_text(re.compile("Pending approval"))
    expect(rep.locator("#mc-edit")).to_have_count(0)

    # The manager sees it in 待我审批 with the count, and approves it from the list.
    mgr = page_as("mgr")
    mgr.goto("/")
    expect(mgr.locator("#mc-approvals-link .mc-approvals-count")).to_have_text(re.compile(r"[1-9]"))
    mgr.click("#mc-approvals-link")
    expect(mgr).to_have_url(re.compile(r"/approvals$"))
    row = inbox_row(mgr, name)
    expect(row).to_contain_text("Nora North")
    expect(row).to_contain_text("¥150,000.00")
    expect(row.locator(".mc-inbox-step")).to_have_text("Direct manager")
    row.locator(".mc-drawer-open").click()  # the drawer: the contract as submitted and the trail
    drawer = mgr.locator("#mc-approval-drawer")
    expect(drawer.locator(".mc-snapshot-lines")).to_contain_text(product["name"])
    expect(drawer.locator(".mc-panel-trail")).to_contain_text("Please approve before Friday.")
    screenshot(mgr, "approvals-drawer")
    drawer.locator(".btn-close").click()
    expect(drawer).to_be_hidden()
    row.locator("input[name=comment]").fill("Good margin.")
    row.locator("button[value=approve]").click()
    expect(mgr.locator(".alert-success")).to_contain_text(f"Approved: {name}")
    expect(inbox_row(mgr, name)).to_have_count(0)
    mgr.click("#box-decided")
    expect(inbox_row(mgr, name)).to_contain_text("Approved")
    assert crm.get("contract", contract_id)["approval_status"] == "pending"  # finance is next

    # Finance approves from the inbox too.
    fin = page_as("fin")
    fin.goto("/approvals")
    row = inbox_row(fin, name)
    expect(row.locator(".mc-inbox-step")).to_have_text("Finance review")
    screenshot(fin, "approvals-inbox")
    row.locator("button[value=approve]").click()
    expect(fin.locator(".alert-success")).to_contain_text(f"Approved: {name}")
    assert crm.get("contract", contract_id)["approval_status"] == "approved"

    # Approved and read-only: no Edit button, the edit form refused; the trail on the record page.
    rep.goto(f"/r/contract/{contract_id}")
    expect(rep.locator(".mc-state")).to_have_text(re.compile("Approved"))
    expect(rep.locator("#mc-edit")).to_have_count(0)
    rep.click("#tab-approvals")
    trail = rep.locator("#approvals .mc-trail")
    expect(trail).to_contain_text("Please approve before Friday.")
    expect(trail).to_contain_text("Good margin.")
    expect(trail).to_contain_text("Fay Finance")
    screenshot(rep, "approvals-record-trail")
    assert rep.goto(f"/r/contract/{contract_id}/edit").status == 409
    expect(rep.locator("main")).to_contain_text("locked")
    rep.goto("/approvals?box=submitted")
    expect(inbox_row(rep, name).locator(".mc-inbox-status")).to_have_text("Approved")
