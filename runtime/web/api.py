"""The REST API of the records and the published metadata (`/api/v1`, ARCHITECTURE.md).

Each view parses the request, opens one transaction, and calls the record service or
the query builder with the acting principal. Nothing here touches a table directly.
"""
from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from ..actions import run_action
from ..catalog import Catalog
from .. import notifications
from ..errors import BadRequest
from ..query import list_records, parse_list_args
from ..records import create_record, delete_record, get_record, record_history, update_record
from .context import require_principal, runtime
from .meta import entity_detail, entity_summary, may_use
from .openapi import ERROR, openapi_document
from .openapi_routes import route_paths

bp = Blueprint("metacrm_api", __name__, url_prefix="/api/v1")


def request_json() -> Any:
    """The request's JSON body, or None when it is missing or not JSON.

    A body nested deeper than the parser's recursion limit (`[[[[...`) raises
    RecursionError, not ValueError, so `silent=True` alone would let it become a 500.
    JSON may also spell an unpaired surrogate (`"\\ud800"`), which Python parses but no
    database can store and no response can echo back as UTF-8: refused here, once.
    """
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        return None
    if body is not None:
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except RecursionError:
            return None
        except UnicodeEncodeError:
            raise BadRequest("The JSON body contains an unpaired surrogate (a broken \\uXXXX escape).") from None
    return body


def optional_json_body() -> Any:
    """The JSON body of a call whose body may be left out entirely ({} then); a body
    that is there but isn't JSON is a 400."""
    if not request.content_length:
        return {}
    body = request_json()
    if body is None:
        raise BadRequest("The request body must be JSON (Content-Type: application/json).")
    return body


def _json_body() -> Any:
    body = request_json()
    if body is None:
        raise BadRequest("The request body must be JSON (Content-Type: application/json).")
    return body


def _expand() -> list[str]:
    return [e.strip() for e in (request.args.get("expand") or "").split(",") if e.strip()]


@bp.get("/openapi.json")
def openapi() -> Any:
    principal = require_principal()
    rt = runtime()
    catalog: Catalog = rt.catalog()
    others = route_paths(current_app.url_map.iter_rules(), current_app.view_functions,
                         is_admin=principal.is_admin, error=ERROR)
    return jsonify(openapi_document(catalog, principal, request.host_url.rstrip("/"), others))


@bp.get("/meta/entities")
def meta_entities() -> Any:
    principal = require_principal()
    catalog = runtime().catalog()
    items = [entity_summary(catalog, e, principal) for e in catalog.mset.active_entities
             if not e.child_of and may_use(catalog, e, principal)]
    return jsonify({"items": items, "version": catalog.version})


@bp.get("/meta/entities/<entity>")
def meta_entity(entity: str) -> Any:
    principal = require_principal()
    catalog = runtime().catalog()
    return jsonify(entity_detail(catalog, catalog.get(entity).entity, principal))


@bp.get("/records/<entity>")
def list_view(entity: str) -> Any:
    principal = require_principal()
    rt = runtime()
    req = parse_list_args(request.args)
    with rt.engine.connect() as conn:
        catalog = rt.catalog(conn)
        return jsonify(list_records(conn, catalog, principal, entity, req, rt.timezone))


@bp.post("/records/<entity>")
def create_view(entity: str) -> Any:
    principal = require_principal()
    rt = runtime()
    body = _json_body()
    with rt.engine.begin() as conn:
        record = create_record(conn, rt.catalog(conn), principal, entity, body)
    return jsonify(record), 201


@bp.get("/records/<entity>/<int:record_id>")
def read_view(entity: str, record_id: int) -> Any:
    principal = require_principal()
    rt = runtime()
    with rt.engine.connect() as conn:
        return jsonify(get_record(conn, rt.catalog(conn), principal, entity, record_id, _expand()))


@bp.patch("/records/<entity>/<int:record_id>")
def update_view(entity: str, record_id: int) -> Any:
    principal = require_principal()
    rt = runtime()
    body = _json_body()
    with rt.engine.begin() as conn:
        return jsonify(update_record(conn, rt.catalog(conn), principal, entity, record_id, body))


@bp.delete("/records/<entity>/<int:record_id>")
def delete_view(entity: str, record_id: int) -> Any:
    principal = require_principal()
    rt = runtime()
    version = request.args.get("version")
    # isascii(): str.isdigit() also accepts "²", which int() then refuses.
    if version is not None and not (version.isascii() and version.isdigit()):
        raise BadRequest("version must be an integer.")
    with rt.engine.begin() as conn:
        delete_record(conn, rt.catalog(conn), principal, entity, record_id,
                      int(version) if version is not None else None)
    return "", 204


@bp.get("/records/<entity>/<int:record_id>/history")
def history_view(entity: str, record_id: int) -> Any:
    principal = require_principal()
    rt = runtime()
    with rt.engine.connect() as conn:
        return jsonify({"items": record_history(conn, rt.catalog(conn), principal, entity, record_id)})


@bp.post("/records/<entity>/<int:record_id>/actions/<action>")
def action_view(entity: str, record_id: int, action: str) -> Any:
    """An entity action (convert, claim, assign, release, merge, ...): see runtime/actions.py."""
    principal = require_principal()
    rt = runtime()
    body = optional_json_body()
    with rt.engine.begin() as conn:
        return jsonify(run_action(conn, rt.catalog(conn), principal, entity, record_id, action, body))


@bp.get("/notifications")
def notifications_view() -> Any:
    """The caller's notifications, newest first (`?unread=1` for unread only), with the unread count."""
    principal = require_principal()
    rt = runtime()
    with rt.engine.connect() as conn:
        return jsonify({"items": notifications.list_notifications(conn, principal.user_id,
                                                                  unread_only=request.args.get("unread") == "1"),
                        "unread": notifications.unread_count(conn, principal.user_id)})


@bp.post("/notifications/read")
def notifications_read_view() -> Any:
    """Mark notifications read: `{"ids": [...]}`, or every one when no ids are given."""
    principal = require_principal()
    body = optional_json_body()
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(body, dict) or (ids is not None and (
            not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids))):
        raise BadRequest("Expected {\"ids\": [notification ids]} or an empty body.")
    rt = runtime()
    with rt.engine.begin() as conn:
        changed = notifications.mark_read(conn, principal.user_id, ids)
        return jsonify({"marked": changed, "unread": notifications.unread_count(conn, principal.user_id)})
