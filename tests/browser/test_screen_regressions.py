"""Regression tests for bugs the browser tests found in the generated screens (each was
first pinned as a strict xfail, then fixed): static files before sign-in, field defaults
on new forms, follow-up roll-up, tab anchors, kanban totals and messages, the phone top
bar, and live line totals. A new bug goes here as `@bug("...")` (a strict xfail) until
it is fixed.
"""
from __future__ import annotations

import pytest

from .harness import BROWSER_MISSING, unique

if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser


def bug(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"bug: {reason}")


def test_login_page_loads_its_own_styles_and_script(crm, page_as):
    page = page_as()
    assets = []
    page.on("response", lambda r: assets.append((r.url, r.status)) if "/static/metacrm/" in r.url else None)
    page.goto("/login")
    assert sorted(assets) == [(crm.base_url + "/static/metacrm/app.css", 200),
                              (crm.base_url + "/static/metacrm/app.js", 200)]


def test_a_new_record_form_starts_from_the_field_defaults(crm, page_as):
    page = page_as("rep_north")
    page.goto("/r/customer/new")
    page.fill("input[name=name]", unique("Defaults Ltd"))
    with page.expect_navigation():
        page.click("#mc-save")
    assert page.locator("#mc-form-error").count() == 0, page.locator("#mc-form-error").inner_text()
    assert page.locator("#mc-record-title").count() == 1


def test_a_follow_up_sets_the_records_next_follow_up_date(crm, page_as):
    customer = crm.create("rep_north", "customer", {"name": unique("Rollup Works")})
    page = page_as("rep_north")
    page.goto(f"/r/customer/{customer['id']}")
    page.click("#tab-timeline")
    page.fill("#mc-followup-form textarea[name=content]", "Agreed on a demo.")
    page.fill("#mc-followup-form input[name=next_followup_at]", "2031-04-01T09:00")
    page.click("#mc-followup-form button")
    expect(page.locator(".alert-success")).to_be_visible()
    stored = crm.get("customer", customer["id"])
    assert str(stored["next_followup_at"]).startswith("2031-04-01T09:00")
    assert stored["last_followup_at"] is not None


def test_after_saving_a_follow_up_the_timeline_is_shown(crm, page_as):
    customer = crm.create("rep_north", "customer", {"name": unique("Tabbed Goods")})
    page = page_as("rep_north")
    page.goto(f"/r/customer/{customer['id']}")
    page.click("#tab-timeline")
    page.fill("#mc-followup-form textarea[name=content]", "Sent the quote.")
    page.click("#mc-followup-form button")
    expect(page.locator(".alert-success")).to_be_visible()
    expect(page.locator(".mc-timeline")).to_be_visible()


def test_kanban_lane_totals_keep_their_format_after_a_move(crm, page_as):
    customer = crm.create("rep_north", "customer", {"name": unique("Format Co")})
    deal = crm.create("rep_north", "opportunity", {"name": unique("Format deal"), "customer": customer["id"],
                                                   "amount": "5000"})
    page = page_as("rep_north")
    page.goto("/r/opportunity?view=pipeline")
    with page.expect_response(lambda r: r.url.endswith(f"/records/opportunity/{deal['id']}/move")):
        page.locator(f".mc-card[data-id='{deal['id']}']").drag_to(page.locator(".mc-lane[data-value=needs]"))
    expect(page.locator("#mc-toast")).to_be_visible()  # the board has been updated
    assert page.locator(".mc-lane[data-value=needs] .mc-lane-amount").inner_text().startswith("¥")


def test_a_refused_move_says_its_reason_once(crm, page_as):
    customer = crm.create("rep_north", "customer", {"name": unique("Twice Inc")})
    deal = crm.create("rep_north", "opportunity", {"name": unique("Twice deal"), "customer": customer["id"],
                                                   "amount": "100"})
    page = page_as("rep_north", width=2100)
    page.goto("/r/opportunity?view=pipeline")
    with page.expect_response(lambda r: r.url.endswith(f"/records/opportunity/{deal['id']}/move")) as moved:
        page.locator(f".mc-card[data-id='{deal['id']}']").drag_to(page.locator(".mc-lane[data-value=lost]"))
    reasons = [m for ms in moved.value.json()["error"]["fields"].values() for m in ms]
    expect(page.locator("#mc-toast")).to_be_visible()
    shown = page.locator("#mc-toast .toast-body").inner_text()
    assert reasons and all(shown.count(m) == 1 for m in reasons), shown


def test_global_search_is_usable_on_a_phone(crm, page_as):
    page = page_as("rep_north", width=375, height=812)
    page.goto("/")
    assert page.locator(".mc-search input[name=q]").bounding_box()["width"] >= 120
    assert page.locator("#mc-lang").bounding_box()["height"] <= 40


def test_the_contract_form_totals_its_lines_as_they_are_typed(crm, page_as):
    crm.create("admin", "product", {"name": unique("Totals licence"), "code": unique("TL").replace(" ", "-"),
                                    "price": "2400"})
    page = page_as("rep_north")
    page.goto("/r/contract/new")
    page.click(".mc-add-line")
    page.fill("input[name=lines-0-price]", "2400")
    page.fill("input[name=lines-0-quantity]", "3")
    # The line amount and the contract total, both formulas computed by the server as typed.
    expect(page.locator("table.mc-lines .mc-computed[data-formula=amount]")).to_have_text("¥7,200.00")
    expect(page.locator(".mc-field[data-field=amount] .mc-computed")).to_have_text("¥7,200.00")


def test_saving_again_after_a_conflict_keeps_the_colleagues_change(crm, page_as):
    customer = crm.create("rep_north", "customer", {"name": unique("Second Save")})
    page = page_as("rep_north")
    page.goto(f"/r/customer/{customer['id']}/edit")
    crm.update("mgr", "customer", customer["id"], {"remark": "The manager's note.", "version": customer["version"]})
    page.fill("input[name=website]", "https://second-save.example")
    page.click("#mc-save")
    expect(page.locator("#mc-form-error")).to_contain_text("Someone else changed this record")
    page.click("#mc-save")  # the user keeps their input and saves again, as the message invites
    expect(page.locator("#mc-form-error, #mc-record-title")).to_be_visible()
    assert crm.get("customer", customer["id"])["remark"] == "The manager's note."


def test_the_record_page_hides_fields_whose_condition_is_false(crm, page_as):
    customer = crm.create("rep_north", "customer", {"name": unique("Plain Level"), "level": "B"})
    page = page_as("rep_north")
    page.goto(f"/r/customer/{customer['id']}")
    expect(page.locator("#details [data-field=level]")).to_be_visible()
    assert page.locator("#details [data-field=credit_limit]").count() == 0
