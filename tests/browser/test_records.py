"""Forms and record pages in a real browser.

Issue 4's "Done when": create a customer through the form with a validation error fixed
inline; a conditional field appears when its condition becomes true; the record page
with related lists and timeline (adding a follow-up from it).
"""
from __future__ import annotations

import re

import pytest

from .harness import BROWSER_MISSING, screenshot, unique, unique_phone

if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser


def field(page, name):
    """The box of one form field (label, input, error) by the field's name."""
    return page.locator(f".mc-field[data-field={name}]")


def test_create_a_customer_fixing_a_validation_error_inline(crm, page_as):
    page = page_as("rep_north")
    page.goto("/r/customer")
    page.click("#mc-new")
    expect(page).to_have_url(re.compile(r"/r/customer/new$"))
    phone = unique_phone()
    website = "https://" + unique("w").split()[1] + ".example"
    expect(page.locator("select[name=deal_status]")).to_have_value("unsold")  # the field's default
    expect(page.locator("select[name=level]")).to_have_value("B")
    page.fill("input[name=phone]", phone)
    page.fill("input[name=website]", website)
    page.select_option("select[name=industry]", "manufacturing")
    page.check("input[name=tags][value=strategic]")
    page.fill("textarea[name=remark]", "Met at the trade fair.")
    page.click("#mc-save")  # without the required name

    expect(page.locator("#mc-form-error")).to_contain_text("fix the fields marked below")
    error = field(page, "name").locator(".mc-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(re.compile("required", re.IGNORECASE))
    expect(page.locator("input[name=name]")).to_have_class(re.compile("is-invalid"))
    # Nothing typed is lost
    expect(page.locator("input[name=phone]")).to_have_value(phone)
    expect(page.locator("input[name=website]")).to_have_value(website)
    expect(page.locator("select[name=industry]")).to_have_value("manufacturing")
    expect(page.locator("select[name=deal_status]")).to_have_value("unsold")
    expect(page.locator("input[name=tags][value=strategic]")).to_be_checked()
    expect(page.locator("textarea[name=remark]")).to_have_value("Met at the trade fair.")
    expect(field(page, "phone").locator(".mc-error")).to_have_count(0)  # only the wrong field is marked
    screenshot(page, "form-customer-error")

    name = unique("Harbour Logistics")
    page.fill("input[name=name]", name)
    page.click("#mc-save")
    expect(page).to_have_url(re.compile(r"/r/customer/\d+$"))
    expect(page.locator("#mc-record-title")).to_have_text(name)
    expect(page.locator(".alert-success")).to_contain_text("Created")
    record_id = int(page.url.rsplit("/", 1)[1])
    saved = crm.get("customer", record_id)
    assert (saved["name"], saved["phone"], saved["website"], saved["industry"], saved["tags"], saved["remark"]) == \
        (name, phone, website, "manufacturing", ["strategic"], "Met at the trade fair.")
    assert saved["owner"] == crm.users["rep_north"]
    expect(page.locator("#details [data-field=phone]")).to_contain_text(phone)


def test_a_conditional_field_appears_when_its_condition_becomes_true(crm, page_as):
    # customer.credit_limit: visible_when / required_when "level == 'A'" (a rep may only
    # read it, so the manager fills it in).
    page = page_as("mgr")
    page.goto("/r/customer/new")
    credit = field(page, "credit_limit")
    expect(page.locator("select[name=level]")).to_have_value("B")  # the default level...
    expect(credit).to_be_hidden()  # ...so no credit limit

    with page.expect_response(lambda r: r.url.endswith("/r/customer/form-state") and r.request.method == "POST"):
        page.select_option("select[name=level]", "A")
    expect(credit).to_be_visible()
    expect(credit.locator(".mc-required")).to_be_visible()  # and now required
    screenshot(page, "form-customer-conditional")

    name = unique("Summit Capital")
    page.fill("input[name=name]", name)
    page.click("#mc-save")  # A without a credit limit: refused, the field stays shown with its error
    expect(credit.locator(".mc-error")).to_be_visible()
    expect(credit).to_be_visible()
    expect(page.locator("select[name=level]")).to_have_value("A")
    page.fill("input[name=credit_limit]", "250000")
    page.click("#mc-save")
    expect(page).to_have_url(re.compile(r"/r/customer/\d+$"))
    expect(page.locator("#details [data-field=credit_limit]")).to_contain_text("250,000.00")

    # ...and it goes away again when the condition turns false
    page.click("#mc-edit")
    expect(field(page, "credit_limit")).to_be_visible()
    page.select_option("select[name=level]", "C")
    expect(field(page, "credit_limit")).to_be_hidden()

    # The opportunity's lost reason follows its stage the same way
    page.goto("/r/opportunity/new")
    expect(field(page, "lost_reason")).to_be_hidden()
    page.select_option("select[name=stage]", "lost")
    expect(field(page, "lost_reason")).to_be_visible()
    expect(field(page, "lost_reason").locator(".mc-required")).to_be_visible()
    page.select_option("select[name=stage]", "proposal")
    expect(field(page, "lost_reason")).to_be_hidden()


def test_record_page_shows_related_lists_and_timeline_and_takes_a_follow_up(crm, page_as):
    customer = crm.create("rep_north", "customer", {"name": unique("Lakeside Foods"), "level": "B",
                                                     "industry": "retail"})
    contacts = [crm.create("rep_north", "contact", {"name": unique(n), "customer": customer["id"], "title": t})
                for n, t in (("Alice Buyer", "Purchasing"), ("Bob Boss", "CEO"))]
    deal = crm.create("rep_north", "opportunity", {"name": unique("Cold store CRM"), "customer": customer["id"],
                                                   "amount": "88000"})
    crm.create("rep_north", "followup", {"subject": {"entity": "customer", "id": customer["id"]}, "type": "visit",
                                         "content": "First visit: they want a pilot."})
    page = page_as("rep_north")
    page.goto(f"/r/customer/{customer['id']}")
    expect(page.locator("#mc-record-title")).to_have_text(customer["name"])
    expect(page.locator("#details [data-field=industry]")).to_contain_text("Retail")
    expect(page.locator("#mc-owner")).to_contain_text("Nora North")

    page.click("#tab-related")
    related_contacts = page.locator(".mc-related[data-entity=contact]")
    expect(related_contacts).to_be_visible()
    for c in contacts:
        expect(related_contacts.get_by_role("link", name=c["name"])).to_be_visible()
    expect(related_contacts.locator(".badge")).to_have_text("2")
    deals = page.locator(".mc-related[data-entity=opportunity]")
    expect(deals.get_by_role("link", name=deal["name"])).to_be_visible()
    expect(deals).to_contain_text("88,000.00")
    expect(page.locator(".mc-related[data-entity=contract]")).to_contain_text("None yet")
    screenshot(page, "record-customer-related")

    page.click("#tab-timeline")
    timeline = page.locator(".mc-timeline")
    expect(timeline.locator("[data-kind=followup]")).to_have_count(1)
    expect(timeline.locator("[data-kind=followup]")).to_contain_text("First visit: they want a pilot.")
    # The follow-up (made through the API) rolled up onto the customer: newest first, then the creation.
    expect(timeline.locator("[data-kind=history]").first).to_contain_text("Last follow-up")
    expect(timeline.locator("[data-kind=history]").last).to_contain_text("Nora North created this record")

    note = "Called back: " + unique("pilot approved")
    form = page.locator("#mc-followup-form")
    form.locator("select[name=type]").select_option("call")
    form.locator("textarea[name=content]").fill(note)
    form.locator("input[name=next_followup_at]").fill("2031-03-15T10:30")
    form.locator("button").click()
    expect(page.locator(".alert-success")).to_contain_text("Follow-up saved")
    expect(page.locator("#tab-timeline")).to_have_class(re.compile("active"))  # back on the timeline
    newest = page.locator(".mc-timeline [data-kind=followup]").first
    expect(newest).to_contain_text(note)
    expect(newest).to_contain_text("Next follow-up: 2031-03-15 10:30")
    expect(page.locator(".mc-timeline [data-kind=followup]")).to_have_count(2)
    assert page.locator("#tab-timeline .badge").inner_text() == str(page.locator(".mc-timeline > li").count())
    # The next follow-up date rolls up onto the customer (what reminders read)
    stored = crm.get("customer", customer["id"])
    assert str(stored["next_followup_at"]).startswith("2031-03-15T10:30") and stored["last_followup_at"]
    screenshot(page, "record-customer-timeline")
    page.click("#tab-details")
    screenshot(page, "record-customer")


def test_an_edit_conflict_keeps_the_input_and_offers_to_reload(crm, page_as):
    customer = crm.create("rep_north", "customer", {"name": unique("Racing Parts"), "deal_status": "unsold"})
    page = page_as("rep_north")
    page.goto(f"/r/customer/{customer['id']}/edit")
    crm.update("mgr", "customer", customer["id"], {"remark": "The manager saved first.",
                                                   "version": customer["version"]})
    phone = unique_phone()
    page.fill("input[name=phone]", phone)
    page.click("#mc-save")

    expect(page.locator("#mc-form-error")).to_contain_text("Someone else changed this record")
    expect(page.locator("input[name=phone]")).to_have_value(phone)  # the user's input is kept
    assert crm.get("customer", customer["id"])["phone"] is None  # and nothing was overwritten
    page.click("#mc-reload")
    expect(page.locator("textarea[name=remark]")).to_have_value("The manager saved first.")
    page.fill("input[name=phone]", phone)
    page.click("#mc-save")
    expect(page.locator("#details [data-field=phone]")).to_contain_text(phone)
    stored = crm.get("customer", customer["id"])
    assert (stored["phone"], stored["remark"]) == (phone, "The manager saved first.")
