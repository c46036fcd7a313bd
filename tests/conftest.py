"""Fixtures: every test gets an empty database — SQLite by default, PostgreSQL when
METACRM_TEST_DATABASE_URL is set (CI runs the suite once each way)."""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable

import pytest
import sqlalchemy as sa

from metacrm.app import create_app
from metacrm.runtime import accounts
from metacrm.runtime.db import make_engine, normalise_url
from metacrm.runtime.metastore import install_template
from metacrm.runtime.migrate import upgrade_system_tables
from metacrm.runtime.web.context import EXTENSION

from .support import ADMIN, login, package

PG_URL = os.environ.get("METACRM_TEST_DATABASE_URL")


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(normalise_url(url))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    if PG_URL:
        _reset_postgres(PG_URL)
        return PG_URL
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def is_postgres() -> bool:
    return bool(PG_URL)


@pytest.fixture
def make_app(db_url: str, tmp_path: Any) -> Iterable[Callable[..., Any]]:
    """make_app(docs) → an app whose database has the system tables, an admin, and `docs`
    installed as a template (none: an empty instance)."""
    apps = []

    def _make(docs: list[dict[str, Any]] | None = None, **config: Any) -> Any:
        app = create_app({"DATABASE_URL": db_url, "SECRET_KEY": "test-secret", "TESTING": True,
                          "INSTANCE_PATH": str(tmp_path / "instance"), **config})
        rt = app.extensions[EXTENSION]
        upgrade_system_tables(rt.engine)
        with rt.engine.begin() as conn:
            if accounts.find_account(conn, ADMIN[0]) is None:
                accounts.create_user(conn, ADMIN[0], ADMIN[1], display_name="Admin", is_admin=True, roles=("admin",))
            if docs:
                install_template(conn, package(docs))
        rt.invalidate()
        apps.append(app)
        return app

    yield _make
    for app in apps:
        app.extensions[EXTENSION].engine.dispose()


@pytest.fixture
def client_of() -> Callable[..., Any]:
    """client_of(app) → a test client logged in as the admin."""
    def _client(app: Any, username: str = ADMIN[0], password: str = ADMIN[1]) -> Any:
        return login(app.test_client(), username, password)
    return _client


@pytest.fixture
def engine_of() -> Callable[[Any], sa.Engine]:
    return lambda app: app.extensions[EXTENSION].engine


def pytest_report_header(config: Any) -> str:
    return f"metacrm database: {'PostgreSQL ' + PG_URL if PG_URL else 'SQLite (temporary files)'}"
