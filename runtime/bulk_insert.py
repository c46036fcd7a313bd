"""A fast path for loading many trusted, generated records at once (the demo data).

`create_record` is the one door for users, imports and workflows: per record it checks
rights, lookups, unique values and dedup rules, each a query or more. A generator that
writes thousands of rows it made up itself (`metacrm demo`: 2,000 customers, their
contacts and ~8,000 follow-ups) knows those checks pass, and paying them row by row made
the README's run command take minutes. `insert_records` does what must stay true for
every record and skips what the caller vouches for:

kept, as in the record service: coercion, defaults, formulas, `required` and entity rules
(`prepare` — a bad payload still raises ValidationFailed and writes nothing), initial
workflow states, autonumbers (`assign_numbers`, the same counters), the dedup match keys
(so later duplicates are found against these rows), and one "create" history row each;

skipped, the caller's promise: access checks (rows are written as the given user,
`created_by`/`updated_by`), lookups exist, unique values free, dedup *checks*. Never
reach this from a request: it is for code that generated the values itself.

Rows go in one multi-row INSERT … RETURNING per call (and one per child table), in the
caller's transaction.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import sqlalchemy as sa

from . import systables
from .catalog import Catalog
from .dedup.keys import K, key_rows, specs_for
from .history import jsonable
from .principal import Principal
from .record_writes import FieldErrors, assign_numbers, column_values, prepare
from .workflow import guard as workflow_guard


@dataclass(frozen=True)
class NewRow:
    """One record to insert: who writes it, when (created_at / updated_at), and its fields."""

    principal: Principal
    at: dt.datetime
    payload: Mapping[str, Any]


def insert_records(conn: sa.Connection, catalog: Catalog, entity: str, rows: Sequence[NewRow]) -> list[int]:
    """Insert `rows` as records of `entity`; their ids, in the order given."""
    if not rows:
        return []
    rt = catalog.get(entity)
    prepared: list[tuple[NewRow, dict[str, Any]]] = []
    children: list[dict[str, list[dict[str, Any]]]] = []
    for row in rows:
        errors = FieldErrors()
        values, kids = prepare(conn, catalog, rt, row.principal, workflow_guard.creating(catalog, rt, row.payload),
                            None, {}, row.at, errors)
        workflow_guard.initial_states(catalog, rt, values)
        errors.raise_if_any()
        prepared.append((row, values))
        children.append(kids)
    params = []
    for row, values in prepared:
        assign_numbers(conn, rt, values, row.at)
        params.append(dict(version=1, created_at=row.at, created_by=row.principal.user_id, updated_at=row.at,
                           updated_by=row.principal.user_id, **column_values(rt, values)))
    ids = _insert(conn, rt.table, params)
    for name, child in rt.children.items():
        child_params = []
        for rid, (row, _), kids in zip(ids, prepared, children):
            for idx, values in enumerate(kids.get(name) or ()):
                assign_numbers(conn, child, values, row.at)
                child_params.append(dict(parent_id=rid, idx=idx, version=1, created_at=row.at,
                                         created_by=row.principal.user_id, updated_at=row.at,
                                         updated_by=row.principal.user_id, **column_values(child, values)))
        if child_params:
            _insert(conn, child.table, child_params)
    specs = specs_for(catalog.mset, entity)
    keys = [k for rid, (_, values) in zip(ids, prepared) for k in key_rows(entity, rid, specs, values)] \
        if specs else []
    if keys:
        conn.execute(K.insert(), keys)
    conn.execute(systables.history.insert(), [
        {"entity": entity, "record_id": rid, "at": row.at, "by": row.principal.user_id, "action": "create",
         "field": None, "old": None, "new": jsonable(None)} for rid, (row, _) in zip(ids, prepared)])
    return ids


def _insert(conn: sa.Connection, table: sa.Table, params: list[dict[str, Any]]) -> list[int]:
    """One INSERT for all rows, ids in the order given. Rows may leave optional fields out:
    every row gets every column (None where it had none; field columns have no server
    defaults, `prepare` already applied the metadata's defaults)."""
    columns = sorted({c for p in params for c in p})
    full = [{c: p.get(c) for c in columns} for p in params]
    result = conn.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), full)
    return list(result.scalars().all())
