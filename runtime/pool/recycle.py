"""Recycling (回收): owned records go back to their pool after N days without a
follow-up, an opportunity or a deal, with a reminder K days before.

A pool's rules apply to the records its members own. For each record the clock starts
at the latest of: when its owner got it (the last owner change in the history, else its
creation), and for `no_followup` its last follow-up (`last_followup_at`, or the newest
follow-up record pointing at it), for `no_opportunity` its newest opportunity. Due =
start + the rule's days for the record's level (a level without days is exempt). Locked
records are exempt, and so are records with a deal when the rule says `exempt_deals`
(a `no_deal` rule only ever looks at records without one).

`run()` is what `metacrm jobs run` calls, from cron every few minutes and possibly twice
at once: candidates are read in batches of their own transaction, locked with `FOR
UPDATE SKIP LOCKED` on PostgreSQL (a second run takes other rows instead of waiting),
every move is a conditional write (a record changed meanwhile is left for the next run),
and a reminder is a row keyed by (record, rule, owner, due date) inserted with `ON
CONFLICT DO NOTHING`: a run that finds nothing due changes nothing.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .. import systables
from ..catalog import Catalog, EntityRuntime, Runtime
from ..clock import utcnow
from ..errors import Conflict
from ..notifications import notify
from ..org import load_org
from ..principal import SYSTEM
from ..query import build_filter, query_context
from .config import Link, Pool, Rule, pools_of
from .moves import linked, put_back

BATCH = 200
#: What each rule kind waits for, in words (the reason recorded with a recycled record).
WAITING_FOR = {"no_followup": ("a follow-up", "跟进"), "no_opportunity": ("a new opportunity", "新商机"),
               "no_deal": ("a deal", "成交")}


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def member_ids(conn: sa.Connection, pool: Pool) -> list[int]:
    """The users a pool's rules apply to: its members, as users, departments (with their
    sub-departments) and roles."""
    group = pool.members
    u, ur = systables.users, systables.user_roles
    users = group.get("users") or ()
    departments: set[int] = set()
    if group.get("departments"):
        org = load_org(conn)
        for d in group["departments"]:
            departments |= org.child_departments(d)
    parts = []
    ids = [x for x in users if isinstance(x, int)]
    names = [x for x in users if isinstance(x, str)]
    if ids:
        parts.append(u.c.id.in_(ids))
    if names:
        parts.append(u.c.username.in_(names))
    if departments:
        parts.append(u.c.department_id.in_(sorted(departments)))
    if group.get("roles"):
        parts.append(u.c.id.in_(sa.select(ur.c.user_id).where(ur.c.role.in_(list(group["roles"])))))
    if not parts:
        return []
    return list(conn.execute(sa.select(u.c.id).where(sa.or_(*parts)).order_by(u.c.id)).scalars())


def _deal_clause(rt: EntityRuntime, pool: Pool) -> sa.ColumnElement[bool]:
    return build_filter(rt, list(pool.deal), query_context(SYSTEM))


def candidates(conn: sa.Connection, rt: EntityRuntime, pool: Pool, rule: Rule, owners: list[int],
               now: dt.datetime, after_id: int, limit: int, lock: bool = True) -> list[Mapping[str, Any]]:
    """Owned, unlocked records of the pool's members that could be due or in their reminder
    window (a cheap, indexable bound: no record can be due before it existed that long).
    `lock=False` for readers (the workbench) that move nothing."""
    t = rt.table
    bound = now - dt.timedelta(days=rule.shortest - (rule.remind_before or 0))
    where = [t.c.owner.in_(owners), t.c.id > after_id, t.c.created_at <= bound]
    if "locked" in t.c:
        where.append(sa.or_(t.c.locked.is_(None), t.c.locked == sa.false()))
    if rule.exempt_deals or rule.when == "no_deal":
        where.append(sa.not_(sa.func.coalesce(_deal_clause(rt, pool), sa.false())))
    if rule.when == "no_followup" and "last_followup_at" in t.c:
        where.append(sa.or_(t.c.last_followup_at.is_(None), t.c.last_followup_at <= bound))
    stmt = sa.select(t).where(*where).order_by(t.c.id).limit(limit)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=t)
    return list(conn.execute(stmt).mappings().all())


def _latest_owner_change(conn: sa.Connection, entity: str, ids: list[int]) -> dict[int, dt.datetime]:
    h = systables.history
    rows = conn.execute(sa.select(h.c.record_id, sa.func.max(h.c.at)).where(
        h.c.entity == entity, h.c.record_id.in_(ids), h.c.field == "owner").group_by(h.c.record_id))
    return {rid: _aware(at) for rid, at in rows}


def _latest_linked(conn: sa.Connection, catalog: Catalog, link: Link | None, entity: str,
                   ids: list[int]) -> dict[int, dt.datetime]:
    """The newest record of `link.entity` pointing at each of `ids` (its created_at)."""
    if link is None:
        return {}
    rt, _ = linked(catalog, link, entity, 0)
    t = rt.table
    if link.reference:
        key = t.c[f"{link.field}_id"]
        where = [t.c[f"{link.field}_entity"] == entity, key.in_(ids)]
    else:
        key = t.c[link.field]
        where = [key.in_(ids)]
    rows = conn.execute(sa.select(key, sa.func.max(t.c.created_at)).where(*where).group_by(key))
    return {rid: _aware(at) for rid, at in rows}


def due_dates(conn: sa.Connection, catalog: Catalog, rt: EntityRuntime, pool: Pool, rule: Rule,
              rows: list[Mapping[str, Any]]) -> dict[int, tuple[dt.datetime, int]]:
    """(due moment, days) per record; records whose level the rule doesn't cover are left out."""
    ids = [r["id"] for r in rows]
    owned_since = _latest_owner_change(conn, rt.name, ids)
    activity = _latest_linked(conn, catalog, rule.source, rt.name, ids) if rule.when != "no_deal" else {}
    out = {}
    for r in rows:
        days = rule.days_for(r.get(pool.level_field))
        if days is None:
            continue
        starts = [_aware(r["created_at"]), owned_since.get(r["id"]), activity.get(r["id"])]
        if rule.when == "no_followup":
            starts.append(_aware(r.get("last_followup_at")))
        start = max(s for s in starts if s is not None)
        out[r["id"]] = (start + dt.timedelta(days=days), days)
    return out


def _insert_once(conn: sa.Connection, values: dict[str, Any]) -> bool:
    """Insert a reminder row unless it is there already (another run's); True when inserted."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    t = systables.pool_reminders
    stmt = insert(t).values(**values).on_conflict_do_nothing().returning(t.c.record_id)
    return conn.execute(stmt).first() is not None  # (psycopg's rowcount is -1 here)


def _remind(conn: sa.Connection, rt: EntityRuntime, pool: Pool, rule: Rule, row: Mapping[str, Any],
            due: dt.datetime, days: int, now: dt.datetime) -> bool:
    cycle = f"{pool.name}:{rule.name}:{row['owner']}:{due.astimezone(dt.timezone.utc).isoformat()}"
    if not _insert_once(conn, {"entity": rt.name, "record_id": row["id"], "cycle": cycle[:200],
                               "user_id": row["owner"], "sent_at": now}):
        return False
    title = str(row.get(rt.entity.title_field) or f"#{row['id']}")
    left = max(1, (due - now).days + (1 if (due - now).seconds else 0))
    en, zh = WAITING_FOR[rule.when]
    notify(conn, [row["owner"]], kind="pool_reminder", entity=rt.name, record_id=row["id"],
           title={"en": f"{title} goes back to the pool '{pool.label.en}' in {left} day(s)",
                  "zh": f"{title} 将在 {left} 天后被收回公海「{pool.label.zh}」"},
           body=f"{rule.label.en}: {days} days without {en} ({rule.label.zh}：{days}天未{zh}). "
                f"Due {due.isoformat()}.")
    return True


def _recycle_batch(conn: sa.Connection, catalog: Catalog, pool: Pool, rule: Rule, owners: list[int],
                   now: dt.datetime, after_id: int, totals: dict[str, int]) -> int | None:
    """One batch of one rule in the caller's transaction; the last id seen (None: done)."""
    rt = catalog.get(pool.entity)
    rows = candidates(conn, rt, pool, rule, owners, now, after_id, BATCH)
    if not rows:
        return None
    dues = due_dates(conn, catalog, rt, pool, rule, rows)
    for row in rows:
        if row["id"] not in dues:
            continue
        due, days = dues[row["id"]]
        if now >= due:
            en, zh = WAITING_FOR[rule.when]
            try:
                with conn.begin_nested():
                    put_back(conn, catalog, SYSTEM, rt.name, row, pool, "recycle", rule=rule.name,
                             reason=f"{rule.name}: {days} days without {en} ({days}天未{zh})")
                totals["moved"] += 1
            except Conflict:
                totals["skipped"] += 1  # changed meanwhile: the next run looks again
        elif rule.remind_before and now >= due - dt.timedelta(days=rule.remind_before):
            if _remind(conn, rt, pool, rule, row, due, days, now):
                totals["reminded"] += 1
    return rows[-1]["id"]


def run(rt: Runtime, now: dt.datetime | None = None) -> dict[str, int]:
    """Apply every pool's recycling rules once; counts of records moved and reminders sent."""
    now = now or utcnow()
    totals = {"moved": 0, "reminded": 0, "skipped": 0}
    catalog = rt.catalog()
    for pool in pools_of(catalog.mset):
        if not pool.rules:
            continue
        with rt.engine.connect() as conn:
            owners = member_ids(conn, pool)
        if not owners:
            continue
        for rule in pool.rules:
            after: int | None = 0
            while after is not None:
                with rt.engine.begin() as conn:
                    after = _recycle_batch(conn, rt.catalog(conn), pool, rule, owners, now, after, totals)
    return totals
