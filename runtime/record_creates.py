"""Creating records in a batch: the record service's door for imports.

`create_records` gives every row what `create_record` would give it had the rows been
created one by one in order — the same screening (`screen_create`: workflow states,
field rights, owner, coercion, defaults, formulas, required / required_when /
readonly_when, entity rules), the same lookup and unique checks, the same dedup
decisions (a `block` rule refuses a row that duplicates a stored record OR an earlier
row of the batch), autonumbers in row order, history and match keys — but it does the
work once per batch: access computed once, one IN query per lookup field and unique
field, one candidate query per dedup key set, one block of autonumbers, and ONE
multi-row INSERT each for the records, their history and their match keys.

A row that fails gets its error (the ServiceError `create_record` would raise) and
writes nothing. A database error (a value taken by a concurrent writer since the
checks) propagates: the caller rolls the batch back and creates its rows one by one
with `create_record`, which tells which row it was.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field as dc_field
from typing import Any, Mapping, Sequence

import sqlalchemy as sa

from .access import Access
from .catalog import Catalog, EntityRuntime
from .clock import utcnow
from .dedup.batch import BatchDedup, Hit
from .dedup.engine import Match, duplicate_error
from .dedup.keys import K
from .errors import Conflict, PermissionDenied, ServiceError, ValidationFailed
from .history import record_creations
from .naming import reserve_numbers
from .principal import Principal
from .record_checks import (
    IN_CHUNK, check_lookups, check_lookups_many, check_unique_many, unique_error, unique_groups, unique_key,
)
from .record_reads import access_of_children, require_access
from .record_writes import FieldErrors, check_field_rights, column_values, number_format, prepare, write_children
from .workflow import guard as workflow_guard


@dataclass
class Created:
    """One row's outcome: the new record's id, or the error that kept it out; the `warn`
    dedup matches either way (what `create_record` returns under `_duplicates`)."""

    record_id: int | None = None
    error: ServiceError | None = None
    duplicates: list[Match] = dc_field(default_factory=list)


def screen_create(conn: sa.Connection, catalog: Catalog, rt: EntityRuntime, principal: Principal,
                  access: Access, child_access: Mapping[str, Access], payload: Any, now: dt.datetime,
                  ) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]], FieldErrors]:
    """A new record's checks that need no database: state fields, field rights and the
    owner (PermissionDenied), then `prepare`. Returns (values, child rows, field errors)."""
    payload = workflow_guard.creating(catalog, rt, payload)
    refused = check_field_rights(rt, access, payload, None, child_access, {})
    if isinstance(payload, Mapping) and payload.get("owner") not in (None, principal.user_id) \
            and not access.allows("transfer"):
        refused["owner"] = ["You may not create records for another owner."]
    if refused:
        raise PermissionDenied("You may not set some of these fields.", refused)
    errors = FieldErrors()
    values, children = prepare(conn, catalog, rt, principal, payload, None, {}, now, errors)
    workflow_guard.initial_states(catalog, rt, values)
    return values, children, errors


def _failure(errors: FieldErrors) -> ValidationFailed | None:
    try:
        errors.raise_if_any()
    except ValidationFailed as exc:
        return exc
    return None


@dataclass
class _Row:
    position: int
    values: dict[str, Any]
    children: dict[str, list[dict[str, Any]]]
    errors: FieldErrors
    hits: list[Hit] = dc_field(default_factory=list)


def create_records(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str,
                   payloads: Sequence[Any], *, dedup_on: str | None = "import") -> list[Created]:
    """Create a record from each payload, in order, in the caller's transaction; one
    `Created` per payload. `dedup_on` as for `create_record`. Raises PermissionDenied
    when the principal may not create `entity` records at all (every row would)."""
    rt = catalog.get(entity)
    access = require_access(catalog, principal, rt, "create")
    child_access = access_of_children(catalog, principal, rt)
    now = utcnow()
    out = [Created() for _ in payloads]
    rows = _screen(conn, catalog, rt, principal, access, child_access, payloads, now, out)
    dedup = BatchDedup(conn, catalog, principal, rt.name, dedup_on)
    dedup.lock_and_fetch([r.values for r in rows])
    accepted, blocked = _decide(rt, dedup, rows, out)
    if accepted:
        _number(conn, rt, accepted, now)
        ids = _insert(conn, rt, principal, accepted, now)
        for r in accepted:
            if any(r.children.values()):
                write_children(conn, rt, ids[r.position], r.children, principal, now, {})
        _store_keys(conn, rt.name, dedup, ids)
        record_creations(conn, rt.name, (ids[r.position] for r in accepted), principal.user_id, now)
    else:
        ids = {}
    for r in accepted:
        out[r.position].record_id = ids[r.position]
    warned = [r for r in accepted if any(h[4] == "warn" for h in r.hits)]
    for r, matches in zip(warned + blocked, dedup.present([r.hits for r in warned + blocked], ids)):
        if r.position in ids:
            out[r.position].duplicates = [m for m in matches if m.action == "warn"]
            continue
        refusing = [m for m in matches if m.action == "block"]
        out[r.position].error = duplicate_error(catalog, rt.name, refusing, principal.language) if refusing else \
            Conflict(f"This {rt.name} matched a record removed meanwhile. Try again.")
    return out


def _screen(conn: sa.Connection, catalog: Catalog, rt: EntityRuntime, principal: Principal, access: Access,
            child_access: Mapping[str, Access], payloads: Sequence[Any], now: dt.datetime,
            out: list[Created]) -> list[_Row]:
    """Rows past `screen_create`, with their lookup and (stored) unique errors added;
    the others get their error in `out`."""
    rows: list[_Row] = []
    for position, payload in enumerate(payloads):
        try:
            values, children, errors = screen_create(conn, catalog, rt, principal, access, child_access, payload, now)
        except ServiceError as exc:
            out[position].error = exc
            continue
        failure = _failure(errors)
        if failure is not None:
            out[position].error = failure
        else:
            rows.append(_Row(position, values, children, errors))
    check_lookups_many(conn, catalog, rt, principal, [r.values for r in rows], [r.errors for r in rows])
    for r in rows:
        for name, child_rows in r.children.items():
            for i, child in enumerate(child_rows):
                check_lookups(conn, catalog, rt.children[name], principal, child, None, r.errors,
                              prefix=f"{name}[{i}].")
    check_unique_many(conn, rt, [r.values for r in rows], [r.errors for r in rows])
    return rows


def _decide(rt: EntityRuntime, dedup: BatchDedup, rows: list[_Row], out: list[Created],
            ) -> tuple[list[_Row], list[_Row]]:
    """In row order, as one-by-one creates would meet them: a unique value an earlier row
    took, then the dedup rules against stored records and earlier rows. (accepted, blocked)."""
    groups = unique_groups(rt.entity)
    taken: list[set[tuple[Any, ...]]] = [set() for _ in groups]
    accepted: list[_Row] = []
    blocked: list[_Row] = []
    for r in rows:
        keys = [unique_key(g, r.values) for g in groups]
        for g, key, held in zip(groups, keys, taken):
            if key is not None and key in held:
                unique_error(rt, g, r.errors)
        failure = _failure(r.errors)
        if failure is not None:
            out[r.position].error = failure
            continue
        r.hits = dedup.check(r.values)
        if any(h[4] == "block" for h in r.hits):
            blocked.append(r)
            continue
        dedup.accept(r.position, r.values)
        for key, held in zip(keys, taken):
            if key is not None:
                held.add(key)
        accepted.append(r)
    return accepted, blocked


def _number(conn: sa.Connection, rt: EntityRuntime, rows: list[_Row], now: dt.datetime) -> None:
    """Autonumbers for the rows without one, a block per field, in row order."""
    for f in rt.entity.active_fields:
        if f.type == "autonumber":
            need = [r.values for r in rows if not r.values.get(f.name)]
            for values, number in zip(need, reserve_numbers(conn, rt.name, f.name, number_format(rt, f), now,
                                                            len(need))):
                values[f.name] = number


def _insert(conn: sa.Connection, rt: EntityRuntime, principal: Principal, rows: list[_Row],
            now: dt.datetime) -> dict[int, int]:
    """One multi-row INSERT (per column set; normally one) → position → new id."""
    by_columns: dict[tuple[str, ...], list[tuple[int, dict[str, Any]]]] = {}
    for r in rows:
        params = dict(version=1, created_at=now, created_by=principal.user_id, updated_at=now,
                      updated_by=principal.user_id, **column_values(rt, r.values))
        by_columns.setdefault(tuple(params), []).append((r.position, params))
    ids: dict[int, int] = {}
    stmt = rt.table.insert().returning(rt.table.c.id, sort_by_parameter_order=True)
    for group in by_columns.values():
        new = conn.execute(stmt, [params for _, params in group]).scalars().all()
        ids.update(zip((position for position, _ in group), new))
    return ids


def _store_keys(conn: sa.Connection, entity: str, dedup: BatchDedup, ids: Mapping[int, int]) -> None:
    """The new records' match keys, as `store_keys` writes them for one (stale keys of a
    reused id first removed), in one INSERT."""
    if not dedup.specs:
        return
    new = sorted(ids.values())
    for i in range(0, len(new), IN_CHUNK):
        conn.execute(K.delete().where(K.c.entity == entity, K.c.record_id.in_(new[i:i + IN_CHUNK])))
    rows = dedup.key_rows(ids)
    if rows:
        insert_plain_rows(conn, K, rows)


def insert_plain_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Rows of plain text and integer columns (nothing for a type to convert) handed to the
    driver's executemany as tuples: for the ~10 match keys of every imported record, the
    SQLAlchemy layer cost more than the database."""
    names = list(rows[0])
    prep = conn.dialect.identifier_preparer
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (f"INSERT INTO {prep.format_table(table)} ({', '.join(prep.quote(n) for n in names)}) "
           f"VALUES ({', '.join([mark] * len(names))})")
    conn.exec_driver_sql(sql, [tuple(r[n] for n in names) for r in rows])
