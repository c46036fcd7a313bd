"""List pages (`/r/<entity>`): views as tabs, sortable columns, the filter builder, saved
personal views, paging, bulk actions — and the kanban board for kanban views.

Every row comes from `list_records`, the API's own query, so a screen can never show a
record or a field that the API would refuse: scopes, hidden fields and masks are applied
in one place.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from metacrm.metadata.fieldtypes import FILTER_OPERATORS, RELATIVE_RANGES
from metacrm.metadata.model import View

from .. import saved_views
from ..access import access_for, scope_clause
from ..catalog import Catalog, EntityRuntime
from ..errors import BadRequest, ServiceError
from ..principal import Principal
from ..query import ListRequest, build_list_query, find_view, list_records, parse_list_args, query_context
from ..record_reads import require_access
from ..view_access import may_use_view
from ..records import delete_record, get_record, update_record
from .context import runtime
from .screen_context import flash_t, init_screen_blueprint, language, screen_principal, t
from .screen_support import expand_names, field_of, list_columns

bp = init_screen_blueprint(Blueprint("metacrm_lists", __name__))

#: Field types a kanban column can sum for its total (the first such column of the view).
SUMMABLE = ("currency", "decimal", "integer")
KANBAN_LIMIT = 200


def views_for(catalog: Catalog, entity: str, principal: Principal) -> list[View]:
    """The entity's views the user may use (runtime/view_access.py: no `roles` means
    everyone's; none filtering on a field hidden from them)."""
    access = access_for(catalog.mset, principal, catalog.get(entity).entity)
    return [view for (ent, _), view in catalog.mset.views.items()
            if ent == entity and may_use_view(view, principal, access)]


def _list_request(args: Any, view: View | None, saved: dict[str, Any] | None, expand: list[str]) -> ListRequest:
    req = parse_list_args(args)
    if saved:
        req = replace(req, filters=list(saved["filters"]) + list(req.filters),
                      sort=req.sort or [tuple(s) for s in saved["sort"]], q=req.q or saved["q"])
    return replace(req, view=view.name if view else None, expand=expand)


def _filter_fields(rt: EntityRuntime, access: Any, lang: str) -> list[dict[str, Any]]:
    """What the filter builder offers: the fields the user may filter on, with their kind."""
    out = []
    for f in list(rt.entity.system_fields) + list(rt.entity.active_fields):
        if f.name in access.unreadable or f.type in ("table", "location", "file", "image", "reference") \
                or f.name in ("version", "parent_id", "idx"):
            continue
        out.append({"name": f.name, "label": f.label.get(lang), "kind": f.value_kind, "type": f.type,
                    "options": [{"value": o.value, "label": o.label.get(lang)} for o in f.options],
                    "target": f.target})
    return out


@bp.get("/r/<entity>")
def list_page(entity: str) -> Any:
    principal = screen_principal()
    rt_ = runtime()
    lang = language()
    with rt_.engine.connect() as conn:
        catalog = rt_.catalog(conn)
        rt = catalog.get(entity)
        if rt.entity.child_of:
            raise BadRequest(f"{entity} rows are edited inside their parent record.")
        access = require_access(catalog, principal, rt, "read")
        views = views_for(catalog, entity, principal)
        mine = saved_views.list_saved(conn, principal.user_id, entity) if principal.user_id else []
        saved = None
        if request.args.get("saved"):
            raw = request.args["saved"]
            if not (raw.isascii() and raw.isdigit()):
                raise BadRequest("saved must be a saved view's id.")
            saved = saved_views.get_saved(conn, principal.user_id, entity, int(raw))
        view_name = request.args.get("view") or (saved or {}).get("base_view")
        view = next((v for v in views if v.name == view_name), None) if view_name else (views[0] if views else None)
        if view_name and view is None:
            find_view(catalog, rt, view_name, principal, access)  # 403 saying why, or 400 for no such view
            raise BadRequest(f"No view named '{view_name}' for {entity} that you may use.")
        columns = list_columns(rt.entity, view, access)
        req = _list_request(request.args, view, saved, expand_names(columns, access))
        if view is not None and view.type == "kanban" and view.group_by:
            return _kanban(conn, catalog, principal, rt, access, view, views, mine, req, columns, lang)
        result = list_records(conn, catalog, principal, entity, req, rt_.timezone)
    pages = max(1, -(-result["total"] // result["page_size"]))
    sort = req.sort or (view.sort if view else ())
    return render_template(
        "list.html", rt=rt, entity=rt.entity, access=access, views=views, view=view, saved_views=mine,
        saved=saved, columns=columns, result=result, pages=pages, sort=list(sort), req=req,
        filter_json=json.dumps(list(parse_list_args(request.args).filters), ensure_ascii=False),
        filter_fields=_filter_fields(rt, access, lang), operators=FILTER_OPERATORS,
        relative_ranges=RELATIVE_RANGES, can_create=access.allows("create"),
        can_delete=access.allows("delete"), can_transfer=rt.entity.ownership and access.allows("transfer"),
        can_export=access.allows("export"), args=request.args)


def _kanban(conn: sa.Connection, catalog: Catalog, principal: Principal, rt: EntityRuntime, access: Any,
            view: View, views: list[View], mine: list[dict[str, Any]], req: ListRequest, columns: list[Any],
            lang: str) -> Any:
    """Cards grouped by the view's select field, with per-column count and amount totals
    computed in SQL over every matching record (not just the cards shown)."""
    group = field_of(rt.entity, view.group_by or "")
    if group is None or group.type != "select" or group.name in access.unreadable:
        raise BadRequest(f"The kanban view {view.name} needs a select field you may read to group by.")
    amount = next((c for c in columns if c.type in SUMMABLE and c.name not in access.masked), None)
    req = replace(req, page=1, page_size=KANBAN_LIMIT)
    result = list_records(conn, catalog, principal, rt.name, req, runtime().timezone)
    ctx = query_context(principal, runtime().timezone, access.unreadable)
    scope = scope_clause(rt.table, rt.entity, principal, access, "read", conn)
    _, count, _, _ = build_list_query(rt, view, req, ctx, scope)
    col = rt.table.c[group.name]
    measures = [sa.func.count()] + ([sa.func.coalesce(sa.func.sum(rt.table.c[amount.name]), 0)] if amount else [])
    totals = {row[0]: row[1:] for row in conn.execute(
        sa.select(col, *measures).where(count.whereclause).group_by(col))}
    lanes = []
    for option in group.options:
        n, *rest = totals.get(option.value, (0, 0))
        lanes.append({"value": option.value, "label": option.label.get(lang), "count": n,
                      "amount": rest[0] if rest else None,
                      "cards": [r for r in result["items"] if r.get(group.name) == option.value]})
    return render_template("kanban.html", rt=rt, entity=rt.entity, access=access, views=views, view=view,
                           saved_views=mine, saved=None, columns=columns, lanes=lanes, group=group,
                           amount_field=amount, result=result, can_create=access.allows("create"),
                           limit=KANBAN_LIMIT, args=request.args)


@bp.post("/r/<entity>/views")
def save_view(entity: str) -> Response:
    """Save the current filter, sort and search as a personal view."""
    principal = screen_principal()
    rt_ = runtime()
    with rt_.engine.begin() as conn:
        catalog = rt_.catalog(conn)
        rt = catalog.get(entity)
        require_access(catalog, principal, rt, "read")
        base = request.form.get("base_view") or None
        req = parse_list_args({k: request.form.get(k, "") for k in ("filter", "sort", "q")})
        # Build the query once: a filter the user may not use is refused now, not later.
        access = access_for(catalog.mset, principal, rt.entity)
        view = next((v for v in views_for(catalog, entity, principal) if v.name == base), None)
        build_list_query(rt, view, req, query_context(principal, rt_.timezone, access.unreadable))
        label = request.form.get("label", "")
        view_id = saved_views.save_view(conn, principal.user_id, entity, label, req.filters, req.sort, req.q,
                                        view.name if view else None)
    flash_t("view_saved", name=label.strip())
    return redirect(url_for("metacrm_lists.list_page", entity=entity, saved=view_id))


@bp.post("/r/<entity>/views/<int:view_id>/delete")
def delete_saved_view(entity: str, view_id: int) -> Response:
    principal = screen_principal()
    with runtime().engine.begin() as conn:
        saved_views.delete_view(conn, principal.user_id, entity, view_id)
    flash_t("view_deleted")
    return redirect(url_for("metacrm_lists.list_page", entity=entity))


@bp.post("/r/<entity>/bulk")
def bulk(entity: str) -> Any:
    """Transfer or delete the selected records, each through the record service; a record
    refused (scope, lock, reference) is reported and the others still go through."""
    principal = screen_principal()
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or body.get("action") not in ("transfer", "delete") \
            or not isinstance(body.get("ids"), list) or not body["ids"] or len(body["ids"]) > 500 \
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in body["ids"]):
        raise BadRequest('Send {"action": "transfer" | "delete", "ids": [...], "to_user": id}.')
    to_user = body.get("to_user")
    if body["action"] == "transfer" and (isinstance(to_user, bool) or not isinstance(to_user, int)):
        raise BadRequest("Choose the user to transfer to.", {"to_user": ["Choose a user."]})
    rt_ = runtime()
    done, refused = [], []
    with rt_.engine.begin() as conn:
        catalog = rt_.catalog(conn)
        for record_id in dict.fromkeys(body["ids"]):
            try:
                with conn.begin_nested():
                    if body["action"] == "delete":
                        delete_record(conn, catalog, principal, entity, record_id)
                    else:
                        current = get_record(conn, catalog, principal, entity, record_id)
                        update_record(conn, catalog, principal, entity, record_id,
                                      {"owner": to_user, "version": current["version"]})
                done.append(record_id)
            except ServiceError as exc:
                refused.append({"id": record_id, "message": exc.message, "fields": exc.fields})
    return jsonify({"done": done, "refused": refused,
                    "message": t("bulk_done", ok=len(done), failed=len(refused))})
