"""Shaping autogenerate's operations into a plan each database can apply.

Alembic's comparison says *what* differs; these functions decide the order and form of
the operations so they apply on both databases: columns before their indexes and keys,
renames instead of drop + add, SQLite's inline REFERENCES (it has no ADD CONSTRAINT),
PostgreSQL's foreign keys between new tables added after both exist. The operations stay
Alembic's own objects, rendered and invoked by Alembic (publish.py).
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.operations import ops

from metacrm.metadata.model import MetadataSet

from .compiler import ENTITY_PREFIX

#: Order of operations on one table: a column exists before its index or foreign key does.
OP_RANK: dict[type, int] = {ops.DropConstraintOp: 0, ops.DropIndexOp: 0, ops.DropColumnOp: 1,
                            ops.AddColumnOp: 1, ops.AlterColumnOp: 2, ops.CreateIndexOp: 3,
                            ops.CreateForeignKeyOp: 4}


def flatten(upgrade_ops: ops.UpgradeOps) -> list[Any]:
    out: list[Any] = []
    for op in upgrade_ops.ops:
        if isinstance(op, ops.ModifyTableOps):
            out += list(op.ops)
        else:
            out.append(op)
    return out


def op_table(op: Any) -> str:
    """The table an operation changes (foreign-key operations call it `source_table`)."""
    return getattr(op, "table_name", None) or getattr(op, "source_table", None) or ""


def entity_of(table: str) -> str:
    return table[len(ENTITY_PREFIX):] if table.startswith(ENTITY_PREFIX) else table


def sort_ops(raw_ops: list[Any], order: dict[str, int]) -> list[Any]:
    """New tables first (in foreign-key order), then each table's changes by OP_RANK."""
    return sorted(raw_ops, key=lambda op: (0 if isinstance(op, ops.CreateTableOp) else 1,
                                           order.get(op_table(op), 0), OP_RANK.get(type(op), 5)))


def pair_renames(raw_ops: list[Any], mset: MetadataSet,
                 dialect: str) -> tuple[list[Any], list[ops.AlterColumnOp]]:
    """Turn autogenerate's drop + add of a field with `renamed_from` into one rename.

    Both databases rename a column in place (PostgreSQL, and SQLite since 3.25) with its
    values, its foreign key and its indexes. Indexes are still dropped and created (their
    names follow the column's), and on PostgreSQL the foreign key too, so a later field
    with the old name can't collide with it; on SQLite that would cost a table rebuild
    for a name SQLite doesn't use, so the renamed key is left as it is.
    """
    adds = {(op.table_name, op.column.name) for op in raw_ops if isinstance(op, ops.AddColumnOp)}
    pairs: dict[tuple[str, str], str] = {}  # (table, old column) -> new column
    for op in raw_ops:
        if isinstance(op, ops.DropColumnOp):
            entity = mset.entities.get(entity_of(op.table_name))
            new = next((f for f in (entity.fields if entity else ()) if f.renamed_from == op.column_name), None)
            if new is not None and (op.table_name, new.name) in adds:
                pairs[(op.table_name, op.column_name)] = new.name
    if not pairs:
        return raw_ops, []
    new_names = {(t, n) for (t, _), n in pairs.items()}
    renames, out = [], []
    for op in raw_ops:
        if isinstance(op, ops.DropColumnOp) and (op.table_name, op.column_name) in pairs:
            renames.append(ops.AlterColumnOp(op.table_name, op.column_name,
                                             modify_name=pairs[(op.table_name, op.column_name)],
                                             existing_type=op.to_column().type))
        elif isinstance(op, ops.AddColumnOp) and (op.table_name, op.column.name) in new_names:
            continue
        elif dialect == "sqlite" and isinstance(op, ops.CreateForeignKeyOp) and len(op.local_cols) == 1 \
                and (op.source_table, op.local_cols[0]) in new_names:
            continue
        elif dialect == "sqlite" and isinstance(op, ops.DropConstraintOp) \
                and (op.table_name, _dropped_fk_column(op)) in pairs:
            continue
        else:
            out.append(op)
    return out, renames


def _dropped_fk_column(op: ops.DropConstraintOp) -> str | None:
    """The single column of a foreign key autogenerate wants dropped, if that's what it is."""
    reverse = getattr(op, "_reverse", None)
    if isinstance(reverse, ops.CreateForeignKeyOp) and len(reverse.local_cols) == 1:
        return reverse.local_cols[0]
    return None


def inline_new_foreign_keys(raw_ops: list[Any]) -> list[Any]:
    """SQLite: a new lookup column carries its REFERENCES inline, in one ADD COLUMN.

    SQLite has no ALTER TABLE ... ADD CONSTRAINT, so the separate CreateForeignKeyOp
    autogenerate emits would need a batch rebuild of the whole table (copying every
    row) just to attach a constraint that ADD COLUMN ... REFERENCES gives for free.
    """
    added = {(op.table_name, op.column.name) for op in raw_ops
             if isinstance(op, ops.AddColumnOp) and len(op.column.foreign_keys) == 1}
    inlined = {(op.source_table, op.local_cols[0]) for op in raw_ops
               if isinstance(op, ops.CreateForeignKeyOp) and len(op.local_cols) == 1} & added
    out = []
    for op in raw_ops:
        if isinstance(op, ops.CreateForeignKeyOp) and (op.source_table, op.local_cols[0]) in inlined:
            continue
        if isinstance(op, ops.AddColumnOp) and (op.table_name, op.column.name) in inlined:
            op = unbound(ops.AddColumnOp(op.table_name, op.column, inline_references=True))
        out.append(op)
    return out


def unbound(op: Any) -> Any:
    """An AddColumnOp with inline references, on a column no table holds yet.

    Alembic copies a column that belongs to a table, and Column._copy() leaves its
    table-bound foreign keys behind; invoking (or rendering) the op binds the column,
    so every invocation gets a fresh one.
    """
    if not (isinstance(op, ops.AddColumnOp) and op.inline_references):
        return op
    col = op.column
    fresh = sa.Column(col.name, col.type, *(sa.ForeignKey(fk.target_fullname, ondelete=fk.ondelete)
                                            for fk in col.foreign_keys), nullable=True)
    return ops.AddColumnOp(op.table_name, fresh, inline_references=True)


def defer_forward_foreign_keys(raw_ops: list[Any]) -> list[Any]:
    """PostgreSQL: a new table's reference to a table created later becomes its own step.

    PostgreSQL checks that a REFERENCES target exists at CREATE TABLE, and two new
    entities may look each other up (customer.primary_contact <-> contact.customer), so
    no creation order works; the constraint is added once both tables exist. (SQLite
    accepts forward references, and can't add a constraint later without a rebuild.)
    """
    creates = [op for op in raw_ops if isinstance(op, ops.CreateTableOp)]
    pending = {op.table_name for op in creates}
    deferred = []
    for op in creates:  # already in creation order
        pending.discard(op.table_name)  # a self-reference is fine
        kept = []
        for item in op.columns:
            if isinstance(item, sa.ForeignKeyConstraint) and item.referred_table.name in pending:
                deferred.append(ops.CreateForeignKeyOp.from_constraint(item))
            else:
                kept.append(item)
        op.columns = kept
    return raw_ops + deferred


def needs_batch(op: Any) -> bool:
    """SQLite can't alter a column's type or a constraint in place: Alembic rebuilds the table."""
    rename_only = isinstance(op, ops.AlterColumnOp) and op.modify_type is None and op.modify_name is not None
    return ((isinstance(op, ops.AlterColumnOp) and not rename_only)
            or (isinstance(op, ops.AddColumnOp) and bool(op.column.foreign_keys) and not op.inline_references)
            or isinstance(op, (ops.AddConstraintOp, ops.DropConstraintOp)))
