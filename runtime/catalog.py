"""The published metadata, compiled once per version into what the services run on.

A `Catalog` is immutable: tables, marshmallow schemas, formula order and output
converters for one published version. `Runtime.catalog()` swaps in a new one when
another process publishes, so N workers behind a balancer agree within a request.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import sqlalchemy as sa
from marshmallow import Schema
from sqlalchemy.engine import Engine

from zoneinfo import ZoneInfo

from metacrm.metadata.expressions import compile_expression, set_clock as set_expression_clock
from metacrm.metadata.model import Entity, Field, MetadataSet

from . import systables
from .clock import utcnow
from .coercion import build_schema, dumper_for
from .compiler import compile_metadata, location_columns, reference_columns, table_name
from .errors import NotFound
from .publish import published_metadata


@dataclass(frozen=True)
class EntityRuntime:
    """One entity, compiled: its table, input schema, formulas in dependency order."""

    entity: Entity
    table: sa.Table
    schema: Schema
    children: dict[str, "EntityRuntime"] = field(default_factory=dict)  # table field name -> child
    formulas: tuple[Field, ...] = ()
    output: tuple[tuple[str, Callable[[Any], Any] | None], ...] = ()  # plain (column == field) outputs

    @property
    def name(self) -> str:
        return self.entity.name

    def column(self, name: str) -> sa.Column:
        return self.table.c[name]


def formula_order(entity: Entity) -> tuple[Field, ...]:
    """Formulas sorted so each runs after the formulas it reads (validation refused cycles)."""
    formulas = {f.name: f for f in entity.active_fields if f.type == "formula" and f.expression}
    done: list[Field] = []
    seen: set[str] = set()

    def visit(name: str, stack: frozenset[str]) -> None:
        if name in seen or name in stack:
            return
        for dep in compile_expression(formulas[name].expression or "").names:
            if dep in formulas:
                visit(dep, stack | {name})
        seen.add(name)
        done.append(formulas[name])

    for name in formulas:
        visit(name, frozenset())
    return tuple(done)


def _output_plan(entity: Entity) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    out = [(f.name, dumper_for(f)) for f in entity.system_fields]
    for f in entity.active_fields:
        if f.type not in ("table", "reference", "location"):
            out.append((f.name, dumper_for(f)))
    return tuple(out)


@dataclass(frozen=True)
class Catalog:
    version: int
    mset: MetadataSet
    metadata: sa.MetaData
    entities: dict[str, EntityRuntime]

    def get(self, name: str) -> EntityRuntime:
        """The runtime of an active, top-level entity; NotFound for anything else."""
        rt = self.entities.get(name)
        if rt is None or rt.entity.archived or rt.entity.child_of:
            raise NotFound(f"No entity named '{name}'.")
        return rt


def build_catalog(version: int, mset: MetadataSet) -> Catalog:
    metadata = compile_metadata(mset)
    runtimes: dict[str, EntityRuntime] = {}

    def make(entity: Entity) -> EntityRuntime:
        if entity.name in runtimes:
            return runtimes[entity.name]
        children = {}
        for f in entity.table_fields:
            child = mset.entities.get(f.target or "")
            if child is not None:
                children[f.name] = make(child)
        rt = EntityRuntime(
            entity=entity,
            table=metadata.tables[table_name(entity.name)],
            schema=build_schema(entity, {f.target: c.schema for f, c in
                                         ((entity.field(n), c) for n, c in children.items()) if f}),
            children=children,
            formulas=formula_order(entity),
            output=_output_plan(entity),
        )
        runtimes[entity.name] = rt
        return rt

    for entity in mset.entities.values():
        make(entity)
    return Catalog(version, mset, metadata, runtimes)


class Runtime:
    """The process-wide handle: the engine and the current catalog (reloaded on publish)."""

    def __init__(self, engine: Engine, timezone: str = "UTC"):
        self.engine = engine
        self.timezone = timezone
        # Expressions' today()/now() follow the runtime clock (frozen in tests) in the
        # instance's time zone: "today" for a Shanghai office starts at 00:00 +08:00.
        zone = ZoneInfo(timezone)
        set_expression_clock(lambda: utcnow().astimezone(zone))
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()

    def catalog(self, conn: sa.Connection | None = None) -> Catalog:
        """The catalog of the newest published version (one cheap query to check)."""
        if conn is None:
            with self.engine.connect() as c:
                return self.catalog(c)
        current = conn.execute(sa.select(sa.func.max(systables.meta_versions.c.version))).scalar() or 0
        cached = self._catalog
        if cached is not None and cached.version == current:
            return cached
        with self._lock:
            if self._catalog is None or self._catalog.version != current:
                version, mset = published_metadata(conn)
                self._catalog = build_catalog(version, mset)
            return self._catalog

    def invalidate(self) -> None:
        self._catalog = None


__all__ = ["Catalog", "EntityRuntime", "Runtime", "build_catalog", "reference_columns", "location_columns"]
