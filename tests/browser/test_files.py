"""A file field in a real browser: choosing a file uploads it at once, the form saves its
key, and the record page links to the download."""
from __future__ import annotations

import re

import pytest

from .harness import BROWSER_MISSING, unique

if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser


def test_a_contract_document_is_uploaded_from_the_form_and_downloaded_from_the_record(crm, page_as):
    customer = crm.create("rep_north", "customer", {"name": unique("Paper Trail")})
    contract = crm.create("rep_north", "contract", {"name": unique("Signed scan"), "customer": customer["id"]})
    page = page_as("rep_north")
    page.goto(f"/r/contract/{contract['id']}/edit")
    box = page.locator(".mc-file[data-field=attachment]")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/files") and r.status == 201):
        box.locator("input[type=file]").set_input_files(
            files=[{"name": "signed contract.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 signed"}])
    expect(box.locator(".mc-file-link")).to_have_text("signed contract.pdf")
    expect(box.locator(".mc-file-value")).to_have_value(re.compile(r"^[A-Za-z0-9_-]{32}/signed contract\.pdf$"))
    page.click("#mc-save")
    expect(page).to_have_url(re.compile(rf"/r/contract/{contract['id']}$"))
    assert crm.get("contract", contract["id"])["attachment"].endswith("/signed contract.pdf")
    link = page.locator("#details [data-field=attachment] a.mc-file-link")
    expect(link).to_have_text("signed contract.pdf")
    got = page.request.get(link.get_attribute("href"))
    assert got.status == 200 and got.body() == b"%PDF-1.4 signed"
    assert page_as("rep_east").request.get(link.get_attribute("href")).status == 404  # not theirs to read

    # Removing it clears the field.
    page.goto(f"/r/contract/{contract['id']}/edit")
    page.locator(".mc-file[data-field=attachment] .mc-file-clear").click()
    page.click("#mc-save")
    expect(page).to_have_url(re.compile(rf"/r/contract/{contract['id']}$"))
    assert crm.get("contract", contract["id"])["attachment"] is None
