"""Entity designer pages: the list of entities, creating one, and the three-pane editor
(field palette, field canvas, properties) whose saves go through the JSON API.
"""
from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, render_template, request, url_for

from metacrm.metadata.documents import MetadataError
from metacrm.metadata.fieldtypes import FORMULA_RESULT_TYPES
from metacrm.runtime.errors import NotFound
from metacrm.runtime.publish import published_version
from metacrm.runtime.web.context import runtime
from metacrm.runtime.web.screen_context import language, t

from . import drafts
from .api import require_admin
from .text import TYPE_LABELS
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


def _entity_rows(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entities of the draft for the list: name, label, live fields, draft change."""
    lang = language()
    changed = {c["key"]: c["change"] for c in changes}
    with runtime().engine.connect() as conn:
        docs = [d.data for d in drafts.merged_draft(conn) if d.kind == "entity"]
    return [{"name": d["name"], "label": label_text(d.get("label"), lang), "archived": bool(d.get("archived")),
             "fields": sum(1 for f in d.get("fields") or [] if not f.get("archived")),
             "child_of": d.get("child_of"), "change": changed.get(f"entity/{d['name']}")}
            for d in sorted(docs, key=lambda d: d["name"])]


@bp.get("/entities")
def entities() -> Any:
    return render_template("designer/entities.html", rows=_entity_rows(g.get("designer_changes", [])),
                           errors={}, form={})


#: Where an error about a new entity is shown: the top-level key of its pointer → input.
_NEW_ENTITY_INPUTS = {"label": "label", "name": "name", "kind": "name", "": "name"}


@bp.post("/entities")
def create_entity() -> Any:
    """Stage a new entity (with a title field) and its default form; errors next to the inputs."""
    by = require_admin()
    name = request.form.get("name", "").strip()
    en, zh = request.form.get("label_en", "").strip(), request.form.get("label_zh", "").strip()
    doc = new_entity_document(name, en, zh)
    with runtime().engine.begin() as conn:
        if name and drafts.get_document(conn, "entity", name) is not None:
            errors = [MetadataError(f"entity/{name}", "/name", t("entity_exists", name=name))]
        else:
            errors = drafts.stage(conn, {("entity", name): doc, ("form", name, "default"): new_form_document(doc)},
                                 by.user_id)
    if errors:
        by_input: dict[str, list[str]] = {}
        for e in errors:
            top = e.path.split("/")[1] if e.path.startswith("/") else ""
            by_input.setdefault(_NEW_ENTITY_INPUTS.get(top, top), []).append(e.message)
        form = {"name": name, "label_en": en, "label_zh": zh}
        return render_template("designer/entities.html", rows=_entity_rows(g.get("designer_changes", [])),
                               errors=by_input, form=form), 422
    flash(t("saved_to_draft"), "success")
    return redirect(url_for("metacrm_designer.entity", name=name))


@bp.get("/entities/<name>")
def entity(name: str) -> Any:
    """The three-pane editor: palette, fields, properties (edited in the page, saved
    whole through the API so every error comes back next to its input)."""
    lang = language()
    with runtime().engine.connect() as conn:
        doc = drafts.get_document(conn, "entity", name)
        if doc is None:
            raise NotFound(f"The draft has no entity '{name}'.")
        entities = [{"name": d.data["name"], "label": label_text(d.data.get("label"), lang),
                     "child_of": d.data.get("child_of")}
                    for d in drafts.merged_draft(conn) if d.kind == "entity" and not d.data.get("archived")]
        _, published = published_version(conn)
    live = next((d for d in published if d.get("kind") == "entity" and d.get("name") == name), {})
    setup = {"document": doc, "entities": sorted(entities, key=lambda e: e["name"]),
             "published_fields": [f.get("name") for f in live.get("fields") or []],
             "palette": [{"group": g, "types": list(types)} for g, types in PALETTE],
             "result_types": list(FORMULA_RESULT_TYPES), "lang": lang,
             "type_labels": {k: v[1 if lang == "zh" else 0] for k, v in TYPE_LABELS.items()},
             "text": {k: t(k) for k in EDITOR_TEXT},
             "urls": {"save": url_for("metacrm_designer_api.put_document", kind="entity", name=name),
                      "expression": url_for("metacrm_designer_api.check_expression"),
                      "archive": url_for("metacrm_designer_api.archive_field")}}
    return render_template("designer/entity.html", doc=doc, setup=setup,
                           title=label_text(doc.get("label"), lang))


#: The words the editor's script shows (sent with the page in the user's language).
EDITOR_TEXT = ("field_name", "label_en", "label_zh", "field_type", "required", "unique", "searchable",
               "default_value", "help_text", "options", "option_value", "add_option", "lookup_target",
               "expression", "result_type", "visible_when", "required_when", "readonly_when", "max_length",
               "names_available", "archive", "restore", "archived", "move_up", "move_down", "saved_to_draft",
               "archive_impact", "archive_and_remove", "archive_blocked", "no_impact", "properties",
               "entity_properties", "title_field", "remove", "min_value", "max_value", "autonumber_format",
               "targets", "cancel")
