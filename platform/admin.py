"""Organisation administration API (`/api/v1/admin/...`, admins only): departments,
users (create, edit, reset password, deactivate/activate, transfer records), roles (role
metadata in the instance layer, published at once) and the audit log.

A role edit is stored as an override in the instance layer, so a template upgrade still
reaches the parts of the role the admin didn't touch. A PATCH is a JSON merge patch
(RFC 7396): objects merge, and `null` removes a key (lifting a field's `hidden`, say).
Layers can't remove a key another layer sets, so a patch with a `null` stores the whole
resulting role instead, replacing the template's definition of it.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

import sqlalchemy as sa

from metacrm.metadata.documents import Document
from metacrm.metadata.layers import merge_values
from metacrm.metadata.model import thaw
from metacrm.runtime import people
from metacrm.runtime.db import schema_transaction
from metacrm.runtime.errors import BadRequest, Conflict, NotFound, PermissionDenied, ValidationFailed
from metacrm.runtime.metastore import instance_documents, publish_pending, set_instance_layer
from metacrm.runtime.principal import Principal
from metacrm.runtime.systables import user_roles
from metacrm.runtime.web.api import request_json
from metacrm.runtime.web.context import require_principal, runtime

from .auth import keep_own_session

bp = Blueprint("metacrm_admin", __name__, url_prefix="/api/v1/admin")


def _admin() -> Principal:
    principal = require_principal()
    if not principal.is_admin:
        raise PermissionDenied("Only administrators may do this.")
    return principal


def _body() -> Any:
    # request_json, not request.get_json: it also refuses bodies nested too deep to parse
    # and unpaired surrogates, which would otherwise be 500s.
    body = request_json()
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


# ------------------------------------------------------------------ departments

@bp.get("/departments")
def departments() -> Any:
    _admin()
    with runtime().engine.connect() as conn:
        return jsonify({"items": people.list_departments(conn)})


@bp.post("/departments")
def create_department() -> Any:
    by = _admin()
    with runtime().engine.begin() as conn:
        return jsonify(people.create_department(conn, by, _body())), 201


@bp.get("/departments/<int:department_id>")
def department(department_id: int) -> Any:
    _admin()
    with runtime().engine.connect() as conn:
        return jsonify(people.get_department(conn, department_id))


@bp.patch("/departments/<int:department_id>")
def update_department(department_id: int) -> Any:
    by = _admin()
    with runtime().engine.begin() as conn:
        return jsonify(people.update_department(conn, by, department_id, _body()))


@bp.delete("/departments/<int:department_id>")
def delete_department(department_id: int) -> Any:
    by = _admin()
    with runtime().engine.begin() as conn:
        people.delete_department(conn, by, department_id)
    return "", 204


# ------------------------------------------------------------------ users

def _role_names() -> list[str]:
    return list(runtime().catalog().mset.roles)


@bp.get("/users")
def users() -> Any:
    _admin()
    active = request.args.get("active")
    flag = None if active is None else active.lower() in ("1", "true", "yes")
    with runtime().engine.connect() as conn:
        return jsonify({"items": people.list_users(conn, flag)})


@bp.post("/users")
def create_user() -> Any:
    by = _admin()
    roles = _role_names()
    with runtime().engine.begin() as conn:
        return jsonify(people.create_user_from(conn, by, _body(), roles)), 201


@bp.get("/users/<int:user_id>")
def user(user_id: int) -> Any:
    _admin()
    with runtime().engine.connect() as conn:
        return jsonify(people.user_json(conn, user_id))


@bp.patch("/users/<int:user_id>")
def update_user(user_id: int) -> Any:
    by = _admin()
    roles = _role_names()
    body = _body()
    with runtime().engine.begin() as conn:
        user = people.update_user(conn, by, user_id, body, roles)
    if "password" in body:
        keep_own_session(user_id)
    return jsonify(user)


@bp.post("/users/<int:user_id>/deactivate")
def deactivate(user_id: int) -> Any:
    by = _admin()
    with runtime().engine.begin() as conn:
        return jsonify(people.set_active(conn, by, user_id, False))


@bp.post("/users/<int:user_id>/activate")
def activate(user_id: int) -> Any:
    by = _admin()
    with runtime().engine.begin() as conn:
        return jsonify(people.set_active(conn, by, user_id, True))


@bp.post("/users/<int:user_id>/transfer")
def transfer(user_id: int) -> Any:
    by = _admin()
    body = _body()
    rt = runtime()
    with rt.engine.begin() as conn:
        moved = people.transfer_records(conn, rt.catalog(conn), by, user_id, body.get("to_user"),
                                        body.get("entities"))
    return jsonify({"moved": moved})


# ------------------------------------------------------------------ roles

@bp.get("/roles")
def roles() -> Any:
    _admin()
    catalog = runtime().catalog()
    return jsonify({"items": [thaw(r.spec) for r in catalog.mset.roles.values()]})


@bp.get("/roles/<name>")
def role(name: str) -> Any:
    _admin()
    spec = runtime().catalog().mset.roles.get(name)
    if spec is None:
        raise NotFound(f"No role named '{name}'.")
    return jsonify(thaw(spec.spec))


def _save_roles(by: Principal, change: Any) -> Any:
    """Apply `change(docs)` to the instance layer, validate, publish; answer the new roles."""
    rt = runtime()
    with schema_transaction(rt.engine) as conn:
        docs = [d.data for d in instance_documents(conn)]
        docs = change(docs)
        set_instance_layer(conn, [Document("instance", d) for d in docs])
        publish_pending(conn, by=by.user_id, note="roles changed")
    rt.invalidate()
    return rt.catalog().mset.roles


def _is_role(doc: dict[str, Any], name: str) -> bool:
    return doc.get("kind") == "role" and doc.get("name") == name


def _removal(name: str) -> dict[str, Any]:
    """The instance-layer marker dropping the role as layers below define it."""
    return {"kind": "role", "name": name, "$remove": True}


def _check_role_body(body: dict[str, Any]) -> None:
    markers = sorted(k for k in body if k.startswith("$"))
    if markers:
        raise ValidationFailed("Layer markers can't be sent.", {k: ["Unknown field."] for k in markers})


def _has_null(value: Any) -> bool:
    return value is None or (isinstance(value, dict) and any(_has_null(v) for v in value.values()))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, `null` removes a key, anything else replaces.
    A plain-string label patched with one language keeps the string for the other."""
    if not isinstance(patch, dict):
        return patch
    if isinstance(target, str) and patch and set(patch) <= {"en", "zh"}:
        target = {"en": target, "zh": target}
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@bp.post("/roles")
def create_role() -> Any:
    return jsonify(new_role(_admin(), _body())), 201


def new_role(by: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """Create a role in the instance layer and publish it (the API and the screens)."""
    name = body.get("name")
    if not isinstance(name, str):
        raise ValidationFailed("A role needs a name.", {"name": ["Required; a string."]})
    _check_role_body(body)
    if name in runtime().catalog().mset.roles:
        raise Conflict(f"A role named '{name}' exists already.")
    doc = {"kind": "role", **{k: v for k, v in body.items() if k != "kind"}}
    # The marker first: a role deleted earlier (its template definition removed) comes
    # back as defined now, not merged over the old one.
    roles = _save_roles(by, lambda docs: [d for d in docs if not _is_role(d, name)] + [_removal(name), doc])
    with runtime().engine.begin() as conn:
        people.audit(conn, by, "role.create", f"role:{name}", {"role": doc})
    return thaw(roles[name].spec)


@bp.patch("/roles/<name>")
def update_role(name: str) -> Any:
    return jsonify(patch_role(_admin(), name, _body()))


def patch_role(by: Principal, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch a role in the instance layer and publish it; the role as it is now.
    The API's PATCH and the role matrix screen both save through here."""
    current = runtime().catalog().mset.roles.get(name)
    if current is None:
        raise NotFound(f"No role named '{name}'.")
    _check_role_body(body)
    if body.get("name", name) != name:
        raise ValidationFailed("A role can't be renamed.", {"name": ["Create a new role instead."]})
    patch = {k: v for k, v in body.items() if k not in ("kind", "name")}

    def change(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if _has_null(patch):
            whole = merge_patch(thaw(current.spec), patch)
            return [d for d in docs if not _is_role(d, name)] + [_removal(name), whole]
        for i, d in enumerate(docs):
            if _is_role(d, name) and not d.get("$remove"):
                docs[i] = merge_values(d, patch)
                return docs
        return docs + [{"kind": "role", "name": name, **patch}]

    roles = _save_roles(by, change)
    with runtime().engine.begin() as conn:
        people.audit(conn, by, "role.update", f"role:{name}", {"changes": patch})
    return thaw(roles[name].spec)


@bp.delete("/roles/<name>")
def delete_role(name: str) -> Any:
    remove_role(_admin(), name)
    return "", 204


def remove_role(by: Principal, name: str) -> None:
    """Remove a role nobody holds (the instance layer drops it) and publish (API and screens)."""
    rt = runtime()
    if name not in rt.catalog().mset.roles:
        raise NotFound(f"No role named '{name}'.")
    with rt.engine.connect() as conn:
        holders = conn.execute(sa.select(sa.func.count()).select_from(user_roles)
                               .where(user_roles.c.role == name)).scalar_one()
    if holders:
        raise Conflict(f"{holders} user(s) still have the role '{name}'; take it from them first.")

    def change(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = [d for d in docs if not (d.get("kind") == "role" and d.get("name") == name)]
        return kept + [{"kind": "role", "name": name, "$remove": True}]

    _save_roles(by, change)
    with rt.engine.begin() as conn:
        people.audit(conn, by, "role.delete", f"role:{name}")


@bp.get("/audit")
def audit_log() -> Any:
    _admin()
    with runtime().engine.connect() as conn:
        return jsonify({"items": people.read_audit(conn)})
