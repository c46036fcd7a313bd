"""The office module's JSON endpoints (`/api/v1/office`), beside the generic record API
that creates and edits schedules, tasks, logs and requests:

| call | does |
|---|---|
| `GET /office/workbench` | the caller's workbench: to-dos, tasks, today's schedule, pending approvals, team activity, unread announcements |
| `GET /office/announcements?page=&page_size=` | announcements meant for the caller, each with `read`, plus `unread` |
| `POST /office/announcements/<id>/read` | mark one read (what opening it on the screen does); answers the announcement |
| `GET /office/contacts?q=` | the address book: colleagues grouped by department |
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from ..errors import BadRequest
from ..office import announcements, contacts, workbench
from .context import require_principal, runtime

bp = Blueprint("metacrm_office_api", __name__, url_prefix="/api/v1/office")


def _int_arg(name: str, default: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from 1 to {high}.", {name: [f"Expected 1 to {high}."]})
    return int(raw)


def _jsonable(value: Any) -> Any:
    """Workbench dicts carry a few screen-only helpers (keys starting with `_`): drop them."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


@bp.get("/workbench")
def workbench_view() -> Any:
    principal = require_principal()
    rt = runtime()
    with rt.engine.connect() as conn:
        return jsonify(_jsonable(workbench.workbench(conn, rt.catalog(conn), principal, rt.timezone)))


@bp.get("/announcements")
def announcements_view() -> Any:
    principal = require_principal()
    rt = runtime()
    page, size = _int_arg("page", 1, 100000), _int_arg("page_size", 50, 500)
    with rt.engine.connect() as conn:
        catalog = rt.catalog(conn)
        announcements.require_installed(catalog)
        return jsonify(announcements.list_announcements(conn, catalog, principal, rt.timezone, page, size))


@bp.post("/announcements/<int:announcement_id>/read")
def announcement_read_view(announcement_id: int) -> Any:
    principal = require_principal()
    rt = runtime()
    with rt.engine.begin() as conn:
        catalog = rt.catalog(conn)
        announcements.require_installed(catalog)
        record = announcements.open_announcement(conn, catalog, principal, announcement_id, rt.timezone)
        record["unread"] = announcements.unread_count(conn, catalog, principal, rt.timezone)
        return jsonify(record)


@bp.get("/contacts")
def contacts_view() -> Any:
    require_principal()
    with runtime().engine.connect() as conn:
        return jsonify({"groups": contacts.address_book(conn, request.args.get("q"))})
