"""What the browser tests share: the real app served on a free port, a small sales
company seeded into it, Chromium driven by Playwright, and signed-in pages.

One server and one browser serve the whole session (starting Chromium costs about a
second, seeding the CRM about two), and each test makes its own records with names of
its own, so the tests can run in any order.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa
from werkzeug.serving import make_server

from metacrm.app import create_app
from metacrm.bootstrap import init_instance
from metacrm.runtime import accounts, systables
from metacrm.runtime.clock import utcnow
from metacrm.runtime.db import normalise_url
from metacrm.runtime.migrate import upgrade_system_tables
from metacrm.runtime.principal import SYSTEM, Principal
from metacrm.runtime.records import create_record, get_record, update_record
from metacrm.runtime.web.context import EXTENSION

from ..support import ADMIN, add_user

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOTS = Path(os.environ.get("METACRM_SCREENSHOTS") or Path(__file__).parent / "screenshots")
#: Playwright's default waits are 30 s; a page here answers in milliseconds, so a
#: missing element should fail the test quickly rather than stall the suite (10 s
#: still leaves room for a CI machine busy with other jobs).
TIMEOUT_MS = 10_000


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


#: Why the browser tests can't run here, or None: each test module skips on it.
BROWSER_MISSING = _missing()

# ------------------------------------------------------------------ the company

#: (username, display name, roles, department key, manager username, language)
STAFF = (
    ("mgr", "Morgan Manager", ("sales_manager",), "sales", None, "en"),
    ("rep_north", "Nora North", ("sales",), "north", "mgr", "en"),
    ("rep_east", "Eddie East", ("sales",), "east", "mgr", "en"),
    ("rep_lang", "Lin Lang", ("sales",), "north", "mgr", "en"),
    ("fin", "Fay Finance", ("finance",), "finance", None, "en"),  # contract approvals from 100,000
)
#: (key, name, parent key, head username)
DEPARTMENTS = (
    ("sales", "Sales", None, "mgr"),
    ("north", "North team", "sales", None),
    ("east", "East team", "sales", None),
    ("finance", "Finance", None, None),
)


def password_of(username: str) -> str:
    """`tests.support.add_user`'s default password."""
    return ADMIN[1] if username == ADMIN[0] else f"{username}-pass-1"


def unique(word: str) -> str:
    """A record name no other test (or earlier run on the same database) uses."""
    return f"{word} {secrets.token_hex(4)}"


def unique_phone() -> str:
    """A mainland landline number no other record has (dedup rules look at phones)."""
    return f"010-{secrets.randbelow(10**8):08d}"


@dataclass
class Crm:
    """The served instance: its address, its database, and the people in it."""

    base_url: str
    app: Any
    users: dict[str, int] = field(default_factory=dict)

    @property
    def engine(self) -> sa.Engine:
        return self.app.extensions[EXTENSION].engine

    def _principal(self, conn: sa.Connection, username: str) -> Principal:
        return accounts.principal_for(conn, accounts.get_account(conn, self.users[username]))

    def create(self, username: str, entity: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A record created by `username` through the record service (validation, history)."""
        rt = self.app.extensions[EXTENSION]
        with self.engine.begin() as conn:
            return create_record(conn, rt.catalog(conn), self._principal(conn, username), entity, payload)

    def update(self, username: str, entity: str, record_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        """An edit by `username` through the record service (someone else at work meanwhile)."""
        rt = self.app.extensions[EXTENSION]
        with self.engine.begin() as conn:
            return update_record(conn, rt.catalog(conn), self._principal(conn, username), entity, record_id, payload)

    def get(self, entity: str, record_id: int) -> dict[str, Any]:
        """A record as stored, read with the system's rights (for checking outcomes)."""
        rt = self.app.extensions[EXTENSION]
        with self.engine.connect() as conn:
            return get_record(conn, rt.catalog(conn), SYSTEM, entity, record_id)


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(normalise_url(url))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


def _seed_org(crm: Crm) -> None:
    """Departments and staff with the default CRM's roles; the manager heads Sales,
    whose two teams each have a rep reporting to the manager."""
    d = systables.departments
    with crm.engine.begin() as conn:
        crm.users[ADMIN[0]] = add_user(conn, ADMIN[0], ADMIN[1], is_admin=True, roles=("admin",),
                                       display_name="Administrator")
        dept_ids: dict[str, int] = {}
        for key, name, parent, _ in DEPARTMENTS:
            dept_ids[key] = conn.execute(d.insert().values(
                name=name, parent_id=dept_ids.get(parent) if parent else None, created_at=utcnow())
                .returning(d.c.id)).scalar_one()
        for username, display, roles, dept, manager, language in STAFF:
            crm.users[username] = add_user(conn, username, roles=roles, department_id=dept_ids[dept],
                                           manager_id=crm.users.get(manager) if manager else None,
                                           display_name=display, language=language)
        for key, _, _, head in DEPARTMENTS:
            if head:
                conn.execute(d.update().where(d.c.id == dept_ids[key]).values(head_id=crm.users[head]))


def serve_crm(tmp_dir: Path) -> Iterator[Crm]:
    """Create the app on a fresh database, install the default CRM, seed the org, and
    serve it with werkzeug on 127.0.0.1 in a background thread until the session ends."""
    url = os.environ.get("METACRM_TEST_DATABASE_URL")
    if url:
        _reset_postgres(url)
    else:
        url = f"sqlite:///{tmp_dir / 'browser.db'}"
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "browser-test-secret",
                      "INSTANCE_PATH": str(tmp_dir / "instance")})
    crm = Crm(base_url="", app=app)
    upgrade_system_tables(crm.engine)
    _seed_org(crm)  # the admin exists before init, so init keeps it and installs crm-default
    init_instance(app)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in failure reports
    server = make_server("127.0.0.1", 0, app, threaded=True)
    crm.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, name="metacrm-browser-server", daemon=True)
    thread.start()
    try:
        yield crm
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        crm.engine.dispose()


# ------------------------------------------------------------------ pages

def sign_in(page: Any, username: str, password: str | None = None) -> Any:
    """Sign in through the login form, as a person would; the page lands on the workbench."""
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password or password_of(username))
    page.click("button[type=submit]")
    return page


def screenshot(page: Any, name: str) -> Path:
    """A full-page PNG under METACRM_SCREENSHOTS (a build artifact, never committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
