"""The shell's pages: the workbench (`/`), global search and the language switch.

The list, record and form pages are in `screen_lists.py` and `screen_records.py`; what
all of them share (sign-in guard, language, navigation, error pages) is in
`screen_context.py`.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .. import notifications, systables
from ..access import access_for
from ..errors import BadRequest
from ..office.workbench import workbench as office_workbench
from ..query import ListRequest, list_records
from .context import runtime
from .screen_context import LANGUAGES, init_screen_blueprint, screen_principal
from .screen_support import expand_names, list_columns

bp = init_screen_blueprint(Blueprint("metacrm_screens", __name__, template_folder="templates",
                                     static_folder="static", static_url_path="/static/metacrm"))

SEARCH_HITS = 5


@bp.get("/")
def workbench() -> Any:
    """工作台: to-dos, my tasks, today's schedule, approvals waiting, team activity
    (runtime/office/workbench.py reads them, within the user's data scope)."""
    principal = screen_principal()
    rt_ = runtime()
    with rt_.engine.connect() as conn:
        catalog = rt_.catalog(conn)
        board = office_workbench(conn, catalog, principal, rt_.timezone)
        entities = {name: e.entity for name, e in catalog.entities.items()}
        items = notifications.list_notifications(conn, principal.user_id, limit=10) if principal.user_id else []
    return render_template("workbench.html", board=board, entities=entities, notifications=items)


@bp.get("/search")
def search() -> Any:
    """Every entity the user may read that has searchable fields, a few hits each."""
    principal = screen_principal()
    q = (request.args.get("q") or "").strip()
    groups = []
    if q:
        rt_ = runtime()
        with rt_.engine.connect() as conn:
            catalog = rt_.catalog(conn)
            for entity in catalog.mset.active_entities:
                access = access_for(catalog.mset, principal, entity)
                if entity.child_of or not access.allows("read") or not any(
                        f.searchable and f.name not in access.unreadable for f in entity.active_fields):
                    continue
                columns = list_columns(entity, None, access)[:4]
                result = list_records(conn, catalog, principal, entity.name,
                                      ListRequest(q=q, page_size=SEARCH_HITS,
                                                  expand=expand_names(columns, access)), rt_.timezone)
                if result["total"]:
                    groups.append({"entity": entity, "columns": columns, "result": result})
    return render_template("search.html", q=q, groups=groups)


@bp.post("/lang")
def switch_language() -> Response:
    """Switch the signed-in user's language (kept on their account)."""
    principal = screen_principal()
    chosen = request.form.get("language")
    if chosen not in LANGUAGES:
        raise BadRequest("language must be en or zh.", {"language": ["Choose en or zh."]})
    with runtime().engine.begin() as conn:
        conn.execute(sa.update(systables.users).where(systables.users.c.id == principal.user_id)
                     .values(language=chosen))
    back = request.form.get("next") or url_for("metacrm_screens.workbench")
    if not back.startswith("/") or back.startswith("//"):
        back = url_for("metacrm_screens.workbench")
    return redirect(back)


@bp.post("/notifications/read")
def read_notifications() -> Response:
    principal = screen_principal()
    with runtime().engine.begin() as conn:
        notifications.mark_read(conn, principal.user_id)
    return redirect(request.referrer if request.referrer and request.referrer.startswith(request.host_url)
                    else url_for("metacrm_screens.workbench"))
