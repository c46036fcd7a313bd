"""Publishing metadata: compile, diff against the live database, plan, check, apply.

A plan is data (Alembic's lesson): autogenerate's comparison yields operation objects,
which are checked against the data they would touch, described for the admin
(`metacrm plan`), and then applied unchanged by `Operations.invoke` (`metacrm publish`).
No second DDL generator.

What publish never does is lose data:
- a field that disappears from the metadata is kept as an *archived* field: its column
  and values stay, the API and screens stop showing it (an entity likewise);
- a field with `renamed_from` renames its column instead of dropping and adding one;
- a column type change is refused when existing values can't convert, with the number
  of offending rows, and converts the others as the API would (schema_checks.py); a new
  unique index over duplicates, or a foreign key over dangling values, is refused with
  them; so is a field whose storage shape changed;
- everything happens in one transaction with the new version row, so a publish that
  fails midway leaves metadata and schema as they were (PostgreSQL's transactional DDL;
  on SQLite the engine emits a real BEGIN, and batch-mode table rebuilds run inside it,
  in a `db.schema_transaction` so that dropping the old table can't cascade).

How the operations are ordered and shaped for each database is schema_ops.py's job.
"""
from __future__ import annotations

import copy
import io
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import sqlalchemy as sa
from alembic.autogenerate import produce_migrations
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops

from metacrm.metadata.documents import Document, MetadataInvalid
from metacrm.metadata.model import Field, MetadataSet, build_metadata_set
from metacrm.metadata.validation import validate_documents

from . import schema_checks as checks
from . import schema_ops, systables
from .clock import utcnow
from .compiler import ENTITY_PREFIX, compile_metadata, table_name
from .db import foreign_keys_enforced
from .schema_ops import entity_of, needs_batch, op_table, unbound


@dataclass
class Step:
    """One change of a plan: what it does in words, its DDL, and why it can't apply (if so)."""

    action: str
    table: str
    description: str
    sql: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    op: Any = None  # the Alembic operation (None for metadata-only steps such as archiving)
    convert: Field | None = None  # alter_type: convert the values through this field's loader

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "table": self.table, "description": self.description,
                "sql": self.sql, "problems": self.problems}


@dataclass
class Plan:
    from_version: int
    to_version: int
    steps: list[Step]
    documents: list[Document]
    metadata_changed: bool

    @property
    def problems(self) -> list[str]:
        return [p for s in self.steps for p in s.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def empty(self) -> bool:
        return not self.steps and not self.metadata_changed

    def to_dict(self) -> dict[str, Any]:
        return {"from_version": self.from_version, "to_version": self.to_version,
                "metadata_changed": self.metadata_changed, "steps": [s.to_dict() for s in self.steps],
                "problems": self.problems}

    def render(self) -> str:
        lines = [f"Plan: version {self.from_version} -> {self.to_version}"]
        if self.empty:
            return lines[0] + "\nNothing to publish: the database matches the metadata."
        if not self.steps:
            lines.append("  metadata changes only (labels, views, rules); no schema change")
        for s in self.steps:
            lines.append(f"  [{s.action}] {s.description}")
            lines += [f"      {sql}" for sql in s.sql]
            lines += [f"      REFUSED: {p}" for p in s.problems]
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s): nothing will be applied.")
        return "\n".join(lines)


class PublishRefused(Exception):
    """The plan has problems (unconvertible values, duplicates): nothing was changed."""

    def __init__(self, plan: Plan):
        self.plan = plan
        super().__init__("publish refused:\n" + "\n".join(f"- {p}" for p in plan.problems))


# ------------------------------------------------------------------ published versions

def published_version(conn: sa.Connection) -> tuple[int, list[dict[str, Any]]]:
    """The newest published version number and its documents (0 and [] before any)."""
    row = conn.execute(
        sa.select(systables.meta_versions.c.version, systables.meta_versions.c.documents)
        .order_by(systables.meta_versions.c.version.desc()).limit(1)
    ).first()
    return (row.version, row.documents) if row else (0, [])


def published_metadata(conn: sa.Connection) -> tuple[int, MetadataSet]:
    version, docs = published_version(conn)
    return version, build_metadata_set(Document(f"version {version}", d) for d in docs)


# ------------------------------------------------------------------ carrying forward

def carry_forward(previous: Sequence[dict[str, Any]], documents: Sequence[Document],
                  purge: frozenset[str] = frozenset()) -> list[Document]:
    """Keep what the previous version had and the new one dropped, as archived.

    An entity missing from the new documents comes back with `archived: true`; a field
    missing from an entity comes back archived too, unless a new field says it was
    `renamed_from` it. That keeps columns (and data) under metadata control forever —
    except for the entities named in `purge`, which an admin asked to delete with their
    data (`metacrm template uninstall --drop-data`): those are let go, and their tables dropped.
    """
    out = [Document(d.source, copy.deepcopy(d.data)) for d in documents]
    entities = {d.data.get("name"): d for d in out if d.kind == "entity"}
    for old in previous:
        if old.get("kind") != "entity" or old.get("name") in purge:
            continue
        new = entities.get(old["name"])
        if new is None:
            kept = copy.deepcopy(old)
            kept["archived"] = True
            out.append(Document("(archived by publish)", kept))
            continue
        fields = new.data.setdefault("fields", [])
        present = {f.get("name") for f in fields}
        renamed = {f.get("renamed_from") for f in fields if f.get("renamed_from")}
        for old_field in old.get("fields") or []:
            name = old_field.get("name")
            if name not in present and name not in renamed:
                kept = copy.deepcopy(old_field)
                kept["archived"] = True
                fields.append(kept)
    return out


# ------------------------------------------------------------------ planning

def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Reflected side: only entity tables are publish's business (system tables have Alembic)."""
    if type_ == "table":
        return bool(name) and name.startswith(ENTITY_PREFIX)
    return True


def _include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Metadata side: the compiled MetaData carries copies of mc_users/mc_departments for
    the foreign keys to resolve; they must not be created or compared here."""
    if type_ == "table":
        return bool(name) and name.startswith(ENTITY_PREFIX)
    return True


def _render_sql(dialect: str, op: Any) -> list[str]:
    """The DDL of one operation, rendered offline for the admin to read."""
    buf = io.StringIO()
    ctx = MigrationContext.configure(dialect_name=dialect, opts={"as_sql": True, "output_buffer": buf})
    try:
        Operations(ctx).invoke(unbound(op))
    except Exception as exc:  # noqa: BLE001 - rendering is informative only
        return [f"-- ({type(op).__name__}: {exc.__class__.__name__})"]
    return [s.strip() for s in buf.getvalue().split(";") if s.strip()]


def _alter_step(conn: sa.Connection, op: ops.AlterColumnOp, mset: MetadataSet, prev_set: MetadataSet) -> Step:
    """A column type change: checked against every stored value, converted as the API would."""
    entity = mset.entities.get(entity_of(op.table_name))
    old_entity = prev_set.entities.get(entity_of(op.table_name))
    new_field = entity.field(op.column_name) if entity else None
    problems = checks.type_change_problems(conn, new_field, op.table_name, op.column_name) if new_field else []
    convert = checks.converts_values(old_entity.field(op.column_name) if old_entity else None, new_field)
    if conn.dialect.name == "postgresql":
        # A value-kind change writes Python-converted values after the ALTER.
        source = "NULL" if convert else f'"{op.column_name}"'
        op.kw["postgresql_using"] = f"{source}::{op.modify_type.compile(dialect=conn.dialect)}"
    return Step("alter_type", op.table_name,
                f"change type of {op.table_name}.{op.column_name} from {op.existing_type} to {op.modify_type}"
                + (" (values converted as the API would)" if convert else ""),
                _render_sql(conn.dialect.name, op), problems, op=op, convert=new_field if convert else None)


def make_plan(conn: sa.Connection, documents: Sequence[Document], purge: frozenset[str] = frozenset()) -> Plan:
    """Validate `documents`, carry archived parts forward, and diff against the database.

    `purge` names entities to delete with their data (see carry_forward); any other
    table that would disappear is kept, archived."""
    from_version, previous = published_version(conn)
    purge = frozenset(purge) - {d.data.get("name") for d in documents if d.kind == "entity"}
    documents = carry_forward(previous, documents, purge)
    errors = validate_documents(documents)
    if errors:
        raise MetadataInvalid(errors)
    mset = build_metadata_set(documents)
    prev_set = build_metadata_set(Document("published", d) for d in previous)
    target = compile_metadata(mset)
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": _include_name,
                                                   "include_object": _include_object})
    with warnings.catch_warnings():
        # Entities may look each other up; such cycles are handled below (foreign keys
        # added after both tables exist), so SQLAlchemy's "can't sort" warning is noise.
        warnings.filterwarnings("ignore", "Cannot correctly sort tables", sa.exc.SAWarning)
        script = produce_migrations(ctx, target)
        order = {t.name: n for n, t in enumerate(target.sorted_tables)}
    dialect = conn.dialect.name

    steps: list[Step] = []
    purged_tables = {table_name(n) for n in purge}
    raw_ops, renames = schema_ops.pair_renames(schema_ops.flatten(script.upgrade_ops), mset, dialect)
    new_tables = {op.table_name for op in raw_ops if isinstance(op, ops.CreateTableOp)}
    raw_ops = schema_ops.sort_ops(raw_ops, order)
    if dialect == "sqlite":
        raw_ops = schema_ops.inline_new_foreign_keys(raw_ops)
    else:
        raw_ops = schema_ops.defer_forward_foreign_keys(raw_ops)
    adds = {(op.table_name, op.column.name) for op in raw_ops if isinstance(op, ops.AddColumnOp)}
    renamed = {(a.table_name, a.modify_name): a.column_name for a in renames}
    for alter in renames:
        steps.append(Step("rename_column", alter.table_name,
                          f"rename column {alter.table_name}.{alter.column_name} to {alter.modify_name} "
                          "(data kept)", _render_sql(dialect, alter), op=alter))
    for op in raw_ops:
        if isinstance(op, ops.CreateTableOp):
            n_columns = sum(isinstance(c, sa.Column) for c in op.columns)
            steps.append(Step("create_table", op.table_name, f"create table {op.table_name} "
                              f"({n_columns} columns)", _render_sql(dialect, op), op=op))
        elif isinstance(op, ops.AddColumnOp):
            steps.append(Step("add_column", op.table_name, f"add column {op.table_name}.{op.column.name} "
                              f"{op.column.type}", _render_sql(dialect, op), op=op))
        elif isinstance(op, ops.DropColumnOp):
            continue  # archived (carry_forward) or renamed above: columns are never dropped
        elif isinstance(op, ops.DropTableOp):
            if op.table_name in purged_tables:
                steps.append(Step("drop_table", op.table_name,
                                  f"drop table {op.table_name} and its {_row_count(conn, op.table_name)} row(s) "
                                  "(asked for: the data is deleted)", _render_sql(dialect, op), op=op))
            continue  # otherwise entities are archived, never dropped
        elif isinstance(op, ops.AlterColumnOp):
            if op.modify_type is None:
                continue  # nullability/default drift of our own nullable columns: nothing to do
            steps.append(_alter_step(conn, op, mset, prev_set))
        elif isinstance(op, ops.CreateIndexOp):
            steps.append(Step("create_index", op.table_name,
                              f"create {'unique ' if op.unique else ''}index {op.index_name} on {op.table_name}",
                              _render_sql(dialect, op), checks.unique_problems(conn, op, new_tables, adds, renamed),
                              op=op))
        elif isinstance(op, ops.DropIndexOp):
            steps.append(Step("drop_index", op.table_name, f"drop index {op.index_name}",
                              _render_sql(dialect, op), op=op))
        elif isinstance(op, ops.CreateForeignKeyOp):
            steps.append(Step("add_foreign_key", op.source_table,
                              f"add foreign key {op.source_table}({', '.join(op.local_cols)}) -> "
                              f"{op.referent_table}", _render_sql(dialect, op),
                              checks.foreign_key_problems(conn, op, new_tables, adds, renamed), op=op))
        elif isinstance(op, (ops.AddConstraintOp, ops.DropConstraintOp)):
            steps.append(Step(type(op).__name__, op_table(op),
                              f"{type(op).__name__} on {op_table(op)}",
                              _render_sql(dialect, op), op=op))
    for table, problems in checks.long_names(target).items():
        steps.append(Step("name_too_long", table, f"names too long in {table}", problems=problems))
    for table, old_field, new_field in checks.shape_changes(prev_set, mset):
        steps.append(Step("change_shape", table, f"change {table}.{new_field.name} from {old_field.type} to "
                          f"{new_field.type}", problems=[
                              f"{table}.{new_field.name}: the field's storage shape changed ({old_field.type} -> "
                              f"{new_field.type}); add a new field instead of changing its type"]))
    steps = _drops_last(conn, steps)
    steps += _archive_steps(prev_set, mset)
    changed = [d.data for d in documents] != list(previous)
    return Plan(from_version, from_version + 1, steps, documents, changed)


def _drops_last(conn: sa.Connection, steps: list[Step]) -> list[Step]:
    """Purged tables are dropped after every other step, referencing tables before the
    tables they reference (viewing before property), so no foreign key is left dangling."""
    drops = {s.table: s for s in steps if s.action == "drop_table"}
    if not drops:
        return steps
    insp = sa.inspect(conn)
    refs = {t: {fk["referred_table"] for fk in insp.get_foreign_keys(t)} & set(drops) - {t} for t in drops}
    ordered: list[Step] = []
    while refs:
        # a table nobody left references can go now
        free = sorted(t for t in refs if not any(t in r for o, r in refs.items() if o != t))
        for t in free or sorted(refs):  # a reference cycle: any order, the DDL will say
            ordered.append(drops[t])
            refs.pop(t)
            if not free:
                break
    return [s for s in steps if s.action != "drop_table"] + ordered


def _row_count(conn: sa.Connection, table: str) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar_one()


def _archive_steps(prev_set: MetadataSet, mset: MetadataSet) -> list[Step]:
    """Metadata-only steps: what this publish archives (columns and data kept)."""
    steps = []
    for name, entity in mset.entities.items():
        before = prev_set.entities.get(name)
        if entity.archived and before is not None and not before.archived:
            steps.append(Step("archive_entity", table_name(name),
                              f"archive entity {name} (table and rows kept, hidden from API and screens)"))
            continue
        for f in entity.fields:
            old = before.field(f.name) if before else None
            if f.archived and old is not None and not old.archived:
                steps.append(Step("archive_field", table_name(name),
                                  f"archive field {name}.{f.name} (column and data kept, hidden)"))
    return steps


# ------------------------------------------------------------------ applying

class RebuildNeedsSchemaTransaction(RuntimeError):
    """A SQLite table rebuild was asked for on a connection that enforces foreign keys."""


def _check_rebuilds(conn: sa.Connection, steps: Sequence[Step]) -> None:
    """Stop before any DDL when a rebuild would drop a table others reference while
    SQLite enforces foreign keys: the DROP would cascade-delete child rows (silently)
    or fail the commit. `db.schema_transaction` opens the right kind of transaction."""
    rebuilt = {op_table(s.op) for s in steps if s.op is not None and needs_batch(s.op)}
    if not rebuilt or not foreign_keys_enforced(conn):
        return
    insp = sa.inspect(conn)
    referenced = {fk["referred_table"] for t in insp.get_table_names() for fk in insp.get_foreign_keys(t)}
    if rebuilt & referenced:
        raise RebuildNeedsSchemaTransaction(
            f"rebuilding {', '.join(sorted(rebuilt & referenced))} on SQLite needs foreign keys off: "
            "publish inside metacrm.runtime.db.schema_transaction(engine)")


def _invoke_all(conn: sa.Connection, steps: Sequence[Step]) -> None:
    ctx = MigrationContext.configure(conn)
    operations = Operations(ctx)
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        _check_rebuilds(conn, steps)
    for step in steps:
        op = unbound(step.op)
        if op is None:
            continue
        staged = None
        if step.convert is not None:
            try:
                staged = checks.stage_conversion(conn, op, step.convert)
            except checks.ValuesChanged as exc:
                raise PublishRefused(Plan(0, 0, [Step(step.action, step.table, step.description,
                                                      problems=[str(exc)])], [], True)) from None
        if sqlite and needs_batch(op):
            with operations.batch_alter_table(op_table(op), recreate="always") as batch:
                batch.invoke(op)
        else:
            operations.invoke(op)
        if staged is not None:
            checks.apply_conversion(conn, op, staged)


def publish(conn: sa.Connection, documents: Sequence[Document], by: int | None = None,
            note: str | None = None, purge: frozenset[str] = frozenset()) -> Plan:
    """Plan and apply inside the caller's transaction; raise PublishRefused on problems.

    Returns the applied plan. An empty plan records no new version. Open the transaction
    with `db.schema_transaction(engine)`: on SQLite a change that rebuilds a referenced
    table is refused (RebuildNeedsSchemaTransaction) on a connection enforcing foreign keys.
    """
    plan = make_plan(conn, documents, purge)
    if not plan.ok:
        raise PublishRefused(plan)
    if plan.empty:
        return plan
    _invoke_all(conn, plan.steps)
    conn.execute(systables.meta_versions.insert().values(
        version=plan.to_version, published_at=utcnow(), published_by=by,
        documents=[d.data for d in plan.documents], plan=plan.to_dict(), note=note,
    ))
    from .dedup.keys import sync_specs  # here, not at the top: the dedup engine imports the catalog, which imports us
    sync_specs(conn, build_metadata_set(plan.documents))
    return plan

