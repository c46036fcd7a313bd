"""Roles → rights: which actions a principal may take on an entity, over which rows,
and which fields are hidden, masked or read-only for them.

Roles are metadata (`kind: role`, METADATA.md). A user's rights are the union of their
roles: an action's scope is the OR of every role's scope for it, and a field is
restricted only when *every* role that can read the entity restricts it. Scopes become
SQL (`scope_clause`), added as one more `where()` to every query that reads or writes
rows, so a row outside the scope is never fetched — a read by id answers 404, not 403.

Entities without ownership (products, settings) have no owner to scope by: any granted
scope other than `false` means all rows. Child entities follow their parent.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa

from metacrm.metadata.model import Entity, MetadataSet

from . import systables
from .pool.config import POOL_FIELD, member_pools
from .principal import Principal

BASIC_ACTIONS = ("create", "read", "update", "delete", "export", "import", "transfer")
SCOPES = ("self", "self_and_subordinates", "department", "department_and_children", "all")
#: How much of a field a role lets its holder read: full, masked, or nothing.
READ_LEVELS = {None: 0, "readonly": 0, "masked": 1, "hidden": 2}
ALL = frozenset({"all"})
#: Team members (团队成员) share a record: which of their access levels open which action.
#: Deleting and transferring stay with the owner's scope.
TEAM_ACCESS = {"read": ("read", "write"), "export": ("read", "write"), "update": ("write",)}
#: Members of a public pool read its unowned records; changing them takes a claim first.
POOL_ACCESS = frozenset({"read"})


@dataclass(frozen=True)
class Access:
    """A principal's rights on one entity."""

    entity: str
    scopes: Mapping[str, frozenset[str]]
    hidden: frozenset[str] = frozenset()
    masked: frozenset[str] = frozenset()
    readonly: frozenset[str] = frozenset()
    unrestricted: bool = False
    #: Public pools (公海) of this entity the principal belongs to: their unowned records
    #: are readable too (runtime/pool).
    pools: frozenset[str] = frozenset()

    def allows(self, action: str) -> bool:
        return self.unrestricted or bool(self.scopes.get(action))

    def scope(self, action: str) -> frozenset[str]:
        return ALL if self.unrestricted else self.scopes.get(action, frozenset())

    @property
    def unreadable(self) -> frozenset[str]:
        """Fields whose value must not be filtered, sorted or searched on (it would leak)."""
        return self.hidden | self.masked


def _scope_names(value: Any) -> frozenset[str]:
    if value is True:
        return ALL
    if value in SCOPES:
        return frozenset({value})
    return frozenset()


def access_for(mset: MetadataSet, principal: Principal, entity: Entity) -> Access:
    """The union of the principal's roles' rights on `entity` (admins: everything)."""
    governing = mset.entities.get(entity.child_of) if entity.child_of else entity
    name = governing.name if governing else entity.name
    if principal.is_admin:
        return Access(name, {}, unrestricted=True)
    roles = [mset.roles[r].spec for r in sorted(principal.roles) if r in mset.roles]
    scopes: dict[str, set[str]] = {}
    readers = []
    for role in roles:
        perms = (role.get("permissions") or {}).get(name) or {}
        for action, value in perms.items():
            granted = _scope_names(value)
            if granted:
                scopes.setdefault(action, set()).update(granted)
        if _scope_names(perms.get("read")):
            readers.append((role.get("fields") or {}).get(entity.name) or {})
    fields = {f.name for f in entity.fields}
    hidden, masked, readonly = set(), set(), set()
    for f in fields:
        levels = [fp.get(f) for fp in readers]
        if not levels:
            continue
        read = min(READ_LEVELS.get(level, 0) for level in levels)
        if read == 2:
            hidden.add(f)
        elif read == 1:
            masked.add(f)
        if all(level in ("readonly", "masked", "hidden") for level in levels):
            readonly.add(f)
    owned = governing.ownership if governing else entity.ownership
    frozen = {a: (ALL if not owned and s else frozenset(s)) for a, s in scopes.items()}
    pools = member_pools(mset, principal, name) if owned and mset.pools else frozenset()
    return Access(name, frozen, frozenset(hidden), frozenset(masked), frozenset(readonly), pools=pools)


#: Above this many records shared with one user, the team clause stays a subquery.
MAX_SHARED_IDS = 1000


def shared_ids(conn: sa.Connection, entity: Entity, principal: Principal, action: str) -> list[int] | None:
    """The ids of records shared with the principal for `action` (None: too many to list)."""
    tm = systables.team_members
    ids = list(conn.execute(
        sa.select(tm.c.record_id).where(tm.c.entity == entity.name, tm.c.user_id == principal.user_id,
                                        tm.c.access.in_(TEAM_ACCESS[action])).limit(MAX_SHARED_IDS + 1)).scalars())
    return None if len(ids) > MAX_SHARED_IDS else ids


def pooled_ids(conn: sa.Connection, table: sa.Table, pools: frozenset[str]) -> list[int] | None:
    """The ids of the unowned records in `pools` (None: too many to list). `coalesce()`
    keeps SQLite off the owner index (`owner IS NULL` would walk every unowned row)."""
    ids = list(conn.execute(sa.select(table.c.id).where(
        table.c[POOL_FIELD].in_(sorted(pools)), sa.func.coalesce(table.c.owner, 0) == 0)
        .limit(MAX_SHARED_IDS + 1)).scalars())
    return None if len(ids) > MAX_SHARED_IDS else ids


def scope_clause(table: sa.Table, entity: Entity, principal: Principal, access: Access,
                 action: str, conn: sa.Connection | None = None) -> sa.ColumnElement[bool] | None:
    """The WHERE clause limiting `table` to the rows `action` may touch; None = no limit.

    With `conn`, the records shared with the principal are read first (one indexed query)
    and the clause lists their ids: `owner IN (...) OR id IN (1, 2)`. PostgreSQL plans
    that as a BitmapOr over the owner index and the primary key, while an `OR id IN
    (SELECT ...)` becomes a hashed SubPlan that makes it scan the whole table.

    Members of a public pool also read its unowned records, listed the same way (one
    query on the `(pool, owner)` index; `id IN (...)` joins the shared ids), or, above
    MAX_SHARED_IDS, as `OR (owner IS NULL AND pool IN (...))`. A principal in no pool gets
    exactly the clause it had before."""
    scope = access.scope(action)
    if "all" in scope:
        return None
    parts: list[sa.ColumnElement[bool]] = []
    if entity.ownership and principal.user_id is not None:
        owner = table.c.owner
        if "self" in scope:
            parts.append(owner == principal.user_id)
        if "self_and_subordinates" in scope:
            parts.append(owner.in_({principal.user_id, *principal.subordinate_ids}))
        if "department" in scope and principal.department_id is not None:
            parts.append(table.c.department == principal.department_id)
        if "department_and_children" in scope and principal.department_ids:
            parts.append(table.c.department.in_(principal.department_ids))
        listed: list[int] = []  # ids shared or pooled, read first: one `id IN (...)` arm
        if action in TEAM_ACCESS:
            ids = shared_ids(conn, entity, principal, action) if conn is not None else None
            if ids is None:
                tm = systables.team_members
                parts.append(table.c.id.in_(
                    sa.select(tm.c.record_id).where(tm.c.entity == entity.name, tm.c.user_id == principal.user_id,
                                                    tm.c.access.in_(TEAM_ACCESS[action]))))
            else:
                listed += ids
        if access.pools and action in POOL_ACCESS:
            ids = pooled_ids(conn, table, access.pools) if conn is not None else None
            if ids is None:
                parts.append(sa.and_(owner.is_(None), table.c[POOL_FIELD].in_(sorted(access.pools))))
            else:
                listed += ids
        if listed:
            parts.append(table.c.id.in_(sorted(set(listed))))
    return sa.or_(*parts) if parts else sa.false()


def mask(value: Any) -> Any:
    """A value shown as existing but unreadable: 13812341234 → 138****1234."""
    if value is None or value == "" or value == []:
        return value
    text = str(value)
    if "@" in text:
        local, _, domain = text.partition("@")
        return f"{local[:1]}***@{domain}"
    digits = sum(ch.isdigit() for ch in text)
    if digits >= 7:
        return f"{text[:3]}****{text[-4:]}"
    return f"{text[:1]}***"
