"""Browser-test fixtures: one served CRM and one headless Chromium for the session, and
`page_as(username)` for a signed-in page in a fresh browser context (own cookies).

The server runs on SQLite in a temporary folder, or on the PostgreSQL database named by
METACRM_TEST_DATABASE_URL (its public schema is reset first, as tests/conftest.py does).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from .harness import BROWSER_MISSING, CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, Crm, serve_crm, sign_in


@pytest.fixture(scope="session")
def crm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crm]:
    yield from serve_crm(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if BROWSER_MISSING:
        pytest.skip(BROWSER_MISSING)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def _signed_in_states() -> dict[str, Any]:
    """Each user's cookies after their first sign-in, so later pages skip the form."""
    return {}


@pytest.fixture
def page_as(crm: Crm, browser: Any, _signed_in_states: dict[str, Any]) -> Iterator[Callable[..., Any]]:
    """page_as(username, width=1280, height=900) → a page signed in as `username`.

    A script error on any page (an uncaught exception in app.js) fails the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def _page(username: str | None = None, width: int = 1280, height: int = 900) -> Any:
        state = _signed_in_states.get(username) if username else None
        context = browser.new_context(base_url=crm.base_url, viewport={"width": width, "height": height},
                                      storage_state=state, locale="en-US",
                                      reduced_motion="reduce")  # Bootstrap then skips its fades
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        if username and state is None:
            sign_in(page, username)
            page.wait_for_url(crm.base_url + "/")
            _signed_in_states[username] = context.storage_state()
        return page

    yield _page
    for context in contexts:
        context.close()
    assert not errors, f"script errors in the page: {errors}"
