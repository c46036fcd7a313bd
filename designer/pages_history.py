"""Version history pages: who published what and when, the difference between two
versions, and one-click rollback (a new publish equal to an old version; data kept).
"""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from metacrm.metadata.documents import MetadataInvalid
from metacrm.runtime.db import schema_transaction
from metacrm.runtime.coercion import MAX_ID
from metacrm.runtime.errors import BadRequest, Conflict, NotFound
from metacrm.runtime.publish import PublishRefused
from metacrm.runtime.web.context import runtime
from metacrm.runtime.web.screen_context import t

from . import versions
from .api import require_admin
from .web import bp


@bp.get("/history")
def history() -> Any:
    with runtime().engine.connect() as conn:
        rows = versions.list_versions(conn)
    return render_template("designer/history.html", rows=rows)


def _version_arg(name: str) -> int:
    value = request.args.get(name, "")
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_ID:
        raise BadRequest(f"'{name}' must be a version number.")
    return int(value)


@bp.get("/history/diff")
def history_diff() -> Any:
    a, b = _version_arg("a"), _version_arg("b")
    if a > b:
        a, b = b, a
    with runtime().engine.connect() as conn:
        diff = versions.diff_documents(versions.version_documents(conn, a), versions.version_documents(conn, b))
    return render_template("designer/history_diff.html", a=a, b=b, diff=diff)


@bp.post("/history/<int:version>/rollback")
def rollback(version: int) -> Any:
    by = require_admin()
    if version > MAX_ID:
        raise NotFound(f"No version {version}.")
    rt = runtime()
    try:
        with schema_transaction(rt.engine) as conn:
            plan = versions.rollback(conn, version, by.user_id)
    except Conflict:
        flash(t("rollback_needs_empty_draft"), "warning")
        return redirect(url_for("metacrm_designer.history"))
    except MetadataInvalid as exc:
        flash(t("draft_invalid", n=len(exc.errors)) + " " + "; ".join(str(e) for e in exc.errors[:5]), "danger")
        return redirect(url_for("metacrm_designer.history"))
    except PublishRefused as exc:
        flash(t("publish_refused") + " " + "; ".join(exc.plan.problems), "danger")
        return redirect(url_for("metacrm_designer.history"))
    rt.invalidate()
    flash(t("rolled_back", v=version, n=plan.to_version), "success")
    return redirect(url_for("metacrm_designer.history"))
