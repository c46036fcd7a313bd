"""The screens on a phone-width (375 px) viewport: nothing wider than the screen, the
navigation behind the menu button, and screenshots of the list, record, form and
kanban pages as a phone shows them."""
from __future__ import annotations

import pytest

from .harness import BROWSER_MISSING, screenshot, unique

if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}


def page_width(page) -> tuple[int, int]:
    """(scroll width, visible width) of the document: equal when nothing sticks out."""
    return tuple(page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]"))


def test_list_record_form_and_kanban_fit_a_phone_screen(crm, page_as):
    customer = crm.create("rep_north", "customer", {"name": unique("Mobile Mart"), "industry": "retail"})
    crm.create("rep_north", "contact", {"name": unique("Mia Mobile"), "customer": customer["id"]})
    crm.create("rep_north", "opportunity", {"name": unique("Phone deal"), "customer": customer["id"],
                                            "amount": "4200"})
    page = page_as("rep_north", **PHONE)

    page.goto("/r/customer?view=all")
    expect(page.locator(".mc-sidebar")).to_be_hidden()  # the navigation waits behind the menu button
    expect(page.locator(f"tr[data-id='{customer['id']}']")).to_be_visible()
    assert page_width(page) == (375, 375)  # the table scrolls inside its card, not the page
    screenshot(page, "phone-list")
    page.locator("button[data-bs-toggle=offcanvas][data-bs-target='#mc-sidebar']").click()
    expect(page.locator(".mc-sidebar .mc-nav-link[data-entity=opportunity]")).to_be_visible()
    page.locator(".mc-sidebar .mc-nav-link[data-entity=opportunity]").click()
    expect(page.locator("h1")).to_have_text("Opportunity")

    page.goto(f"/r/customer/{customer['id']}")
    expect(page.locator("#mc-record-title")).to_have_text(customer["name"])
    assert page_width(page) == (375, 375)
    screenshot(page, "phone-record")

    page.goto("/r/customer/new")
    expect(page.locator("input[name=name]")).to_be_visible()
    box = page.locator("input[name=name]").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375  # one column, inputs inside the screen
    assert page_width(page) == (375, 375)
    screenshot(page, "phone-form")

    page.goto("/r/opportunity?view=pipeline")
    expect(page.locator(".mc-lane[data-value=initial] .mc-card").first).to_be_attached()
    assert page_width(page) == (375, 375)  # the lanes scroll sideways inside the board
    screenshot(page, "phone-kanban")
