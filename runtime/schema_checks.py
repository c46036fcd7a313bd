"""What the stored data says about a plan: can it apply without losing anything?

Each check reads the live rows a schema change would touch and answers with problems in
words (counts and sample ids), so publish refuses *before* any DDL runs: values that
don't convert to a new type, duplicates under a new unique index, references a new
foreign key would find broken, names PostgreSQL would truncate, fields whose storage
shape changed. Converting values for a type change lives here too, because it must use
exactly the coercion the check used (the API's own marshmallow loaders).
"""
from __future__ import annotations

import datetime as dt
import decimal
from typing import Any, Iterator

import sqlalchemy as sa
from alembic.operations import ops
from marshmallow import ValidationError as MMValidationError

from metacrm.metadata.model import Field, MetadataSet

from .coercion import loader_for, to_column_value
from .compiler import ENTITY_PREFIX, field_columns, table_name

#: How many offending ids or groups a problem lists.
SAMPLE = 10
#: Rows read (and converted values written) per round trip.
PAGE = 2000
#: PostgreSQL's identifier limit (NAMEDATALEN - 1); longer names are silently truncated.
PG_MAX_IDENTIFIER = 63


class ValuesChanged(Exception):
    """A value stopped converting between the check and the conversion (another writer)."""


def _ids(sample: list[Any], total: int) -> str:
    return f"ids {', '.join(map(str, sample))}{', ...' if total > len(sample) else ''}"


# ------------------------------------------------------------------ type changes

def _loadable(value: Any, field: Field) -> Any:
    """A stored value as a client would have sent it: what the field's loader reads."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, decimal.Decimal) and field.value_kind == "integer":
        # 12.00 is an integer; 12.50 is not (a float, which the integer loader refuses)
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (dt.date, dt.datetime)) and field.value_kind not in ("date", "datetime"):
        return value.isoformat()
    return value


def converted(conn: sa.Connection, table: str, column: str, field: Field) -> Iterator[tuple[int, bool, Any]]:
    """(id, converts?, column value) for every non-null value, through the field's loader:
    the same coercion the API applies, so publish converts exactly what it would accept.
    Read in id pages, so the caller may write between pages on the same connection."""
    loader = loader_for(field)
    t = sa.table(table, sa.column("id"), sa.column(column))
    col = t.c[column]
    last = None
    while True:
        query = sa.select(t.c.id, col).where(col.is_not(None)).order_by(t.c.id).limit(PAGE)
        if last is not None:
            query = query.where(t.c.id > last)
        rows = conn.execute(query).all()
        for rid, value in rows:
            try:
                yield rid, True, to_column_value(field, loader.deserialize(_loadable(value, field)))
            except (MMValidationError, TypeError, ValueError, ArithmeticError):
                yield rid, False, None
        if len(rows) < PAGE:
            return
        last = rows[-1][0]


def type_change_problems(conn: sa.Connection, field: Field, table: str, column: str) -> list[str]:
    bad, sample = 0, []
    for rid, ok, _ in converted(conn, table, column, field):
        if not ok:
            bad += 1
            if len(sample) < SAMPLE:
                sample.append(rid)
    if bad:
        return [f"{table}.{column}: {bad} row(s) can't convert to {field.type} ({_ids(sample, bad)})"]
    return []


def converts_values(old: Field | None, new: Field | None) -> bool:
    """A change of value kind (text -> date, text -> boolean, integer -> text, ...).

    Those values are converted in Python with the field's loader, not by the database's
    CAST: SQLite's CAST('2024-01-05' AS DATE) is 2024 and CAST('yes' AS BOOLEAN) is 0,
    and PostgreSQL's '1,234.5'::numeric fails where the API accepts it.
    """
    return old is not None and new is not None and old.value_kind != new.value_kind


def stage_conversion(conn: sa.Connection, op: ops.AlterColumnOp, field: Field) -> sa.Table:
    """Before the ALTER: the converted values, by id, in a temporary table."""
    tmp = sa.Table(f"mc_tmp_{op.table_name}_{op.column_name}"[:PG_MAX_IDENTIFIER], sa.MetaData(),
                   sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                   sa.Column("value", op.modify_type), prefixes=["TEMPORARY"])
    tmp.create(conn)
    batch: list[dict[str, Any]] = []
    for rid, ok, value in converted(conn, op.table_name, op.column_name, field):
        if not ok:  # written since the plan was checked (PostgreSQL's READ COMMITTED)
            raise ValuesChanged(f"{op.table_name}.{op.column_name}: row {rid} can't convert to {field.type}")
        batch.append({"id": rid, "value": value})
        if len(batch) >= PAGE:
            conn.execute(tmp.insert(), batch)
            batch = []
    if batch:
        conn.execute(tmp.insert(), batch)
    return tmp


def apply_conversion(conn: sa.Connection, op: ops.AlterColumnOp, tmp: sa.Table) -> None:
    """After the ALTER (which left NULLs or CAST leftovers): write the converted values."""
    target = sa.table(op.table_name, sa.column("id"), sa.column(op.column_name))
    conn.execute(sa.update(target).values({op.column_name: tmp.c.value}).where(target.c.id == tmp.c.id))
    tmp.drop(conn)


# ------------------------------------------------------------------ constraints

def unique_problems(conn: sa.Connection, op: ops.CreateIndexOp, new_tables: set[str],
                    new_columns: set[tuple[str, str]], renamed: dict[tuple[str, str], str]) -> list[str]:
    """Duplicates a new unique index would meet. A column this plan adds holds only
    NULLs (never duplicates), and doesn't exist yet to be queried; a column it renames
    is read under its current name."""
    names = [c if isinstance(c, str) else c.name for c in op.columns]
    if not op.unique or op.table_name in new_tables or any((op.table_name, n) in new_columns for n in names):
        return []
    stored = [renamed.get((op.table_name, n), n) for n in names]
    table = sa.table(op.table_name, *(sa.column(n) for n in stored))
    cols = [table.c[n] for n in stored]
    groups = (
        sa.select(*cols, sa.func.count().label("n"))
        .where(*(c.is_not(None) for c in cols))
        .group_by(*cols).having(sa.func.count() > 1)
    )
    total = conn.execute(sa.select(sa.func.count()).select_from(groups.subquery())).scalar_one()
    if not total:
        return []
    shown = conn.execute(groups.limit(SAMPLE)).all()
    listed = "; ".join(f"{dict(zip(names, r[:-1]))} x{r[-1]}" for r in shown)
    return [f"{op.table_name}({', '.join(names)}): can't add a unique index, {total} duplicate "
            f"value group(s): {listed}{' ...' if total > len(shown) else ''}"]


def foreign_key_problems(conn: sa.Connection, op: ops.CreateForeignKeyOp, new_tables: set[str],
                         new_columns: set[tuple[str, str]], renamed: dict[tuple[str, str], str]) -> list[str]:
    """Values a new foreign key on existing rows would find no record for (a lookup
    retargeted, a number turned into a lookup): refused with the count, as PostgreSQL's
    ADD CONSTRAINT or SQLite's foreign_key_check would fail anyway, but less helpfully."""
    if op.source_table in new_tables or len(op.local_cols) != 1 or len(op.remote_cols) != 1 \
            or (op.source_table, op.local_cols[0]) in new_columns:
        return []
    column = renamed.get((op.source_table, op.local_cols[0]), op.local_cols[0])
    src = sa.table(op.source_table, sa.column("id"), sa.column(column))
    dangling = sa.select(src.c.id).where(src.c[column].is_not(None))
    if op.referent_table not in new_tables:
        ref = sa.table(op.referent_table, sa.column(op.remote_cols[0]))
        dangling = dangling.where(~sa.exists().where(ref.c[op.remote_cols[0]] == src.c[column]))
    total = conn.execute(sa.select(sa.func.count()).select_from(dangling.subquery())).scalar_one()
    if not total:
        return []
    sample = list(conn.execute(dangling.order_by(src.c.id).limit(SAMPLE)).scalars())
    return [f"{op.source_table}.{op.local_cols[0]}: {total} row(s) refer to no {op.referent_table} record "
            f"({_ids(sample, total)})"]


# ------------------------------------------------------------------ metadata-level

def long_names(target: sa.MetaData) -> dict[str, list[str]]:
    """Table and column names PostgreSQL would truncate (63 bytes), per table.

    A truncated name never matches its metadata again, so every later plan would try to
    create the table or column anew. Checked on SQLite too, so a template built there
    installs on PostgreSQL.
    """
    out: dict[str, list[str]] = {}
    for table in target.tables.values():
        if not table.name.startswith(ENTITY_PREFIX):
            continue
        long = [n for n in [table.name, *table.c.keys()] if len(n.encode()) > PG_MAX_IDENTIFIER]
        if long:
            out[table.name] = [f"{table.name}: {n!r} is {len(n)} characters, more than the {PG_MAX_IDENTIFIER} "
                               "PostgreSQL allows; shorten the entity or field name" for n in long]
    return out


def shape_changes(prev_set: MetadataSet, mset: MetadataSet) -> list[tuple[str, Field, Field]]:
    """Fields whose storage shape changed (text -> location, lookup -> table, ...):
    (table, old field, new field).

    Autogenerate sees such a change as new columns plus dropped ones; publish never drops
    a column, so applying it would just make the old values vanish from view.
    """
    out = []
    for name, entity in mset.entities.items():
        before = prev_set.entities.get(name)
        for f in entity.fields if before is not None else ():
            old = before.field(f.name)
            if old is None or old.system:
                continue
            if [c.name for c in field_columns(old)] != [c.name for c in field_columns(f)]:
                out.append((table_name(name), old, f))
    return out
