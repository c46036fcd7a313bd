"""The roles admin screens (`/admin/roles...`): the list (create, delete) and the
permission matrix of one role — rows are entities, columns the actions, each cell a data
scope (or a checkbox for the yes/no actions), plus the field permissions.

The matrix is saved as a merge patch through `admin.patch_role`, the path the API's
`PATCH /api/v1/admin/roles/<name>` takes (instance layer, validate, publish). A cell
holding anything but a known scope is refused before saving, its message shown under the
cell; a publish refusal is mapped back to the cells its JSON pointers name.
"""
from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa
from flask import redirect, render_template, request, url_for

from metacrm.metadata.documents import MetadataInvalid
from metacrm.metadata.model import Entity, thaw
from metacrm.runtime.access import BASIC_ACTIONS, SCOPES
from metacrm.runtime.errors import NotFound, ServiceError, ValidationFailed
from metacrm.runtime.systables import user_roles
from metacrm.runtime.web.context import runtime
from metacrm.runtime.web.screen_context import flash_t, screen_principal

from .admin import new_role, patch_role, remove_role
from .admin_pages import admin_blueprint, failure_status

bp = admin_blueprint("metacrm_admin_roles")
#: Actions granted or not, with no rows to scope (a checkbox in the matrix).
BOOLEAN_ACTIONS = frozenset({"create", "import"})
FIELD_LEVELS = ("readonly", "masked", "hidden")


def _matrix_entities() -> list[Entity]:
    return [e for e in runtime().catalog().mset.active_entities if not e.child_of]


def _role(name: str) -> dict[str, Any]:
    spec = runtime().catalog().mset.roles.get(name)
    if spec is None:
        raise NotFound(f"No role named '{name}'.")
    return thaw(spec.spec)


def _holders() -> dict[str, int]:
    with runtime().engine.connect() as conn:
        return dict(conn.execute(sa.select(user_roles.c.role, sa.func.count()).group_by(user_roles.c.role)).all())


def _cells(role: Mapping[str, Any]) -> dict[str, str]:
    """The role as the matrix's inputs: `perm.<entity>.<action>` and `field.<entity>.<field>`."""
    out: dict[str, str] = {}
    for entity, actions in (role.get("permissions") or {}).items():
        for action, value in (actions or {}).items():
            if value is True:
                out[f"perm.{entity}.{action}"] = "all" if action not in BOOLEAN_ACTIONS else "1"
            elif value:
                out[f"perm.{entity}.{action}"] = "1" if action in BOOLEAN_ACTIONS else str(value)
    for entity, fields in (role.get("fields") or {}).items():
        for f, level in (fields or {}).items():
            out[f"field.{entity}.{f}"] = str(level)
    return out


def _read_matrix(form: Mapping[str, str], entities: list[Entity]) -> tuple[dict[str, Any], dict[str, Any],
                                                                             dict[str, list[str]]]:
    """(permissions, fields, errors) from the posted matrix; errors keyed by input name."""
    errors: dict[str, list[str]] = {}
    known = {f"perm.{e.name}.{a}" for e in entities for a in BASIC_ACTIONS} | {
        f"field.{e.name}.{f.name}" for e in entities for f in e.active_fields}
    for key in form:
        if key.startswith(("perm.", "field.")) and key not in known:
            errors[key] = ["Not an entity's action or field."]
    permissions: dict[str, dict[str, Any]] = {}
    fields: dict[str, dict[str, str]] = {}
    for e in entities:
        for action in BASIC_ACTIONS:
            key = f"perm.{e.name}.{action}"
            value = (form.get(key) or "").strip()
            if not value:
                continue
            if action in BOOLEAN_ACTIONS:
                permissions.setdefault(e.name, {})[action] = True
            elif value in SCOPES:
                permissions.setdefault(e.name, {})[action] = value
            else:
                errors[key] = [f"Not a scope: {value[:40]}. Choose one of {', '.join(SCOPES)}."]
        for f in e.active_fields:
            key = f"field.{e.name}.{f.name}"
            level = (form.get(key) or "").strip()
            if level in FIELD_LEVELS:
                fields.setdefault(e.name, {})[f.name] = level
            elif level:
                errors[key] = [f"Not a field permission: {level[:40]}."]
    return permissions, fields, errors


def _patch_of(current: Mapping[str, Any], wanted: dict[str, dict[str, Any]], entities: list[str]) -> dict[str, Any]:
    """The merge patch turning `current` into `wanted` for the matrix's entities: keys the
    matrix cleared become null; entities outside the matrix are left alone."""
    patch: dict[str, Any] = {}
    for entity in entities:
        have = {k: v for k, v in (current.get(entity) or {}).items()}
        want = wanted.get(entity, {})
        if not want:
            if entity in current:
                patch[entity] = None
            continue
        change = {k: v for k, v in want.items() if have.get(k) != v}
        change.update({k: None for k in have if k not in want})
        if change:
            patch[entity] = change
    return patch


def _pointer_key(path: str) -> str | None:
    """A publish error's JSON pointer as the matrix input it is about."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.strip("/").split("/")]
    if len(parts) >= 3 and parts[0] == "permissions":
        return f"perm.{parts[1]}.{parts[2]}"
    if len(parts) >= 3 and parts[0] == "fields":
        return f"field.{parts[1]}.{parts[2]}"
    return None


def _matrix_page(name: str, role: dict[str, Any], cells: Mapping[str, str], status: int = 200,
                 errors: Mapping[str, list[str]] | None = None, message: str | None = None) -> Any:
    open_entities = {key.split(".")[1] for key in [k for k, v in cells.items() if v] + list(errors or {})
                     if key.startswith("field.") and key.count(".") >= 2}
    return render_template("admin/role.html", name=name, role=role, cells=cells, entities=_matrix_entities(),
                           open_entities=open_entities,
                           actions=BASIC_ACTIONS, boolean_actions=BOOLEAN_ACTIONS, scopes=SCOPES,
                           field_levels=FIELD_LEVELS, errors=errors or {}, message=message,
                           holders=_holders().get(name, 0)), status


def _label(form: Mapping[str, str]) -> dict[str, str] | None:
    en, zh = (form.get("label_en") or "").strip(), (form.get("label_zh") or "").strip()
    return {"en": en or zh, "zh": zh or en} if en or zh else None


@bp.get("/roles")
def roles() -> Any:
    return _roles_page()


def _roles_page(status: int = 200, error: ServiceError | None = None, form: Mapping[str, str] | None = None) -> Any:
    mset = runtime().catalog().mset
    return render_template("admin/roles.html", roles=list(mset.roles.values()), holders=_holders(),
                           form=form or {}, errors=error.fields if error else {},
                           message=error.message if error else None), status


@bp.post("/roles")
def create_role() -> Any:
    by = screen_principal()
    body: dict[str, Any] = {"name": (request.form.get("name") or "").strip()}
    label = _label(request.form)
    if label:
        body["label"] = label
    try:
        new_role(by, body)
    except ServiceError as exc:
        return _roles_page(failure_status(exc), exc, request.form)
    except MetadataInvalid as exc:
        return _roles_page(422, ValidationFailed("The role is not valid.",
                                                 {"name": [e.message for e in exc.errors]}), request.form)
    flash_t("role_created", name=body["name"])
    return redirect(url_for(".role", name=body["name"]))


@bp.post("/roles/<name>/delete")
def delete_role(name: str) -> Any:
    by = screen_principal()
    try:
        remove_role(by, name)
    except ServiceError as exc:
        return _roles_page(failure_status(exc), exc)
    flash_t("role_deleted", name=name)
    return redirect(url_for(".roles"))


@bp.route("/roles/<name>", methods=["GET", "POST"])
def role(name: str) -> Any:
    current = _role(name)
    if request.method == "GET":
        return _matrix_page(name, current, _cells(current))
    entities = _matrix_entities()
    permissions, fields, errors = _read_matrix(request.form, entities)
    posted = {k: v for k, v in request.form.items() if k.startswith(("perm.", "field."))}
    if errors:
        return _matrix_page(name, current, posted, 422, errors, "The role was not saved: fix the cells marked below.")
    names = [e.name for e in entities]
    body: dict[str, Any] = {}
    label = _label(request.form)
    if label and label != current.get("label"):
        body["label"] = label
    for key, wanted in (("permissions", permissions), ("fields", fields)):
        patch = _patch_of(current.get(key) or {}, wanted, names)
        if patch:
            body[key] = patch
    if body:
        try:
            patch_role(screen_principal(), name, body)
        except ServiceError as exc:
            return _matrix_page(name, current, posted, failure_status(exc), exc.fields, exc.message)
        except MetadataInvalid as exc:
            cell_errors: dict[str, list[str]] = {}
            loose = []
            for e in exc.errors:
                key = _pointer_key(e.path)
                if key:
                    cell_errors.setdefault(key, []).append(e.message)
                else:
                    loose.append(e.message)
            return _matrix_page(name, current, posted, 422, cell_errors,
                                "The role was not saved. " + " ".join(loose[:5]))
    flash_t("role_saved", name=name)
    return redirect(url_for(".role", name=name))
