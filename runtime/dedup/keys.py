"""Stored match keys (`mc_dedup_keys`): written with every record, looked up by checks.

The record service calls `store_keys` after a create or update and `forget_keys` when a
record is deleted; publish calls `sync_specs` so that a new or changed rule gets keys for
the records already there (a backfill inside the publish transaction) and a dropped
one leaves no stale keys. `metacrm dedup rebuild` runs the same backfill by hand.

A key row is (entity, record_id, field, method, key, norm): `key` is what the index
finds, `norm` the whole normalised value the candidate is scored with, so a check is
one indexed query whatever the table's size.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable, Iterator, Mapping

import sqlalchemy as sa

from metacrm.metadata.model import MetadataSet

from .. import systables
from ..compiler import compile_metadata, table_name
from .normalise import match_keys, normalise
from .rules import key_specs, rules_of

K = systables.dedup_keys
#: Rows per INSERT when backfilling.
BATCH = 2000


def key_rows(entity: str, record_id: int, specs: Iterable[tuple[str, str]],
             values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The key rows of one record (what `store_keys` writes; the benchmark bulk-loads them)."""
    rows = []
    for field, method in sorted(specs):
        norm = normalise(method, values.get(field))
        for key in sorted(match_keys(method, norm)):
            rows.append({"entity": entity, "record_id": record_id, "field": field, "method": method,
                         "key": key, "norm": norm})
    return rows


#: Built once with bound parameters: SQLAlchemy caches its compiled form, where a fresh
#: `.where(K.c.entity == entity, ...)` per record costs more than running it (imports).
_DELETE_KEYS = K.delete().where(K.c.entity == sa.bindparam("entity"), K.c.record_id == sa.bindparam("record_id"))


def specs_for(mset: MetadataSet, entity: str) -> frozenset[tuple[str, str]]:
    return key_specs(rules_of(mset)).get(entity, frozenset())


def store_keys(conn: sa.Connection, mset: MetadataSet, entity: str, record_id: int,
               values: Mapping[str, Any], changed: Iterable[str] | None = None) -> None:
    """Replace the record's keys by those of `values` (only when a keyed field changed)."""
    specs = specs_for(mset, entity)
    if not specs:
        return
    if changed is not None and not {f for f, _ in specs} & set(changed):
        return
    conn.execute(_DELETE_KEYS, {"entity": entity, "record_id": record_id})
    rows = key_rows(entity, record_id, specs, values)
    if rows:
        conn.execute(K.insert(), rows)


def forget_keys(conn: sa.Connection, entity: str, record_ids: Iterable[int]) -> None:
    ids = list(record_ids)
    if ids:
        conn.execute(K.delete().where(K.c.entity == entity, K.c.record_id.in_(ids)))


def _records(conn: sa.Connection, table: sa.Table, fields: list[str]) -> Iterator[list[Mapping[str, Any]]]:
    """Every row's id and `fields`, in batches by id (memory stays flat on big tables)."""
    last = 0
    cols = [table.c.id, *(table.c[f] for f in fields if f in table.c)]
    while True:
        batch = list(conn.execute(sa.select(*cols).where(table.c.id > last).order_by(table.c.id)
                                  .limit(BATCH)).mappings())
        if not batch:
            return
        yield batch
        last = batch[-1]["id"]


def backfill(conn: sa.Connection, table: sa.Table, entity: str, specs: Iterable[tuple[str, str]]) -> int:
    """(Re)build the keys of `specs` for every record of `entity`; the number of key rows."""
    specs = sorted(set(specs))
    n = 0
    for field, method in specs:
        conn.execute(K.delete().where(K.c.entity == entity, K.c.field == field, K.c.method == method))
    fields = sorted({f for f, _ in specs})
    for batch in _records(conn, table, fields):
        rows = [r for rec in batch for r in key_rows(entity, rec["id"], specs, rec)]
        if rows:
            conn.execute(K.insert(), rows)
            n += len(rows)
    return n


def sync_specs(conn: sa.Connection, mset: MetadataSet, rebuild: bool = False) -> dict[str, int]:
    """Make the stored keys match the rules of `mset` (called by publish, and by the CLI
    with rebuild=True): backfill new (entity, field, method) specs, drop removed ones.
    Returns key rows written per entity."""
    S = systables.dedup_specs
    wanted = {(e, f, m) for e, specs in key_specs(rules_of(mset)).items() for f, m in specs}
    have = {tuple(r) for r in conn.execute(sa.select(S.c.entity, S.c.field, S.c.method))}
    for e, f, m in have - wanted:
        conn.execute(K.delete().where(K.c.entity == e, K.c.field == f, K.c.method == m))
        conn.execute(S.delete().where(S.c.entity == e, S.c.field == f, S.c.method == m))
    todo = wanted if rebuild else wanted - have
    if not todo:
        return {}
    tables = compile_metadata(mset).tables
    written: dict[str, int] = {}
    for entity in sorted({e for e, _, _ in todo}):
        specs = [(f, m) for e, f, m in todo if e == entity]
        written[entity] = backfill(conn, tables[table_name(entity)], entity, specs)
    for e, f, m in sorted(todo - have):
        conn.execute(S.insert().values(entity=e, field=f, method=m))
    return written


def lock_ids(method: str, keys: Iterable[str]) -> list[int]:
    """Advisory-lock ids (signed 64-bit) for keys; the entity is left out on purpose, so a
    customer and a lead with the same company key serialise too (also_check)."""
    out = set()
    for key in keys:
        digest = hashlib.blake2b(f"mc_dedup:{method}:{key}".encode(), digest_size=8).digest()
        out.add(int.from_bytes(digest, "big", signed=True))
    return sorted(out)


def lock_keys(conn: sa.Connection, lock_ids_: Iterable[int]) -> None:
    """Hold PostgreSQL transaction advisory locks on the keys until commit, in a fixed
    order (no deadlock between two checks). SQLite needs none: BEGIN IMMEDIATE already
    lets one writer in at a time.

    Every holder of key locks also holds ALL_KEYS shared. A batch with more than
    KEY_LOCK_LIMIT keys (an import's 500 rows have thousands) takes ALL_KEYS exclusively
    instead: it then runs alone among dedup writers until it commits — what SQLite does
    for every write — rather than fill PostgreSQL's lock table (64 locks per connection
    by default), which would fail the transaction with "out of shared memory"."""
    if conn.dialect.name != "postgresql":
        return
    ids = sorted(set(lock_ids_))
    if not ids:
        return
    if len(ids) > KEY_LOCK_LIMIT:
        conn.execute(_LOCK_ONE, {"k": ALL_KEYS})
        return
    conn.execute(_LOCK_SHARED, {"k": ALL_KEYS})
    if len(ids) == 1:
        conn.execute(_LOCK_ONE, {"k": ids[0]})
    else:  # one round trip for any number; unnest yields them in the array's order
        conn.execute(_LOCK_MANY, {"ks": ids})


#: The lock every key-lock holder shares and a big batch takes alone.
ALL_KEYS = lock_ids("*", ["mc_dedup:all keys"])[0]
KEY_LOCK_LIMIT = 256
_LOCK_ONE = sa.text("SELECT pg_advisory_xact_lock(:k)")
_LOCK_SHARED = sa.text("SELECT pg_advisory_xact_lock_shared(:k)")
_LOCK_MANY = sa.text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:ks AS bigint[])) AS u(k)")
