"""The office screens in a real browser: a day on the calendar opens a new schedule that
then shows on that day; an announcement's unread badge goes once it is opened."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from metacrm.runtime import systables
from metacrm.runtime.clock import utcnow

from .harness import BROWSER_MISSING, unique

if BROWSER_MISSING:
    pytest.skip(BROWSER_MISSING, allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.browser


def test_clicking_a_day_creates_a_schedule_that_shows_on_that_day(crm, page_as):
    page = page_as("rep_north")
    page.goto("/office/calendar?date=2031-05-14")
    expect(page.locator("#mc-cal-title")).to_have_text("2031-05")
    page.locator('td[data-day="2031-05-14"] .mc-cal-add').click()
    expect(page).to_have_url(re.compile(r"/r/schedule/new\?"))
    expect(page.locator('[name="start_at"]')).to_have_value("2031-05-14T09:00")
    title = unique("Visit")
    page.fill('[name="title"]', title)
    page.locator("form button[type=submit]").first.click()
    expect(page).to_have_url(re.compile(r"/r/schedule/\d+$"))
    page.goto("/office/calendar?date=2031-05-14")
    expect(page.locator('td[data-day="2031-05-14"] .mc-cal-item')).to_contain_text(title)
    expect(page.locator('td[data-day="2031-05-15"] .mc-cal-item')).to_have_count(0)
    page.locator("#mc-cal-next").click()  # June, then back
    expect(page.locator("#mc-cal-title")).to_have_text("2031-06")
    expect(page.locator(".mc-cal-item", has_text=title)).to_have_count(0)
    page.locator("#mc-cal-prev").click()
    expect(page.locator(".mc-cal-item", has_text=title)).to_have_count(1)


def test_opening_an_announcement_clears_its_unread_badge(crm, page_as):
    with crm.engine.connect() as conn:
        d = systables.departments
        north = conn.execute(sa.select(d.c.id).where(d.c.name == "North team")).scalar_one()
    title = unique("Team notice")
    crm.create("admin", "announcement", {"title": title, "content": "Line one\nLine two", "scope": "department",
                                         "target_department": north, "publish_date": utcnow().date().isoformat()})
    page = page_as("rep_north")
    page.goto("/office/announcements")
    badge = page.locator('.mc-sidebar [data-count="announcements_unread"]')
    expect(badge).to_be_visible()
    before = int(badge.inner_text())
    page.locator(".mc-announcement", has_text=title).click()
    expect(page.locator("article h1")).to_contain_text(title)
    expect(page.locator(".mc-announcement-body")).to_contain_text("Line two")
    page.goto("/office/announcements")
    expect(page.locator(".mc-announcement", has_text=title)).to_have_attribute("data-read", "1")
    if before == 1:
        expect(badge).to_have_count(0)
    else:
        expect(badge).to_have_text(str(before - 1))
    # rep_east is in another team: the announcement is not theirs
    other = page_as("rep_east")
    other.goto("/office/announcements")
    expect(other.locator(".mc-announcement", has_text=title)).to_have_count(0)
