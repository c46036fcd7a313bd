"""Compile entities into SQLAlchemy Tables: real typed columns, foreign keys, child tables.

The compiled `MetaData` is what publish diffs against the live database, and what the
record service and the query builder use; there is no second description of a table.

Columns are nullable except the system ones: `required` is a rule of the record service
(it can depend on other fields through `required_when`), and a nullable column is what
lets a field be added to a table that already holds rows.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa

from metacrm.metadata.model import Entity, Field, MetadataSet

from . import systables

ENTITY_PREFIX = "ent_"
#: PostgreSQL truncates identifiers at 63 bytes; names are kept shorter and stable.
MAX_NAME = 60
TS = sa.DateTime(timezone=True)


def table_name(entity: str) -> str:
    return ENTITY_PREFIX + entity


def short_name(name: str) -> str:
    """A constraint/index name that fits PostgreSQL's limit, stable for the same input."""
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[:MAX_NAME - 9]}_{digest}"


def _numeric(field: Field, precision: int, scale: int) -> sa.Numeric:
    return sa.Numeric(field.precision or precision, field.scale if field.scale is not None else scale)


def _string(default: int) -> Callable[[Field], sa.types.TypeEngine]:
    return lambda f: sa.String(f.max_length or default)


#: Storage type per field type (NocoBase's "storage type"; the screens own the "interface").
COLUMN_TYPES: dict[str, Callable[[Field], sa.types.TypeEngine]] = {
    "text": _string(255),
    "textarea": lambda f: sa.Text(),
    "richtext": lambda f: sa.Text(),
    "integer": lambda f: sa.BigInteger(),
    "decimal": lambda f: _numeric(f, 18, 4),
    "currency": lambda f: _numeric(f, 18, 2),
    "percent": lambda f: _numeric(f, 9, 4),
    "boolean": lambda f: sa.Boolean(create_constraint=False),
    "date": lambda f: sa.Date(),
    "datetime": lambda f: TS,
    "select": lambda f: sa.String(100),
    "multiselect": lambda f: sa.Text(),
    "email": lambda f: sa.String(254),
    "phone": lambda f: sa.String(40),
    "url": lambda f: sa.String(2000),
    "autonumber": lambda f: sa.String(64),
    "file": lambda f: sa.String(500),
    "image": lambda f: sa.String(500),
}

#: Foreign-key targets of the reference-like field types.
FK_TARGETS: dict[str, Callable[[Field], str]] = {
    "lookup": lambda f: f"{table_name(f.target or '')}.id",
    "user": lambda f: "mc_users.id",
    "department": lambda f: "mc_departments.id",
}


@dataclass(frozen=True)
class ColumnSet:
    """The columns a field is stored in: most fields have one, `reference` and `location` several."""

    names: tuple[str, ...]


def reference_columns(name: str) -> tuple[str, str]:
    return (f"{name}_entity", f"{name}_id")


def location_columns(name: str) -> tuple[str, str, str]:
    return (f"{name}_lat", f"{name}_lng", f"{name}_address")


def field_columns(field: Field) -> list[sa.Column]:
    """The columns that store one field (none for child tables)."""
    t = field.type
    if t == "table":
        return []
    if t == "formula":
        proxy = Field(name=field.name, type=field.result_type or "text", label=field.label,
                      precision=field.precision, scale=field.scale)
        return field_columns(proxy)
    if t in FK_TARGETS:
        return [sa.Column(field.name, sa.Integer, sa.ForeignKey(FK_TARGETS[t](field)))]
    if t == "reference":
        ent, rid = reference_columns(field.name)
        return [sa.Column(ent, sa.String(63)), sa.Column(rid, sa.Integer)]
    if t == "location":
        lat, lng, addr = location_columns(field.name)
        return [sa.Column(lat, sa.Numeric(10, 7)), sa.Column(lng, sa.Numeric(10, 7)),
                sa.Column(addr, sa.String(500))]
    return [sa.Column(field.name, COLUMN_TYPES[t](field))]


def system_columns(entity: Entity) -> list[sa.Column]:
    cols = [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("mc_users.id")),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.Integer, sa.ForeignKey("mc_users.id")),
    ]
    if entity.ownership:
        cols += [
            sa.Column("owner", sa.Integer, sa.ForeignKey("mc_users.id")),
            sa.Column("department", sa.Integer, sa.ForeignKey("mc_departments.id")),
        ]
    if entity.child_of:
        cols += [
            sa.Column("parent_id", sa.Integer,
                      sa.ForeignKey(f"{table_name(entity.child_of)}.id", ondelete="CASCADE"),
                      nullable=False),
            sa.Column("idx", sa.Integer, nullable=False, server_default="0"),
        ]
    return cols


def _index_name(prefix: str, table: str, columns: list[str]) -> str:
    return short_name(f"{prefix}_{table}_{'_'.join(columns)}")


def entity_indexes(entity: Entity, table: str) -> list[sa.Index]:
    """Every index of an entity table, declared here and only here.

    Key columns (lookups, owner, department, parent_id) get their index as an explicit
    `Index`, not `Column(index=True)`: Alembic's add_column creates a column's own index
    *and* autogenerate emits a CreateIndexOp for it, so adding a lookup to an existing
    table would create the same index twice; and explicit names go through `short_name`,
    where the naming convention would exceed PostgreSQL's 63 characters.
    """
    out: list[sa.Index] = []
    seen: set[tuple[tuple[str, ...], bool]] = set()

    def add(columns: list[str], unique: bool, name: str | None = None) -> None:
        key = (tuple(columns), unique)
        if key in seen:
            return
        seen.add(key)
        prefix = "uq" if unique else "ix"
        out.append(sa.Index(short_name(name) if name else _index_name(prefix, table, columns), *columns,
                            unique=unique))

    keys = [n for n in ("owner", "department") if entity.ownership]
    keys += ["parent_id"] if entity.child_of else []
    keys += [f.name for f in entity.fields if f.type in FK_TARGETS]
    for name in keys:
        add([name], False)
    for f in entity.fields:
        if f.type == "reference":
            add(list(reference_columns(f.name)), False)
        elif f.unique or f.type == "autonumber":
            add([f.name], True)
    for ix in entity.indexes:
        cols: list[str] = []
        for name in ix.fields:
            f = entity.field(name)
            cols += list(reference_columns(name)) if f is not None and f.type == "reference" else [name]
        add(cols, ix.unique, ix.name)
    return out


def compile_entity(entity: Entity, metadata: sa.MetaData) -> sa.Table:
    name = table_name(entity.name)
    columns = system_columns(entity)
    for field in entity.fields:
        columns += field_columns(field)
    return sa.Table(name, metadata, *columns, *entity_indexes(entity, name))


def compile_metadata(mset: MetadataSet) -> sa.MetaData:
    """All entity tables of a metadata set (archived entities and fields included, so
    publish never drops their columns), on a MetaData that also knows the system tables
    their foreign keys point to."""
    metadata = sa.MetaData(naming_convention=systables.NAMING_CONVENTION)
    for table in (systables.users, systables.departments):
        table.to_metadata(metadata)
    for entity in mset.entities.values():
        compile_entity(entity, metadata)
    return metadata


def entity_tables(metadata: sa.MetaData) -> list[sa.Table]:
    return [t for t in metadata.sorted_tables if t.name.startswith(ENTITY_PREFIX)]
