"""A draft record's live form state: which fields show, which are required or read-only,
and what the formulas come to — computed by the same code that checks a save.

The form screen asks this as the user types instead of re-implementing conditions in
JavaScript, so there is one source of truth: `prepare()` (record_writes.py) merges the
draft over the stored record, applies defaults, child rows and formulas, and the
conditions are then evaluated on exactly the values a save would check.
"""
from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa

from .catalog import Catalog
from .clock import utcnow
from .coercion import dumper_for
from .history import jsonable
from .principal import Principal
from .record_reads import children_rows, python_record, require_access, row_for
from .record_writes import FieldErrors, prepare, condition_holds


def form_state(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, payload: Any,
               record_id: int | None = None) -> dict[str, Any]:
    """`{"visible", "required", "readonly": {field: bool}, "values": {formula: value},
    "lines": {table: [{formula: value}, ...]}, "errors": {field: [msg]}}` for a draft."""
    rt = catalog.get(entity)
    access = require_access(catalog, principal, rt, "update" if record_id else "create")
    row = row_for(conn, rt, principal, access, "update", record_id) if record_id else None
    existing = {name: children_rows(conn, child, record_id) for name, child in rt.children.items()} \
        if record_id else {}
    if not isinstance(payload, Mapping):
        payload = {}
    # Fields the user can't write are dropped, as a save would refuse them anyway.
    draft = {k: v for k, v in payload.items() if k not in access.hidden and k not in access.readonly}
    errors = FieldErrors()
    values, children = prepare(conn, catalog, rt, principal, draft, row, existing, utcnow(), errors)
    current = python_record(rt, row) if row is not None else values
    state: dict[str, Any] = {"visible": {}, "required": {}, "readonly": {}, "values": {}, "lines": {},
                             "errors": {k: v for k, v in errors.fields.items() if k in payload}}
    for f in rt.entity.active_fields:
        if f.name in access.hidden:
            continue
        state["visible"][f.name] = not f.visible_when or condition_holds(f.visible_when, values)
        state["required"][f.name] = f.required or condition_holds(f.required_when, values)
        state["readonly"][f.name] = (not f.writable and f.type != "table") or f.name in access.readonly or \
            condition_holds(f.readonly_when, current)
    for f in rt.formulas:
        if f.name not in access.hidden:
            state["values"][f.name] = _out(f, values.get(f.name))
    for name, child in rt.children.items():
        state["lines"][name] = [{f.name: _out(f, r.get(f.name)) for f in child.formulas}
                                for r in children.get(name, [])]
    return state


def _out(f: Any, value: Any) -> Any:
    dumper = dumper_for(f)
    return jsonable(dumper(value) if dumper is not None and value is not None else value)
