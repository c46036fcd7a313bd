"""Merging duplicates: the entity action `merge` (`{"duplicates": [ids], "values": {...}}`).

The record the action is called on survives. In one transaction: every lookup and
reference pointing at a duplicate is moved to the survivor (contacts, opportunities,
follow-ups, contracts… found from the metadata), team members join the survivor's team,
the duplicates are deleted through the record service (their snapshot stays in their
history, their match keys go), the survivor takes the chosen `values` through the record
service (validated like any edit), and the survivor's history records the merge.
"""
from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa

from ..catalog import Catalog
from ..clock import utcnow
from ..errors import BadRequest, ValidationFailed
from ..history import record_changes
from ..principal import Principal
from ..records import delete_record, fetch_row, get_record, require_access, row_for, update_record
from .repoint import move_team_members, repoint

#: Most duplicates one merge takes (a scan's group is rarely larger).
MAX_DUPLICATES = 100


def _duplicate_ids(body: Mapping[str, Any], survivor: int) -> list[int]:
    ids = body.get("duplicates")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ValidationFailed("duplicates must be a non-empty list of record ids.",
                               {"duplicates": ["Expected a non-empty list of record ids."]})
    if len(ids) > MAX_DUPLICATES:
        raise ValidationFailed(f"At most {MAX_DUPLICATES} duplicates per merge.",
                               {"duplicates": [f"At most {MAX_DUPLICATES} ids."]})
    if survivor in ids:
        raise ValidationFailed("The surviving record can't be one of its duplicates.",
                               {"duplicates": [f"{survivor} is the surviving record."]})
    return sorted(set(ids))


def merge_action(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int,
                 body: Mapping[str, Any]) -> dict[str, Any]:
    dup_ids = _duplicate_ids(body, record_id)
    values = body.get("values") or {}
    if not isinstance(values, Mapping):
        raise BadRequest("values must be an object: field → the value the surviving record keeps.")
    if "version" in values or "id" in values:
        raise ValidationFailed("values holds fields of the record, not id or version.",
                               {"values": ["id and version can't be chosen."]})
    rt = catalog.get(entity)
    update_access = require_access(catalog, principal, rt, "update")
    row_for(conn, rt, principal, update_access, "update", record_id)
    delete_access = require_access(catalog, principal, rt, "delete")
    for dup in dup_ids:  # each must exist, be readable (404) and deletable (403) by the caller
        row_for(conn, rt, principal, delete_access, "delete", dup)

    now = utcnow()
    moved = repoint(conn, catalog, entity, dup_ids, entity, record_id, principal.user_id, now)
    move_team_members(conn, entity, dup_ids, record_id)
    for dup in dup_ids:
        delete_record(conn, catalog, principal, entity, dup)
    if values:
        current = fetch_row(conn, rt, record_id)
        update_record(conn, catalog, principal, entity, record_id, {**values, "version": current["version"]})
    record_changes(conn, entity, record_id, principal.user_id, now, "merge",
                   [(None, None, {"merged": dup_ids, "repointed": moved, "values": dict(values)})])
    return {"id": record_id, "merged": dup_ids, "repointed": moved,
            "record": get_record(conn, catalog, principal, entity, record_id)}


ACTIONS = {"merge": merge_action}
