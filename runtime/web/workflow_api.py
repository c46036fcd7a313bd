"""The REST face of the workflow engine (`/api/v1`, ARCHITECTURE.md):

| call | does |
|---|---|
| `POST /records/<entity>/<id>/transitions/<name>` | fire a transition or approval decision; answers the updated record |
| `GET /records/<entity>/<id>/transitions` | what the caller may fire now (and the record's states) |
| `GET /records/<entity>/<id>/approvals` | approvals of the record: steps, who is pending, trail, snapshot |
| `POST /records/<entity>/<id>/approval-preview`, `POST /records/<entity>/approval-preview` | the path a submission would take |
| `GET /approvals/inbox?box=pending|submitted|decided&page=&page_size=` | the caller's inbox, with counts of all three |
| `GET/POST /approvals/delegations`, `DELETE /approvals/delegations/<id>` | delegations while away |
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from ..errors import BadRequest
from ..workflow.delegation import create_delegation, list_delegations, revoke_delegation
from ..workflow.engine import fire_transition
from ..workflow.reading import available, inbox, preview, record_approvals
from .api import optional_json_body
from .context import require_principal, runtime

bp = Blueprint("metacrm_workflow", __name__, url_prefix="/api/v1")


def _int_arg(name: str, default: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from 1 to {high}.")
    return int(raw)


@bp.post("/records/<entity>/<int:record_id>/transitions/<name>")
def transition_view(entity: str, record_id: int, name: str) -> Any:
    principal = require_principal()
    rt = runtime()
    body = optional_json_body()
    with rt.engine.begin() as conn:
        return jsonify(fire_transition(conn, rt.catalog(conn), principal, entity, record_id, name, body))


@bp.get("/records/<entity>/<int:record_id>/transitions")
def transitions_view(entity: str, record_id: int) -> Any:
    principal = require_principal()
    rt = runtime()
    with rt.engine.connect() as conn:
        return jsonify(available(conn, rt.catalog(conn), principal, entity, record_id))


@bp.get("/records/<entity>/<int:record_id>/approvals")
def approvals_view(entity: str, record_id: int) -> Any:
    principal = require_principal()
    rt = runtime()
    with rt.engine.connect() as conn:
        return jsonify(record_approvals(conn, rt.catalog(conn), principal, entity, record_id))


@bp.post("/records/<entity>/<int:record_id>/approval-preview")
def preview_view(entity: str, record_id: int) -> Any:
    principal = require_principal()
    rt = runtime()
    body = optional_json_body()
    with rt.engine.connect() as conn:
        return jsonify(preview(conn, rt.catalog(conn), principal, entity, record_id, body))


@bp.post("/records/<entity>/approval-preview")
def draft_preview_view(entity: str) -> Any:
    principal = require_principal()
    rt = runtime()
    body = optional_json_body()
    with rt.engine.connect() as conn:
        return jsonify(preview(conn, rt.catalog(conn), principal, entity, None, body))


@bp.get("/approvals/inbox")
def inbox_view() -> Any:
    principal = require_principal()
    rt = runtime()
    box = request.args.get("box", "pending")
    page, size = _int_arg("page", 1, 100000), _int_arg("page_size", 50, 500)
    with rt.engine.connect() as conn:
        return jsonify(inbox(conn, rt.catalog(conn), principal, box, page, size))


@bp.get("/approvals/delegations")
def delegations_view() -> Any:
    principal = require_principal()
    rt = runtime()
    with rt.engine.connect() as conn:
        return jsonify({"items": list_delegations(conn, principal, request.args.get("all") == "1")})


@bp.post("/approvals/delegations")
def delegation_create_view() -> Any:
    principal = require_principal()
    rt = runtime()
    body = optional_json_body()
    with rt.engine.begin() as conn:
        return jsonify(create_delegation(conn, principal, body)), 201


@bp.delete("/approvals/delegations/<int:delegation_id>")
def delegation_delete_view(delegation_id: int) -> Any:
    principal = require_principal()
    rt = runtime()
    with rt.engine.begin() as conn:
        revoke_delegation(conn, principal, delegation_id)
    return "", 204
