"""Field-level history: who changed which field of which record, when, from what to what."""
from __future__ import annotations

import datetime as dt
import decimal
from typing import Any, Iterable

import sqlalchemy as sa

from . import systables
from .coercion import utc


def jsonable(value: Any) -> Any:
    """Values as history stores them: the same JSON shapes the API uses."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def record_changes(conn: sa.Connection, entity: str, record_id: int, by: int | None, at: dt.datetime,
                   action: str, changes: Iterable[tuple[str | None, Any, Any]]) -> None:
    rows = _rows(entity, record_id, by, at, action, changes)
    if rows:
        conn.execute(systables.history.insert(), rows)


#: What a create records: one entry without a field (the record's values are its first state).
CREATED = ((None, None, None),)


def record_creations(conn: sa.Connection, entity: str, record_ids: Iterable[int], by: int | None,
                     at: dt.datetime) -> None:
    """The history of many new records (a batch import) in one INSERT, each entry what
    `record_changes(..., "create", CREATED)` writes for one."""
    rows = [r for record_id in record_ids for r in _rows(entity, record_id, by, at, "create", CREATED)]
    if rows:
        conn.execute(systables.history.insert(), rows)


def _rows(entity: str, record_id: int, by: int | None, at: dt.datetime, action: str,
          changes: Iterable[tuple[str | None, Any, Any]]) -> list[dict[str, Any]]:
    return [{"entity": entity, "record_id": record_id, "at": at, "by": by, "action": action,
             "field": name, "old": jsonable(old), "new": jsonable(new)} for name, old, new in changes]


def read_history(conn: sa.Connection, entity: str, record_id: int, hidden: frozenset[str] = frozenset(),
                 limit: int = 500) -> list[dict[str, Any]]:
    h, u = systables.history, systables.users
    rows = conn.execute(
        sa.select(h.c.at, h.c.by, u.c.display_name, h.c.action, h.c.field, h.c.old, h.c.new)
        .select_from(h.outerjoin(u, u.c.id == h.c.by))
        .where(h.c.entity == entity, h.c.record_id == record_id)
        .order_by(h.c.id.desc()).limit(limit)
    ).all()
    out = []
    for r in rows:
        if r.field in hidden:
            continue
        out.append({"at": utc(r.at).isoformat(), "by": r.by, "by_name": r.display_name, "action": r.action,
                    "field": r.field, "old": r.old, "new": r.new})
    return out
