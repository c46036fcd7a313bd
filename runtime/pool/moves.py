"""Changing hands: a pooled record (and what belongs to it) given to an owner or put
back into a pool, with the history, the move log and the sharing that go with it.

Every change is a conditional write through the record service
(`records.write_system_fields`), so a record changed meanwhile — claimed by someone
else a moment earlier, followed up while the recycling job looked at it — is a 409 for
that one move, never a double move. The actions (actions.py) and the recycling job
(recycle.py) decide *whether* a move is allowed; this module only carries it out.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import sqlalchemy as sa

from .. import systables
from ..catalog import Catalog, EntityRuntime
from ..clock import utcnow
from ..principal import Principal, SYSTEM
from ..query import build_filter, query_context
from ..records import write_system_fields
from .config import POOL_FIELD, Link, Pool

#: Team-member levels (runtime/access.py TEAM_ACCESS) a kept owner or a new owner may get.
TEAM_LEVELS = ("read", "write")


def log_move(conn: sa.Connection, by: Principal, entity: str, record_id: int, action: str, *,
             pool: str | None, from_owner: int | None, to_owner: int | None,
             rule: str | None = None, reason: str | None = None) -> None:
    conn.execute(systables.pool_moves.insert().values(
        at=utcnow(), by=by.user_id, entity=entity, record_id=record_id, action=action, pool=pool,
        from_owner=from_owner, to_owner=to_owner, rule=rule, reason=reason))


def department_of(conn: sa.Connection, user_id: int) -> int | None:
    u = systables.users
    return conn.execute(sa.select(u.c.department_id).where(u.c.id == user_id)).scalar()


def linked(catalog: Catalog, link: Link, entity: str, record_id: int) -> tuple[EntityRuntime, sa.ColumnElement[bool]]:
    """The records of `link.entity` pointing at one record (and passing the link's filters)."""
    rt = catalog.get(link.entity)
    t = rt.table
    if link.reference:
        where = sa.and_(t.c[f"{link.field}_entity"] == entity, t.c[f"{link.field}_id"] == record_id)
    else:
        where = t.c[link.field] == record_id
    if link.filters:
        where = sa.and_(where, build_filter(rt, list(link.filters), query_context(SYSTEM)))
    return rt, where


def move_linked(conn: sa.Connection, catalog: Catalog, by: Principal, links: Iterable[Link], entity: str,
                record_id: int, from_owner: int | None, to_owner: int | None, action: str) -> dict[str, list[int]]:
    """Records linked to a pooled one and held by `from_owner` (None: unowned) follow it to
    `to_owner` (None: into the pool with it); the ids moved, per entity."""
    department = department_of(conn, to_owner) if to_owner is not None else None
    moved: dict[str, list[int]] = {}
    for link in links:
        rt, where = linked(catalog, link, entity, record_id)
        t = rt.table
        held = t.c.owner.is_(None) if from_owner is None else t.c.owner == from_owner
        stmt = sa.select(t).where(where, held).order_by(t.c.id)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(of=t)
        for row in conn.execute(stmt).mappings().all():
            write_system_fields(conn, catalog, by, rt.name, row, {"owner": to_owner, "department": department},
                                action=action, where=held)
            moved.setdefault(rt.name, []).append(row["id"])
    return moved


def share(conn: sa.Connection, by: Principal, entity: str, ids: Iterable[int], user_id: int, access: str, *,
          keep_stronger: bool = False) -> None:
    """Make `user_id` a team member of each record (runtime/access.py TEAM_ACCESS). With
    `keep_stronger`, a write membership already there is not lowered to read."""
    tm = systables.team_members
    ids = list(dict.fromkeys(ids))
    if not ids:
        return
    existing = dict(conn.execute(sa.select(tm.c.record_id, tm.c.access).where(
        tm.c.entity == entity, tm.c.user_id == user_id, tm.c.record_id.in_(ids))).all())
    now = utcnow()
    for rid in ids:
        old = existing.get(rid)
        if old == access or (keep_stronger and old == "write"):
            continue
        if old is not None:
            conn.execute(tm.update().where(tm.c.entity == entity, tm.c.record_id == rid, tm.c.user_id == user_id)
                         .values(access=access, added_by=by.user_id, added_at=now))
        else:
            conn.execute(tm.insert().values(entity=entity, record_id=rid, user_id=user_id, access=access,
                                            added_by=by.user_id, added_at=now))


def share_history(conn: sa.Connection, catalog: Catalog, by: Principal, links: Iterable[Link], entity: str,
                  record_id: int, user_id: int) -> int:
    """The record's history (follow-ups...) stays with its authors and becomes readable by
    the new owner; the number of records shared."""
    count = 0
    for link in links:
        rt, where = linked(catalog, link, entity, record_id)
        t = rt.table
        ids = list(conn.execute(sa.select(t.c.id).where(where, sa.or_(t.c.owner.is_(None), t.c.owner != user_id)))
                   .scalars())
        share(conn, by, rt.name, ids, user_id, "read", keep_stronger=True)
        count += len(ids)
    return count


def give(conn: sa.Connection, catalog: Catalog, by: Principal, entity: str, row: Mapping[str, Any], to_user: int,
         action: str, *, pool: Pool | None, related: Iterable[Link], shared: Iterable[Link],
         reason: str | None = None, keep_as: str | None = None) -> dict[str, Any]:
    """Hand a record to `to_user`: from its pool (claim, assign; `where` = still unowned) or
    from its owner (transfer). Linked records held by the same hands follow; the history
    is shared with the new owner; a transfer may keep the old owner as a team member."""
    from_owner = row["owner"]
    rt = catalog.get(entity)
    still = rt.table.c.owner.is_(None) if from_owner is None else rt.table.c.owner == from_owner
    new = write_system_fields(conn, catalog, by, entity, row,
                              {"owner": to_user, "department": department_of(conn, to_user), POOL_FIELD: None},
                              action=action, where=still, note=reason)
    moved = move_linked(conn, catalog, by, related, entity, row["id"], from_owner, to_user, action)
    shared_count = share_history(conn, catalog, by, shared, entity, row["id"], to_user)
    if keep_as is not None and from_owner is not None:
        share(conn, by, entity, [row["id"]], from_owner, keep_as)
        for name, ids in moved.items():
            share(conn, by, name, ids, from_owner, keep_as)
    log_move(conn, by, entity, row["id"], action, pool=pool.name if pool else row.get(POOL_FIELD),
             from_owner=from_owner, to_owner=to_user, reason=reason)
    return {"id": new["id"], "version": new["version"], "owner": to_user, "pool": None,
            "moved": {k: len(v) for k, v in moved.items()}, "shared": shared_count}


def put_back(conn: sa.Connection, catalog: Catalog, by: Principal, entity: str, row: Mapping[str, Any],
             pool: Pool, action: str, *, reason: str | None, rule: str | None = None) -> dict[str, Any]:
    """Put an owned record into `pool` (release, recycle): no owner, no department; the
    linked records its owner held go with it (they follow the next owner)."""
    from_owner = row["owner"]
    rt = catalog.get(entity)
    new = write_system_fields(conn, catalog, by, entity, row, {"owner": None, "department": None, POOL_FIELD: pool.name},
                              action=action, where=rt.table.c.owner == from_owner, note=reason)
    moved = move_linked(conn, catalog, by, pool.related, entity, row["id"], from_owner, None, action)
    log_move(conn, by, entity, row["id"], action, pool=pool.name, from_owner=from_owner, to_owner=None,
             rule=rule, reason=reason)
    return {"id": new["id"], "version": new["version"], "owner": None, "pool": pool.name,
            "moved": {k: len(v) for k, v in moved.items()}}
