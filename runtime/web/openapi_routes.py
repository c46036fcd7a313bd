"""OpenAPI paths for the API's non-record endpoints, read from the app's URL map.

The record paths are generated per entity from the metadata (openapi.py); everything else
under `/api/v1` — transitions, approvals, imports, duplicates, pools, pickers, reports,
notifications, admin and designer calls — is described from the Flask rules themselves, so
an endpoint that an engine mounts shows up in the document without a second list to keep
in step. Summaries come from the view function's docstring (first line) or, failing that,
its name.

Admin-only prefixes are left out of a non-admin's document, like entities they can't read.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping

from werkzeug.routing import Rule

API_PREFIX = "/api/v1/"
#: Paths whose callers must be admins: a non-admin's document leaves them out.
ADMIN_PREFIXES = ("/api/v1/admin/", "/api/v1/designer/")
#: Rules the per-entity generator describes already (with typed schemas), by their Flask form.
ENTITY_RULES = frozenset({
    "/api/v1/records/<entity>", "/api/v1/records/<entity>/<int:record_id>",
    "/api/v1/records/<entity>/<int:record_id>/history", "/api/v1/openapi.json",
})
METHODS = ("get", "post", "put", "patch", "delete")
#: Werkzeug converters → the JSON Schema of the path parameter.
CONVERTER_SCHEMAS = {"int": {"type": "integer"}, "float": {"type": "number"}, "path": {"type": "string"},
                     "string": {"type": "string"}, "default": {"type": "string"}, "uuid": {"type": "string"}}
_PARAM = re.compile(r"<(?:(?P<conv>[a-zA-Z_]+)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")


def openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """`/records/<entity>/<int:record_id>` → (`/records/{entity}/{record_id}`, [path parameters])."""
    params = []
    for m in _PARAM.finditer(rule):
        schema = CONVERTER_SCHEMAS.get(m.group("conv") or "default", {"type": "string"})
        params.append({"name": m.group("name"), "in": "path", "required": True, "schema": dict(schema)})
    return _PARAM.sub(lambda m: "{" + m.group("name") + "}", rule), params


def summary_of(view: Callable[..., Any] | None, endpoint: str) -> str:
    doc = (getattr(view, "__doc__", None) or "").strip()
    if doc:
        return doc.splitlines()[0].strip().rstrip(".")
    name = endpoint.rsplit(".", 1)[-1].removesuffix("_view").replace("_", " ")
    return name[:1].upper() + name[1:]


def operation_id(method: str, path: str) -> str:
    """`post` + `/api/v1/records/{entity}/{record_id}/transitions/{name}` →
    `post_records_entity_record_id_transitions_name`: unique, since (method, path) is."""
    return method + "_" + re.sub(r"[^a-zA-Z0-9]+", "_", path[len(API_PREFIX):]).strip("_")


def _tag(path: str) -> str:
    parts = [p for p in path[len(API_PREFIX):].split("/") if p and not p.startswith("{")]
    if parts and parts[0] in ("admin", "designer", "records") and len(parts) > 1:
        return f"{parts[0]}/{parts[-1]}" if parts[0] == "records" else f"{parts[0]}/{parts[1]}"
    return parts[0] if parts else "api"


def route_paths(rules: Iterable[Rule], views: Mapping[str, Callable[..., Any]], *, is_admin: bool,
                error: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAPI path items for the `/api/v1` rules not generated from the metadata."""
    paths: dict[str, Any] = {}
    errors = {code: {"description": text, "content": {"application/json": {"schema": dict(error)}}}
              for code, text in (("400", "Bad request"), ("401", "Not signed in"), ("403", "Not allowed"),
                                 ("404", "Not found"), ("409", "Conflict"), ("422", "Invalid"))}
    for rule in sorted(rules, key=lambda r: r.rule):
        if not rule.rule.startswith(API_PREFIX) or rule.rule in ENTITY_RULES:
            continue
        if not is_admin and rule.rule.startswith(ADMIN_PREFIXES):
            continue
        path, params = openapi_path(rule.rule)
        item = paths.setdefault(path, {})
        if params:
            item["parameters"] = params
        for method in METHODS:
            if method.upper() not in (rule.methods or ()):
                continue
            operation: dict[str, Any] = {
                "summary": summary_of(views.get(rule.endpoint), rule.endpoint),
                "operationId": operation_id(method, path),
                "tags": [_tag(path)],
                "responses": {"200": {"description": "OK"}, **errors},
            }
            if method in ("post", "put", "patch"):
                operation["requestBody"] = {"required": False, "content": {
                    "application/json": {"schema": {"type": "object"}}}}
            item[method] = operation
        if not set(item) & set(METHODS):
            del paths[path]
    return paths
