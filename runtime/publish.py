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
  of offending rows; a new unique index over existing duplicates is refused with them;
- everything happens in one transaction with the new version row, so a publish that
  fails midway leaves metadata and schema as they were (PostgreSQL's transactional DDL;
  on SQLite the engine emits a real BEGIN, and batch-mode table rebuilds run inside it).
"""
from __future__ import annotations

import copy
import io
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import sqlalchemy as sa
from alembic.autogenerate import produce_migrations
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops
from marshmallow import ValidationError as MMValidationError

from metacrm.metadata.documents import Document, MetadataInvalid
from metacrm.metadata.model import MetadataSet, build_metadata_set
from metacrm.metadata.validation import validate_documents

from . import systables
from .clock import utcnow
from .coercion import loader_for
from .compiler import ENTITY_PREFIX, compile_metadata, table_name

SAMPLE = 10


@dataclass
class Step:
    """One change of a plan: what it does in words, its DDL, and why it can't apply (if so)."""

    action: str
    table: str
    description: str
    sql: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    op: Any = None  # the Alembic operation (None for metadata-only steps such as archiving)

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

def carry_forward(previous: Sequence[dict[str, Any]], documents: Sequence[Document]) -> list[Document]:
    """Keep what the previous version had and the new one dropped, as archived.

    An entity missing from the new documents comes back with `archived: true`; a field
    missing from an entity comes back archived too, unless a new field says it was
    `renamed_from` it. That keeps columns (and data) under metadata control forever.
    """
    out = [Document(d.source, copy.deepcopy(d.data)) for d in documents]
    entities = {d.data.get("name"): d for d in out if d.kind == "entity"}
    for old in previous:
        if old.get("kind") != "entity":
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
        Operations(ctx).invoke(op)
    except Exception as exc:  # noqa: BLE001 - rendering is informative only
        return [f"-- ({type(op).__name__}: {exc.__class__.__name__})"]
    return [s.strip() for s in buf.getvalue().split(";") if s.strip()]


def _flatten(upgrade_ops: ops.UpgradeOps) -> list[Any]:
    out: list[Any] = []
    for op in upgrade_ops.ops:
        if isinstance(op, ops.ModifyTableOps):
            out += list(op.ops)
        else:
            out.append(op)
    return out


def _entity_of(table: str) -> str:
    return table[len(ENTITY_PREFIX):] if table.startswith(ENTITY_PREFIX) else table


def _check_type_change(conn: sa.Connection, mset: MetadataSet, op: ops.AlterColumnOp) -> list[str]:
    entity = mset.entities.get(_entity_of(op.table_name))
    f = entity.field(op.column_name) if entity else None
    if f is None:
        return []
    loader = loader_for(f)
    table = sa.table(op.table_name, sa.column("id"), sa.column(op.column_name))
    col = table.c[op.column_name]
    bad, sample = 0, []
    result = conn.execute(sa.select(table.c.id, col).where(col.is_not(None))).yield_per(2000)
    for rid, value in result:
        try:
            loader.deserialize(value if not isinstance(value, bytes) else value.decode())
        except (MMValidationError, TypeError, ValueError):
            bad += 1
            if len(sample) < SAMPLE:
                sample.append(rid)
    if bad:
        return [f"{op.table_name}.{op.column_name}: {bad} row(s) can't convert to {f.type} "
                f"(ids {', '.join(map(str, sample))}{', ...' if bad > len(sample) else ''})"]
    return []


def _check_unique(conn: sa.Connection, op: ops.CreateIndexOp, new_tables: set[str]) -> list[str]:
    if not op.unique or op.table_name in new_tables:
        return []
    names = [c if isinstance(c, str) else c.name for c in op.columns]
    table = sa.table(op.table_name, *(sa.column(n) for n in names))
    cols = [table.c[n] for n in names]
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


def _shape(entity: Any, name: str) -> str | None:
    f = entity.field(name) if entity else None
    if f is None:
        return None
    return {"reference": "reference", "location": "location", "table": "table"}.get(f.type, "column")


def make_plan(conn: sa.Connection, documents: Sequence[Document]) -> Plan:
    """Validate `documents`, carry archived parts forward, and diff against the database."""
    from_version, previous = published_version(conn)
    documents = carry_forward(previous, documents)
    errors = validate_documents(documents)
    if errors:
        raise MetadataInvalid(errors)
    mset = build_metadata_set(documents)
    prev_set = build_metadata_set(Document("published", d) for d in previous)
    target = compile_metadata(mset)
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": _include_name,
                                                   "include_object": _include_object})
    script = produce_migrations(ctx, target)
    dialect = conn.dialect.name
    order = {t.name: n for n, t in enumerate(target.sorted_tables)}

    steps: list[Step] = []
    raw_ops = _flatten(script.upgrade_ops)
    new_tables = {op.table_name for op in raw_ops if isinstance(op, ops.CreateTableOp)}
    raw_ops.sort(key=lambda op: (0 if isinstance(op, ops.CreateTableOp) else 1,
                                 order.get(getattr(op, "table_name", ""), 0)))
    adds = {(op.table_name, op.column.name): op for op in raw_ops if isinstance(op, ops.AddColumnOp)}
    renamed_away: set[tuple[str, str]] = set()
    for op in raw_ops:
        if isinstance(op, ops.DropColumnOp):
            entity = mset.entities.get(_entity_of(op.table_name))
            new_field = next((f for f in (entity.fields if entity else ()) if f.renamed_from == op.column_name), None)
            if new_field is not None and (op.table_name, new_field.name) in adds:
                renamed_away.add((op.table_name, new_field.name))
                alter = ops.AlterColumnOp(op.table_name, op.column_name, modify_name=new_field.name,
                                          existing_type=op.to_column().type)
                steps.append(Step("rename_column", op.table_name,
                                  f"rename column {op.table_name}.{op.column_name} to {new_field.name} (data kept)",
                                  _render_sql(dialect, alter), op=alter))
    for op in raw_ops:
        if isinstance(op, ops.CreateTableOp):
            steps.append(Step("create_table", op.table_name, f"create table {op.table_name} "
                              f"({len(op.columns)} columns)", _render_sql(dialect, op), op=op))
        elif isinstance(op, ops.AddColumnOp):
            if (op.table_name, op.column.name) in renamed_away:
                continue
            steps.append(Step("add_column", op.table_name, f"add column {op.table_name}.{op.column.name} "
                              f"{op.column.type}", _render_sql(dialect, op), op=op))
        elif isinstance(op, ops.DropColumnOp):
            continue  # archived (carry_forward) or renamed above: columns are never dropped
        elif isinstance(op, ops.DropTableOp):
            continue  # entities are archived, never dropped
        elif isinstance(op, ops.AlterColumnOp):
            if op.modify_type is None:
                continue  # nullability/default drift of our own nullable columns: nothing to do
            entity = mset.entities.get(_entity_of(op.table_name))
            old_entity = prev_set.entities.get(_entity_of(op.table_name))
            problems = []
            if _shape(old_entity, op.column_name) not in (None, "column") or _shape(entity, op.column_name) != "column":
                problems.append(f"{op.table_name}.{op.column_name}: the field's storage shape changed; "
                                "add a new field instead of changing its type")
            else:
                problems = _check_type_change(conn, mset, op)
            if dialect == "postgresql":
                op.kw["postgresql_using"] = (
                    f'"{op.column_name}"::{op.modify_type.compile(dialect=conn.dialect)}'
                )
            steps.append(Step("alter_type", op.table_name,
                              f"change type of {op.table_name}.{op.column_name} from {op.existing_type} "
                              f"to {op.modify_type}", _render_sql(dialect, op), problems, op=op))
        elif isinstance(op, ops.CreateIndexOp):
            steps.append(Step("create_index", op.table_name,
                              f"create {'unique ' if op.unique else ''}index {op.index_name} on {op.table_name}",
                              _render_sql(dialect, op), _check_unique(conn, op, new_tables), op=op))
        elif isinstance(op, ops.DropIndexOp):
            steps.append(Step("drop_index", op.table_name, f"drop index {op.index_name}",
                              _render_sql(dialect, op), op=op))
        elif isinstance(op, (ops.AddConstraintOp, ops.DropConstraintOp)):
            steps.append(Step(type(op).__name__, getattr(op, "table_name", ""),
                              f"{type(op).__name__} on {getattr(op, 'table_name', '')}",
                              _render_sql(dialect, op), op=op))
    steps += _archive_steps(prev_set, mset)
    changed = [d.data for d in documents] != list(previous)
    return Plan(from_version, from_version + 1, steps, documents, changed)


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

def _invoke_all(conn: sa.Connection, steps: Iterable[Step]) -> None:
    ctx = MigrationContext.configure(conn)
    operations = Operations(ctx)
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        # Batch rebuilds drop and recreate tables that others reference: let the
        # foreign keys be checked at commit instead of mid-rebuild.
        conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
    for step in steps:
        op = step.op
        if op is None:
            continue
        needs_batch = sqlite and (
            isinstance(op, ops.AlterColumnOp)
            or (isinstance(op, ops.AddColumnOp) and op.column.foreign_keys)
            or isinstance(op, (ops.AddConstraintOp, ops.DropConstraintOp))
        )
        if needs_batch:
            with operations.batch_alter_table(op.table_name, recreate="always") as batch:
                batch.invoke(op)
        else:
            operations.invoke(op)


def publish(conn: sa.Connection, documents: Sequence[Document], by: int | None = None,
            note: str | None = None) -> Plan:
    """Plan and apply inside the caller's transaction; raise PublishRefused on problems.

    Returns the applied plan. An empty plan records no new version.
    """
    plan = make_plan(conn, documents)
    if not plan.ok:
        raise PublishRefused(plan)
    if plan.empty:
        return plan
    _invoke_all(conn, plan.steps)
    conn.execute(systables.meta_versions.insert().values(
        version=plan.to_version, published_at=utcnow(), published_by=by,
        documents=[d.data for d in plan.documents], plan=plan.to_dict(), note=note,
    ))
    return plan

