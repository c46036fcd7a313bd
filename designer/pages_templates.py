"""Template pages: export the instance's metadata (or chosen documents) as a template
package, and import one — validated whole before anything changes.
"""
from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path
from typing import Any

from flask import flash, redirect, render_template, request, send_file, url_for

from metacrm.metadata.documents import MetadataError, MetadataInvalid
from metacrm.metadata.loader import load_package
from metacrm.runtime.db import schema_transaction
from metacrm.runtime.errors import ServiceError
from metacrm.runtime.metastore import export_template, install_template, installed_templates
from metacrm.runtime.publish import PublishRefused
from metacrm.runtime.web.context import runtime
from metacrm.runtime.web.screen_context import t

from . import drafts
from .api import require_admin
from .web import bp

_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def _page(errors: list[Any] | None = None, form: dict[str, Any] | None = None, status: int = 200) -> Any:
    with runtime().engine.connect() as conn:
        templates = installed_templates(conn)
        keys = [drafts.document_key(d.data) for d in drafts.merged_draft(conn)]
    return render_template("designer/templates.html", templates=templates, keys=keys,
                           errors=errors or [], form=form or {}), status


@bp.get("/templates")
def templates() -> Any:
    return _page()


@bp.post("/templates/export")
def export() -> Any:
    require_admin()
    name, version = request.form.get("name", "").strip(), request.form.get("version", "").strip()
    whole = request.form.get("whole") == "1"
    only = tuple(request.form.getlist("only"))
    form = {"name": name, "version": version, "whole": whole, "only": only}
    problems = []
    if not _NAME.match(name):
        problems.append(MetadataError("template.json", "/name", t("template_name") + ": a-z, 0-9, '_', '-'"))
    if not _VERSION.match(version):
        problems.append(MetadataError("template.json", "/version", t("template_version") + ": 1.0.0"))
    if problems:
        return _page(problems, form, 422)
    try:
        with runtime().engine.connect() as conn:
            data = export_template(conn, name, version, whole=whole, only=only)
    except MetadataInvalid as exc:
        return _page(exc.errors, form, 422)
    except ServiceError as exc:
        return _page([MetadataError("template.json", "", exc.message)], form, exc.status)
    return send_file(io.BytesIO(data), mimetype="application/zip", as_attachment=True,
                     download_name=f"{name}-{version}.zip")


@bp.post("/templates/import")
def import_template() -> Any:
    by = require_admin()
    upload = request.files.get("package")
    upgrade = request.form.get("upgrade") == "1"
    if upload is None or not upload.filename:
        return _page([MetadataError("package", "", t("template_file"))], status=422)
    rt = runtime()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "package.zip"
        upload.save(path)
        package = load_package(path)
        try:
            with schema_transaction(rt.engine) as conn:
                if drafts.has_staged(conn):
                    flash(t("template_needs_empty_draft"), "warning")
                    return redirect(url_for("metacrm_designer.templates"))
                install_template(conn, package, by=by.user_id, upgrade=upgrade)
        except MetadataInvalid as exc:
            return _page(exc.errors, status=422)
        except PublishRefused as exc:
            return _page([MetadataError(package.name or "package", "", p) for p in exc.plan.problems], status=409)
        except ServiceError as exc:
            return _page([MetadataError(package.name or "package", "", exc.message)], status=exc.status)
    rt.invalidate()
    flash(t("template_installed", name=package.name, version=package.version), "success")
    return redirect(url_for("metacrm_designer.templates"))
