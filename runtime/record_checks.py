"""The checks of a write that need the database: lookups point at readable rows, unique
values are free — for one record (`check_lookups`, `check_unique`) and for a batch of
new records (`check_lookups_many`, `check_unique_many`).

Both forms share what to check (`_lookup_specs`, `unique_groups`) and the wording of the
errors; the batch form asks one IN query per field instead of one query per row and
value, which is most of what an import of many rows would otherwise spend here.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import sqlalchemy as sa

from metacrm.metadata.model import Field

from . import systables
from .access import access_for, scope_clause
from .catalog import Catalog, EntityRuntime
from .coercion import to_column_value
from .files import check_file_values
from .history import jsonable
from .principal import Principal
from .record_writes import FieldErrors

#: Values per IN list: well under SQLite's bound-parameter limit, and a plan PostgreSQL caches.
IN_CHUNK = 500


def _readable_scope(catalog: Catalog, principal: Principal, target: EntityRuntime) -> sa.ColumnElement[bool] | None:
    """The rows of `target` the principal may read (None: all)."""
    access = access_for(catalog.mset, principal, target.entity)
    if not access.allows("read"):
        return sa.false()
    return scope_clause(target.table, target.entity, principal, access, "read")


Scope = Callable[[], "sa.ColumnElement[bool] | None"] | None


def _lookup_specs(catalog: Catalog, rt: EntityRuntime, principal: Principal,
                  ) -> list[tuple[str, sa.Table | None, str, Scope]]:
    """(field, table, label, scope) of every id-valued link of `rt`: lookups, users,
    departments, and owner/department for owned entities. A target's read scope is a
    callable, built only for a value that is checked: most rows leave most lookups empty,
    and building a scope costs more than the check."""
    checks: list[tuple[str, sa.Table | None, str, Scope]] = []
    if rt.entity.ownership:
        checks += [("owner", systables.users, "user", None), ("department", systables.departments, "department", None)]
    for f in rt.entity.active_fields:
        if f.type == "lookup":
            target = catalog.entities.get(f.target or "")
            if target is None:
                checks.append((f.name, None, f.target or f.name, None))
            else:
                checks.append((f.name, target.table, f.target or f.name,
                               lambda target=target: _readable_scope(catalog, principal, target)))
        elif f.type == "user":
            checks.append((f.name, systables.users, "user", None))
        elif f.type == "department":
            checks.append((f.name, systables.departments, "department", None))
    return checks


def _trusted(principal: Principal) -> dict[str, Any]:
    """The acting user and their department were read from the database for this very
    request; re-checking them would cost two queries on every create."""
    return {"owner": principal.user_id, "department": principal.department_id}


def _check_reference(conn: sa.Connection, catalog: Catalog, principal: Principal, f: Field,
                     values: Mapping[str, Any], before: Mapping[str, Any] | None, errors: FieldErrors,
                     prefix: str) -> None:
    v = values.get(f.name)
    if v and (before is None or jsonable(before.get(f.name)) != jsonable(v)):
        target = catalog.entities.get(v["entity"])
        if target is None or not _exists(conn, target.table, v["id"], _readable_scope(catalog, principal, target)):
            errors.add(f"{prefix}{f.name}", f"No {v['entity']} with id {v['id']}.")


def check_lookups(conn: sa.Connection, catalog: Catalog, rt: EntityRuntime, principal: Principal,
                   values: Mapping[str, Any], before: Mapping[str, Any] | None, errors: FieldErrors,
                   prefix: str = "") -> None:
    """Lookups, references, users and departments point at rows that exist — and, for
    records, at rows the principal may read: the picker offers nothing else, and an id
    outside the scope reads "No customer with id 7" just like a missing one, so linking
    can't be used to probe which ids exist or to attach to records one can't see. A
    value that isn't changed is not checked again (a link may outlive its reader's scope)."""
    for f in rt.entity.active_fields:
        if f.type == "reference":
            _check_reference(conn, catalog, principal, f, values, before, errors, prefix)
    trusted = _trusted(principal)
    for name, table, label, scope in _lookup_specs(catalog, rt, principal):
        v = values.get(name)
        if v is None or (before is not None and before.get(name) == v) or trusted.get(name, object()) == v:
            continue
        if table is None or not _exists(conn, table, v, scope() if callable(scope) else scope):
            errors.add(f"{prefix}{name}", f"No {label} with id {v}.")
    check_file_values(conn, rt, values, before, errors, prefix)  # uploads exist; images are images


def existing_ids(conn: sa.Connection, table: sa.Table, ids: Iterable[Any],
                 scope: sa.ColumnElement[bool] | None = None) -> set[Any]:
    """Which of `ids` are rows of `table` (within `scope`), a few IN queries for any number."""
    wanted = sorted(set(ids))
    found: set[Any] = set()
    for i in range(0, len(wanted), IN_CHUNK):
        stmt = sa.select(table.c.id).where(table.c.id.in_(wanted[i:i + IN_CHUNK]))
        found.update(conn.execute(stmt if scope is None else stmt.where(scope)).scalars())
    return found


def check_lookups_many(conn: sa.Connection, catalog: Catalog, rt: EntityRuntime, principal: Principal,
                        rows: Sequence[Mapping[str, Any]], errors: Sequence[FieldErrors]) -> None:
    """`check_lookups` for new records `rows` (errors[i] gets row i's), one IN query per
    link field for the whole batch, the target's read scope built once."""
    for f in rt.entity.active_fields:
        if f.type == "reference":
            for values, errs in zip(rows, errors):
                _check_reference(conn, catalog, principal, f, values, None, errs, "")
    trusted = _trusted(principal)
    for name, table, label, scope in _lookup_specs(catalog, rt, principal):
        wanted = [(i, v) for i, v in enumerate(values.get(name) for values in rows)
                  if v is not None and trusted.get(name, object()) != v]
        if not wanted:
            continue
        found = set() if table is None else existing_ids(conn, table, (v for _, v in wanted),
                                                           scope() if callable(scope) else scope)
        for i, v in wanted:
            if v not in found:
                errors[i].add(name, f"No {label} with id {v}.")
    for values, errs in zip(rows, errors):
        check_file_values(conn, rt, values, None, errs, "")


def unique_groups(entity: Any) -> list[tuple[Field, ...]]:
    """The field groups a unique index of the compiled table covers (single-column ones
    for `unique` fields, plus unique `indexes`); reference/location spreads are left to
    the index itself."""
    groups = [(f,) for f in entity.active_fields if f.unique and f.type not in ("reference", "location", "table")]
    for ix in entity.indexes:
        fields = tuple(entity.active_field(n) for n in ix.fields)
        if ix.unique and all(f is not None and f.type not in ("reference", "location", "table") for f in fields):
            groups.append(fields)  # type: ignore[arg-type]
    return groups


def unique_error(rt: EntityRuntime, fields: tuple[Field, ...], errors: FieldErrors) -> None:
    what = " + ".join(f.name for f in fields)
    errors.add(fields[0].name, f"Another {rt.name} already has this {what}.")


def _taken(conn: sa.Connection, rt: EntityRuntime, fields: tuple[Field, ...], new: Sequence[Any],
           record_id: int | None) -> bool:
    t = rt.table
    where = [t.c[f.name] == to_column_value(f, v) for f, v in zip(fields, new)]
    if record_id is not None:
        where.append(t.c.id != record_id)
    return conn.execute(sa.select(t.c.id).where(*where).limit(1)).first() is not None


def check_unique(conn: sa.Connection, rt: EntityRuntime, values: Mapping[str, Any],
                  before: Mapping[str, Any] | None, record_id: int | None, errors: FieldErrors) -> None:
    """A value another record already holds in a unique field is a field error (422)
    instead of an IntegrityError. Only changed values are looked up; two writers racing
    for the same value still meet the index, which `guarded_write` turns into a 409."""
    for fields in unique_groups(rt.entity):
        new = [values.get(f.name) for f in fields]
        if any(v is None for v in new):
            continue  # NULLs never collide in a unique index
        if before is not None and all(jsonable(before.get(f.name)) == jsonable(v) for f, v in zip(fields, new)):
            continue
        if _taken(conn, rt, fields, new, record_id):
            unique_error(rt, fields, errors)


def unique_key(fields: tuple[Field, ...], values: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """A new record's value of a unique group as the index compares it (None: no value)."""
    new = [values.get(f.name) for f in fields]
    if any(v is None for v in new):
        return None
    return tuple(jsonable(to_column_value(f, v)) for f, v in zip(fields, new))


def check_unique_many(conn: sa.Connection, rt: EntityRuntime, rows: Sequence[Mapping[str, Any]],
                       errors: Sequence[FieldErrors]) -> None:
    """`check_unique` of new records `rows` against the stored ones: one IN query per
    single-field group (a group of several fields is looked up row by row). Rows of the
    same batch are checked against each other by the caller, in order, as it accepts them
    (a row refused later must not hold its value)."""
    t = rt.table
    for fields in unique_groups(rt.entity):
        if len(fields) > 1:
            for values, errs in zip(rows, errors):
                new = [values.get(f.name) for f in fields]
                if all(v is not None for v in new) and _taken(conn, rt, fields, new, None):
                    unique_error(rt, fields, errs)
            continue
        f = fields[0]
        wanted = [(i, to_column_value(f, values[f.name])) for i, values in enumerate(rows)
                  if values.get(f.name) is not None]
        taken: set[Any] = set()
        distinct = sorted({v for _, v in wanted}, key=repr)
        for i in range(0, len(distinct), IN_CHUNK):
            taken.update(conn.execute(sa.select(t.c[f.name]).where(t.c[f.name].in_(distinct[i:i + IN_CHUNK])))
                         .scalars())
        for i, v in wanted:
            if v in taken:
                unique_error(rt, fields, errors[i])


def _exists(conn: sa.Connection, table: sa.Table, record_id: Any,
            scope: sa.ColumnElement[bool] | None = None) -> bool:
    stmt = sa.select(table.c.id).where(table.c.id == record_id)
    return conn.execute(stmt if scope is None else stmt.where(scope)).first() is not None
