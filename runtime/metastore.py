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
from metacrm.metadata.layers import identity, merge_layers
from metacrm.metadata.loader import Package, load_seed_package
from metacrm.metadata.packaging import manifest_for, package_zip
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
                     upgrade: bool = False, publish_now: bool = True) -> Plan | None:
    """Validate the package merged with what is installed, store its layer, publish.

    All in the caller's transaction: on any error nothing is stored or changed. With
    `publish_now=False` the layer is stored and validated but not published (None): a
    caller installing several templates publishes them once (`publish_pending`).
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
    if not publish_now:
        return None
    return publish(conn, merged, by=by, note=f"{'upgrade' if upgrade else 'install'} template {name} {version}")


def install_seed(conn: sa.Connection, name: str, by: int | None = None, publish_now: bool = True) -> Plan | None:
    """Install a shipped template unless it is installed already (what `metacrm init` does)."""
    t = systables.layers
    if conn.execute(sa.select(t.c.id).where(t.c.name == name)).first() is not None:
        return None
    return install_template(conn, load_seed_package(name), by=by, publish_now=publish_now)


def install_seeds(conn: sa.Connection, names: Sequence[str], by: int | None = None) -> list[str]:
    """Install the shipped templates not installed yet, in order (each may require the ones
    before it), published together as one metadata version; the names installed."""
    t = systables.layers
    installed = set(conn.execute(sa.select(t.c.name)).scalars())
    added = [name for name in names if name not in installed]
    for name in added:
        install_template(conn, load_seed_package(name), by=by, publish_now=False)
    if added:
        publish_pending(conn, by=by, note="install " + ", ".join(added))
    return added


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


def _requires(manifest: Any) -> list[str]:
    return [r if isinstance(r, str) else (r or {}).get("name") for r in (manifest or {}).get("requires") or []]


def uninstall_template(conn: sa.Connection, name: str, by: int | None = None,
                       drop_data: bool = False) -> Plan:
    """Remove an installed template's layer and publish what remains.

    What only this template defined disappears from the metadata: its entities and the
    fields it added to others are archived (tables, columns and rows kept, hidden), so a
    reinstall brings them back with their data. With `drop_data` its own entities' tables
    are dropped instead, and the system rows about them (history, dedup keys, approvals…)
    deleted. The instance's customisations of documents only this template defined go
    with it; any other customisation that needs the template (a lookup to one of its
    entities) stops the uninstall with the validation errors. Refused while another
    installed template requires it. All in the caller's transaction.
    """
    rows = _layer_rows(conn)
    row = next((r for r in rows if r.name == name and r.kind == "template"), None)
    if row is None:
        raise NotFound(f"Template {name} is not installed.")
    dependants = [r.name for r in rows if r.kind == "template" and name in _requires(r.manifest)]
    if dependants:
        raise Conflict(f"Template {name} is required by {', '.join(dependants)}; uninstall "
                       f"{'that' if len(dependants) == 1 else 'those'} first.")
    others = [[Document(f"{r.name}:{d.get('kind')}/{d.get('name')}", d) for d in r.documents]
              for r in rows if r.kind == "template" and r.name != name]
    defined_below = {identity(d) for layer in others for d in layer}
    own = {identity(Document(name, d)) for d in row.documents} - defined_below
    instance = [d for d in instance_documents(conn) if identity(d) not in own]
    merged = merge_layers([*others, instance])
    errors = validate_documents(merged)
    if errors:
        raise MetadataInvalid(errors)
    purge = frozenset(key[1] for key in own if key[0] == "entity") if drop_data else frozenset()
    t = systables.layers
    conn.execute(t.delete().where(t.c.id == row.id))
    if any(r.kind == "instance" for r in rows):
        _save_layer(conn, INSTANCE_LAYER, "instance", None, None, instance)
    plan = publish(conn, merged, by=by, purge=purge,
                   note=f"uninstall template {name} {row.version}" + (" (data dropped)" if purge else ""))
    if purge:
        _forget_entities(conn, purge)
    return plan


def _forget_entities(conn: sa.Connection, entities: frozenset[str]) -> None:
    """Delete the system rows that name dropped entities (every `mc_*` table with an
    `entity` column), so nothing points at a table that is gone."""
    for table in systables.metadata.sorted_tables[::-1]:
        if "entity" in table.c:
            conn.execute(table.delete().where(table.c.entity.in_(sorted(entities))))


def export_template(conn: sa.Connection, name: str, version: str, label: dict[str, str] | None = None,
                    whole: bool = False, only: Sequence[str] = ()) -> bytes:
    """The instance's metadata as a template package (zip bytes).

    By default the instance's own layer — its customisations — as a template that requires
    the installed templates (what a consultant ships over the default CRM); `whole` exports
    the merged metadata, standing alone. `only` keeps the documents whose `kind/name` (or
    `kind/entity/name`) is listed. The package is validated the way install would
    before it is returned."""
    if whole:
        documents, requires = pending_documents(conn), []
    else:
        documents = instance_documents(conn)
        requires = [r.name for r in _layer_rows(conn) if r.kind == "template"]
    if only:
        wanted = set(only)
        documents = [d for d in documents if "/".join(str(p) for p in identity(d) if p is not None) in wanted]
        missing = wanted - {"/".join(str(p) for p in identity(d) if p is not None) for d in documents}
        if missing:
            raise NotFound(f"No such document(s) to export: {', '.join(sorted(missing))}.")
    manifest = manifest_for(name, version, label, requires, documents)
    errors = validate_documents([Document("template.json", manifest)])
    if errors:
        raise MetadataInvalid(errors)
    return package_zip(manifest, documents)
