"""The designer's draft: a staged copy of the instance layer, published when the admin says so.

Templates are base layers and the instance's customisations one layer on top
(runtime/metastore.py). The draft is that top layer as the admin is editing it: stored
per document identity in `mc_designer_drafts`, one row for each document the draft
changes, holding the instance-layer entries that document should have (the smallest
overlay over the templates, see overlay.py; an empty list = no customisation). Documents
the draft doesn't touch follow the live instance layer, so a role edited through the
admin API meanwhile is neither lost nor reverted by a later publish of the draft.

Documents are addressed by a *key*: `kind/name`, or `kind/entity/name` for the kinds
scoped by entity (forms and views) — the same strings `metacrm template export --only`
takes. `get_document(conn, "view", "customer/all")` is customer's "all" view.

Every change validates the whole merged draft (schema + semantic) and is stored only
when it adds no error; the errors come back with JSON pointers into the documents, so a
screen can show each next to its input. Publishing sets the instance layer to the draft,
publishes it (runtime.publish: plan, DDL, a new version) and clears the draft — in the
caller's transaction, which must be a `db.schema_transaction(engine)`.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable, Sequence

import sqlalchemy as sa

from metacrm.metadata.documents import Document, MetadataError
from metacrm.metadata.fieldtypes import KIND_KEYS
from metacrm.metadata.layers import identity, merge_layers
from metacrm.metadata.validation import validate_documents
from metacrm.runtime import systables
from metacrm.runtime.clock import utcnow
from metacrm.runtime.metastore import INSTANCE_LAYER, instance_documents, layer_documents, set_instance_layer
from metacrm.runtime.publish import Plan, carry_forward, make_plan, publish, published_version

from .overlay import MARKERS, identity_keys, overlay_entries

#: Kinds the designer edits (templates are packages, not documents of an instance).
EDITABLE_KINDS: tuple[str, ...] = tuple(k for k in KIND_KEYS if k != "template")

Ident = tuple[Any, ...]


# ------------------------------------------------------------------ keys

def document_key(data: dict[str, Any]) -> str:
    """`entity/customer`, `view/customer/all`: a document's address in the designer."""
    kind = str(data.get("kind"))
    return "/".join([kind, *(str(data.get(k)) for k in identity_keys(kind))])


def parse_key(kind: str, name: str) -> Ident:
    """The identity tuple (as metadata.layers.identity builds it) for `kind` and `name`,
    where `name` is `entity/name` for the kinds scoped by entity."""
    keys = identity_keys(kind)
    parts = name.split("/") if len(keys) > 1 else [name]
    if kind not in EDITABLE_KINDS or len(parts) != len(keys) or not all(parts):
        raise KeyError(f"{kind}/{name}")
    return (kind, *parts)


def _ident(data: dict[str, Any]) -> Ident:
    return identity(Document("", data))


def _row_values(ident: Ident) -> dict[str, str]:
    kind, *parts = ident
    keys = identity_keys(kind)
    values = dict(zip(keys, parts))
    return {"kind": kind, "entity": str(values.get("entity") or ""), "name": str(values["name"])}


def _named(docs: Iterable[Document]) -> list[Document]:
    """Documents re-sourced by their key, so errors name `entity/customer`, not a layer chain."""
    return [Document(document_key(d.data), d.data) for d in docs]


# ------------------------------------------------------------------ reading

def _draft_rows(conn: sa.Connection) -> list[Any]:
    t = systables.designer_drafts
    return conn.execute(sa.select(t).order_by(t.c.id)).all()


def _row_ident(row: Any) -> Ident:
    keys = identity_keys(row.kind)
    values = {"entity": row.entity, "name": row.name}
    return (row.kind, *(values[k] for k in keys))


def _compose(instance: Sequence[Document], staged: dict[Ident, list[dict[str, Any]]]) -> list[Document]:
    """The instance layer with the staged identities' entries put in place of theirs."""
    out: list[Document] = []
    placed: set[Ident] = set()
    for doc in instance:
        ident = _ident(doc.data)
        if ident in staged:
            if ident not in placed:
                out += [Document(f"draft:{document_key(e)}", e) for e in staged[ident]]
                placed.add(ident)
            continue
        out.append(doc)
    for ident, entries in staged.items():
        if ident not in placed:
            out += [Document(f"draft:{document_key(e)}", e) for e in entries]
    return out


def _staged(conn: sa.Connection) -> dict[Ident, list[dict[str, Any]]]:
    return {_row_ident(r): list(r.entries) for r in _draft_rows(conn)}


def draft_documents(conn: sa.Connection) -> list[Document]:
    """The draft instance layer (the live instance layer until something is staged)."""
    return _compose(instance_documents(conn), _staged(conn))


def _template_base(conn: sa.Connection) -> dict[Ident, dict[str, Any]]:
    """Every document as the templates alone define it (the base the draft overlays)."""
    layers = layer_documents(conn, replace={INSTANCE_LAYER: []})
    return {_ident(d.data): d.data for d in merge_layers(layers)}


def _merge_with(conn: sa.Connection, layer: Sequence[Document]) -> list[Document]:
    return _named(merge_layers(layer_documents(conn, replace={INSTANCE_LAYER: list(layer)})))


def merged_draft(conn: sa.Connection) -> list[Document]:
    """Templates + draft merged: what a publish would publish (before archiving)."""
    return _merge_with(conn, draft_documents(conn))


def get_document(conn: sa.Connection, kind: str, name: str) -> dict[str, Any] | None:
    """The effective document `kind`/`name` in the draft (None when there is none)."""
    try:
        wanted = parse_key(kind, name)
    except KeyError:
        return None
    for doc in merged_draft(conn):
        if _ident(doc.data) == wanted:
            return copy.deepcopy(doc.data)
    return None


# ------------------------------------------------------------------ changing

def _check_shape(document: Any) -> list[MetadataError]:
    if not isinstance(document, dict):
        return [MetadataError("document", "", "a metadata document must be a JSON object")]
    kind = document.get("kind")
    if kind not in EDITABLE_KINDS:
        return [MetadataError("document", "/kind", f"kind must be one of {', '.join(EDITABLE_KINDS)}")]
    source = document_key(document)
    errors = [MetadataError(source, f"/{key}", f"'{key}' is required") for key in identity_keys(kind)
              if not isinstance(document.get(key), str) or not document.get(key)]
    errors += [MetadataError(source, path, "keys starting with '$' are layer markers, not metadata")
               for path in _marker_paths(document, "")]
    return errors


def _marker_paths(value: Any, path: str) -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items()
                for p in ([f"{path}/{k}"] if k in MARKERS else _marker_paths(v, f"{path}/{k}"))]
    if isinstance(value, list):
        return [p for n, v in enumerate(value) for p in _marker_paths(v, f"{path}/{n}")]
    return []


def stage(conn: sa.Connection, changes: dict[Ident, dict[str, Any] | None], by: int | None) -> list[MetadataError]:
    """Stage several effective documents at once (None removes one): validated together,
    stored together or not at all. Returns the errors the change would bring in — every
    error of a changed document, and any new error elsewhere (a view still showing a
    field this change archives) — and stores nothing if there are any."""
    base = _template_base(conn)
    staged = _staged(conn)
    for ident, target in changes.items():
        staged[ident] = overlay_entries(base.get(ident), target)
    after = _merge_with(conn, _compose(instance_documents(conn), staged))
    errors = validate_documents(after)
    if errors:
        # Only errors this change brings in count (validating the draft as it was costs
        # a second pass, so it is paid only when there is something to sort out).
        touched = {"/".join(str(p) for p in ident) for ident in changes}
        old_errors = {(e.source, e.path, e.message) for e in validate_documents(merged_draft(conn))}
        errors = [e for e in errors if e.source in touched or (e.source, e.path, e.message) not in old_errors]
    if errors:
        return errors
    live = {_ident(d.data): [] for d in instance_documents(conn)}
    for doc in instance_documents(conn):
        live[_ident(doc.data)].append(doc.data)
    t = systables.designer_drafts
    now = utcnow()
    for ident in changes:
        values = _row_values(ident)
        where = sa.and_(t.c.kind == values["kind"], t.c.entity == values["entity"], t.c.name == values["name"])
        conn.execute(t.delete().where(where))
        if staged[ident] != live.get(ident, []):
            conn.execute(t.insert().values(**values, entries=staged[ident], updated_by=by, updated_at=now))
    return []


def put_document(conn: sa.Connection, document: dict[str, Any], by: int | None) -> list[MetadataError]:
    """Replace (or add) one effective document in the draft.

    Returns the errors (source = the document's key, path = a JSON pointer into it, or
    another document's key for an error this change causes there); nothing is stored
    unless the list is empty."""
    errors = _check_shape(document)
    if errors:
        return errors
    return stage(conn, {_ident(document): copy.deepcopy(document)}, by)


def remove_document(conn: sa.Connection, kind: str, name: str, by: int | None) -> list[MetadataError]:
    """Remove a document from the draft (an entity is archived by publish, data kept).
    Raises KeyError when the draft has no such document."""
    ident = parse_key(kind, name)
    if not any(_ident(d.data) == ident for d in merged_draft(conn)):
        raise KeyError(f"{kind}/{name}")
    return stage(conn, {ident: None}, by)


def has_staged(conn: sa.Connection) -> bool:
    """Whether anything is staged (a staged change may still equal the published metadata)."""
    t = systables.designer_drafts
    return conn.execute(sa.select(t.c.id).limit(1)).first() is not None


def discard_draft(conn: sa.Connection) -> None:
    """Forget every staged change: the draft is the live instance layer again."""
    conn.execute(systables.designer_drafts.delete())


def validate_draft(conn: sa.Connection) -> list[MetadataError]:
    """Every error of the merged draft (empty when it may be published)."""
    return validate_documents(merged_draft(conn))


# ------------------------------------------------------------------ comparing

def _by_key(docs: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {document_key(d): d for d in docs}


def draft_changes(conn: sa.Connection) -> list[dict[str, Any]]:
    """What publishing the draft would change, per document, against the published
    version: `{"key", "kind", "entity", "name", "change": added|changed|removed}`.
    Entities and fields dropped from the draft count as changed (publish archives them)."""
    _, previous = published_version(conn)
    after = carry_forward(previous, merged_draft(conn))
    old, new = _by_key(previous), _by_key(d.data for d in after)
    out = []
    for key in list(new) + [k for k in old if k not in new]:
        if key not in old:
            change = "added"
        elif key not in new:
            change = "removed"
        elif old[key] != new[key]:
            change = "changed"
        else:
            continue
        doc = new.get(key) or old[key]
        out.append({"key": key, "kind": doc.get("kind"), "entity": doc.get("entity"),
                    "name": doc.get("name"), "change": change})
    return out


# ------------------------------------------------------------------ publishing

def plan_draft(conn: sa.Connection) -> Plan:
    """The publish plan of the draft (raises MetadataInvalid while it is invalid)."""
    return make_plan(conn, merged_draft(conn))


def publish_draft(conn: sa.Connection, by: int | None, note: str | None = None) -> Plan:
    """Make the draft the instance layer, publish it, clear the draft.

    Refuses (MetadataInvalid) while the draft is invalid and (PublishRefused) while its
    plan has problems; run it in a `db.schema_transaction(engine)` so a refusal changes
    nothing."""
    layer = draft_documents(conn)
    set_instance_layer(conn, layer)  # validates the merged result (MetadataInvalid)
    plan = publish(conn, _merge_with(conn, layer), by=by, note=note)
    discard_draft(conn)
    return plan
