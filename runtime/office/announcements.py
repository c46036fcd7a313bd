"""Who has read which announcement, and which announcements a user should see.

An announcement reaches everyone (`scope` = all) or one department and the departments
below it (`target_department`); it shows from its `publish_date` on. On top of that the
role's read scope on `announcement` applies as for any entity. Reads are rows of
`mc_announcement_reads` (one per user and announcement), so "unread" is a NOT EXISTS on
the same scoped query.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .. import systables
from ..access import access_for, scope_clause
from ..catalog import Catalog
from ..clock import utcnow
from ..errors import NotFound
from ..principal import Principal
from ..query import ListRequest, build_filter, list_records, query_context

ENTITY = "announcement"
R = systables.announcement_reads


def audience_filter(principal: Principal) -> list[Any]:
    """The filter of announcements meant for the principal and already published."""
    reach: list[Any] = [["scope", "=", "all"]]
    if principal.department_path:
        reach.append(["target_department", "in", sorted(principal.department_path)])
    return [{"any": reach}, {"any": [["publish_date", "is empty"], ["publish_date", "<=", "$today"]]}]


def installed(catalog: Catalog) -> bool:
    entity = catalog.entities.get(ENTITY)
    return entity is not None and not entity.entity.archived


def require_installed(catalog: Catalog) -> None:
    """Announcements come with the office template: without it, their pages are a 404."""
    if not installed(catalog):
        raise NotFound("The office module is not installed.")


def _scoped(conn: sa.Connection, catalog: Catalog, principal: Principal, timezone: str) -> sa.ColumnElement[bool] | None:
    """The WHERE clause of the announcements the principal sees (None: none at all)."""
    rt = catalog.get(ENTITY)
    access = access_for(catalog.mset, principal, rt.entity)
    if not access.allows("read"):
        return None
    where = [build_filter(rt, audience_filter(principal), query_context(principal, timezone))]
    scope = scope_clause(rt.table, rt.entity, principal, access, "read", conn)
    if scope is not None:
        where.append(scope)
    return sa.and_(*where)


def unread_count(conn: sa.Connection, catalog: Catalog, principal: Principal, timezone: str = "UTC") -> int:
    """How many announcements the principal may read and has not opened."""
    if principal.user_id is None or not installed(catalog):
        return 0
    where = _scoped(conn, catalog, principal, timezone)
    if where is None:
        return 0
    t = catalog.get(ENTITY).table
    read = sa.exists().where(R.c.announcement_id == t.c.id, R.c.user_id == principal.user_id)
    return conn.execute(sa.select(sa.func.count()).select_from(t).where(where, sa.not_(read))).scalar_one()


def list_announcements(conn: sa.Connection, catalog: Catalog, principal: Principal, timezone: str = "UTC",
                       page: int = 1, page_size: int = 50) -> dict[str, Any]:
    """The principal's announcements, pinned first then newest, each with `read` (bool)."""
    result = list_records(conn, catalog, principal, ENTITY, ListRequest(
        filters=audience_filter(principal), sort=[("pinned", "desc"), ("publish_date", "desc"), ("id", "desc")],
        page=page, page_size=page_size, expand=["owner"]), timezone)
    ids = [r["id"] for r in result["items"]]
    seen = set(conn.execute(sa.select(R.c.announcement_id).where(
        R.c.user_id == principal.user_id, R.c.announcement_id.in_(ids))).scalars()) if ids else set()
    for r in result["items"]:
        r["read"] = r["id"] in seen
    result["unread"] = unread_count(conn, catalog, principal, timezone)
    return result


def open_announcement(conn: sa.Connection, catalog: Catalog, principal: Principal, announcement_id: int,
                      timezone: str = "UTC") -> dict[str, Any]:
    """Read one announcement (NotFound unless it is meant for and readable by the
    principal) and mark it read for them; the record with `read` = True."""
    result = list_records(conn, catalog, principal, ENTITY, ListRequest(
        filters=audience_filter(principal) + [["id", "=", announcement_id]], page_size=1, expand=["owner"]), timezone)
    if not result["items"]:
        raise NotFound(f"No announcement with id {announcement_id}.")
    mark_read(conn, principal, announcement_id)
    record = result["items"][0]
    record["read"] = True
    return record


def mark_read(conn: sa.Connection, principal: Principal, announcement_id: int) -> None:
    """Record that the principal opened the announcement (once; later opens change nothing)."""
    if principal.user_id is None:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(insert(R).values(announcement_id=announcement_id, user_id=principal.user_id, read_at=utcnow())
                 .on_conflict_do_nothing())
