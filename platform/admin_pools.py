"""Public pool administration (`/api/v1/admin/pools`, admins only).

Pools are metadata (`kind: pool`), edited like roles (admin.py): a change is stored in
the instance layer over the template's pool, validated with the whole set, and
published at once, so a template upgrade still reaches the parts the admin didn't touch.
A PATCH is a JSON merge patch (RFC 7396). A pool still holding records can't be deleted:
they would be left in a pool nobody can see.
"""
from __future__ import annotations

from typing import Any, Callable

import sqlalchemy as sa
from flask import Blueprint, jsonify

from metacrm.metadata.documents import Document
from metacrm.metadata.layers import merge_values
from metacrm.metadata.model import Spec, thaw
from metacrm.runtime import people
from metacrm.runtime.db import schema_transaction
from metacrm.runtime.errors import Conflict, NotFound, ValidationFailed
from metacrm.runtime.metastore import instance_documents, publish_pending, set_instance_layer
from metacrm.runtime.principal import Principal
from metacrm.runtime.web.context import runtime

from .admin import _admin, _body, _has_null, merge_patch

bp = Blueprint("metacrm_admin_pools", __name__, url_prefix="/api/v1/admin/pools")

Docs = list[dict[str, Any]]


def _is_pool(doc: dict[str, Any], name: str) -> bool:
    return doc.get("kind") == "pool" and doc.get("name") == name


def _current(name: str) -> Spec:
    spec = runtime().catalog().mset.pools.get(name)
    if spec is None:
        raise NotFound(f"No pool named '{name}'.")
    return spec


def _save(by: Principal, change: Callable[[Docs], Docs], action: str, name: str, detail: Any) -> Any:
    """Apply `change` to the instance layer, validate, publish, audit; the new pools."""
    rt = runtime()
    with schema_transaction(rt.engine) as conn:
        docs = change([d.data for d in instance_documents(conn)])
        set_instance_layer(conn, [Document("instance", d) for d in docs])
        publish_pending(conn, by=by.user_id, note=f"pool {name} changed")
        people.audit(conn, by, action, f"pool:{name}", detail)
    rt.invalidate()
    return rt.catalog().mset.pools


def _check_body(body: dict[str, Any]) -> None:
    markers = sorted(k for k in body if k.startswith("$"))
    if markers:
        raise ValidationFailed("Layer markers can't be sent.", {k: ["Unknown field."] for k in markers})


@bp.get("")
def pools() -> Any:
    _admin()
    return jsonify({"items": [thaw(p.spec) for p in runtime().catalog().mset.pools.values()]})


@bp.get("/<name>")
def pool(name: str) -> Any:
    _admin()
    return jsonify(thaw(_current(name).spec))


@bp.post("")
def create_pool() -> Any:
    by = _admin()
    body = _body()
    name = body.get("name")
    if not isinstance(name, str):
        raise ValidationFailed("A pool needs a name.", {"name": ["Required; a string."]})
    _check_body(body)
    if name in runtime().catalog().mset.pools:
        raise Conflict(f"A pool named '{name}' exists already.")
    doc = {"kind": "pool", **{k: v for k, v in body.items() if k != "kind"}}
    marker = {"kind": "pool", "name": name, "$remove": True}
    saved = _save(by, lambda docs: [d for d in docs if not _is_pool(d, name)] + [marker, doc],
                  "pool.create", name, {"pool": doc})
    return jsonify(thaw(saved[name].spec)), 201


@bp.patch("/<name>")
def update_pool(name: str) -> Any:
    by = _admin()
    body = _body()
    current = _current(name)
    _check_body(body)
    if body.get("name", name) != name:
        raise ValidationFailed("A pool can't be renamed.", {"name": ["Create a new pool instead."]})
    patch = {k: v for k, v in body.items() if k not in ("kind", "name")}

    def change(docs: Docs) -> Docs:
        if _has_null(patch):  # a removed key: store the whole pool, replacing the template's
            whole = merge_patch(thaw(current.spec), patch)
            return [d for d in docs if not _is_pool(d, name)] + [{"kind": "pool", "name": name, "$remove": True},
                                                                 whole]
        for i, d in enumerate(docs):
            if _is_pool(d, name) and not d.get("$remove"):
                docs[i] = merge_values(d, patch)
                return docs
        return docs + [{"kind": "pool", "name": name, **patch}]

    saved = _save(by, change, "pool.update", name, {"changes": patch})
    return jsonify(thaw(saved[name].spec))


@bp.delete("/<name>")
def delete_pool(name: str) -> Any:
    by = _admin()
    rt = runtime()
    spec = _current(name)
    catalog = rt.catalog()
    table = catalog.get(spec.entity or "customer").table
    with rt.engine.connect() as conn:
        held = conn.execute(sa.select(sa.func.count()).select_from(table).where(
            table.c.owner.is_(None), table.c.pool == name)).scalar_one()
    if held:
        raise Conflict(f"{held} record(s) are still in the pool '{name}'; assign them or move them first.")
    _save(by, lambda docs: [d for d in docs if not _is_pool(d, name)] + [{"kind": "pool", "name": name,
                                                                           "$remove": True}],
          "pool.delete", name, None)
    return "", 204
