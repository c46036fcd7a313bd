"""The small JSON endpoints the screens' widgets call: type-ahead pickers for lookups,
users and departments, and the kanban's move.

Pickers answer `{"items": [{"id", "title"}]}`; a record picker goes through
`list_records`, so it offers only records the user may read (the same scope as lists).
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, jsonify, request

from .. import systables
from ..access import access_for
from ..errors import BadRequest
from ..query import ListRequest, list_records
from ..errors import ValidationFailed
from ..records import update_record
from ..workflow.engine import fire_transition
from ..workflow.machine import machines_of
from ..workflow.reading import available
from .api import request_json
from .context import require_principal, runtime

bp = Blueprint("metacrm_pickers", __name__, url_prefix="/api/v1")

PICKER_SIZE = 20


def _q() -> str:
    q = (request.args.get("q") or "").strip()
    if len(q) > 100:
        raise BadRequest("q is at most 100 characters.")
    return q


@bp.get("/lookup/records/<entity>")
def pick_records(entity: str) -> Any:
    principal = require_principal()
    rt_ = runtime()
    q = _q()
    with rt_.engine.connect() as conn:
        catalog = rt_.catalog(conn)
        rt = catalog.get(entity)
        access = access_for(catalog.mset, principal, rt.entity)
        title = rt.entity.title_field
        if title in access.unreadable or rt.entity.field(title) is None:
            title = "id"
        title_field = rt.entity.field(title)
        filters: list[Any] = []
        search = None
        if q:
            if title_field is not None and title_field.value_kind == "text":
                filters = [[title, "contains", q]]
            elif q.isascii() and q.isdigit():
                filters = [["id", "=", int(q)]]
            else:
                search = q
        req = ListRequest(filters=filters, q=search, page_size=PICKER_SIZE, sort=[(title, "asc")])
        items = list_records(conn, catalog, principal, entity, req, rt_.timezone)["items"]
    return jsonify({"items": [{"id": r["id"], "title": str(r.get(title) if r.get(title) is not None else f"#{r['id']}")}
                              for r in items]})


@bp.get("/lookup/users")
def pick_users() -> Any:
    """Active colleagues by name or username (the address book is open to every user)."""
    require_principal()
    u = systables.users
    q = _q()
    query = sa.select(u.c.id, u.c.display_name, u.c.username).where(u.c.active.is_(True)) \
        .order_by(u.c.display_name).limit(PICKER_SIZE if q else 200)
    if q:
        like = f"%{q.replace('%', '').replace('_', '')}%"
        query = query.where(sa.or_(u.c.display_name.ilike(like), u.c.username.ilike(like)))
    with runtime().engine.connect() as conn:
        rows = conn.execute(query).all()
    return jsonify({"items": [{"id": r.id, "title": f"{r.display_name} ({r.username})"} for r in rows]})


@bp.get("/lookup/departments")
def pick_departments() -> Any:
    require_principal()
    d = systables.departments
    q = _q()
    query = sa.select(d.c.id, d.c.name).order_by(d.c.name).limit(PICKER_SIZE if q else 200)
    if q:
        query = query.where(d.c.name.ilike(f"%{q.replace('%', '').replace('_', '')}%"))
    with runtime().engine.connect() as conn:
        rows = conn.execute(query).all()
    return jsonify({"items": [{"id": r.id, "title": r.name} for r in rows]})


@bp.post("/records/<entity>/<int:record_id>/move")
def move(entity: str, record_id: int) -> Any:
    """Set one select field (a kanban drag): `{"field", "value", "version"}` → the record.

    Goes through the record service like any edit, so permissions, validation and the
    optimistic lock apply, and a refusal comes back with its reason. When the field is a
    workflow's state field (an opportunity's stage), the move fires the transition that
    leads there and that the user may fire now — never a direct write."""
    principal = require_principal()
    body = request_json()
    if not isinstance(body, dict) or not isinstance(body.get("field"), str) or "value" not in body:
        raise BadRequest('Send {"field": ..., "value": ..., "version": n}.')
    rt_ = runtime()
    with rt_.engine.begin() as conn:
        catalog = rt_.catalog(conn)
        f = catalog.get(entity).entity.active_field(body["field"])
        if f is None or f.type != "select":
            raise BadRequest(f"{body['field']} is not a select field of {entity}.", {"field": ["Not a select field."]})
        machine = next((m for m in machines_of(catalog, entity) if m.state_field == f.name), None)
        if machine is None:
            return jsonify(update_record(conn, catalog, principal, entity, record_id,
                                         {body["field"]: body["value"], "version": body.get("version")}))
        offered = [i for i in available(conn, catalog, principal, entity, record_id)["items"]
                   if i["kind"] == "transition" and i["workflow"] == machine.name and i.get("to") == body["value"]]
        if not offered:
            raise ValidationFailed(f"No step you may take now moves this {entity} to '{body['value']}'.",
                                   {f.name: ["Not reachable from the current stage by you."]})
        return jsonify(fire_transition(conn, catalog, principal, entity, record_id, offered[0]["name"],
                                       {"version": body.get("version")}))
