"""Autonumbers (`CUS-{YYYY}-{#####}`): formats rendered from the clock and a sequence.

The counter lives in `mc_sequences`, one row per rendered prefix, so a yearly format
restarts each year. The increment is one UPDATE ... RETURNING (or an INSERT when the
row is new) inside the caller's transaction: PostgreSQL's row lock, and SQLite's write
lock, make concurrent creates take distinct numbers.
"""
from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from . import systables

TOKEN = re.compile(r"\{(YYYY|YY|MM|DD|#+)\}")


def render_prefix(fmt: str, now: dt.datetime) -> str:
    """The format with its date tokens filled in (the counter token left as is)."""
    values = {"YYYY": f"{now.year:04d}", "YY": f"{now.year % 100:02d}", "MM": f"{now.month:02d}",
              "DD": f"{now.day:02d}"}
    return TOKEN.sub(lambda m: values.get(m.group(1), m.group(0)), fmt)


def next_number(conn: sa.Connection, entity: str, field: str, fmt: str, now: dt.datetime) -> str:
    return reserve_numbers(conn, entity, field, fmt, now, 1)[0]


def reserve_numbers(conn: sa.Connection, entity: str, field: str, fmt: str, now: dt.datetime,
                    count: int) -> list[str]:
    """The next `count` numbers, taken with one statement (an import numbers a batch in
    one go); they are consecutive, as `count` calls of `next_number` would give them."""
    if count < 1:
        return []
    prefix = render_prefix(fmt, now)
    key = f"{entity}.{field}:{prefix}"[:200]
    last = _increment(conn, key, count)
    return [TOKEN.sub(lambda m: f"{value:0{len(m.group(1))}d}" if m.group(1).startswith("#") else m.group(0),
                      prefix) for value in range(last - count + 1, last + 1)]


def _increment_statement(dialect: str) -> sa.Insert:
    seq = systables.sequences
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(seq).values(key=sa.bindparam("key"), value=sa.bindparam("n"))
    return stmt.on_conflict_do_update(index_elements=[seq.c.key], set_={"value": seq.c.value + stmt.excluded.value}) \
        .returning(seq.c.value)


#: One statement per dialect, the key a bound parameter: built and compiled once, not per number.
_INCREMENT = {name: _increment_statement(name) for name in ("postgresql", "sqlite")}


def _increment(conn: sa.Connection, key: str, n: int = 1) -> int:
    stmt = _INCREMENT[conn.dialect.name] if conn.dialect.name in _INCREMENT \
        else _increment_statement(conn.dialect.name)
    return conn.execute(stmt, {"key": key, "n": n}).scalar_one()
