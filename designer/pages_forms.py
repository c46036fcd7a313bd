"""Form designer pages: the list of forms, the section/column editor, and a live preview
of the runtime's own form rendered with the draft applied.

The preview builds a catalog from the merged draft (runtime.catalog.build_catalog over
what publish would publish) and renders the runtime's `form.html` with it, so what the
admin sees is the real generated form, not an imitation; submitting it is disabled.
"""
from __future__ import annotations

from typing import Any

from flask import render_template, request, url_for

from metacrm.metadata.documents import MetadataInvalid
from metacrm.metadata.model import FormSection, build_metadata_set
from metacrm.metadata.validation import validate_documents
from metacrm.runtime.access import access_for
from metacrm.runtime.catalog import build_catalog
from metacrm.runtime.errors import NotFound, ValidationFailed
from metacrm.runtime.publish import carry_forward, published_version
from metacrm.runtime.web.context import runtime
from metacrm.runtime.web.screen_context import language, screen_principal, t
from metacrm.runtime.web.screen_records import form_layout

from . import drafts
from .pages_entities import label_text, new_form_document
from .web import bp


@bp.get("/forms")
def forms() -> Any:
    lang = language()
    with runtime().engine.connect() as conn:
        docs = [d.data for d in drafts.merged_draft(conn)]
    entities = {d["name"]: d for d in docs if d.get("kind") == "entity" and not d.get("archived")
                and not d.get("child_of")}
    rows = []
    for name in sorted(entities):
        names = sorted(d["name"] for d in docs if d.get("kind") == "form" and d.get("entity") == name)
        rows.append({"entity": name, "label": label_text(entities[name].get("label"), lang),
                     "forms": names or ["default"]})
    return render_template("designer/forms.html", rows=rows)


@bp.get("/forms/<entity>")
def form(entity: str) -> Any:
    lang = language()
    name = request.args.get("name", "default")
    with runtime().engine.connect() as conn:
        entity_doc = drafts.get_document(conn, "entity", entity)
        if entity_doc is None or entity_doc.get("archived"):
            raise NotFound(f"The draft has no entity '{entity}'.")
        doc = drafts.get_document(conn, "form", f"{entity}/{name}") or {**new_form_document(entity_doc), "name": name}
    fields = [{"name": f["name"], "type": f.get("type"), "label": label_text(f.get("label"), lang) or f["name"],
               "required": bool(f.get("required"))}
              for f in entity_doc.get("fields") or [] if not f.get("archived")]
    setup = {"document": doc, "fields": fields, "lang": lang,
             "text": {k: t(k) for k in FORM_TEXT},
             "urls": {"save": url_for("metacrm_designer_api.put_document", kind="form", name=f"{entity}/{name}"),
                      "preview": url_for("metacrm_designer.form_preview", entity=entity, name=name)}}
    return render_template("designer/form.html", doc=doc, setup=setup, entity=entity_doc,
                           title=label_text(entity_doc.get("label"), lang))


FORM_TEXT = ("section", "columns", "add_section", "remove_section", "unplaced_fields", "drop_here", "move_to",
             "remove_from_form", "move_up", "move_down", "saved_to_draft", "label_en", "label_zh", "required",
             "preview", "visible_when")


def draft_catalog(conn: Any) -> Any:
    """A catalog compiled from the merged draft (archived parts carried forward as publish
    would), for previews; MetadataInvalid while the draft is invalid."""
    _, previous = published_version(conn)
    documents = carry_forward(previous, drafts.merged_draft(conn))
    errors = validate_documents(documents)
    if errors:
        raise MetadataInvalid(errors)
    return build_catalog(0, build_metadata_set(documents))


@bp.get("/forms/<entity>/preview")
def form_preview(entity: str) -> Any:
    """The runtime's new-record form for `entity`, rendered from the draft."""
    principal = screen_principal()
    name = request.args.get("name", "default")
    with runtime().engine.connect() as conn:
        try:
            catalog = draft_catalog(conn)
        except MetadataInvalid as exc:
            raise ValidationFailed(t("draft_invalid", n=len(exc.errors))) from None
    rt = catalog.get(entity)
    access = access_for(catalog.mset, principal, rt.entity)
    chosen = catalog.mset.forms.get((entity, name))
    sections = ([FormSection(label=s.label, fields=tuple(n for n in s.fields if rt.entity.active_field(n)),
                             columns=s.columns, visible_when=s.visible_when) for s in chosen.sections]
                if chosen is not None else form_layout(catalog, rt.entity, access))
    children = {}
    for field_name, child in rt.children.items():
        children[field_name] = (child, form_layout(catalog, child.entity, access_for(catalog.mset, principal, child.entity)), [])
    record = {f.name: f.default for f in rt.entity.active_fields
              if f.default is not None and not (isinstance(f.default, str) and f.default.startswith("$"))}
    return render_template("designer/form_preview.html", rt=rt, entity=rt.entity, record=record, access=access,
                           sections=sections, children=children, errors={}, message=None, conflict=False,
                           is_new=True, title=None)
