"""Record pages and forms: `/r/<entity>/<id>`, `/r/<entity>/new`, `/r/<entity>/<id>/edit`.

A form posts to the server like any HTML form (it works without JavaScript); the record
service validates it, and a refused save re-renders the same form with the user's input
and each error under its field, so nothing typed is lost. A conflicting edit (someone
saved first) keeps the input too and offers to reload. JavaScript only adds live
conditions and formulas (`/form-state`, computed by the server) and type-ahead lookups.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa
from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from metacrm.metadata.model import Entity, Field, Form, FormSection, View

from ..access import Access, access_for
from ..catalog import Catalog, EntityRuntime
from ..errors import BadRequest, Conflict, PermissionDenied, ServiceError, ValidationFailed
from ..form_state import form_state
from ..principal import Principal
from ..query import ListRequest, list_records
from ..record_reads import fetch_row, python_record, require_access
from ..record_writes import condition_holds
from ..view_access import may_use_view
from ..records import create_record, delete_record, get_record, record_history, update_record
from .context import runtime
from .form_files import with_uploads
from .form_input import form_payload
from .screen_context import flash_t, init_screen_blueprint, language, screen_principal, t
from .screen_support import expand_names, list_columns
from ..workflow.guard import approver_fields, locked_error, locking_machine
from ..workflow.machine import machines_of
from ..workflow.reading import available, record_approvals

bp = init_screen_blueprint(Blueprint("metacrm_records", __name__))

RELATED_ROWS = 10
#: Fields a follow-up sets on the record it is about, when that record has them.


# ------------------------------------------------------------------ layout

def form_layout(catalog: Catalog, entity: Entity, access: Access) -> list[FormSection]:
    """The entity's default form, without fields hidden from the user; without a form,
    one section with every field."""
    form: Form | None = catalog.mset.forms.get((entity.name, "default")) or next(
        (f for (e, _), f in catalog.mset.forms.items() if e == entity.name), None)
    if form is None:
        names = tuple(f.name for f in entity.active_fields if f.type not in ("autonumber",))
        sections = (FormSection(label=entity.label, fields=names, columns=2),)
    else:
        sections = form.sections
    out = []
    for s in sections:
        names = tuple(n for n in s.fields if entity.active_field(n) is not None and n not in access.hidden)
        if names:
            out.append(FormSection(label=s.label, fields=names, columns=s.columns, visible_when=s.visible_when))
    return out


def _form_fields(sections: list[FormSection]) -> list[str]:
    return [n for s in sections for n in s.fields]


@dataclass
class Related:
    entity: Entity
    field: Field
    columns: list[Field]
    result: dict[str, Any]
    filter_json: str


def _first_table_view(catalog: Catalog, entity: Entity, principal: Principal, access: Access) -> View | None:
    """The columns people chose for an entity's lists are the ones its related list shows:
    its first table view the user may use (None: the title and first fields)."""
    return next((v for (name, _), v in catalog.mset.views.items()
                 if name == entity.name and v.type == "table" and may_use_view(v, principal, access)), None)


def related_lists(conn: sa.Connection, catalog: Catalog, principal: Principal, rt: EntityRuntime,
                  record_id: int) -> list[Related]:
    """Every entity that points at this one by a lookup (a customer's contacts,
    opportunities, contracts…), as much of each as the user may read."""
    out = []
    for other in catalog.mset.active_entities:
        if other.child_of or other.name == "followup":
            continue
        access = access_for(catalog.mset, principal, other)
        if not access.allows("read"):
            continue
        for f in other.active_fields:
            if f.type != "lookup" or f.target != rt.name or f.name in access.unreadable:
                continue
            filters = [[f.name, "=", record_id]]
            shown = [c for c in list_columns(other, _first_table_view(catalog, other, principal, access), access)
                     if c.type not in ("textarea", "richtext", "location", "file", "image")
                     and c.name != f.name][:5]
            req = ListRequest(filters=filters, page_size=RELATED_ROWS, expand=expand_names(shown, access))
            result = list_records(conn, catalog, principal, other.name, req, runtime().timezone)
            out.append(Related(other, f, shown, result, json.dumps(filters)))
    return out


def timeline(conn: sa.Connection, catalog: Catalog, principal: Principal, rt: EntityRuntime,
             record_id: int) -> list[dict[str, Any]]:
    """Follow-ups about this record and its field history, newest first, in one stream."""
    items: list[dict[str, Any]] = []
    followup = catalog.entities.get("followup")
    subject = followup.entity.active_field("subject") if followup else None
    if followup and subject and rt.name in subject.targets and \
            access_for(catalog.mset, principal, followup.entity).allows("read"):
        req = ListRequest(filters=[["subject", "=", {"entity": rt.name, "id": record_id}]], page_size=50,
                          sort=[("created_at", "desc")], expand=["owner"])
        for r in list_records(conn, catalog, principal, "followup", req, runtime().timezone)["items"]:
            items.append({"kind": "followup", "at": r["created_at"], "record": r})
    for h in record_history(conn, catalog, principal, rt.name, record_id):
        items.append({"kind": "history", "at": h["at"], "item": h})
    items.sort(key=lambda i: str(i["at"]), reverse=True)
    return items


def _user_names(conn: sa.Connection, ids: set[int]) -> dict[int, str]:
    from .. import systables

    if not ids:
        return {}
    u = systables.users
    return {r.id: r.display_name for r in conn.execute(sa.select(u.c.id, u.c.display_name).where(u.c.id.in_(ids)))}


# ------------------------------------------------------------------ pages

@bp.get("/r/<entity>/<int:record_id>")
def record_page(entity: str, record_id: int) -> Any:
    principal = screen_principal()
    rt_ = runtime()
    with rt_.engine.connect() as conn:
        catalog = rt_.catalog(conn)
        rt = catalog.get(entity)
        access = require_access(catalog, principal, rt, "read")
        sections = form_layout(catalog, rt.entity, access)
        shown = [rt.entity.active_field(n) for n in _form_fields(sections)] + \
            [f for f in rt.entity.system_fields if f.name in ("owner", "department", "created_by", "updated_by")]
        record = get_record(conn, catalog, principal, entity, record_id,
                            expand_names([f for f in shown if f is not None], access))
        stored = python_record(rt, fetch_row(conn, rt, record_id))
        hidden_now = {f.name for f in rt.entity.active_fields if f.visible_when and not condition_holds(f.visible_when, stored)}
        sections = [FormSection(label=s.label, fields=tuple(n for n in s.fields if n not in hidden_now),
                                columns=s.columns, visible_when=s.visible_when) for s in sections]
        sections = [s for s in sections if s.fields]
        related = related_lists(conn, catalog, principal, rt, record_id)
        stream = timeline(conn, catalog, principal, rt, record_id)
        names = _user_names(conn, {i["item"]["by"] for i in stream if i["kind"] == "history" and i["item"]["by"]})
        workflow = available(conn, catalog, principal, entity, record_id) if machines_of(catalog, entity) else None
        trail = record_approvals(conn, catalog, principal, entity, record_id) if workflow else None
        followup = catalog.entities.get("followup")
        can_followup = bool(followup and (s := followup.entity.active_field("subject")) and entity in s.targets
                            and access_for(catalog.mset, principal, followup.entity).allows("create"))
    header = [rt.entity.active_field(n) for n in _form_fields(sections)[:6]]
    return render_template(
        "record.html", rt=rt, entity=rt.entity, record=record, access=access, sections=sections,
        header=[f for f in header if f is not None and f.name != rt.entity.title_field and f.type != "table"][:5],
        related=related, timeline=stream, user_names=names, can_followup=can_followup,
        workflow=workflow, approvals=trail,
        followup_entity=followup.entity if followup else None,
        can_edit=access.allows("update") and not _locked_for(workflow, trail),
        can_delete=access.allows("delete") and not (workflow and any(w["locked"] for w in workflow["workflows"])),
        title=_title(rt.entity, record))


def _locked_for(workflow: Mapping[str, Any] | None, trail: Mapping[str, Any] | None) -> bool:
    """A locked workflow state hides Edit, except from an approver whose step may edit fields."""
    if not workflow or not any(w["locked"] for w in workflow["workflows"]):
        return False
    current = (trail or {}).get("current") or {}
    return not current.get("my_editable_fields")


def _refuse_locked(conn: sa.Connection, catalog: Catalog, principal: Principal, rt: EntityRuntime,
                   record_id: int) -> None:
    """The edit form of a locked record (pending approval, approved…) is refused up front —
    the record service would refuse the save anyway — unless the user is an approver whose
    step lets them edit some fields."""
    machine = locking_machine(catalog, rt, python_record(rt, fetch_row(conn, rt, record_id)))
    if machine is not None and approver_fields(conn, catalog, principal, rt, record_id) is None:
        raise locked_error(catalog, rt, machine, python_record(rt, fetch_row(conn, rt, record_id)),
                           principal.language)


def _title(entity: Entity, record: Mapping[str, Any]) -> str:
    value = record.get(entity.title_field)
    return str(value) if value not in (None, "") else f"{entity.label.get(language())} #{record.get('id')}"


def _render_form(rt: EntityRuntime, catalog: Catalog, principal: Principal, access: Access, record: dict[str, Any],
                 errors: Mapping[str, list[str]] | None = None, message: str | None = None,
                 conflict: bool = False, status: int = 200) -> Any:
    sections = form_layout(catalog, rt.entity, access)
    children = {}
    for name, child in rt.children.items():
        child_access = access_for(catalog.mset, principal, child.entity)
        layout = form_layout(catalog, child.entity, child_access)
        shown = {n for sec in layout for n in sec.fields}
        # Computed columns (a line's amount) show beside the inputs even when the form omits them.
        extra = tuple(f.name for f in child.formulas if f.name not in shown and f.name not in child_access.hidden)
        if extra and layout:
            last = layout[-1]
            layout[-1] = FormSection(label=last.label, fields=last.fields + extra, columns=last.columns,
                                     visible_when=last.visible_when)
        totals = [f for f in rt.formulas if f.name not in access.hidden and f"{name}." in (f.expression or "")
                  and f.name not in _form_fields(sections)]
        children[name] = (child, layout, totals)
    return render_template(
        "form.html", rt=rt, entity=rt.entity, record=record, access=access, sections=sections,
        children=children, errors=errors or {}, message=message, conflict=conflict,
        is_new=record.get("id") is None, title=_title(rt.entity, record) if record.get("id") else None), status


@bp.route("/r/<entity>/new", methods=["GET", "POST"])
def new_record(entity: str) -> Any:
    principal = screen_principal()
    rt_ = runtime()
    with rt_.engine.begin() as conn:
        catalog = rt_.catalog(conn)
        rt = catalog.get(entity)
        if rt.entity.child_of:
            raise BadRequest(f"{entity} rows are edited inside their parent record.")
        access = require_access(catalog, principal, rt, "create")
        if request.method == "GET":
            # Prefill from the query string (e.g. "new contact" from a customer's page).
            draft: dict[str, Any] = {f.name: f.default for f in rt.entity.active_fields
                                     if f.default is not None and not (isinstance(f.default, str)
                                                                       and f.default.startswith("$"))}
            draft.update({k: v for k, v in request.args.items() if rt.entity.active_field(k) is not None})
            return _render_form(rt, catalog, principal, access, draft)
        fields = _form_fields(form_layout(catalog, rt.entity, access))
        try:
            form = with_uploads(conn, catalog, principal, rt, request.form, request.files)
        except ValidationFailed as exc:
            return _render_form(rt, catalog, principal, access, form_payload(rt, request.form, fields, rt_.timezone),
                                exc.fields, exc.message, status=422)
        payload = form_payload(rt, form, fields, rt_.timezone)
        try:
            with conn.begin_nested():
                record = create_record(conn, catalog, principal, entity, payload)
        except (ValidationFailed, PermissionDenied, BadRequest) as exc:
            return _render_form(rt, catalog, principal, access, payload, exc.fields, exc.message, status=422)
        except Conflict as exc:  # a dedup block and the like: keep the input, say why
            return _render_form(rt, catalog, principal, access, payload, exc.fields, exc.message, status=409)
    flash_t("created")
    if request.form.get("then") == "new":
        return redirect(url_for("metacrm_records.new_record", entity=entity))
    return redirect(url_for("metacrm_records.record_page", entity=entity, record_id=record["id"]))


@bp.route("/r/<entity>/<int:record_id>/edit", methods=["GET", "POST"])
def edit_record(entity: str, record_id: int) -> Any:
    principal = screen_principal()
    rt_ = runtime()
    with rt_.engine.begin() as conn:
        catalog = rt_.catalog(conn)
        rt = catalog.get(entity)
        access = require_access(catalog, principal, rt, "update")
        sections = form_layout(catalog, rt.entity, access)
        expand = expand_names([f for n in _form_fields(sections) if (f := rt.entity.active_field(n))], access)
        current = get_record(conn, catalog, principal, entity, record_id, expand)
        _refuse_locked(conn, catalog, principal, rt, record_id)
        if request.method == "GET":
            return _render_form(rt, catalog, principal, access, current)
        try:
            form = with_uploads(conn, catalog, principal, rt, request.form, request.files)
        except ValidationFailed as exc:
            draft = {**current, **form_payload(rt, request.form, _form_fields(sections), rt_.timezone)}
            return _render_form(rt, catalog, principal, access, draft, exc.fields, exc.message, status=422)
        payload = form_payload(rt, form, _form_fields(sections), rt_.timezone)
        version = request.form.get("version", "")
        payload["version"] = int(version) if version.isascii() and version.isdigit() else version
        # A refused save re-renders the user's input with the version they started from:
        # after a conflict, saving again conflicts again until they reload, so a
        # colleague's change is never overwritten by values the user didn't touch.
        draft = {**current, **payload}
        try:
            with conn.begin_nested():
                update_record(conn, catalog, principal, entity, record_id, payload)
        except Conflict as exc:
            return _render_form(rt, catalog, principal, access, draft, exc.fields, exc.message,
                                conflict="current_version" in exc.extra, status=409)
        except ServiceError as exc:
            return _render_form(rt, catalog, principal, access, draft, exc.fields, exc.message, status=exc.status)
    flash_t("saved")
    return redirect(url_for("metacrm_records.record_page", entity=entity, record_id=record_id))


@bp.post("/r/<entity>/<int:record_id>/delete")
def delete(entity: str, record_id: int) -> Any:
    principal = screen_principal()
    rt_ = runtime()
    version = request.form.get("version", "")
    with rt_.engine.begin() as conn:
        delete_record(conn, rt_.catalog(conn), principal, entity, record_id,
                      int(version) if version.isascii() and version.isdigit() else None)
    flash_t("deleted")
    return redirect(url_for("metacrm_lists.list_page", entity=entity))


@bp.post("/r/<entity>/<int:record_id>/followup")
def add_followup(entity: str, record_id: int) -> Any:
    """A follow-up about this record; its time and next date roll up onto the record
    (last/next follow-up), which is what reminders and pool recycling read."""
    principal = screen_principal()
    rt_ = runtime()
    with rt_.engine.begin() as conn:
        catalog = rt_.catalog(conn)
        followup = catalog.get("followup")
        payload = form_payload(followup, request.form, ("type", "content", "contact", "next_followup_at"),
                               rt_.timezone)
        payload["subject"] = {"entity": entity, "id": record_id}
        try:
            with conn.begin_nested():  # the follow-up and its roll-up onto this record (the subject's `rollup`)
                create_record(conn, catalog, principal, "followup", payload)
        except ServiceError as exc:
            flash(f"{t('error')}: {exc.message}", "danger")
            return redirect(url_for("metacrm_records.record_page", entity=entity, record_id=record_id) + "#timeline")
    flash_t("followup_saved")
    return redirect(url_for("metacrm_records.record_page", entity=entity, record_id=record_id) + "#timeline")


@bp.post("/r/<entity>/form-state")
def form_state_view(entity: str) -> Any:
    """Live conditions and formulas for the form being typed: the browser posts the form
    as it stands (the same fields a save would post), the server answers JSON."""
    principal = screen_principal()
    rt_ = runtime()
    raw_id = request.form.get("_record_id", "")
    if raw_id and not (raw_id.isascii() and raw_id.isdigit()):
        raise BadRequest("_record_id must be a record id.")
    with rt_.engine.connect() as conn:
        catalog = rt_.catalog(conn)
        rt = catalog.get(entity)
        access = access_for(catalog.mset, principal, rt.entity)
        payload = form_payload(rt, request.form, _form_fields(form_layout(catalog, rt.entity, access)), rt_.timezone)
        return jsonify(form_state(conn, catalog, principal, entity, payload, int(raw_id) if raw_id else None))
