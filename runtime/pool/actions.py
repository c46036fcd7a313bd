"""The public pool's entity actions (ARCHITECTURE.md): claim (领取), assign (分配),
release (放入公海), transfer (转移), lock (锁定) and unlock.

The action door (runtime/actions.py) has already checked that the entity offers the
action and that a role grants it; each handler here checks the rest — the record's
pool and the caller's membership, the limits, the action's row scope — and then moves
the record with `moves.py`. Refusals: 404 for a record the caller may not see, 403 for
one they see but may not act on, 409 when its state forbids the move (owned already,
a limit reached, claimed by someone else a moment ago), 422 for a bad body.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

import sqlalchemy as sa

from metacrm.metadata.expressions import compile_expression

from .. import systables
from ..access import Access, access_for, scope_clause
from ..catalog import Catalog, EntityRuntime
from ..clock import utcnow
from ..coercion import MAX_ID
from ..errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from ..principal import Principal
from ..record_reads import fetch_row, row_for
from ..records import write_system_fields
from .config import POOL_FIELD, Link, Pool, pool_named, pools_of
from .moves import TEAM_LEVELS, give, put_back

MAX_REASON = 500


# ------------------------------------------------------------------ checking bodies

def _keys(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ValidationFailed(f"Unknown key(s): {', '.join(unknown)}.",
                               {k: [f"Unknown field; expected one of {', '.join(allowed)}."] for k in unknown})


def _active_user(conn: sa.Connection, body: Mapping[str, Any], key: str = "to_user") -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"{key} must be a user id.", {key: ["Expected a user id (an integer)."]})
    u = systables.users
    active = 1 <= value <= MAX_ID and conn.execute(
        sa.select(u.c.active).where(u.c.id == value)).scalar()
    if not active:
        raise ValidationFailed(f"No active user with id {value}.", {key: [f"No active user with id {value}."]})
    return value


def _reason(body: Mapping[str, Any], required: bool) -> str | None:
    reason = body.get("reason")
    if reason is None and not required:
        return None
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed("Give a reason.", {"reason": ["Missing data for required field."]})
    if len(reason) > MAX_REASON:
        raise ValidationFailed("The reason is too long.", {"reason": [f"At most {MAX_REASON} characters."]})
    return reason.strip()


# ------------------------------------------------------------------ the record and its pool

def _pooled_row(conn: sa.Connection, catalog: Catalog, rt: EntityRuntime, principal: Principal, access: Access,
                record_id: int) -> tuple[Mapping[str, Any], Pool]:
    """The record, locked, and the pool it sits in; 404 when the caller can't see it,
    409 when it is no longer in a pool (the loser of two claims ends here)."""
    row = fetch_row(conn, rt, record_id, lock=True)
    pool = pool_named(catalog.mset, row[POOL_FIELD]) if row.get(POOL_FIELD) else None
    if pool is not None and pool.entity != rt.name:
        pool = None
    if row["owner"] is None and pool is not None:
        if not (access.unrestricted or pool.name in access.pools or _readable(conn, rt, principal, access, record_id)):
            raise NotFound(f"No {rt.name} with id {record_id}.")
        return row, pool
    # Owned (or in no known pool): tell pool members it is gone, hide it from anyone else.
    if not (access.unrestricted or access.pools or _readable(conn, rt, principal, access, record_id)):
        raise NotFound(f"No {rt.name} with id {record_id}.")
    who = "you" if row["owner"] == principal.user_id else "someone"
    raise Conflict(f"This {rt.name} is not in a public pool" + (f" (owned by {who})." if row["owner"] else "."),
                   reason="not_in_pool")


def _readable(conn: sa.Connection, rt: EntityRuntime, principal: Principal, access: Access, record_id: int) -> bool:
    scope = scope_clause(rt.table, rt.entity, principal, access, "read", conn)
    stmt = sa.select(rt.table.c.id).where(rt.table.c.id == record_id)
    return conn.execute(stmt if scope is None else stmt.where(scope)).first() is not None


def _lock_user(conn: sa.Connection, user_id: int) -> None:
    """Serialise one user's claims, so two at once can't both pass the limits
    (SQLite's writers are serialised by BEGIN IMMEDIATE already)."""
    if conn.dialect.name == "postgresql":
        u = systables.users
        conn.execute(sa.select(u.c.id).where(u.c.id == user_id).with_for_update())


# ------------------------------------------------------------------ limits

def start_of_today() -> dt.datetime:
    """Midnight in the instance's time zone (the expressions' clock follows it)."""
    now = compile_expression("now()").evaluate()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def check_held(conn: sa.Connection, rt: EntityRuntime, pool: Pool, user_id: int, who: str) -> None:
    if pool.max_held is None:
        return
    held = conn.execute(sa.select(sa.func.count()).select_from(rt.table)
                        .where(rt.table.c.owner == user_id)).scalar_one()
    if held >= pool.max_held:
        raise Conflict(f"{who} hold{'s' if who != 'You' else ''} {held} {rt.name} records already; "
                       f"the pool '{pool.name}' allows {pool.max_held}.", reason="max_held",
                       limit=pool.max_held, current=held)


def check_claims_today(conn: sa.Connection, pool: Pool, user_id: int) -> None:
    if pool.max_claims_per_day is None:
        return
    m = systables.pool_moves
    today = conn.execute(sa.select(sa.func.count()).select_from(m).where(
        m.c.to_owner == user_id, m.c.action == "claim", m.c.pool == pool.name,
        m.c.at >= start_of_today())).scalar_one()
    if today >= pool.max_claims_per_day:
        raise Conflict(f"You have claimed {today} records from the pool '{pool.name}' today; "
                       f"it allows {pool.max_claims_per_day} a day.", reason="max_claims_per_day",
                       limit=pool.max_claims_per_day, current=today)


def check_cooldown(conn: sa.Connection, entity: str, record_id: int, pool: Pool, user_id: int) -> None:
    """A former owner may not claim the record back within `reclaim_after_days` of losing it."""
    if not pool.reclaim_after_days:
        return
    m = systables.pool_moves
    since = utcnow() - dt.timedelta(days=pool.reclaim_after_days)
    last = conn.execute(sa.select(sa.func.max(m.c.at)).where(
        m.c.entity == entity, m.c.record_id == record_id, m.c.from_owner == user_id,
        m.c.action.in_(("release", "recycle")), m.c.at >= since)).scalar()
    if last is not None:
        if last.tzinfo is None:
            last = last.replace(tzinfo=dt.timezone.utc)
        again = last + dt.timedelta(days=pool.reclaim_after_days)
        raise Conflict(f"You held this {entity} until {last.isoformat()}; you may claim it again from "
                       f"{again.isoformat()}.", reason="reclaim_after_days",
                       limit=pool.reclaim_after_days, available_at=again.isoformat())


# ------------------------------------------------------------------ the actions

def claim(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int,
          body: Mapping[str, Any]) -> dict[str, Any]:
    """领取: a pool member takes a record from the pool, within the pool's limits."""
    _keys(body, ())
    rt = catalog.get(entity)
    access = access_for(catalog.mset, principal, rt.entity)
    if principal.user_id is None:
        raise PermissionDenied("Only a user can claim a record.")
    _lock_user(conn, principal.user_id)
    row, pool = _pooled_row(conn, catalog, rt, principal, access, record_id)
    if not pool.is_member(principal):
        raise PermissionDenied(f"You are not a member of the pool '{pool.name}'.")
    check_cooldown(conn, entity, record_id, pool, principal.user_id)
    check_held(conn, rt, pool, principal.user_id, "You")
    check_claims_today(conn, pool, principal.user_id)
    return give(conn, catalog, principal, entity, row, principal.user_id, "claim", pool=pool,
                related=pool.related, shared=pool.shared)


def assign(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int,
           body: Mapping[str, Any]) -> dict[str, Any]:
    """分配: a pool admin gives a pooled record to a user (whose held limit applies)."""
    _keys(body, ("to_user", "reason"))
    rt = catalog.get(entity)
    access = access_for(catalog.mset, principal, rt.entity)
    to_user = _active_user(conn, body)
    reason = _reason(body, required=False)
    _lock_user(conn, to_user)
    row, pool = _pooled_row(conn, catalog, rt, principal, access, record_id)
    if not pool.is_admin(principal):
        raise PermissionDenied(f"Only the admins of the pool '{pool.name}' may assign its records.")
    check_held(conn, rt, pool, to_user, f"User {to_user}")
    return give(conn, catalog, principal, entity, row, to_user, "assign", pool=pool,
                related=pool.related, shared=pool.shared, reason=reason)


def release(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int,
            body: Mapping[str, Any]) -> dict[str, Any]:
    """放入公海: the owner puts a record back into a pool of their choice, with a reason."""
    _keys(body, ("pool", "reason"))
    rt = catalog.get(entity)
    pools = pools_of(catalog.mset, entity)
    name = body.get("pool")
    if name is None and len(pools) == 1:
        name = pools[0].name
    pool = pool_named(catalog.mset, name) if isinstance(name, str) else None
    if pool is None or pool.entity != entity:
        choices = ", ".join(p.name for p in pools) or "none"
        raise ValidationFailed("Choose a pool.", {"pool": [f"No pool {name!r} for {entity} (pools: {choices})."]})
    reason = _reason(body, required=True)
    access = access_for(catalog.mset, principal, rt.entity)
    row = row_for(conn, rt, principal, access, "release", record_id)
    if row["owner"] is None:
        raise Conflict(f"This {entity} is in the pool '{row.get(POOL_FIELD)}' already.", reason="in_pool")
    if row.get("locked"):
        raise Conflict(f"This {entity} is locked; unlock it before releasing it.", reason="locked")
    return put_back(conn, catalog, principal, entity, row, pool, "release", reason=reason)


def transfer(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int,
             body: Mapping[str, Any]) -> dict[str, Any]:
    """转移: give an owned record to another user; the old owner leaves or stays as a
    read/write team member; chosen linked entities (contacts, opportunities, contracts)
    held by the old owner move too."""
    _keys(body, ("to_user", "keep_as", "related", "reason"))
    rt = catalog.get(entity)
    to_user = _active_user(conn, body)
    keep_as = body.get("keep_as")
    if keep_as is not None and keep_as not in TEAM_LEVELS:
        raise ValidationFailed("keep_as is null, \"read\" or \"write\".",
                               {"keep_as": ["Expected null, \"read\" or \"write\"."]})
    related = _related_links(catalog, entity, body.get("related"))
    reason = _reason(body, required=False)
    access = access_for(catalog.mset, principal, rt.entity)
    row = row_for(conn, rt, principal, access, "transfer", record_id)
    if row["owner"] is None:
        raise Conflict(f"This {entity} is in a public pool: claim or assign it instead.", reason="in_pool")
    if row["owner"] == to_user:
        raise ValidationFailed(f"The {entity} is this user's already.", {"to_user": ["Already the owner."]})
    shared = next((p.shared for p in pools_of(catalog.mset, entity)), ())
    return give(conn, catalog, principal, entity, row, to_user, "transfer", pool=None, related=related,
                shared=shared, reason=reason, keep_as=keep_as)


def _related_links(catalog: Catalog, entity: str, names: Any) -> list[Link]:
    """Owned entities with a lookup to `entity`, named in a transfer's `related`."""
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValidationFailed("related must be a list of entity names.", {"related": ["Expected a list of names."]})
    offered = {}
    for e in catalog.mset.active_entities:
        if e.ownership and not e.child_of and e.name != entity:
            f = next((f for f in e.active_fields if f.type == "lookup" and f.target == entity), None)
            if f is not None:
                offered[e.name] = Link(e.name, f.name)
    unknown = [n for n in names if n not in offered]
    if unknown:
        raise ValidationFailed(f"Can't move {', '.join(unknown)} with a {entity}.",
                               {"related": [f"'{n}' is not an owned entity linked to {entity} "
                                            f"(choose from {', '.join(sorted(offered))})." for n in unknown]})
    return [offered[n] for n in dict.fromkeys(names)]


def _set_lock(locked: bool):
    action = "lock" if locked else "unlock"

    def handler(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int,
                body: Mapping[str, Any]) -> dict[str, Any]:
        _keys(body, ("reason",))
        reason = _reason(body, required=False)
        rt = catalog.get(entity)
        access = access_for(catalog.mset, principal, rt.entity)
        row = row_for(conn, rt, principal, access, action, record_id)
        if row["owner"] is None:
            raise Conflict(f"This {entity} is in a public pool; only an owned one can be {action}ed.",
                           reason="in_pool")
        if bool(row.get("locked")) != locked:
            row = write_system_fields(conn, catalog, principal, entity, row, {"locked": locked}, action=action,
                                      note=reason)
        return {"id": row["id"], "version": row["version"], "owner": row["owner"], "locked": locked}

    handler.__name__ = action
    handler.__doc__ = f"{'锁定' if locked else '解锁'}: a locked record is never recycled to a pool."
    return handler


ACTIONS = {"claim": claim, "assign": assign, "release": release, "transfer": transfer,
           "lock": _set_lock(True), "unlock": _set_lock(False)}
