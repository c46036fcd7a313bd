"""The record service: the one door to entity data.

The API, the screens, imports, workflows and jobs all create, read, update and delete
through these functions, so coercion, rules, formulas, numbering, lookups, optimistic
locking and history can't be skipped by taking another route.

A write goes: coerce (marshmallow) → merge over the stored record → defaults →
child rows → formulas → required / required_when / readonly_when → entity rules →
lookups exist → unique values free → autonumbers → write parent and children (in a
savepoint) → history; all in the caller's transaction.

The pieces live in `record_reads.py` (reading and presenting), `record_writes.py`
(preparing and writing) and `record_checks.py` (lookups and unique values); this module
holds the entry points and keeps them importable from here, with the batch door for
imports, `create_records` (`record_creates.py`: the same checks and writes, once per
batch of new records).
"""
from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa


from . import dedup
from .access import access_for, mask, scope_clause
from .catalog import Catalog
from .clock import utcnow
from .errors import PermissionDenied, BadRequest, Conflict, ValidationFailed
from .history import jsonable, read_history, record_changes
from .principal import Principal
from .record_reads import (  # noqa: F401 - re-exported: the record service's public face
    python_record, dump_row, fetch_row, children_rows, row_for, require_access, present,
    access_of_children, read_record, get_record, add_titles,
)
from .workflow import guard as workflow_guard
from .record_writes import (
    FieldErrors, check_field_rights, without_masked_echoes, prepare,
    guarded_write, column_values, assign_numbers, write_children, children_snapshot,
)
from .record_checks import check_lookups, check_unique
from .record_creates import Created, screen_create  # noqa: F401 - re-exported
from .record_creates import create_records as _create_batch


# ------------------------------------------------------------------ create / update / delete

def create_record(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str,
                  payload: Any, *, dedup_on: str | None = "create") -> dict[str, Any]:
    """Create a record. `dedup_on` is the dedup event checked ("import" for imports; None
    skips the check but still stores the record's match keys)."""
    rt = catalog.get(entity)
    access = require_access(catalog, principal, rt, "create")
    child_access = access_of_children(catalog, principal, rt)
    now = utcnow()
    values, children, errors = screen_create(conn, catalog, rt, principal, access, child_access, payload, now)
    if not errors.fields:
        check_lookups(conn, catalog, rt, principal, values, None, errors)
        for name, rows in children.items():
            for i, row in enumerate(rows):
                check_lookups(conn, catalog, rt.children[name], principal, row, None, errors, prefix=f"{name}[{i}].")
        check_unique(conn, rt, values, None, None, errors)
    errors.raise_if_any()
    with guarded_write(conn, rt):
        assign_numbers(conn, rt, values, now)
        cols = column_values(rt, values)
        # Values go as bound parameters, not .values(): SQLAlchemy then caches the compiled
        # INSERT per column set instead of coercing ~30 literals per call (5x cheaper; imports
        # create rows by the thousand).
        row = conn.execute(rt.table.insert().returning(rt.table), dict(
            version=1, created_at=now, created_by=principal.user_id, updated_at=now, updated_by=principal.user_id,
            **cols)).mappings().one()
        record_id = row["id"]
        write_children(conn, rt, record_id, children, principal, now, {})
        duplicates = dedup.after_write(conn, catalog, principal, rt.name, record_id, values, on=dedup_on)
    record_changes(conn, rt.name, record_id, principal.user_id, now, "create", [(None, None, None)])
    roll_up(conn, catalog, principal, rt, python_record(rt, row))
    # The inserted row comes back from RETURNING; only child rows need reading again.
    return _with_duplicates(present(read_record(conn, rt, row), access, child_access), duplicates)


def create_records(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str,
                   payloads: Any, *, dedup_on: str | None = "import") -> list[Created]:
    """The batch door (`record_creates.create_records`: the same checks and writes as
    `create_record`, once per batch), then each new record's roll-ups."""
    out = _create_batch(conn, catalog, principal, entity, payloads, dedup_on=dedup_on)
    rt = catalog.get(entity)
    if rollup_fields(rt.entity):
        for created in out:
            if created.record_id is not None:
                roll_up(conn, catalog, principal, rt, python_record(rt, fetch_row(conn, rt, created.record_id)))
    return out


# ------------------------------------------------------------------ roll-ups

def rollup_fields(entity: Any) -> list[tuple[Any, Mapping[str, str]]]:
    """The entity's lookups and references with a `rollup` (METADATA extension): (field, {target field: source})."""
    return [(f, f.spec["rollup"]) for f in entity.active_fields
            if f.type in ("lookup", "reference") and f.spec.get("rollup")]


def roll_up(conn: sa.Connection, catalog: Catalog, principal: Principal, rt: Any, record: Mapping[str, Any]) -> None:
    """Copy a new record's `rollup` values onto the records it points at — a follow-up's
    time and next date onto its customer's last/next follow-up, which reminders, the
    workbench and pool recycling read. Whichever door the follow-up came through (a screen,
    the API, an import), the customer is kept in step. The target fields are the server's
    (read-only to users), so this is an engine write: history is kept, the target's update
    right is not asked (writing a follow-up on a record one may read is enough)."""
    for f, mapping in rollup_fields(rt.entity):
        link = record.get(f.name)
        if link is None:
            continue
        name, target_id = (link["entity"], link["id"]) if f.type == "reference" else (f.target, link)
        target = catalog.entities.get(name or "")
        if target is None:
            continue
        changes = {to: jsonable(record.get(source)) for to, source in mapping.items()
                   if target.entity.active_field(to) is not None and record.get(source) is not None}
        if not changes:
            continue
        current = fetch_row(conn, target, target_id, lock=True)
        update_record(conn, catalog, principal, target.name, target_id, {**changes, "version": current["version"]},
                      dedup_on=None, workflow_fields=frozenset(changes))


def update_record(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int,
                  payload: Any, *, dedup_on: str | None = "update",
                  workflow_fields: frozenset[str] | None = None) -> dict[str, Any]:
    """Update a record. `dedup_on` is the dedup event checked (None skips the check).
    `workflow_fields` is for the workflow engine alone: it has
    authorised the write itself (a transition the principal may fire, an approver's
    decision), so the update right and scope are not checked and those fields (the state
    field, fields an action sets) may be written though read-only; coercion, rules,
    lookups and history apply as always."""
    rt = catalog.get(entity)
    if not isinstance(payload, Mapping):
        raise BadRequest("Expected a JSON object with the record's fields.")
    version = payload.get("version")
    if version is None:
        raise ValidationFailed("The record's current version is required to update it.",
                               {"version": ["Missing data for required field."]})
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValidationFailed("version must be an integer.", {"version": ["Not a valid integer."]})
    forced = workflow_fields or frozenset()
    editable = None if workflow_fields is not None else \
        workflow_guard.approver_fields(conn, catalog, principal, rt, record_id)
    if workflow_fields is None and editable is None:
        access = require_access(catalog, principal, rt, "update")
        row = row_for(conn, rt, principal, access, "update", record_id)
    else:
        access = access_for(catalog.mset, principal, rt.entity)
        row = fetch_row(conn, rt, record_id, lock=True)
    if workflow_fields is None:
        workflow_guard.check_state_writes(catalog, rt, payload, python_record(rt, row))
    child_access = access_of_children(catalog, principal, rt)
    existing_children = {name: children_rows(conn, child, record_id) for name, child in rt.children.items()}
    refused = check_field_rights(rt, access, payload, python_record(rt, row), child_access, existing_children)
    refused = {k: v for k, v in refused.items() if k not in forced}
    if rt.entity.ownership and "owner" in payload and payload["owner"] != row["owner"]:
        can_transfer = scope_clause(rt.table, rt.entity, principal, access, "transfer")
        if not access.allows("transfer") or (can_transfer is not None and conn.execute(
                sa.select(rt.table.c.id).where(rt.table.c.id == record_id, can_transfer)).first() is None):
            refused["owner"] = ["You may not transfer this record."]
    if refused:
        raise PermissionDenied("You may not change some of these fields.", refused)
    payload = without_masked_echoes(rt, access, payload, python_record(rt, row), child_access, existing_children)
    if row["version"] != version:
        raise Conflict(f"This {rt.name} was changed by someone else (version {row['version']}, "
                       f"yours {version}). Reload it and apply your change again.",
                       current_version=row["version"])
    now = utcnow()
    errors = FieldErrors()
    values, children = prepare(conn, catalog, rt, principal, payload, row, existing_children, now, errors,
                               forced=forced)
    before = python_record(rt, row)
    if not errors.fields:
        check_lookups(conn, catalog, rt, principal, values, before, errors)
        for name, rows in children.items():
            old_rows = {r["id"]: python_record(rt.children[name], r) for r in existing_children[name]}
            for i, r in enumerate(rows):
                check_lookups(conn, catalog, rt.children[name], principal, r, old_rows.get(r.get("id")), errors,
                               prefix=f"{name}[{i}].")
        check_unique(conn, rt, values, before, record_id, errors)
    errors.raise_if_any()

    changes = []
    for f in rt.entity.active_fields:
        if f.type == "table":
            if f.name in payload:
                old = children_snapshot([dict(python_record(rt.children[f.name], r)) for r in
                                          existing_children[f.name]], rt.children[f.name])
                new = children_snapshot(children[f.name], rt.children[f.name])
                if old != new:
                    changes.append((f.name, old, new))
        elif jsonable(before.get(f.name)) != jsonable(values.get(f.name)):
            changes.append((f.name, before.get(f.name), values.get(f.name)))
    for key in ("owner", "department"):
        if rt.entity.ownership and before.get(key) != values.get(key):
            changes.append((key, before.get(key), values.get(key)))
    if workflow_fields is None:
        workflow_guard.check_changes(catalog, rt, principal, before, (c[0] for c in changes), editable)
    if not changes:
        return present(read_record(conn, rt, fetch_row(conn, rt, record_id)), access, child_access)

    cols = column_values(rt, values)
    t = rt.table
    with guarded_write(conn, rt):
        result = conn.execute(t.update().where(t.c.id == record_id, t.c.version == version).values(
            version=version + 1, updated_at=now, updated_by=principal.user_id, **cols))
        if result.rowcount != 1:
            raise Conflict(f"This {rt.name} was changed by someone else. Reload it and apply your change again.")
        if any(f.name in payload for f in rt.entity.table_fields):
            write_children(conn, rt, record_id, {k: v for k, v in children.items() if k in payload},
                            principal, now, existing_children)
        duplicates = dedup.after_write(conn, catalog, principal, rt.name, record_id, values, on=dedup_on,
                                       changed=[name for name, _, _ in changes])
    record_changes(conn, rt.name, record_id, principal.user_id, now, "update", changes)
    return _with_duplicates(present(read_record(conn, rt, fetch_row(conn, rt, record_id)), access, child_access),
                            duplicates)


def write_system_fields(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str,
                        row: Mapping[str, Any], values: Mapping[str, Any], *, action: str,
                        where: sa.ColumnElement[bool] | None = None, note: str | None = None) -> Mapping[str, Any]:
    """Change fields no form may write — owner, department, a pool, a lock — for an engine
    that has decided the change is allowed (the pool's claim, release, transfer, recycling).

    `row` is the record as the engine read it; the UPDATE holds only while that version
    (and `where`, when given) still holds, else 409: two claims of one customer can't
    both win, and a recycling job never moves a record someone changed meanwhile. The
    history records each changed field under `action`, and `note` (a reason) as an entry
    of its own (field None)."""
    rt = catalog.get(entity)
    t = rt.table
    before = python_record(rt, row)
    changes: list[tuple[str | None, Any, Any]] = [
        (k, before.get(k), v) for k, v in values.items() if jsonable(before.get(k)) != jsonable(v)]
    if note:
        changes.append((None, None, note))
    now = utcnow()
    condition = [t.c.id == row["id"], t.c.version == row["version"]] + ([where] if where is not None else [])
    with guarded_write(conn, rt):
        new = conn.execute(t.update().where(*condition).values(
            version=t.c.version + 1, updated_at=now, updated_by=principal.user_id,
            **column_values(rt, values)).returning(t)).mappings().first()
    if new is None:
        raise Conflict(f"This {rt.name} was changed by someone else meanwhile. Reload it and try again.")
    record_changes(conn, rt.name, row["id"], principal.user_id, now, action, changes)
    return new


def delete_record(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int,
                  version: int | None = None) -> None:
    rt = catalog.get(entity)
    access = require_access(catalog, principal, rt, "delete")
    row = row_for(conn, rt, principal, access, "delete", record_id)
    workflow_guard.check_delete(catalog, rt, principal, python_record(rt, row))
    if version is not None and row["version"] != version:
        raise Conflict(f"This {rt.name} was changed by someone else (version {row['version']}).",
                       current_version=row["version"])
    snapshot = dump_row(rt, row)
    try:
        with conn.begin_nested():
            conn.execute(rt.table.delete().where(rt.table.c.id == record_id))
            dedup.forget_keys(conn, rt.name, [record_id])
    except sa.exc.IntegrityError:
        raise Conflict(f"This {rt.name} is still referenced by other records; "
                       "remove or re-point them first.", code_detail="referenced") from None
    record_changes(conn, rt.name, record_id, principal.user_id, utcnow(), "delete", [(None, snapshot, None)])


def _with_duplicates(record: dict[str, Any], duplicates: list[Any]) -> dict[str, Any]:
    """A saved record with the matches of `warn` dedup rules under `_duplicates` (absent when none)."""
    if duplicates:
        record["_duplicates"] = [m.to_dict() for m in duplicates]
    return record


def record_history(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str,
                   record_id: int) -> list[dict[str, Any]]:
    """A record's field history, as much of it as the principal may read."""
    rt = catalog.get(entity)
    access = require_access(catalog, principal, rt, "read")
    fetch_row(conn, rt, record_id, scope=scope_clause(rt.table, rt.entity, principal, access, "read"))
    archived = frozenset(f.name for f in rt.entity.fields if f.archived)
    items = read_history(conn, rt.name, record_id, hidden=archived | access.hidden)
    children = access_of_children(catalog, principal, rt)
    for item in items:
        if item["field"] in access.masked:
            item["old"], item["new"] = mask(item["old"]), mask(item["new"])
        for key in ("old", "new"):
            if item["field"] is None and isinstance(item[key], dict):  # whole-record snapshots (create/delete)
                item[key] = present(dict(item[key]), access)
            elif item["field"] in children and isinstance(item[key], list):  # a table field's rows, before/after
                item[key] = [present(dict(r), children[item["field"]]) if isinstance(r, dict) else r
                             for r in item[key]]
    return items
