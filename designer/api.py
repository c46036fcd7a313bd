"""The designer's JSON API (`/api/v1/designer/...`, admins only): the draft as documents.

A thin face over drafts.py: read and replace effective documents, list the changes,
validate, plan and publish, discard. An invalid document answers 422 with every error
as `{"source", "path", "message"}` (`path` a JSON pointer into the document) and stores
nothing. Like every `/api/` blueprint it is CSRF-exempt by prefix (it reads JSON bodies
only and has the API's own defences).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from metacrm.metadata.documents import MetadataError, MetadataInvalid
from metacrm.runtime.db import schema_transaction
from metacrm.runtime.errors import BadRequest, Conflict, NotFound, PermissionDenied, ValidationFailed
from metacrm.runtime.principal import Principal
from metacrm.runtime.publish import PublishRefused
from metacrm.runtime.web.api import optional_json_body, request_json
from metacrm.runtime.web.context import require_principal, runtime

from . import archiving, drafts, expressions

bp = Blueprint("metacrm_designer_api", __name__, url_prefix="/api/v1/designer")


def require_admin() -> Principal:
    """The signed-in admin; 401 before sign-in, 403 for everyone else."""
    principal = require_principal()
    if not principal.is_admin:
        raise PermissionDenied("Only administrators may use the designer.")
    return principal


@bp.before_request
def _admins_only() -> None:
    require_admin()


def invalid(errors: list[MetadataError]) -> ValidationFailed:
    """422 with the errors next to their JSON pointers (the shape the screens read)."""
    return ValidationFailed(f"{len(errors)} metadata error(s); nothing was stored.",
                            errors=[e.to_dict() for e in errors])


def _summary(conn: Any) -> dict[str, Any]:
    changes = drafts.draft_changes(conn)
    return {"count": len(changes), "items": changes}


@bp.get("/documents")
def documents() -> Any:
    """The merged draft's documents (`?kind=entity` narrows), each with its key."""
    kind = request.args.get("kind")
    with runtime().engine.connect() as conn:
        docs = drafts.merged_draft(conn)
    return jsonify({"items": [{"key": drafts.document_key(d.data), "document": d.data}
                              for d in docs if kind in (None, "", d.kind)]})


@bp.get("/documents/<kind>/<path:name>")
def get_document(kind: str, name: str) -> Any:
    with runtime().engine.connect() as conn:
        doc = drafts.get_document(conn, kind, name)
    if doc is None:
        raise NotFound(f"The draft has no {kind} '{name}'.")
    return jsonify({"key": drafts.document_key(doc), "document": doc})


@bp.put("/documents/<kind>/<path:name>")
def put_document(kind: str, name: str) -> Any:
    by = require_admin()
    body = request_json()
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a metadata document (a JSON object).")
    body.setdefault("kind", kind)
    try:
        drafts.parse_key(kind, name)
    except KeyError:
        raise NotFound(f"No document kind '{kind}' with a name like '{name}'.") from None
    if drafts.document_key(body) != f"{kind}/{name}":
        raise BadRequest(f"The document's kind and name must match the URL ({kind}/{name}).")
    with runtime().engine.begin() as conn:
        errors = drafts.put_document(conn, body, by.user_id)
        if errors:
            raise invalid(errors)
        doc = drafts.get_document(conn, kind, name)
        return jsonify({"key": drafts.document_key(body), "document": doc, "changes": _summary(conn)})


@bp.delete("/documents/<kind>/<path:name>")
def delete_document(kind: str, name: str) -> Any:
    by = require_admin()
    with runtime().engine.begin() as conn:
        try:
            errors = drafts.remove_document(conn, kind, name, by.user_id)
        except KeyError:
            raise NotFound(f"The draft has no {kind} '{name}'.") from None
        if errors:
            raise invalid(errors)
        return jsonify({"changes": _summary(conn)})


@bp.get("/changes")
def changes() -> Any:
    with runtime().engine.connect() as conn:
        return jsonify(_summary(conn))


@bp.post("/validate")
def validate() -> Any:
    with runtime().engine.connect() as conn:
        errors = drafts.validate_draft(conn)
    return jsonify({"ok": not errors, "errors": [e.to_dict() for e in errors]})


@bp.get("/plan")
def plan() -> Any:
    with runtime().engine.connect() as conn:
        try:
            result = drafts.plan_draft(conn)
        except MetadataInvalid as exc:
            raise invalid(exc.errors) from None
        return jsonify({**result.to_dict(), "changes": _summary(conn)["items"]})


@bp.post("/publish")
def publish() -> Any:
    by = require_admin()
    body = optional_json_body()
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise ValidationFailed("The note must be text.", fields={"note": ["must be text"]})
    rt = runtime()
    try:
        with schema_transaction(rt.engine) as conn:
            if not drafts.draft_changes(conn):
                raise Conflict("The draft has no changes to publish.")
            result = drafts.publish_draft(conn, by.user_id, (note or "").strip() or None)
    except MetadataInvalid as exc:
        raise invalid(exc.errors) from None
    except PublishRefused as exc:
        raise Conflict("The publish was refused: " + "; ".join(exc.plan.problems),
                       problems=exc.plan.problems) from None
    rt.invalidate()
    return jsonify(result.to_dict())


@bp.post("/discard")
def discard() -> Any:
    require_admin()
    with runtime().engine.begin() as conn:
        drafts.discard_draft(conn)
        return jsonify(_summary(conn))


def _entity_body(body: dict[str, Any]) -> dict[str, Any]:
    """The entity document a live check runs against: the one sent (unsaved edits) or,
    given a name, the draft's."""
    doc = body.get("document")
    if doc is None and isinstance(body.get("entity"), str):
        with runtime().engine.connect() as conn:
            doc = drafts.get_document(conn, "entity", body["entity"])
        if doc is None:
            raise NotFound(f"The draft has no entity '{body['entity']}'.")
    if not (isinstance(doc, dict) and isinstance(doc.get("name"), str) and isinstance(doc.get("fields"), list)
            and all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in doc["fields"])):
        raise BadRequest("Send 'entity' (a name) or 'document' (an entity document with named fields).")
    return doc


@bp.post("/expression")
def check_expression() -> Any:
    """Live check of one expression against an entity's fields: the problems and the
    names (fields, system fields, child-table fields) it may use."""
    body = request_json()
    if not isinstance(body, dict) or not isinstance(body.get("expression"), str) \
            or not isinstance(body.get("field"), (str, type(None))):
        raise BadRequest("Send {'expression': '...', 'entity': name} or {'expression', 'document'}, "
                         "with an optional 'field' name.")
    doc = _entity_body(body)
    with runtime().engine.connect() as conn:
        return jsonify(expressions.check(conn, doc, body["expression"], body.get("field")))


@bp.post("/archive-field")
def archive_field() -> Any:
    """`{"document", "field", "confirm"}`: without confirm, who uses the field; with it,
    the field archived and the droppable uses removed (422 with the rest)."""
    by = require_admin()
    body = request_json()
    if not isinstance(body, dict) or not isinstance(body.get("field"), str):
        raise BadRequest("Send {'document': entity document, 'field': name, 'confirm': bool}.")
    doc = _entity_body(body)
    with runtime().engine.begin() as conn:
        try:
            if not body.get("confirm"):
                refs = archiving.field_impact(conn, doc, body["field"])
                return jsonify({"references": [r.to_dict() for r in refs], "archived": False})
            dropped, errors = archiving.archive_field(conn, doc, body["field"], by.user_id)
        except KeyError:
            raise NotFound(f"Entity '{doc['name']}' has no field '{body['field']}'.") from None
        if errors:
            raise invalid(errors)
        return jsonify({"references": [r.to_dict() for r in dropped], "archived": True,
                        "document": drafts.get_document(conn, "entity", doc["name"]),
                        "changes": _summary(conn)})
