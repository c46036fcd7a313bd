"""The dedup engine's REST face (`/api/v1`, ARCHITECTURE.md):

* `POST /records/<entity>/duplicates` — a candidate record in (its field values; an `id`
  in it excludes that record, for an edit form), `{"matches": [...]}` out, scored by every
  dedup rule of the entity;
* `GET /admin/dedup/<entity>/groups?rule=&limit=` — groups of existing duplicates, for
  whoever holds the entity's `merge` action (merge a group with the `merge` action);
* `GET /duplicates/search?q=` — the global duplicate check (查重): a name or phone
  searched across every keyed entity (customers, the pool, leads, contacts), answering
  only that a match exists, its entity and its owner (plus id and title when readable).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from ..dedup import find_matches
from ..dedup.scan import duplicate_groups
from ..dedup.search import search_duplicates
from ..errors import BadRequest, PermissionDenied
from ..access import access_for
from .api import request_json
from .context import require_principal, runtime

bp = Blueprint("metacrm_dedup", __name__, url_prefix="/api/v1")


@bp.post("/records/<entity>/duplicates")
def duplicates_view(entity: str) -> Any:
    principal = require_principal()
    body = request_json()
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object with the candidate record's fields.")
    exclude = body.get("id")
    if exclude is not None and (isinstance(exclude, bool) or not isinstance(exclude, int)):
        raise BadRequest("id must be a record id (the record being edited), or absent.")
    rt = runtime()
    with rt.engine.connect() as conn:
        catalog = rt.catalog(conn)
        access = access_for(catalog.mset, principal, catalog.get(entity).entity)
        if not (access.allows("create") or access.allows("read")):
            raise PermissionDenied(f"You may not check {entity} records.")
        matches = find_matches(conn, catalog, principal, entity, body, on="any", exclude_id=exclude)
    return jsonify({"matches": [m.to_dict() for m in matches]})


@bp.get("/admin/dedup/<entity>/groups")
def groups_view(entity: str) -> Any:
    principal = require_principal()
    limit = request.args.get("limit", "100")
    if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= 1000:
        raise BadRequest("limit must be an integer from 1 to 1000.")
    rt = runtime()
    with rt.engine.connect() as conn:
        return jsonify(duplicate_groups(conn, rt.catalog(conn), principal, entity,
                                        rule=request.args.get("rule") or None, limit=int(limit)))


@bp.get("/duplicates/search")
def search_view() -> Any:
    principal = require_principal()
    rt = runtime()
    with rt.engine.connect() as conn:
        return jsonify(search_duplicates(conn, rt.catalog(conn), principal, request.args.get("q", "")))
