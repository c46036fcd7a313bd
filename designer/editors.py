"""The view, dedup-rule and workflow designers: their pages and their JSON calls.

| call | does |
|---|---|
| `GET /designer/views`, `/designer/dedup`, `/designer/workflows` | the draft's documents of that kind, and "new" |
| `GET /designer/views/<entity>/<name>`, `/designer/dedup/<name>`, `/designer/workflows/<name>` | the editor |
| `POST /api/v1/designer/editors/<kind>/render` | `{"document", "selected"}` → the editor's body re-drawn, and the document's errors (nothing stored) |
| `POST /api/v1/designer/editors/<kind>/check` | the document's errors against the whole draft (nothing stored) |
| `PUT /api/v1/designer/editors/<kind>` | store the document in the draft (422 with JSON pointers when invalid) |
| `POST /api/v1/designer/editors/dedup/test` | the groups the (draft) rule finds in a sample of the live data |
| `POST /api/v1/designer/editors/workflow/simulate` | `{"document", "user", "record"}` → the path the draft workflow would take |

A page holds the document being edited; every structural change (a state added, a step
moved, an approver type changed) asks the server to re-draw the body, so the forms are
rendered in one place (Jinja) and the browser script stays generic. Admins only.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from flask import Blueprint, Flask, current_app, g, jsonify, render_template, request, url_for

from metacrm.metadata.documents import MetadataError
from metacrm.runtime.errors import BadRequest, NotFound, PermissionDenied
from metacrm.runtime.principal import Principal
from metacrm.runtime.web import ui_text
from metacrm.runtime.web.api import request_json
from metacrm.runtime.web.context import current_principal, require_principal, runtime
from metacrm.runtime.web.screen_context import init_screen_blueprint, language, screen_principal

from . import drafts
from .dedup_editor import dedup_context, new_rule
from .dedup_trial import try_rule
from .editor_support import (check_document, draft_document, draft_set, error_dicts, invalid, save_document,
                             source_of)
from .editor_text import EDITOR_TEXT, editor_text
from .views_editor import new_view, view_context
from .workflow_editor import active_users, editable, workflow_context
from .workflow_sim import simulate

pages = init_screen_blueprint(Blueprint("metacrm_designer_editors", __name__, template_folder="templates",
                                        static_folder="static", static_url_path="/static/designer-editors"))
api = Blueprint("metacrm_designer_editors_api", __name__, url_prefix="/api/v1/designer/editors")

KINDS = ("view", "dedup", "workflow")


@api.before_request
def _admins_only() -> None:
    _admin(require_principal())


@pages.before_request
def _draft_bar() -> None:
    """The core designer's bar ("draft — N changes") reads g.designer_changes."""
    principal = current_principal()
    if principal is None or not principal.is_admin or (request.endpoint or "").endswith(".static"):
        return
    with runtime().engine.connect() as conn:
        g.designer_changes = drafts.draft_changes(conn)


@pages.context_processor
def _bar() -> dict[str, Any]:
    """What the core designer's base template reads for its bar and navigation."""
    return {"draft_changes": g.get("designer_changes", []), "designer_endpoints": current_app.view_functions}


def _admin(principal: Principal) -> Principal:
    if not principal.is_admin:
        raise PermissionDenied("Only administrators may use the designer.")
    return principal


def _body_template(kind: str) -> str:
    return f"designer/editor_{kind}.html"


def _context(conn: Any, kind: str, doc: dict[str, Any], selected: str | None) -> dict[str, Any]:
    """What the body template of `kind` needs, from the draft's model."""
    lang = language()
    mset = draft_set(conn)
    et = editor_text(lang)
    if kind == "view":
        if doc.get("type") != "kanban":
            doc.pop("group_by", None)  # a table has no columns to group by
        labels = {"remove": et("ed_remove"), "field": et("ed_field"), "operator": et("ed_operator"),
                  "value": et("ed_value"), "selected": "{n}"}
        extra = view_context(mset, doc, lang, labels)
    elif kind == "dedup":
        extra = dedup_context(mset, doc, lang)
    else:
        doc = editable(doc)
        extra = workflow_context(mset, doc, lang, selected)
        extra["users"] = active_users(conn)
    return {"kind": kind, "doc": doc, "source": source_of(doc), **extra}


# ------------------------------------------------------------------ pages

_TITLES = {"view": "ed_views_title", "dedup": "ed_dedup_title", "workflow": "ed_workflows_title"}


def _list_page(kind: str) -> Any:
    _admin(screen_principal())
    lang = language()
    with runtime().engine.connect() as conn:
        mset = draft_set(conn)
    if kind == "view":
        items = [{"name": v.name, "entity": v.entity, "label": v.label.get(lang),
                  "href": url_for(".view_page", entity=v.entity, name=v.name)}
                 for (_, _), v in sorted(mset.views.items())]
    else:
        specs = mset.dedup_rules if kind == "dedup" else mset.workflows
        endpoint = ".dedup_page" if kind == "dedup" else ".workflow_page"
        items = [{"name": n, "entity": s.entity, "label": s.label.get(lang) if s.label else n,
                  "href": url_for(endpoint, name=n)} for n, s in sorted(specs.items())]
    entities = [{"name": e.name, "label": e.label.get(lang)} for e in mset.active_entities if not e.child_of]
    return render_template("designer/editor_list.html", kind=kind, items=items, entities=entities,
                           title_key=_TITLES[kind])


@pages.get("/designer/views")
def views_list() -> Any:
    return _list_page("view")


@pages.get("/designer/dedup")
def dedup_list() -> Any:
    return _list_page("dedup")


@pages.get("/designer/workflows")
def workflows_list() -> Any:
    return _list_page("workflow")


def _editor_page(kind: str, load: Callable[[Any], dict[str, Any]], title: str) -> Any:
    _admin(screen_principal())
    with runtime().engine.connect() as conn:
        doc = load(conn)
        context = _context(conn, kind, doc, request.args.get("select"))
        errors = check_document(conn, context["doc"], kind)
    return render_template("designer/editor_page.html", title=title, body_template=_body_template(kind),
                           errors=error_dicts(errors), **context)


def _new_or_existing(conn: Any, kind: str, name: str, entity_name: str | None,
                     make: Callable[[Any, str], dict[str, Any]]) -> dict[str, Any]:
    try:
        return draft_document(conn, kind, name, entity_name if kind == "view" else None)
    except NotFound:
        if request.args.get("new") != "1":
            raise
        entity = draft_set(conn).entity(entity_name or "")
        if entity is None:
            raise NotFound(f"No entity named '{entity_name}'.") from None
        return make(entity, name)


@pages.get("/designer/views/<entity>/<name>")
def view_page(entity: str, name: str) -> Any:
    return _editor_page("view", lambda conn: _new_or_existing(conn, "view", name, entity, new_view),
                        f"{entity} · {name}")


@pages.get("/designer/dedup/<name>")
def dedup_page(name: str) -> Any:
    return _editor_page("dedup", lambda conn: _new_or_existing(conn, "dedup", name, request.args.get("entity"),
                                                                new_rule), name)


@pages.get("/designer/workflows/<name>")
def workflow_page(name: str) -> Any:
    return _editor_page("workflow", lambda conn: draft_document(conn, "workflow", name), name)


# ------------------------------------------------------------------ JSON calls

def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise NotFound(f"No editor for '{kind}' (one of {', '.join(KINDS)}).")
    return kind


def _body() -> Any:
    body = request_json()
    if body is None:
        raise BadRequest("The request body must be JSON (Content-Type: application/json).")
    return body


def _document_of(body: Any) -> dict[str, Any]:
    doc = body.get("document") if isinstance(body, Mapping) else None
    if not isinstance(doc, dict):
        raise BadRequest('Expected {"document": {...}}.', {"document": ["Send the document being edited."]})
    return doc


@api.post("/<kind>/render")
def render_view(kind: str) -> Any:
    _admin(require_principal())
    body = _body()
    doc = _document_of(body)
    selected = body.get("selected") if isinstance(body.get("selected"), str) else None
    with runtime().engine.connect() as conn:
        errors = check_document(conn, doc, _kind(kind))
        try:
            context = _context(conn, kind, doc, selected)
            html = render_template(_body_template(kind), **context)
        except (TypeError, AttributeError, KeyError, ValueError):
            # A document too malformed to draw (a list where an object belongs): its schema
            # errors say what to fix; the page keeps the last body it could draw.
            raise invalid(errors or [MetadataError(source_of(doc), "", "the document can't be edited in this form")]) \
                from None
    return jsonify({"html": html, "document": context["doc"], "errors": error_dicts(errors)})


@api.post("/<kind>/check")
def check_view(kind: str) -> Any:
    _admin(require_principal())
    doc = _body()
    with runtime().engine.connect() as conn:
        errors = check_document(conn, doc, _kind(kind))
    return jsonify({"valid": not errors, "errors": error_dicts(errors)})


@api.put("/<kind>")
def save_view(kind: str) -> Any:
    principal = _admin(require_principal())
    doc = _body()
    with runtime().engine.begin() as conn:
        save_document(conn, doc, _kind(kind), principal.user_id)
        changes = drafts.draft_changes(conn)
    return jsonify({"saved": True, "document": doc, "changes": len(changes)})


@api.post("/dedup/test")
def dedup_test_view() -> Any:
    _admin(require_principal())
    doc = _document_of(_body())
    rt = runtime()
    with rt.engine.connect() as conn:
        draft_set(conn, doc)  # validates: a broken rule can't be tried
        return jsonify(try_rule(conn, rt.catalog(conn), doc))


@api.post("/workflow/simulate")
def simulate_view() -> Any:
    principal = _admin(require_principal())
    body = _body()
    doc = _document_of(body)
    with runtime().engine.connect() as conn:
        mset = draft_set(conn, doc)
        return jsonify(simulate(conn, mset, doc, body, principal.language))


def init_editors(app: Flask) -> None:
    """Mount the editors (call before `init_pages`, so the JSON calls are CSRF-exempt
    like the rest of `/api/`)."""
    ui_text.TEXT.update(EDITOR_TEXT)
    app.register_blueprint(api)
    app.register_blueprint(pages)


__all__ = ["init_editors"]
