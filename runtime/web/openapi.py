"""An OpenAPI 3.1 document generated from the published metadata.

Each entity gets a record schema (its active fields, typed) and the list/create/read/
update/delete/history paths, so client generators and schemathesis see the real API.

The document is the caller's: entities their roles grant nothing on are left out, and so
are the operations they may not perform and the fields hidden from them (a hidden field's
name can say more than one would think: `blacklisted`, `cost_price`); fields their roles
make read-only or masked are `readOnly`.
"""
from __future__ import annotations

from typing import Any

from metacrm.metadata.model import Entity, Field

from ..access import Access, access_for
from ..catalog import Catalog
from ..principal import Principal

ERROR = {"$ref": "#/components/schemas/Error"}
NULLABLE = lambda schema: {"anyOf": [schema, {"type": "null"}]}  # noqa: E731

TYPE_SCHEMAS: dict[str, dict[str, Any]] = {
    "text": {"type": "string"}, "textarea": {"type": "string"}, "richtext": {"type": "string"},
    "integer": {"type": "integer"},
    "decimal": {"type": "string", "format": "decimal"}, "currency": {"type": "string", "format": "decimal"},
    "percent": {"type": "string", "format": "decimal"},
    "boolean": {"type": "boolean"}, "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "email": {"type": "string", "format": "email"}, "phone": {"type": "string"},
    "url": {"type": "string", "format": "uri"},
    "lookup": {"type": "integer"}, "user": {"type": "integer"}, "department": {"type": "integer"},
    "autonumber": {"type": "string"}, "file": {"type": "string"}, "image": {"type": "string"},
    "reference": {"type": "object", "properties": {"entity": {"type": "string"}, "id": {"type": "integer"}}},
    "location": {"type": "object", "properties": {"lat": {"type": "number"}, "lng": {"type": "number"},
                                                  "address": {"type": "string"}}},
}
SYSTEM_SCHEMAS = {"id": {"type": "integer"}, "version": {"type": "integer"},
                  "created_at": {"type": "string", "format": "date-time"}, "created_by": NULLABLE({"type": "integer"}),
                  "updated_at": {"type": "string", "format": "date-time"}, "updated_by": NULLABLE({"type": "integer"}),
                  "owner": NULLABLE({"type": "integer"}), "department": NULLABLE({"type": "integer"}),
                  "parent_id": {"type": "integer"}, "idx": {"type": "integer"}}


def field_schema(f: Field, catalog: Catalog) -> dict[str, Any]:
    if f.type == "formula":
        base = TYPE_SCHEMAS.get(f.result_type or "text", {"type": "string"})
        return NULLABLE({**base, "readOnly": True})
    if f.type == "select":
        return NULLABLE({"type": "string", "enum": list(f.option_values)})
    if f.type == "multiselect":
        return {"type": "array", "items": {"type": "string", "enum": list(f.option_values)}}
    if f.type == "table":
        child = catalog.mset.entities.get(f.target or "")
        return {"type": "array", "items": {"$ref": f"#/components/schemas/{child.name if child else 'object'}"}}
    schema = dict(TYPE_SCHEMAS[f.type])
    if f.max_length and schema.get("type") == "string":
        schema["maxLength"] = f.max_length
    if f.type == "autonumber":
        schema["readOnly"] = True
    if f.label:
        schema["title"] = f.label.en
    return NULLABLE(schema)


def record_schema(entity: Entity, catalog: Catalog, access: Access | None = None) -> dict[str, Any]:
    """A record's schema as `access` lets its holder see it (None: everything)."""
    hidden = access.hidden if access is not None else frozenset()
    readonly = access.readonly if access is not None else frozenset()
    props = {f.name: SYSTEM_SCHEMAS[f.name] | {"readOnly": f.name not in ("owner", "department")}
             for f in entity.system_fields}
    for f in entity.active_fields:
        if f.name in hidden:
            continue
        props[f.name] = field_schema(f, catalog)
        if f.name in readonly:
            props[f.name] = {**props[f.name], "readOnly": True}
    return {"type": "object", "title": entity.label.en, "properties": props,
            "x-required": [f.name for f in entity.active_fields if f.required and f.name not in hidden]}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    out = {"summary": summary, "responses": responses}
    out.update(extra)
    return out


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


#: Which action each operation needs (list, read and history all read).
OPERATION_ACTIONS = {"get": "read", "post": "create", "patch": "update", "delete": "delete"}


def _keep_allowed(paths: dict[str, Any], entity: str, access: Access) -> None:
    """Drop the operations on `entity` that the caller's roles don't grant, and paths left empty."""
    for path in [p for p in paths if p == f"/api/v1/records/{entity}" or p.startswith(f"/api/v1/records/{entity}/")]:
        item = paths[path]
        for method, action in OPERATION_ACTIONS.items():
            if method in item and not access.allows(action):
                del item[method]
        if not set(item) & set(OPERATION_ACTIONS):
            del paths[path]


def openapi_document(catalog: Catalog, principal: Principal, server: str,
                     other_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    """The caller's document: per-entity record paths from the metadata, then `other_paths`
    (the engines' endpoints, see openapi_routes.route_paths) for what the metadata can't say."""
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
            "code": {"type": "string"}, "message": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}},
            "required": ["code", "message"]}}},
    }
    paths: dict[str, Any] = {}
    errors = {code: {"description": text, **_json(ERROR)} for code, text in
              (("400", "Bad request"), ("401", "Not signed in"), ("403", "Not allowed"), ("404", "Not found"))}
    for entity in catalog.mset.active_entities:
        access = access_for(catalog.mset, principal, entity)
        if not access.unrestricted and not any(access.scopes.values()):
            continue  # nothing granted (a child entity follows its parent)
        schemas[entity.name] = record_schema(entity, catalog, access)
        if entity.child_of:
            continue
        ref = {"$ref": f"#/components/schemas/{entity.name}"}
        id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
        list_params = [{"name": n, "in": "query", "schema": {"type": t}, "description": d} for n, t, d in (
            ("filter", "string", "JSON list of [field, operator, value] conditions"),
            ("sort", "string", "e.g. -created_at,name"), ("page", "integer", "1-based page"),
            ("page_size", "integer", "at most 500"), ("q", "string", "search in searchable fields"),
            ("view", "string", "a view name"), ("expand", "string", "lookup fields to add titles for"))]
        tag = [entity.name]
        paths[f"/api/v1/records/{entity.name}"] = {
            "get": _op(f"List {entity.label.en}", {"200": {"description": "A page of records", **_json({
                "type": "object", "properties": {"items": {"type": "array", "items": ref},
                                                 "total": {"type": "integer"}, "page": {"type": "integer"},
                                                 "page_size": {"type": "integer"}}})}, **errors},
                       parameters=list_params, tags=tag, operationId=f"list_{entity.name}"),
            "post": _op(f"Create {entity.label.en}", {"201": {"description": "Created", **_json(ref)},
                                                     "409": {"description": "Duplicate", **_json(ERROR)},
                                                     "422": {"description": "Invalid", **_json(ERROR)}, **errors},
                        requestBody={"required": True, **_json(ref)}, tags=tag,
                        operationId=f"create_{entity.name}"),
        }
        paths[f"/api/v1/records/{entity.name}/{{id}}"] = {
            "parameters": [id_param],
            "get": _op(f"Read {entity.label.en}", {"200": {"description": "The record", **_json(ref)}, **errors},
                       tags=tag, operationId=f"read_{entity.name}"),
            "patch": _op(f"Update {entity.label.en} (send its current version)",
                         {"200": {"description": "Updated", **_json(ref)},
                          "409": {"description": "Stale version", **_json(ERROR)},
                          "422": {"description": "Invalid", **_json(ERROR)}, **errors},
                         requestBody={"required": True, **_json(ref)}, tags=tag,
                         operationId=f"update_{entity.name}"),
            "delete": _op(f"Delete {entity.label.en}", {"204": {"description": "Deleted"},
                                                       "409": {"description": "Referenced", **_json(ERROR)},
                                                       **errors}, tags=tag, operationId=f"delete_{entity.name}"),
        }
        paths[f"/api/v1/records/{entity.name}/{{id}}/history"] = {
            "parameters": [id_param],
            "get": _op("Field history", {"200": {"description": "Changes, newest first", **_json({
                "type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}}}})},
                **errors}, tags=tag, operationId=f"history_{entity.name}"),
        }
        _keep_allowed(paths, entity.name, access)
    return {
        "openapi": "3.1.0",
        "info": {"title": "metacrm API", "version": str(catalog.version),
                 "description": "Generated from the published metadata (version "
                                f"{catalog.version}) for {principal.username}."},
        "servers": [{"url": server}],
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}, "cookie": {"type": "apiKey", "in": "cookie",
                                                                       "name": "session"}}},
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": {**paths, **(other_paths or {})},
    }
