"""Engines for the two supported databases, configured the same way everywhere.

SQLite needs three things set on every connection to behave like a real database here:
foreign keys on (off by default), WAL journaling (readers don't block the writer), and
transactions that really begin with BEGIN, so that DDL inside a publish rolls back with
the rest (pysqlite's legacy transaction handling would otherwise commit around it; this
is the recipe from SQLAlchemy's SQLite dialect documentation).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .errors import Conflict


def normalise_url(url: str) -> str:
    """Accept `postgres://` and `postgresql://` URLs and use psycopg 3 for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front: two writers queue instead of one of
        # them failing with "database is locked" when it upgrades a read lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_sqlite(bind: sa.Connection | Engine) -> bool:
    return bind.dialect.name == "sqlite"


@contextmanager
def schema_transaction(engine: Engine) -> Iterator[sa.Connection]:
    """A transaction for changing entity tables (publish, template install/upgrade).

    On SQLite, Alembic's batch mode changes a column by rebuilding the table: copy it,
    DROP the original, rename the copy. With foreign keys enforced, that DROP deletes
    every child row through ON DELETE CASCADE and leaves lookups pointing at the table
    counted as violations that fail the COMMIT. SQLite can switch enforcement only
    outside a transaction, so it is switched off around this one, and the references
    are checked with `PRAGMA foreign_key_check` before committing instead (SQLite's own
    recipe for generalized ALTER TABLE). On PostgreSQL this is a plain transaction.
    """
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection if is_sqlite(conn) else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")  # before BEGIN: a no-op inside one
        try:
            with conn.begin():
                yield conn
                if raw is not None:
                    check_foreign_keys(conn)
        finally:
            if raw is not None:
                try:
                    raw.execute("PRAGMA foreign_keys=ON")
                except Exception:  # noqa: BLE001 - never return it to the pool unenforced
                    conn.invalidate()


def check_foreign_keys(conn: sa.Connection) -> None:
    """Refuse (Conflict) when rows reference rows that don't exist (SQLite only)."""
    rows = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if rows:
        tables = sorted({f"{r[0]} -> {r[2]}" for r in rows})
        raise Conflict(f"{len(rows)} row(s) would reference missing records ({', '.join(tables)}); "
                       "nothing was changed.")


def foreign_keys_enforced(conn: sa.Connection) -> bool:
    return is_sqlite(conn) and bool(conn.exec_driver_sql("PRAGMA foreign_keys").scalar())
