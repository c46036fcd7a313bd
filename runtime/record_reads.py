"""Reading records: rows to API JSON, the principal's view of them, lookup titles.

Every read goes through the read scope (`access.scope_clause`), so a record outside
it is simply not found; `present` removes hidden fields and masks masked ones.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import sqlalchemy as sa

from metacrm.metadata.model import Field

from . import systables
from .access import Access, access_for, mask, scope_clause
from .catalog import Catalog, EntityRuntime
from .coercion import MAX_ID, to_python
from .compiler import location_columns, reference_columns
from .errors import PermissionDenied, BadRequest, NotFound
from .principal import Principal

# ------------------------------------------------------------------ reading rows

def _stored_value(field: Field, row: Mapping[str, Any]) -> Any:
    """The Python value of a field from a row (reference/location gather their columns)."""
    if field.type == "reference":
        ent, rid = reference_columns(field.name)
        return {"entity": row[ent], "id": row[rid]} if row.get(rid) is not None else None
    if field.type == "location":
        lat, lng, addr = location_columns(field.name)
        if row.get(lat) is None and row.get(addr) is None:
            return None
        return {"lat": row[lat], "lng": row[lng], "address": row[addr]}
    return to_python(field, row.get(field.name))


def python_record(rt: EntityRuntime, row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row as Python values keyed by field name (what expressions see)."""
    out = {f.name: row.get(f.name) for f in rt.entity.system_fields}
    for f in rt.entity.active_fields:
        if f.type != "table":
            out[f.name] = _stored_value(f, row)
    return out


def dump_row(rt: EntityRuntime, row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row as the API's flat JSON object."""
    out: dict[str, Any] = {}
    for name, dumper in rt.output:
        value = row[name]
        out[name] = dumper(value) if dumper is not None else value
    for f in rt.entity.active_fields:
        if f.type == "reference":
            v = _stored_value(f, row)
            out[f.name] = v
        elif f.type == "location":
            v = _stored_value(f, row)
            out[f.name] = None if v is None else {
                "lat": float(v["lat"]) if v["lat"] is not None else None,
                "lng": float(v["lng"]) if v["lng"] is not None else None,
                "address": v["address"]}
    return out


def fetch_row(conn: sa.Connection, rt: EntityRuntime, record_id: int, lock: bool = False,
           scope: sa.ColumnElement[bool] | None = None) -> Mapping[str, Any]:
    """One row by id — within `scope`, so a record the caller may not see is simply not
    found (404), never "forbidden", which would confirm that it exists."""
    if not 1 <= record_id <= MAX_ID:  # can't exist; PostgreSQL would fail comparing it to an INTEGER
        raise NotFound(f"No {rt.name} with id {record_id}.")
    stmt = sa.select(rt.table).where(rt.table.c.id == record_id)
    if scope is not None:
        stmt = stmt.where(scope)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).mappings().first()
    if row is None:
        raise NotFound(f"No {rt.name} with id {record_id}.")
    return row


def children_rows(conn: sa.Connection, child: EntityRuntime, parent_id: int) -> list[Mapping[str, Any]]:
    t = child.table
    return list(conn.execute(sa.select(t).where(t.c.parent_id == parent_id).order_by(t.c.idx, t.c.id)).mappings())


# ------------------------------------------------------------------ permissions

def row_for(conn: sa.Connection, rt: EntityRuntime, principal: Principal, access: Access, action: str,
             record_id: int) -> Mapping[str, Any]:
    """The row `action` is about: 404 outside the read scope, 403 inside it but outside
    the action's own scope (a rep may read a teammate's customer but not change it)."""
    row = fetch_row(conn, rt, record_id, lock=True,
                 scope=scope_clause(rt.table, rt.entity, principal, access, "read"))
    own = scope_clause(rt.table, rt.entity, principal, access, action)
    if own is not None and conn.execute(
            sa.select(rt.table.c.id).where(rt.table.c.id == record_id, own)).first() is None:
        raise PermissionDenied(f"You may see this {rt.entity.label.get(principal.language)} "
                               f"but not {action} it.")
    return row


def require_access(catalog: Catalog, principal: Principal, rt: EntityRuntime, action: str) -> Access:
    """The principal's rights on the entity; 403 when no role grants `action` at all."""
    access = access_for(catalog.mset, principal, rt.entity)
    if not access.allows(action):
        raise PermissionDenied(f"You may not {action} {rt.entity.label.get(principal.language)} records.")
    return access


def present(record: dict[str, Any], access: Access,
            children: Mapping[str, Access] | None = None) -> dict[str, Any]:
    """A record as the principal may see it: hidden fields gone, masked ones masked."""
    for name in access.hidden:
        record.pop(name, None)
    for name in access.masked:
        if name in record:
            record[name] = mask(record[name])
    for name, child_access in (children or {}).items():
        if isinstance(record.get(name), list):
            record[name] = [present(r, child_access) for r in record[name]]
    return record


def access_of_children(catalog: Catalog, principal: Principal, rt: EntityRuntime) -> dict[str, Access]:
    return {name: access_for(catalog.mset, principal, child.entity) for name, child in rt.children.items()}


def read_record(conn: sa.Connection, rt: EntityRuntime, row: Mapping[str, Any]) -> dict[str, Any]:
    record = dump_row(rt, row)
    for name, child in rt.children.items():
        record[name] = [dump_row(child, r) for r in children_rows(conn, child, row["id"])]
    return record


def get_record(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int,
               expand: Iterable[str] = ()) -> dict[str, Any]:
    rt = catalog.get(entity)
    access = require_access(catalog, principal, rt, "read")
    row = fetch_row(conn, rt, record_id, scope=scope_clause(rt.table, rt.entity, principal, access, "read"))
    record = present(read_record(conn, rt, row), access, access_of_children(catalog, principal, rt))
    if expand:
        add_titles(conn, catalog, rt, [record], expand, principal)
    return record


# ------------------------------------------------------------------ titles (expand=)

def add_titles(conn: sa.Connection, catalog: Catalog, rt: EntityRuntime, records: list[dict[str, Any]],
               expand: Iterable[str], principal: Principal) -> None:
    """Add `<field>__title` beside each lookup/user/department value named in `expand`.

    A lookup's title is shown only when the principal may read the target record, so
    expanding can't reveal the name of a customer outside their scope."""
    unreadable = access_for(catalog.mset, principal, rt.entity).unreadable
    for name in expand:
        f = rt.entity.field(name)
        if f is None or f.archived or name in unreadable or not (
                f.type in ("lookup", "user", "department") or
                name in ("owner", "created_by", "updated_by", "department")):
            raise BadRequest(f"Can't expand '{name}': not a lookup field of {rt.name}.")
        ids = {r[name] for r in records if r.get(name) is not None}
        titles = _titles(conn, catalog, f, ids, principal)
        for r in records:
            r[f"{name}__title"] = titles.get(r.get(name))


def _titles(conn: sa.Connection, catalog: Catalog, f: Field, ids: set[int], principal: Principal) -> dict[int, str]:
    if not ids:
        return {}
    kind = f.type if not f.system else ("department" if f.name == "department" else "user")
    if kind == "user":
        t = systables.users
        rows = conn.execute(sa.select(t.c.id, t.c.display_name).where(t.c.id.in_(ids)))
    elif kind == "department":
        t = systables.departments
        rows = conn.execute(sa.select(t.c.id, t.c.name).where(t.c.id.in_(ids)))
    else:
        target = catalog.entities[f.target or ""]
        target_access = access_for(catalog.mset, principal, target.entity)
        if not target_access.allows("read"):
            return {}
        title = target.entity.title_field
        if title in target_access.unreadable:
            title = "id"
        col = target.table.c[title] if title in target.table.c else target.table.c.id
        stmt = sa.select(target.table.c.id, col).where(target.table.c.id.in_(ids))
        scope = scope_clause(target.table, target.entity, principal, target_access, "read")
        rows = conn.execute(stmt if scope is None else stmt.where(scope))
    return {r[0]: None if r[1] is None else str(r[1]) for r in rows}
