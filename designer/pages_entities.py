"""Entity designer pages: the list of entities, creating one, and the three-pane editor
(field palette, field canvas, properties) whose saves go through the JSON API.
"""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from metacrm.metadata.fieldtypes import KIND_KEYS  # noqa: F401 - documents the kinds handled here
from metacrm.runtime.web.context import runtime
from metacrm.runtime.web.screen_context import language, t

from . import drafts
from .api import require_admin
from .web import bp

#: Business field types offered in the palette, grouped as a person thinks of them.
PALETTE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("text", ("text", "textarea", "richtext", "email", "phone", "url")),
    ("number", ("integer", "decimal", "currency", "percent")),
    ("choice", ("select", "multiselect", "boolean")),
    ("time", ("date", "datetime")),
    ("link", ("lookup", "reference", "user", "department", "table")),
    ("computed", ("formula", "autonumber")),
    ("media", ("file", "image", "location")),
)


def label_text(label: Any, lang: str) -> str:
    if isinstance(label, dict):
        return str(label.get(lang) or label.get("en") or next(iter(label.values()), ""))
    return str(label or "")


def new_entity_document(name: str, en: str, zh: str) -> dict[str, Any]:
    """A new entity with a title field, owned by users (so data-scope permissions apply)."""
    return {"kind": "entity", "name": name, "label": {"en": en or name, "zh": zh or en or name},
            "ownership": True, "title_field": "name",
            "fields": [{"name": "name", "type": "text", "label": {"en": "Name", "zh": "名称"},
                        "required": True, "searchable": True, "max_length": 200}]}


def new_form_document(entity: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "form", "entity": entity["name"], "name": "default",
            "sections": [{"label": {"en": "Basics", "zh": "基本信息"}, "columns": 2,
                          "fields": [f["name"] for f in entity.get("fields") or [] if not f.get("archived")]}]}


@bp.get("/entities")
def entities() -> Any:
    lang = language()
    with runtime().engine.connect() as conn:
        docs = [d.data for d in drafts.merged_draft(conn) if d.kind == "entity"]
    changed = {c["key"]: c["change"] for c in _changes()}
    rows = [{"name": d["name"], "label": label_text(d.get("label"), lang), "archived": bool(d.get("archived")),
             "fields": sum(1 for f in d.get("fields") or [] if not f.get("archived")),
             "child_of": d.get("child_of"), "change": changed.get(f"entity/{d['name']}")}
            for d in sorted(docs, key=lambda d: d["name"])]
    return render_template("designer/entities.html", rows=rows, errors={}, form={})


def _changes() -> list[dict[str, Any]]:
    from flask import g
    return g.get("designer_changes", [])


@bp.post("/entities")
def create_entity() -> Any:
    by = require_admin()
    name = request.form.get("name", "").strip()
    en, zh = request.form.get("label_en", "").strip(), request.form.get("label_zh", "").strip()
    doc = new_entity_document(name, en, zh)
    with runtime().engine.begin() as conn:
        exists = drafts.get_document(conn, "entity", name) is not None if name else False
        errors = ([] if not exists else
                  [drafts.MetadataError(f"entity/{name}", "/name", t("entity_exists", name=name))])
        if not errors:
            errors = drafts.stage(conn, {("entity", name): doc, ("form", name, "default"): new_form_document(doc)},
                                 by.user_id)
    if errors:
        by_path: dict[str, list[str]] = {}
        for e in errors:
            key = e.path.split("/")[1] if e.path.count("/") >= 1 else ""
            by_path.setdefault("label" if key == "label" else ("name" if key in ("name", "kind", "") else key),
                               []).append(e.message)
        return _render_list_with_errors(by_path, {"name": name, "label_en": en, "label_zh": zh}), 422
    flash(t("saved_to_draft"), "success")
    return redirect(url_for("metacrm_designer.entity", name=name))


def _render_list_with_errors(errors: dict[str, list[str]], form: dict[str, str]) -> str:
    lang = language()
    with runtime().engine.connect() as conn:
        docs = [d.data for d in drafts.merged_draft(conn) if d.kind == "entity"]
    rows = [{"name": d["name"], "label": label_text(d.get("label"), lang), "archived": bool(d.get("archived")),
             "fields": sum(1 for f in d.get("fields") or [] if not f.get("archived")),
             "child_of": d.get("child_of"), "change": None} for d in sorted(docs, key=lambda d: d["name"])]
    return render_template("designer/entities.html", rows=rows, errors=errors, form=form)
