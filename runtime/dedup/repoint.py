"""Re-pointing links: every lookup and reference to some records moved to another record.

A merge moves what pointed at the duplicates to the survivor; a lead conversion moves the
lead's follow-ups to the new customer. The links are found from the metadata (lookup
fields whose `target` is the entity, reference fields listing it in `targets`), so a
template's own entities (a `visit` with a `customer` lookup) follow without code.

The rows are updated directly rather than through `update_record`: re-pointing is part
of the merge or conversion the caller was allowed to run, and must not fail on a related
record's unrelated validation or on who owns it. Each changed record still gets a new
version and a history entry naming the field, old and new value.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

import sqlalchemy as sa

from .. import systables
from ..catalog import Catalog, EntityRuntime
from ..compiler import reference_columns
from ..history import record_changes


def _touch(conn: sa.Connection, rt: EntityRuntime, ids: list[int], values: dict[str, Any],
           by: int | None, now: dt.datetime) -> None:
    t = rt.table
    extra: dict[str, Any] = {}
    if "version" in t.c:
        extra["version"] = t.c.version + 1
    if "updated_at" in t.c and not rt.entity.child_of:
        extra.update(updated_at=now, updated_by=by)
    conn.execute(t.update().where(t.c.id.in_(ids)).values(**values, **extra))


def repoint(conn: sa.Connection, catalog: Catalog, from_entity: str, from_ids: Iterable[int],
            to_entity: str, to_id: int, by: int | None, now: dt.datetime,
            lookups: bool = True) -> dict[str, int]:
    """Move links to (from_entity, from_ids) onto (to_entity, to_id); "entity.field" → rows moved.

    Lookups move only within one entity (a customer lookup can't hold a lead); references
    move whenever the field accepts `to_entity`. A record that would end up pointing at
    itself (a customer whose parent was its duplicate) gets an empty link instead."""
    from_ids = sorted(set(from_ids))
    moved: dict[str, int] = {}
    if not from_ids:
        return moved
    for rt in catalog.entities.values():
        if rt.entity.archived:
            continue
        t = rt.table
        for f in rt.entity.fields:
            if f.type == "lookup" and lookups and f.target == from_entity == to_entity and f.name in t.c:
                col = t.c[f.name]
                rows = conn.execute(sa.select(t.c.id, col).where(col.in_(from_ids))).all()
                if not rows:
                    continue
                self_ids = [r.id for r in rows if rt.name == to_entity and r.id == to_id]
                other_ids = [r.id for r in rows if r.id not in self_ids]
                if other_ids:
                    _touch(conn, rt, other_ids, {f.name: to_id}, by, now)
                if self_ids:
                    _touch(conn, rt, self_ids, {f.name: None}, by, now)
                if not rt.entity.child_of:
                    for r in rows:
                        record_changes(conn, rt.name, r.id, by, now, "update",
                                       [(f.name, r[1], None if r.id in self_ids else to_id)])
                moved[f"{rt.name}.{f.name}"] = len(rows)
            elif f.type == "reference" and from_entity in f.targets and to_entity in f.targets:
                ent, rid = reference_columns(f.name)
                if rid not in t.c:
                    continue
                rows = conn.execute(sa.select(t.c.id, t.c[rid]).where(
                    t.c[ent] == from_entity, t.c[rid].in_(from_ids))).all()
                if not rows:
                    continue
                _touch(conn, rt, [r.id for r in rows], {ent: to_entity, rid: to_id}, by, now)
                if not rt.entity.child_of:
                    for r in rows:
                        record_changes(conn, rt.name, r.id, by, now, "update",
                                       [(f.name, {"entity": from_entity, "id": r[1]}, {"entity": to_entity, "id": to_id})])
                moved[f"{rt.name}.{f.name}"] = len(rows)
    return moved


def move_team_members(conn: sa.Connection, entity: str, from_ids: Iterable[int], to_id: int) -> None:
    """Team members (shared access) of merged records join the survivor's team; an access
    the survivor already grants a user is kept as it is."""
    tm = systables.team_members
    from_ids = sorted(set(from_ids))
    rows = conn.execute(sa.select(tm).where(tm.c.entity == entity, tm.c.record_id.in_(from_ids))).mappings().all()
    have = set(conn.execute(sa.select(tm.c.user_id).where(tm.c.entity == entity, tm.c.record_id == to_id)).scalars())
    for r in rows:
        if r["user_id"] not in have:
            conn.execute(tm.insert().values(**{**dict(r), "record_id": to_id}))
            have.add(r["user_id"])
    conn.execute(tm.delete().where(tm.c.entity == entity, tm.c.record_id.in_(from_ids)))
