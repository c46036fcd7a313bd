"""Where metadata lives between files and tables: layers, templates, pending changes.

Installed templates are base layers (`mc_layers`, kind "template", in install order);
the instance's own customisations are one layer on top (kind "instance"). The merged
layers are the *pending* metadata; the newest row of `mc_meta_versions` is the
*published* metadata. `metacrm plan` shows the difference, `metacrm publish` applies it.

Functions that publish (install_template, publish_pending, install_seed) run in the
caller's transaction; open it with `db.schema_transaction(engine)`, which on SQLite lets
a table be rebuilt without its foreign keys cascading (see runtime/db.py).
"""
from __future__ import annotations

from typing import Any, Sequence

import sqlalchemy as sa

from metacrm.metadata.documents import Document, MetadataError, MetadataInvalid
from metacrm.metadata.layers import merge_layers
from metacrm.metadata.loader import Package, load_seed_package
from metacrm.metadata.validation import validate_documents

from . import systables
from .clock import utcnow
from .errors import Conflict, NotFound
from .publish import Plan, make_plan, publish

INSTANCE_LAYER = "instance"
INSTANCE_POSITION = 1_000_000


def _layer_rows(conn: sa.Connection) -> list[Any]:
    t = systables.layers
    return conn.execute(sa.select(t).order_by(t.c.position, t.c.id)).all()


def installed_templates(conn: sa.Connection) -> list[dict[str, Any]]:
    return [{"name": r.name, "version": r.version, "installed_at": r.installed_at.isoformat(),
             "updated_at": r.updated_at.isoformat()}
            for r in _layer_rows(conn) if r.kind == "template"]


def layer_documents(conn: sa.Connection, replace: dict[str, list[Document]] | None = None,
                    append: tuple[str, list[Document]] | None = None) -> list[list[Document]]:
    """The stored layers as documents, lowest first; `replace`/`append` stage a change."""
    replace = replace or {}
    out: list[list[Document]] = []
    instance: list[Document] | None = None
    for row in _layer_rows(conn):
        docs = replace.get(row.name)
        if docs is None:
            docs = [Document(f"{row.name}:{d.get('kind')}/{d.get('name')}", d) for d in row.documents]
        if row.kind == "instance":
            instance = docs
        else:
            out.append(docs)
    if append is not None:
        out.append(append[1])
    if INSTANCE_LAYER in replace and instance is None:
        instance = replace[INSTANCE_LAYER]
    if instance is not None:
        out.append(instance)
    return out


def pending_documents(conn: sa.Connection) -> list[Document]:
    return merge_layers(layer_documents(conn))


def plan_pending(conn: sa.Connection) -> Plan:
    return make_plan(conn, pending_documents(conn))


def publish_pending(conn: sa.Connection, by: int | None = None, note: str | None = None) -> Plan:
    return publish(conn, pending_documents(conn), by=by, note=note)


def _save_layer(conn: sa.Connection, name: str, kind: str, version: str | None, manifest: Any,
                documents: Sequence[Document]) -> None:
    t = systables.layers
    now = utcnow()
    data = [d.data for d in documents]
    existing = conn.execute(sa.select(t.c.id).where(t.c.name == name)).first()
    if existing:
        conn.execute(t.update().where(t.c.id == existing.id).values(
            version=version, manifest=manifest, documents=data, updated_at=now))
    else:
        position = INSTANCE_POSITION if kind == "instance" else (
            conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.kind == "template")).scalar_one() + 1)
        conn.execute(t.insert().values(name=name, kind=kind, version=version, position=position,
                                       manifest=manifest, documents=data, installed_at=now, updated_at=now))


def check_package(package: Package) -> list[MetadataError]:
    """Errors that stop an install before anything is merged: unreadable files, no manifest."""
    errors = list(package.errors)
    if package.manifest is None:
        errors.append(MetadataError("template.json", "", "missing template manifest"))
    else:
        errors += validate_documents([package.manifest])
    return errors


def install_template(conn: sa.Connection, package: Package, by: int | None = None,
                     upgrade: bool = False) -> Plan:
    """Validate the package merged with what is installed, store its layer, publish.

    All in the caller's transaction: on any error nothing is stored or changed.
    """
    errors = check_package(package)
    if errors:
        raise MetadataInvalid(errors)
    name, version = package.name or "", package.version
    t = systables.layers
    row = conn.execute(sa.select(t).where(t.c.name == name)).first()
    if row is not None and not upgrade:
        raise Conflict(f"Template {name} {row.version} is already installed; use upgrade.")
    if row is None and upgrade:
        raise NotFound(f"Template {name} is not installed.")
    installed = {r.name for r in _layer_rows(conn)}
    for req in package.manifest.data.get("requires") or []:  # type: ignore[union-attr]
        req_name = req if isinstance(req, str) else req.get("name")
        if req_name not in installed:
            raise MetadataInvalid([MetadataError(package.manifest.source, "/requires",  # type: ignore[union-attr]
                                                 f"requires template '{req_name}', which is not installed")])
    docs = list(package.documents)
    layers = (layer_documents(conn, replace={name: docs}) if row is not None
              else layer_documents(conn, append=(name, docs)))
    merged = merge_layers(layers)
    errors = validate_documents(merged)
    if errors:
        raise MetadataInvalid(errors)
    _save_layer(conn, name, "template", version, package.manifest.data,  # type: ignore[union-attr]
                docs)
    return publish(conn, merged, by=by, note=f"{'upgrade' if upgrade else 'install'} template {name} {version}")


def install_seed(conn: sa.Connection, name: str, by: int | None = None) -> Plan | None:
    """Install a shipped template unless it is installed already (what `metacrm init` does)."""
    t = systables.layers
    if conn.execute(sa.select(t.c.id).where(t.c.name == name)).first() is not None:
        return None
    return install_template(conn, load_seed_package(name), by=by)


def set_instance_layer(conn: sa.Connection, documents: Sequence[Document]) -> None:
    """Replace the instance's customisation layer (validated merged with the templates)."""
    merged = merge_layers(layer_documents(conn, replace={INSTANCE_LAYER: list(documents)}))
    errors = validate_documents(merged)
    if errors:
        raise MetadataInvalid(errors)
    _save_layer(conn, INSTANCE_LAYER, "instance", None, None, documents)


def instance_documents(conn: sa.Connection) -> list[Document]:
    """The instance's own customisation layer as stored (empty before any customisation)."""
    t = systables.layers
    row = conn.execute(sa.select(t.c.documents).where(t.c.name == INSTANCE_LAYER)).first()
    return [Document(f"{INSTANCE_LAYER}:{d.get('kind')}/{d.get('name')}", d) for d in (row.documents if row else [])]
