"""The designer in a real browser (issue 7's "done when").

An admin adds a field 微信号 (WeChat ID) to customer, places it on the form, publishes,
and a sales rep fills it and finds customers by it; archiving a field a view shows
warns with the impact; rollback restores the previous version with data intact; an
invalid expression is refused with the error next to its input.

These tests change the metadata, so they get a CRM server of their own (the other
browser modules share one and expect the default CRM as shipped).
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa

from .harness import BROWSER_MISSING, TIMEOUT_MS, Crm, screenshot, serve_crm, sign_in, unique, unique_phone

if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser

#: Publishing and rolling back validate the whole metadata and diff the schema: about a
#: second alone, several when CI runs the SQLite and PostgreSQL suites side by side.
SLOW_MS = 60_000


@pytest.fixture(scope="module")
def designer_crm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crm]:
    yield from serve_crm(tmp_path_factory.mktemp("designer"))


@pytest.fixture
def page_of(designer_crm: Crm, browser: Any) -> Iterator[Callable[[str], Any]]:
    """page_of(username) → a page signed in on the designer's own server; any script
    error on a page fails the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def _page(username: str) -> Any:
        context = browser.new_context(base_url=designer_crm.base_url, viewport={"width": 1366, "height": 900},
                                      locale="en-US", reduced_motion="reduce")
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        sign_in(page, username)
        page.wait_for_url(designer_crm.base_url + "/")
        return page

    yield _page
    for context in contexts:
        context.close()
    assert not errors, f"script errors in the page: {errors}"


def field_row(page: Any, name: str) -> Any:
    return page.locator(f"#dz-canvas .dz-field-row[data-field={name}]")


def draft_count(page: Any) -> int:
    return int(page.locator("#dz-draft-count").get_attribute("data-count"))


def test_admin_adds_wechat_field_and_a_rep_fills_it_and_finds_customers_by_it(designer_crm: Crm, page_of: Any) -> None:
    admin = page_of("admin")
    admin.goto("/designer/entities/customer")
    admin.click("#dz-palette .dz-type[data-type=text]")
    admin.fill("#dz-prop-name", "wechat")
    admin.fill("input[name=prop-label-en]", "WeChat ID")
    admin.fill("input[name=prop-label-zh]", "微信号")
    admin.check("input[name=prop-searchable]")
    admin.click("#dz-save")
    expect(admin.locator("#dz-flash")).to_be_visible(timeout=SLOW_MS)
    expect(field_row(admin, "wechat")).to_contain_text("WeChat ID")
    expect(admin.locator("#dz-draft-count")).to_contain_text("1 changes")
    screenshot(admin, "designer-entity")

    # place it on the form: drag it from the unplaced fields into the first section
    admin.click("#dz-to-form")
    chip = admin.locator("#dz-unplaced .dz-chip[data-field=wechat]")
    expect(chip).to_be_visible()
    chip.drag_to(admin.locator("#dz-sections .dz-section[data-section='0']"), source_position={"x": 6, "y": 6},
                 target_position={"x": 4, "y": 4})
    expect(admin.locator("#dz-sections .dz-section[data-section='0'] .dz-chip[data-field=wechat]")).to_be_visible()
    expect(admin.locator("#dz-unplaced .dz-chip[data-field=wechat]")).to_have_count(0)
    admin.click("#dz-save")
    expect(admin.locator("#dz-flash")).to_be_visible(timeout=SLOW_MS)
    admin.check("#dz-preview-toggle")
    preview = admin.frame_locator("#dz-preview")
    expect(preview.locator("input[name=wechat]")).to_be_visible(timeout=SLOW_MS)
    expect(preview.locator(".mc-field[data-field=wechat] label")).to_contain_text("WeChat ID")
    screenshot(admin, "designer-form")

    # publish with a note
    admin.click("#dz-publish", timeout=SLOW_MS)
    expect(admin.locator("#dz-plan-steps")).to_contain_text("add column ent_customer.wechat")
    admin.fill("#dz-note", "WeChat ID for the sales team")
    with admin.expect_navigation(timeout=SLOW_MS):  # a publish compiles, diffs and alters a table
        admin.click("#dz-publish-now", timeout=SLOW_MS)
    expect(admin.locator(".alert-success")).to_contain_text("Published version")
    expect(admin.locator("#dz-draft-count")).to_have_attribute("data-count", "0", timeout=SLOW_MS)

    # a sales rep sees it, fills it and finds the customer by it
    rep = page_of("rep_north")
    rep.goto("/r/customer/new")
    expect(rep.locator(".mc-field[data-field=wechat] label")).to_contain_text("WeChat ID")
    name, wechat = unique("Pearl River Trading"), unique("wx").replace(" ", "_")
    rep.fill("input[name=name]", name)
    rep.fill("input[name=phone]", unique_phone())
    rep.fill("input[name=wechat]", wechat)
    rep.click("#mc-save")
    expect(rep).to_have_url(re.compile(r"/r/customer/\d+$"))
    expect(rep.locator("body")).to_contain_text(wechat)
    rep.goto(f"/r/customer?q={wechat}")
    expect(rep.locator("table.mc-list tbody tr")).to_have_count(1)
    expect(rep.locator("table.mc-list tbody")).to_contain_text(name)
    rep.goto("/r/customer?filter=" + json.dumps([["wechat", "=", wechat]]))
    expect(rep.locator("#mc-total")).to_have_text("1 records")


def test_archiving_a_field_a_view_shows_warns_with_the_impact(designer_crm: Crm, page_of: Any) -> None:
    admin = page_of("admin")
    admin.goto("/designer/entities/customer")
    field_row(admin, "industry").click()
    admin.click("#dz-archive")
    impact = admin.locator("#dz-impact")
    expect(impact).to_contain_text("Archiving industry affects", timeout=SLOW_MS)
    expect(impact.locator("li[data-key='view/customer/all']")).to_contain_text("column")
    expect(impact.locator("li[data-key='form/customer/default']")).to_be_visible()
    assert draft_count(admin) == 0  # nothing changed before the admin confirms
    screenshot(admin, "designer-archive-impact")
    admin.click("#dz-archive-confirm")
    expect(admin.locator("#dz-flash")).to_be_visible(timeout=SLOW_MS)
    expect(field_row(admin, "industry")).to_contain_text("archived")

    admin.goto("/designer/publish", timeout=SLOW_MS)
    item = admin.locator("#dz-impacts li[data-what='field customer.industry']")
    expect(item).to_contain_text("view/customer/all")
    expect(admin.locator("#dz-plan-steps")).to_contain_text("archive field customer.industry")
    # leave the metadata as it was for the other tests
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.click("#dz-discard")
    expect(admin.locator("#dz-draft-count")).to_have_attribute("data-count", "0", timeout=SLOW_MS)


def test_rollback_restores_the_previous_version_with_data_intact(designer_crm: Crm, page_of: Any) -> None:
    from metacrm.designer import drafts
    from metacrm.runtime.db import schema_transaction
    from metacrm.runtime.metastore import plan_pending

    rt = designer_crm.app.extensions["metacrm"]
    with schema_transaction(designer_crm.engine) as conn:
        doc = drafts.get_document(conn, "entity", "customer")
        doc["fields"].append({"name": "probe", "type": "text", "label": {"en": "Probe", "zh": "探针"}})
        assert drafts.put_document(conn, doc, None) == []
        before = drafts.publish_draft(conn, None, "add probe").from_version
    rt.invalidate()
    record = designer_crm.create("rep_north", "customer", {"name": unique("Probe Co"), "phone": unique_phone(),
                                                           "probe": "kept"})

    admin = page_of("admin")
    admin.goto("/designer/history")
    expect(admin.locator(f"tr[data-version='{before + 1}']")).to_contain_text("add probe")
    admin.once("dialog", lambda dialog: dialog.accept())
    with admin.expect_navigation(timeout=SLOW_MS):
        admin.click(f"tr[data-version='{before}'] .dz-rollback", timeout=SLOW_MS)
    expect(admin.locator(".alert-success")).to_contain_text(f"Rolled back to version {before}")
    with designer_crm.engine.connect() as conn:
        assert plan_pending(conn).empty  # the instance layer agrees with what was published
        stored = conn.execute(sa.text("SELECT probe FROM ent_customer WHERE id = :id"), {"id": record["id"]}).scalar()
    assert stored == "kept"  # the column and its value survive
    assert "probe" not in designer_crm.get("customer", record["id"])

    # compare the two versions, then roll forward again: the value is back
    admin.goto(f"/designer/history/diff?a={before + 1}&b={before + 2}")
    expect(admin.locator("#dz-diff li[data-key='entity/customer']")).to_contain_text("/fields/probe")
    admin.goto("/designer/history")
    admin.once("dialog", lambda dialog: dialog.accept())
    with admin.expect_navigation(timeout=SLOW_MS):
        admin.click(f"tr[data-version='{before + 1}'] .dz-rollback", timeout=SLOW_MS)
    expect(admin.locator(".alert-success")).to_contain_text(f"Rolled back to version {before + 1}")
    assert designer_crm.get("customer", record["id"])["probe"] == "kept"


def test_an_invalid_expression_is_refused_with_the_error_next_to_its_input(designer_crm: Crm, page_of: Any) -> None:
    admin = page_of("admin")
    admin.goto("/designer/entities/customer")
    field_row(admin, "credit_limit").click()
    box = admin.locator("#dz-prop-visible_when")
    box.fill("levle == 'A'")
    live = admin.locator(".dz-live[data-for=visible_when]")
    expect(live.locator(".dz-live-error")).to_contain_text("unknown name 'levle'", timeout=SLOW_MS)
    expect(live.locator(".dz-names")).to_contain_text("level")
    admin.click("#dz-save")
    error = admin.locator(".dz-error[data-path$='/visible_when']")
    expect(error).to_contain_text("unknown name 'levle'", timeout=SLOW_MS)
    expect(box).to_have_class(re.compile("is-invalid"))
    assert draft_count(admin) == 0  # nothing stored
    screenshot(admin, "designer-expression-error")
    box.fill("level == 'A'")
    expect(live.locator(".dz-live-error")).to_have_count(0, timeout=SLOW_MS)
