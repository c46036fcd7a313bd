"""In-app notifications (the bell): what engines tell people, and what they have read.

Engines call `notify()` inside their own transaction, so a notification exists exactly
when the change it announces was committed (an approval waiting, a decision, a pool
reminder). Titles are bilingual labels, shown in the reader's language.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import sqlalchemy as sa

from . import systables
from .clock import utcnow

T = systables.notifications


def notify(conn: sa.Connection, user_ids: Iterable[int | None], *, kind: str, title: Mapping[str, str],
           body: str | None = None, entity: str | None = None, record_id: int | None = None,
           link: str | None = None) -> int:
    """Notify each user once (None and repeats skipped); the number of notifications written."""
    now = utcnow()
    if link is None and entity and record_id is not None:
        link = f"/r/{entity}/{record_id}"
    rows = [{"user_id": uid, "kind": kind, "title": dict(title), "body": body, "entity": entity,
             "record_id": record_id, "link": link, "created_at": now}
            for uid in dict.fromkeys(u for u in user_ids if u is not None)]
    if rows:
        conn.execute(T.insert(), rows)
    return len(rows)


def unread_count(conn: sa.Connection, user_id: int) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(T).where(
        T.c.user_id == user_id, T.c.read_at.is_(None))).scalar_one()


def list_notifications(conn: sa.Connection, user_id: int, *, unread_only: bool = False,
                       limit: int = 50) -> list[dict[str, Any]]:
    """The user's newest notifications first."""
    query = sa.select(T).where(T.c.user_id == user_id).order_by(T.c.id.desc()).limit(limit)
    if unread_only:
        query = query.where(T.c.read_at.is_(None))
    return [{"id": r.id, "kind": r.kind, "title": r.title, "body": r.body, "entity": r.entity,
             "record_id": r.record_id, "link": r.link, "created_at": r.created_at.isoformat(),
             "read": r.read_at is not None} for r in conn.execute(query)]


def mark_read(conn: sa.Connection, user_id: int, ids: Iterable[int] | None = None) -> int:
    """Mark the user's notifications read (all of them when `ids` is None); how many changed.
    Another user's ids are ignored, not an error: they simply match nothing."""
    query = T.update().where(T.c.user_id == user_id, T.c.read_at.is_(None)).values(read_at=utcnow())
    if ids is not None:
        query = query.where(T.c.id.in_(list(ids)))
    return conn.execute(query).rowcount
