"""Where a report's numbers come from: an entity's table limited to the caller's read scope,
narrowed by the `user` / `department` filters and the period.

Every query of every report starts here, so a dashboard can never count a row the
caller's list of the same entity would not show (ARCHITECTURE.md: permissions in SQL).

Field permissions (the rule every report follows, as the list API does): a report never
filters, buckets, groups, sums or shows a field that is hidden or masked for the caller
(`Access.unreadable`), nor reads an entity they may not read. A child table (the
contract's `lines`) follows its parent: it is readable only when the parent is and the
table field itself is readable, and its own fields' restrictions apply too
(`ReportContext.child`). What a report cannot do without is refused with the usual 403
(PermissionDenied); where a report already degrades per measure (the brief's rows, the
trend's series, a ranking, an amount) the measure is left out or null instead.

`user` and `department` narrow *within* the scope. Asking for someone outside it is a
403 naming the field (not silently empty numbers, which would read as "they sold
nothing"): a rep may filter on themselves, a manager on their team.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .. import systables
from ..access import Access, access_for, scope_clause
from ..catalog import Catalog, EntityRuntime
from ..errors import BadRequest, PermissionDenied
from ..org import OrgChart, load_org
from ..principal import Principal
from .params import ReportParams


@dataclass(frozen=True)
class Source:
    """One entity as a report may read it: the table and the WHERE parts that always apply."""

    rt: EntityRuntime
    access: Access
    where: tuple[sa.ColumnElement[bool], ...]

    @property
    def table(self) -> sa.Table:
        return self.rt.table

    def column(self, name: str) -> sa.ColumnElement[Any] | None:
        """A field's column, or None when the entity lacks it or the caller may not read it."""
        f = self.rt.entity.active_field(name)
        if f is None or name in self.access.unreadable or name not in self.table.c:
            return None
        return self.table.c[name]

    def readable(self, *names: str | None) -> bool:
        """None of `names` (None entries skipped) is hidden or masked for the caller: the
        report may filter, bucket or group on them."""
        return not any(n is not None and n in self.access.unreadable for n in names)


@dataclass(frozen=True)
class Shared:
    """What stays the same across the reports of one request (a dashboard runs seven):
    the org chart, and each entity's access and read-scope clause, built once — the
    clause may cost a query (records shared with the caller)."""

    org: OrgChart
    scopes: dict[str, tuple[Access, sa.ColumnElement[bool] | None]] = field(default_factory=dict)


def shared_for(conn: sa.Connection) -> Shared:
    return Shared(load_org(conn))


@dataclass(frozen=True)
class ReportContext:
    """What one report call shares between its queries (read once)."""

    conn: sa.Connection
    catalog: Catalog
    principal: Principal
    params: ReportParams
    shared: Shared

    @property
    def org(self) -> OrgChart:
        return self.shared.org

    @property
    def language(self) -> str:
        return self.principal.language if self.principal.language in ("en", "zh") else "en"

    def source(self, entity: str, params: ReportParams | None = None) -> Source | None:
        """`entity` limited to the read scope and the people filters; None when this
        instance has no such entity or the caller may not read it."""
        rt = self.catalog.entities.get(entity)
        if rt is None or rt.entity.archived or rt.entity.child_of:
            return None
        if entity not in self.shared.scopes:
            access = access_for(self.catalog.mset, self.principal, rt.entity)
            self.shared.scopes[entity] = (access, scope_clause(rt.table, rt.entity, self.principal, access, "read",
                                                               self.conn) if access.allows("read") else None)
        access, scope = self.shared.scopes[entity]
        if not access.allows("read"):
            return None
        p = params or self.params
        where: list[sa.ColumnElement[bool]] = []
        if scope is not None:
            where.append(scope)
        if rt.entity.ownership:
            if p.user is not None:
                where.append(rt.table.c.owner == p.user)
            if p.department is not None:
                where.append(rt.table.c.department.in_(sorted(self.org.child_departments(p.department))))
        return Source(rt, access, tuple(where))

    def child(self, parent: Source, field_name: str) -> Source | None:
        """The child table behind `parent`'s table field `field_name` as the caller may
        read it (it follows the parent: access_for governs it by the parent's rights, with
        the child's own field restrictions); None when the field is missing, hidden or
        masked. Its `where` is empty: limit it by the parent's ids."""
        rt = parent.rt.children.get(field_name)
        if rt is None or not parent.readable(field_name) or parent.rt.entity.active_field(field_name) is None:
            return None
        access = access_for(self.catalog.mset, self.principal, rt.entity)
        if not access.allows("read"):
            return None
        return Source(rt, access, ())

    def visible_users(self, entity: str) -> frozenset[int] | None:
        """The people whose records of `entity` the caller's read scope covers (None: everyone)."""
        rt = self.catalog.entities.get(entity)
        if rt is None:
            return frozenset()
        access = access_for(self.catalog.mset, self.principal, rt.entity)
        scope = access.scope("read")
        if "all" in scope or not rt.entity.ownership:
            return None
        me = self.principal.user_id
        out: set[int] = set()
        if me is not None and scope:
            out.add(me)
        if "self_and_subordinates" in scope:
            out |= self.principal.subordinate_ids
        departments: set[int] = set()
        if "department" in scope and self.principal.department_id is not None:
            departments.add(self.principal.department_id)
        if "department_and_children" in scope:
            departments |= self.principal.department_ids
        out |= {u for u, d in self.org.department_of.items() if d in departments}
        return frozenset(out)

    def visible_in(self, entities: tuple[str, ...]) -> frozenset[int] | None:
        """The people whose records of any of `entities` the caller reads (None: everyone)."""
        out: frozenset[int] = frozenset()
        for entity in entities:
            seen = self.visible_users(entity)
            if seen is None:
                return None
            out |= seen
        return out

    def members(self, department: int) -> frozenset[int]:
        """The people in a department and every department below it."""
        subtree = self.org.child_departments(department)
        return frozenset(u for u, d in self.org.department_of.items() if d in subtree)


def make_context(conn: sa.Connection, catalog: Catalog, principal: Principal, params: ReportParams,
                 entities: tuple[str, ...], shared: Shared | None = None) -> ReportContext:
    """The context of a report over `entities`; checks the filters: an unknown
    user/department is a 400, one whose records of none of them the caller may read a 403."""
    ctx = ReportContext(conn, catalog, principal, params, shared or shared_for(conn))
    visible = ctx.visible_in(entities)
    if params.user is not None:
        if params.user not in ctx.org.department_of:
            raise BadRequest(f"No user with id {params.user}.", {"user": ["No such user."]})
        if visible is not None and params.user not in visible:
            raise PermissionDenied("That user's numbers are outside what you may see.",
                                   {"user": ["Outside your data scope."]})
    if params.department is not None:
        if params.department not in ctx.org.parent_of:
            raise BadRequest(f"No department with id {params.department}.", {"department": ["No such department."]})
        if visible is not None and not (ctx.members(params.department) & visible):
            raise PermissionDenied("That department's numbers are outside what you may see.",
                                   {"department": ["Outside your data scope."]})
    return ctx


# ------------------------------------------------------------------ period conditions

def _check_readable(src: Source, column: str) -> None:
    """The last guard: a period or bucket over a hidden/masked field would leak it."""
    if not src.readable(column):
        raise PermissionDenied(f"This report needs the {src.rt.entity.name} field '{column}', "
                               "which is hidden from you.")


def in_period(src: Source, column: str, start: dt.date | None, end: dt.date | None,
              params: ReportParams) -> sa.ColumnElement[bool]:
    """`column` within [start, end): dates compared as dates, datetimes from local midnight."""
    if start is None or end is None:
        return sa.true()
    _check_readable(src, column)
    col = src.table.c[column]
    f = src.rt.entity.field(column)
    if f is not None and f.value_kind == "date":
        return sa.and_(col >= start, col < end)
    return sa.and_(col >= params.instant(start), col < params.instant(end))


def month_bucket(src: Source, column: str, months: list[dt.date], params: ReportParams) -> sa.ColumnElement[int]:
    """Which of `months` a row's `column` falls in (0-based), as one CASE: the same SQL on
    SQLite and PostgreSQL, and months cut at local midnight, not UTC's."""
    _check_readable(src, column)
    col = src.table.c[column]
    f = src.rt.entity.field(column)
    is_date = f is not None and f.value_kind == "date"
    bounds = [m for m in months[1:]]
    whens = [(col < (b if is_date else params.instant(b)), i) for i, b in enumerate(bounds)]
    return sa.case(*whens, else_=len(months) - 1) if whens else sa.literal(0)


def user_names(conn: sa.Connection, ids: set[int] | frozenset[int]) -> dict[int, str]:
    if not ids:
        return {}
    u = systables.users
    return {r.id: r.display_name or r.username for r in conn.execute(
        sa.select(u.c.id, u.c.display_name, u.c.username).where(u.c.id.in_(sorted(ids))))}


def department_names(conn: sa.Connection, ids: set[int] | frozenset[int]) -> dict[int, str]:
    if not ids:
        return {}
    d = systables.departments
    return {r.id: r.name for r in conn.execute(sa.select(d.c.id, d.c.name).where(d.c.id.in_(sorted(ids))))}
