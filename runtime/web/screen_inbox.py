"""The approval inbox (`/approvals`, UX.md "Approval inbox"): three tabs — 待我审批
(pending), 我发起的 (submitted), 我已审批 (decided) — with counts, paging, approve/reject
with a comment from the list, and a detail drawer with the record as submitted and the
trail.

The lists come from the workflow engine's `inbox()` and `record_approvals()`, the
decisions go through `fire_transition()` — the same calls the API makes — so the screen
adds no rule of its own but one: a rejection must say why (the submitter has to know what
to fix), checked before the engine is asked. Every refusal (409 someone else was faster,
403 not your task, 404, 422) comes back to the list as a flash message.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from metacrm.metadata.model import Entity, Field

from ..access import access_for
from ..catalog import Catalog
from ..coercion import MAX_ID
from ..errors import Conflict, NotFound, ServiceError, ValidationFailed
from ..principal import Principal
from ..record_reads import add_titles, present
from ..workflow import approvals as wf_approvals
from ..workflow.engine import fire_transition
from ..workflow.machine import machines_of
from ..workflow.reading import BOXES, inbox, record_approvals
from .context import runtime
from .screen_context import flash_t, init_screen_blueprint, language, screen_principal, t
from .screen_support import expand_names, format_datetime, readable_fields
from .ui_text import word

bp = init_screen_blueprint(Blueprint("metacrm_inbox", __name__, template_folder="templates"))

PAGE_SIZE = 20
#: Decisions the list offers (reassign and add-signer stay on the record page and API).
DECISIONS = ("approve", "reject")
#: Decisions that must carry a comment (the submitter needs the reason to fix the record).
COMMENT_REQUIRED = frozenset({"reject"})
#: Engine refusals shown as flash messages, by HTTP status: (ui_text key, alert colour).
REFUSALS = {409: ("approval_refused_conflict", "warning"), 403: ("approval_refused_forbidden", "danger"),
            404: ("approval_refused_missing", "danger"), 422: ("approval_refused_invalid", "danger")}


# ------------------------------------------------------------------ what a row shows

def amount_field(entity: Entity) -> Field | None:
    """The money an approval is about: a field named `amount`, else the first currency field."""
    fields = [f for f in entity.active_fields if f.type == "currency" or
              (f.type == "formula" and f.result_type == "currency")]
    return next((f for f in fields if f.name == "amount"), fields[0] if fields else None)


def _amounts(conn: sa.Connection, catalog: Catalog, principal: Principal,
             items: list[dict[str, Any]]) -> dict[int, tuple[Field, dict[str, Any]]]:
    """approval id → (amount field, snapshot as the user may see it), for the page's rows
    whose entity has an amount the user may read (one query for the page)."""
    ids = [i["approval"] for i in items]
    if not ids:
        return {}
    A = wf_approvals.A
    out = {}
    for row in conn.execute(sa.select(A.c.id, A.c.entity, A.c.snapshot).where(A.c.id.in_(ids))):
        rt = catalog.entities.get(row.entity)
        f = amount_field(rt.entity) if rt else None
        if f is None:
            continue
        access = access_for(catalog.mset, principal, rt.entity)
        if f.name in access.unreadable:
            continue
        shown = present({f.name: (row.snapshot or {}).get(f.name)}, access)
        out[row.id] = (f, shown)
    return out


@bp.context_processor
def _words() -> dict[str, Any]:
    """`ap(code)`: an approval status or trail action in words; `when(iso)`: a local time."""
    lang, tz = language(), runtime().timezone
    return {"ap": lambda code: word("ap_", code, lang) if code else "",
            "when": lambda value: format_datetime(value, tz) if value else "—"}


def _back(box: str | None = None, page: int | None = None) -> Response:
    box = box if box in BOXES else "pending"
    return redirect(url_for("metacrm_inbox.inbox_page", box=box, **({"page": page} if page and page > 1 else {})))


def _page_arg(raw: str | None) -> int:
    return int(raw) if raw and raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 100000 else 1


# ------------------------------------------------------------------ pages

@bp.get("/approvals")
def inbox_page() -> Any:
    principal = screen_principal()
    box = request.args.get("box", "pending")
    if box not in BOXES:
        box = "pending"
    page = _page_arg(request.args.get("page"))
    rt_ = runtime()
    with rt_.engine.connect() as conn:
        catalog = rt_.catalog(conn)
        result = inbox(conn, catalog, principal, box, page, PAGE_SIZE)
        amounts = _amounts(conn, catalog, principal, result["items"])
    pages = max(1, -(-result["total"] // PAGE_SIZE))
    return render_template("inbox.html", box=box, boxes=BOXES, result=result, amounts=amounts,
                           page=page, pages=pages, decisions=DECISIONS)


@bp.get("/approvals/<int:approval_id>")
def approval_detail(approval_id: int) -> Any:
    """One approval: the record as submitted, the steps and the trail. `?partial=1` answers
    the drawer's body alone (the inbox loads it into the offcanvas); without JavaScript
    the same content is a page of its own."""
    principal = screen_principal()
    rt_ = runtime()
    with rt_.engine.connect() as conn:
        catalog = rt_.catalog(conn)
        context = detail_context(conn, catalog, principal, approval_id)
    template = "parts/approval_panel.html" if request.args.get("partial") == "1" else "approval.html"
    return render_template(template, box=request.args.get("box", "pending"), decisions=DECISIONS, **context)


def _approval_head(conn: sa.Connection, catalog: Catalog, approval_id: int) -> Any:
    """The approval's entity, record, status and title; NotFound for an id that can't exist."""
    A = wf_approvals.A
    head = None if approval_id > MAX_ID else conn.execute(
        sa.select(A.c.entity, A.c.record_id, A.c.status, A.c.title).where(A.c.id == approval_id)).first()
    if head is None or head.entity not in catalog.entities:
        raise NotFound(f"No approval with id {approval_id}.")
    return head


def detail_context(conn: sa.Connection, catalog: Catalog, principal: Principal, approval_id: int) -> dict[str, Any]:
    head = _approval_head(conn, catalog, approval_id)
    # record_approvals() decides who may look (readers of the record and the people involved).
    data = record_approvals(conn, catalog, principal, head.entity, head.record_id)
    item = next((i for i in data["items"] if i["id"] == approval_id), None)
    if item is None:
        raise NotFound(f"No approval with id {approval_id}.")
    rt = catalog.get(head.entity)
    access = access_for(catalog.mset, principal, rt.entity)
    # The state as submitted is always the state the submission left: the panel shows the state now.
    states = {m.state_field for m in machines_of(catalog, rt.name)}
    fields = [f for f in readable_fields(rt.entity, access)
              if f.type != "table" and not f.system and f.name not in states]
    snapshot = dict(item["snapshot"])
    add_titles(conn, catalog, rt, [snapshot], expand_names(fields, access), principal)
    tables = []
    for name, child in rt.children.items():
        if name in access.hidden or not isinstance(snapshot.get(name), list):
            continue
        child_access = access_for(catalog.mset, principal, child.entity)
        columns = [f for f in readable_fields(child.entity, child_access) if not f.system]
        rows = [present(dict(r), child_access) for r in snapshot[name]]
        add_titles(conn, catalog, child, rows, expand_names(columns, child_access), principal)
        tables.append({"field": rt.entity.active_field(name), "columns": columns, "rows": rows})
    return {"approval": item, "entity": rt.entity, "record_id": head.record_id, "fields": fields,
            "snapshot": snapshot, "tables": tables, "state_label": data["state_label"],
            "amount": amount_field(rt.entity)}


@bp.post("/approvals/<int:approval_id>/decide")
def decide(approval_id: int) -> Response:
    """Approve or reject from the list (or the drawer), then back to where the user was."""
    principal = screen_principal()
    box, page = request.form.get("box"), _page_arg(request.form.get("page"))
    decision = request.form.get("decision", "")
    comment = (request.form.get("comment") or "").strip()
    try:
        if decision not in DECISIONS:
            raise ValidationFailed(f"decision must be one of {', '.join(DECISIONS)}.",
                                   {"decision": ["Choose approve or reject."]})
        if decision in COMMENT_REQUIRED and not comment:
            raise ValidationFailed(t("reject_needs_comment"), {"comment": [t("reject_needs_comment")]})
        title = _fire(principal, approval_id, decision, comment)
    except ServiceError as exc:
        key, colour = REFUSALS.get(exc.status, ("approval_refused_invalid", "danger"))
        flash(f"{t(key)} {exc.message}", colour)
        return _back(box, page)
    flash_t("approval_approved" if decision == "approve" else "approval_rejected", title=title)
    return _back(box, page)


def _fire(principal: Principal, approval_id: int, decision: str, comment: str) -> str:
    """Fire the decision on the approval's record through the engine; the record's title."""
    rt_ = runtime()
    with rt_.engine.begin() as conn:
        catalog = rt_.catalog(conn)
        head = _approval_head(conn, catalog, approval_id)
        if head.status != "pending":
            # The page was older than the approval's end (decided, withdrawn or resubmitted).
            # Only someone who may look at the approval learns its title: NotFound otherwise.
            record_approvals(conn, catalog, principal, head.entity, head.record_id)
            raise _closed(head)
        fire_transition(conn, catalog, principal, head.entity, head.record_id, decision,
                        {"comment": comment} if comment else None)
        return head.title or f"#{head.record_id}"


def _closed(head: Any) -> ServiceError:
    return Conflict(f"“{head.title}” is no longer waiting for a decision ({head.status}).")
