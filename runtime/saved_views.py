"""Personal views (我的视图): a user's own filter + sort + search on a list, kept by name.

Saved filters are checked by building the list query once before they are stored, so a
saved view can't hold a filter that fails later (a field the user can't read, a bad
operator); a view that breaks after a metadata change still answers a clear 400.
"""
from __future__ import annotations

from typing import Any, Sequence

import sqlalchemy as sa

from . import systables
from .clock import utcnow
from .errors import BadRequest, NotFound

T = systables.saved_views
MAX_PER_ENTITY = 50


def list_saved(conn: sa.Connection, user_id: int, entity: str) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(T).where(T.c.user_id == user_id, T.c.entity == entity).order_by(T.c.id))
    return [dict(r._mapping) for r in rows]


def get_saved(conn: sa.Connection, user_id: int, entity: str, view_id: int) -> dict[str, Any]:
    row = conn.execute(sa.select(T).where(T.c.id == view_id, T.c.user_id == user_id, T.c.entity == entity)).first()
    if row is None:
        raise NotFound("No such saved view of yours.")
    return dict(row._mapping)


def save_view(conn: sa.Connection, user_id: int, entity: str, label: str, filters: Sequence[Any],
              sort: Sequence[Sequence[str]], q: str | None, base_view: str | None) -> int:
    label = (label or "").strip()
    if not label or len(label) > 100:
        raise BadRequest("A view needs a name of 1 to 100 characters.", {"label": ["Give the view a name."]})
    count = conn.execute(sa.select(sa.func.count()).select_from(T).where(
        T.c.user_id == user_id, T.c.entity == entity)).scalar_one()
    if count >= MAX_PER_ENTITY:
        raise BadRequest(f"You have {MAX_PER_ENTITY} saved views here already; delete one first.")
    return conn.execute(T.insert().values(
        user_id=user_id, entity=entity, label=label, base_view=base_view, filters=list(filters),
        sort=[list(s) for s in sort], q=q, created_at=utcnow()).returning(T.c.id)).scalar_one()


def delete_view(conn: sa.Connection, user_id: int, entity: str, view_id: int) -> None:
    if conn.execute(T.delete().where(T.c.id == view_id, T.c.user_id == user_id, T.c.entity == entity)).rowcount != 1:
        raise NotFound("No such saved view of yours.")
