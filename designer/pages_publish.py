"""The publish page: the draft validated as a whole, its plan (DDL and archiving), what
archiving affects, and the publish button with a note.
"""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from metacrm.metadata.documents import Document, MetadataInvalid
from metacrm.runtime.db import schema_transaction
from metacrm.runtime.publish import PublishRefused, carry_forward, published_version
from metacrm.runtime.web.context import runtime
from metacrm.runtime.web.screen_context import t

from . import drafts
from .api import require_admin
from .impacts import entity_references, field_references
from .web import bp


def archive_impacts(previous: list[dict[str, Any]], merged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each entity or field this publish archives: who used it in the published version."""
    after = {drafts.document_key(d.data): d.data
             for d in carry_forward(previous, [Document("draft", m) for m in merged])}
    out = []
    for old in previous:
        if old.get("kind") != "entity":
            continue
        new = after.get(drafts.document_key(old)) or {}
        if new.get("archived") and not old.get("archived"):
            out.append({"what": f"entity {old['name']}",
                        "refs": [r.to_dict() for r in entity_references(previous, old["name"])]})
            continue
        new_fields = {f.get("name"): f for f in new.get("fields") or []}
        for f in old.get("fields") or []:
            now = new_fields.get(f.get("name")) or {}
            if now.get("archived") and not f.get("archived"):
                out.append({"what": f"field {old['name']}.{f['name']}",
                            "refs": [r.to_dict() for r in field_references(previous, old["name"], f["name"])]})
    return out


def publish_context(conn: Any) -> dict[str, Any]:
    """Everything the publish page shows, read in one connection."""
    errors: list[Any] = []
    plan = None
    problems: list[str] = []
    try:
        plan = drafts.plan_draft(conn)  # validates the whole draft first
        problems = plan.problems
    except MetadataInvalid as exc:
        errors = exc.errors
    _, previous = published_version(conn)
    merged = [d.data for d in drafts.merged_draft(conn)]
    return {"errors": errors, "plan": plan, "problems": problems,
            "impacts": archive_impacts(previous, merged), "changes": drafts.draft_changes(conn)}


@bp.get("/publish")
def publish_page() -> Any:
    with runtime().engine.connect() as conn:
        ctx = publish_context(conn)
    return render_template("designer/publish.html", **ctx)


@bp.post("/publish")
def publish_draft() -> Any:
    by = require_admin()
    note = request.form.get("note", "").strip() or None
    rt = runtime()
    try:
        with schema_transaction(rt.engine) as conn:
            if not drafts.draft_changes(conn):
                flash(t("nothing_to_publish"), "warning")
                return redirect(url_for("metacrm_designer.publish_page"))
            plan = drafts.publish_draft(conn, by.user_id, note)
    except MetadataInvalid as exc:
        flash(t("draft_invalid", n=len(exc.errors)), "danger")
        return redirect(url_for("metacrm_designer.publish_page"))
    except PublishRefused as exc:
        flash(t("publish_refused") + " " + "; ".join(exc.plan.problems), "danger")
        return redirect(url_for("metacrm_designer.publish_page"))
    rt.invalidate()
    flash(t("published", v=plan.to_version), "success")
    return redirect(url_for("metacrm_designer.publish_page"))
