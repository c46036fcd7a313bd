"""Preparing a write: coerce, merge, default, compute, check — and the low-level writes.

`prepare` turns a payload into checked values for one record and its child rows; the
checks that need the database (lookups exist and are readable, unique values are free)
live in `record_checks.py`; the writes themselves (numbering, columns, child rows, the
savepoint that turns a database-only conflict into a 409) follow here. `records.py`
sequences them for one record, `record_creates.py` for a batch of new ones.
"""
from __future__ import annotations

import copy
import datetime as dt
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterator, Mapping

import sqlalchemy as sa
from marshmallow import ValidationError as MMValidationError

from metacrm.metadata.expressions import ExpressionError, compile_expression
from metacrm.metadata.model import Field

from .access import Access, mask
from .catalog import Catalog, EntityRuntime
from .coercion import MAX_ID, loader_for, to_column_value
from .compiler import location_columns, reference_columns
from .errors import BadRequest, Conflict, ValidationFailed
from .history import jsonable
from .naming import next_number
from .principal import Principal
from .record_reads import (
    python_record,
)

#: Keys a client may send back unchanged (they come with every read) and that are ignored.
IGNORED_KEYS = frozenset({"id", "version", "created_at", "created_by", "updated_at", "updated_by"})
REQUIRED = "Missing data for required field."
#: Field types whose value the server computes (no default applies).
SERVER_COMPUTED = frozenset({"table", "formula", "autonumber"})


# ------------------------------------------------------------------ preparing writes

class FieldErrors:
    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        self.fields.setdefault(name, [])
        if message not in self.fields[name]:
            self.fields[name].append(message)

    def merge(self, prefix: str, messages: Any) -> None:
        if isinstance(messages, dict):
            for k, v in messages.items():
                self.merge(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
            for m in messages:
                self.add(prefix, m)
        elif isinstance(messages, list):
            for i, m in enumerate(messages):
                self.merge(f"{prefix}[{i}]", m)
        else:
            self.add(prefix, str(messages))

    def raise_if_any(self, message: str = "The record is not valid.") -> None:
        if self.fields:
            first = next(iter(self.fields.items()))
            raise ValidationFailed(f"{message} {first[0]}: {first[1][0]}", self.fields)


def condition_holds(expression: str | None, values: Mapping[str, Any]) -> bool:
    """Whether a condition (visible_when, required_when, ...) holds; no condition or one
    that fails to evaluate counts as false."""
    if not expression:
        return False
    try:
        return bool(compile_expression(expression).evaluate(values))
    except ExpressionError:
        return False


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _default_value(field: Field, principal: Principal, now: dt.datetime) -> Any:
    default = field.default
    if default == "$me":
        return principal.user_id
    if default == "$my_department":
        return principal.department_id
    if default in ("$today", "today"):
        # The instance's date, as a formula's today() sees it (the runtime sets that clock
        # to its time zone): at 20:00 UTC it is already tomorrow in Shanghai.
        return compile_expression("today()").evaluate()
    if default in ("$now", "now"):
        return now
    if default is None:
        return None
    try:
        value = _constant_default(field)
    except TypeError:  # a Field holding something unhashable: not remembered
        value = _load_default(field)
    return copy.copy(value)  # a list default (multiselect) is each record's own


def _load_default(field: Field) -> Any:
    try:
        return loader_for(field).deserialize(field.default)
    except MMValidationError:
        return None


@lru_cache(maxsize=4096)
def _constant_default(field: Field) -> Any:
    """A constant default, loaded once per field definition (every create needs every
    field's default; an import thousands of times)."""
    return _load_default(field)


def check_field_rights(rt: EntityRuntime, access: Access, payload: Any, current: Mapping[str, Any] | None,
                        child_access: Mapping[str, Access], current_children: Mapping[str, list[Mapping[str, Any]]],
                        prefix: str = "") -> dict[str, list[str]]:
    """Fields the principal's roles make read-only (or hidden/masked) that the payload
    would change. Sending back the value read — masked as it was shown — is no change."""
    refused: dict[str, list[str]] = {}
    if not isinstance(payload, Mapping):
        return refused
    for key in access.readonly & set(payload):
        f = rt.entity.active_field(key)
        if f is None:
            continue
        value = payload[key]
        shown = mask(jsonable((current or {}).get(key))) if key in access.masked else None
        if not _unchanged(f, current, value) and not (shown is not None and value == shown):
            refused[f"{prefix}{key}"] = ["You may not change this field."]
    for name, rows in ((k, v) for k, v in payload.items() if k in rt.children and isinstance(v, list)):
        child = rt.children[name]
        existing = {r["id"]: python_record(child, r) for r in current_children.get(name, [])}
        for i, row in enumerate(rows):
            rid = row.get("id") if isinstance(row, Mapping) else None
            before = existing.get(rid) if isinstance(rid, int) else None
            refused.update(check_field_rights(child, child_access.get(name, access), row, before, {}, {},
                                               prefix=f"{prefix}{name}[{i}]."))
    return refused


def without_masked_echoes(rt: EntityRuntime, access: Access, payload: Mapping[str, Any],
                           current: Mapping[str, Any] | None, child_access: Mapping[str, Access],
                           current_children: Mapping[str, list[Mapping[str, Any]]]) -> dict[str, Any]:
    """The payload without masked fields sent back exactly as they were shown
    (138****1234): a client saving the record it read means "unchanged", and the mask is
    neither a valid value nor one to store. Child rows are cleaned the same way."""
    out = dict(payload)
    for key in access.masked & set(payload):
        if current is not None and payload[key] is not None and \
                payload[key] == mask(jsonable(current.get(key))):
            del out[key]
    for name in (k for k in payload if k in rt.children and isinstance(payload[k], list)):
        child = rt.children[name]
        existing = {r["id"]: python_record(child, r) for r in current_children.get(name, [])}
        out[name] = [
            without_masked_echoes(child, child_access.get(name, access), row,
                                   existing.get(row.get("id")) if isinstance(row.get("id"), int) else None, {}, {})
            if isinstance(row, Mapping) else row
            for row in payload[name]]
    return out


def _check_payload_keys(rt: EntityRuntime, payload: Mapping[str, Any], current: Mapping[str, Any] | None,
                        errors: FieldErrors, prefix: str = "", forced: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The keys the schema should load; unknown and read-only keys become errors
    (named with `prefix`, so a child row's bad key reads `lines[3].colour`)."""
    entity = rt.entity
    kept: dict[str, Any] = {}
    for key, value in payload.items():
        if key in IGNORED_KEYS or key.endswith("__title"):
            continue
        if key in ("owner", "department") and entity.ownership:
            kept[key] = value
            continue
        f = entity.active_field(key)
        if f is None:
            errors.add(f"{prefix}{key}", f"Unknown field '{key}' for {entity.name}.")
        elif f.type == "table" or f.writable or (key in forced and not f.system and f.type not in SERVER_COMPUTED):
            kept[key] = value
        elif not _unchanged(f, current, value):
            errors.add(f"{prefix}{key}", "Field is read-only.")
    return kept


def _unchanged(f: Field, current: Mapping[str, Any] | None, value: Any) -> bool:
    """Whether a value sent for a read-only field is the stored one, in any spelling its
    loader accepts ("10" for 10.00, the API's float latitude for the stored Decimal), so
    a client may send back the record it read."""
    if current is None:
        return value is None
    stored = jsonable(current.get(f.name))
    if jsonable(value) == stored:
        return True
    if f.system:
        return False
    try:
        return jsonable(loader_for(f).deserialize(value)) == stored
    except MMValidationError:
        return False


def _load_owner_fields(data: dict[str, Any], errors: FieldErrors) -> dict[str, Any]:
    out = {}
    for key in ("owner", "department"):
        if key in data:
            v = data.pop(key)
            if v is None:
                out[key] = None
            elif isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_ID:
                errors.add(key, "Expected a positive id.")
            else:
                out[key] = v
    return out


def prepare(conn: sa.Connection, catalog: Catalog, rt: EntityRuntime, principal: Principal,
             payload: Any, current_row: Mapping[str, Any] | None,
             current_children: Mapping[str, list[Mapping[str, Any]]], now: dt.datetime,
             errors: FieldErrors, prefix: str = "", forced: frozenset[str] = frozenset(),
             ) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Coerce, merge, compute and check one record; returns (values, child rows).

    `forced` names fields the workflow engine writes (its state field, fields its actions
    set): accepted though read-only, and not held by `readonly_when`."""
    entity = rt.entity
    if not isinstance(payload, Mapping):
        raise BadRequest("Expected a JSON object with the record's fields.")
    current = python_record(rt, current_row) if current_row is not None else None
    data = _check_payload_keys(rt, payload, current, errors, prefix, forced)
    owners = _load_owner_fields(data, errors) if entity.ownership else {}
    table_payloads = {k: data.pop(k) for k in list(data) if rt.children.get(k) is not None}
    # Read-only fields the workflow engine writes aren't in the schema: load them one by one.
    engine_set = {k: data.pop(k) for k in list(data) if k in forced and not entity.field(k).writable}  # type: ignore[union-attr]
    loaded: dict[str, Any] = {}
    try:
        loaded = rt.schema.load(data, partial=True)
    except MMValidationError as exc:
        for name, messages in exc.normalized_messages().items():
            errors.merge(f"{prefix}{name}", messages)
        loaded = {k: v for k, v in (exc.valid_data or {}).items()}
    for key, value in engine_set.items():
        try:
            loaded[key] = loader_for(entity.field(key)).deserialize(value)  # type: ignore[arg-type]
        except MMValidationError as exc:
            errors.merge(f"{prefix}{key}", exc.messages)

    values: dict[str, Any] = dict(current) if current is not None else {}
    if current is None:
        # Read-only fields get their defaults too: a contract starts as "draft" even
        # though only its workflow may change approval_status afterwards.
        for f in entity.active_fields:
            if f.type not in SERVER_COMPUTED and f.name not in loaded:
                values[f.name] = _default_value(f, principal, now)
        if entity.ownership:
            values["owner"] = owners.get("owner", principal.user_id)
            values["department"] = owners.get("department", principal.department_id)
    else:
        values.update(owners)
    values.update(loaded)

    # Child rows: a table field in the payload replaces the list (rows keep their id).
    children: dict[str, list[dict[str, Any]]] = {}
    for name, child_rt in rt.children.items():
        existing = {r["id"]: r for r in current_children.get(name, [])}
        if name in table_payloads:
            rows_in = table_payloads[name] or []
            if not isinstance(rows_in, list):
                errors.add(f"{prefix}{name}", "Expected a list of rows.")
                rows_in = []
            rows_out = []
            for i, row_in in enumerate(rows_in):
                if not isinstance(row_in, Mapping):
                    errors.add(f"{prefix}{name}[{i}]", "Expected an object with the row's fields.")
                    continue
                rid = row_in.get("id")
                if rid is not None and (isinstance(rid, bool) or not isinstance(rid, int)):
                    errors.add(f"{prefix}{name}[{i}].id", "Expected a row id (an integer) or none for a new row.")
                    continue
                if rid is not None and rid not in existing:
                    errors.add(f"{prefix}{name}[{i}].id", f"No row {rid} in this record's {name}.")
                    continue
                row_values, _ = prepare(conn, catalog, child_rt, principal, row_in, existing.get(rid), {},
                                         now, errors, prefix=f"{prefix}{name}[{i}].")
                row_values["id"] = rid
                rows_out.append(row_values)
            children[name] = rows_out
        else:
            children[name] = [dict(python_record(child_rt, r), id=r["id"]) for r in existing.values()]
        values[name] = children[name]

    for f in rt.formulas:
        try:
            result = compile_expression(f.expression or "").evaluate(values)
            values[f.name] = _formula_value(f, result)
        except (ExpressionError, MMValidationError, ValueError, TypeError) as exc:
            errors.add(f"{prefix}{f.name}", f"Can't compute: {exc}")

    for f in entity.active_fields:
        if f.type in ("formula", "autonumber") or not f.writable and f.type != "table":
            continue
        visible = not f.visible_when or condition_holds(f.visible_when, values)
        required = f.required or condition_holds(f.required_when, values)
        if visible and required and _empty(values.get(f.name)) and f.name not in errors.fields:
            errors.add(f"{prefix}{f.name}", REQUIRED)
        if f.readonly_when and f.name in loaded and f.name not in forced:
            locked_on = current if current is not None else values
            if condition_holds(f.readonly_when, locked_on) and jsonable(loaded[f.name]) != jsonable(
                    (current or {}).get(f.name)):
                errors.add(f"{prefix}{f.name}", "Field is read-only in this state.")

    if not errors.fields:
        for rule in entity.validations:
            try:
                ok = compile_expression(rule.rule).evaluate(values)
            except ExpressionError:
                ok = False
            if not ok:
                names = compile_expression(rule.rule).names
                target = next((f.name for f in entity.active_fields if f.name in names), "__all__")
                errors.add(f"{prefix}{target}", rule.message.get(principal.language))
    return values, children


def _formula_value(f: Field, result: Any) -> Any:
    if result is None:
        return None
    if isinstance(result, (dt.date, dt.datetime)):
        result = result.isoformat()
    elif not isinstance(result, (str, bool)):
        result = str(result)
    return loader_for(f).deserialize(result)


@contextmanager
def guarded_write(conn: sa.Connection, rt: EntityRuntime) -> Iterator[None]:
    """Run the INSERT/UPDATE statements of one write in a savepoint, and turn what the
    database still refuses (a unique value taken by a concurrent writer, a lookup target
    deleted meanwhile) into a 409 instead of a 500, leaving the connection usable."""
    try:
        with conn.begin_nested():
            yield
    except sa.exc.IntegrityError:
        raise Conflict(f"This {rt.name} conflicts with another record (a unique value taken, or a "
                       "linked record removed meanwhile). Reload and try again.") from None


def column_values(rt: EntityRuntime, values: Mapping[str, Any]) -> dict[str, Any]:
    """Field values as column values (reference and location spread over their columns)."""
    out: dict[str, Any] = {}
    for f in rt.entity.active_fields:
        if f.type == "table" or f.name not in values:
            continue
        v = values[f.name]
        if f.type == "reference":
            ent, rid = reference_columns(f.name)
            out[ent], out[rid] = (v["entity"], v["id"]) if v else (None, None)
        elif f.type == "location":
            lat, lng, addr = location_columns(f.name)
            out[lat], out[lng], out[addr] = (v["lat"], v["lng"], v["address"]) if v else (None, None, None)
        else:
            out[f.name] = to_column_value(f, v)
    if rt.entity.ownership:
        for key in ("owner", "department"):
            if key in values:
                out[key] = values[key]
    return out


def number_format(rt: EntityRuntime, f: Field) -> str:
    """An autonumber field's format: its own, the entity's naming, or XYZ-#####."""
    return f.format or (rt.entity.naming or {}).get("autonumber") or f"{rt.name.upper()[:3]}-{{#####}}"


def assign_numbers(conn: sa.Connection, rt: EntityRuntime, values: dict[str, Any], now: dt.datetime) -> None:
    for f in rt.entity.active_fields:
        if f.type == "autonumber" and not values.get(f.name):
            values[f.name] = next_number(conn, rt.name, f.name, number_format(rt, f), now)


def write_children(conn: sa.Connection, rt: EntityRuntime, parent_id: int,
                    children: Mapping[str, list[dict[str, Any]]], principal: Principal,
                    now: dt.datetime, existing: Mapping[str, list[Mapping[str, Any]]]) -> None:
    for name, rows in children.items():
        child = rt.children[name]
        t = child.table
        keep = {r["id"] for r in rows if r.get("id") is not None}
        gone = [r["id"] for r in existing.get(name, []) if r["id"] not in keep]
        if gone:
            conn.execute(t.delete().where(t.c.parent_id == parent_id, t.c.id.in_(gone)))
        for idx, row in enumerate(rows):
            cols = column_values(child, row)
            cols.update(idx=idx, updated_at=now, updated_by=principal.user_id)
            if row.get("id") is None:
                assign_numbers(conn, child, row, now)
                cols = column_values(child, row) | {"idx": idx, "updated_at": now, "updated_by": principal.user_id}
                conn.execute(t.insert().values(parent_id=parent_id, created_at=now, created_by=principal.user_id,
                                               version=1, **cols))
            else:
                conn.execute(t.update().where(t.c.id == row["id"], t.c.parent_id == parent_id)
                             .values(version=t.c.version + 1, **cols))


def children_snapshot(rows: list[dict[str, Any]], child: EntityRuntime) -> list[dict[str, Any]]:
    names = [f.name for f in child.entity.active_fields if f.type != "table"]
    return [jsonable({n: r.get(n) for n in names}) for r in rows]
