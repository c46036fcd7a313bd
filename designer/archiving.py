"""Archiving a field from the designer: say who uses it, then archive it and tidy up.

Publish never drops a column (runtime.publish archives it), but a view still listing the
field, or a workflow reading it, would make the metadata invalid. So archiving is two
steps for the admin: first the impact list (`field_impact`), then — confirmed — the
field archived together with the uses the designer can drop by itself (view columns,
sort keys, plain filters, form slots). Uses it can't drop (a workflow condition, a dedup
rule, a formula) come back as errors on those documents, and nothing is stored.
"""
from __future__ import annotations

import copy
from typing import Any

import sqlalchemy as sa

from metacrm.metadata.documents import MetadataError

from . import drafts
from .impacts import Reference, auto_remove, field_references


def _with_field_archived(document: dict[str, Any], field: str) -> dict[str, Any]:
    doc = copy.deepcopy(document)
    found = False
    for f in doc.get("fields") or []:
        if f.get("name") == field:
            f["archived"] = True
            found = True
    if not found:
        raise KeyError(field)
    return doc


def _others(conn: sa.Connection, document: dict[str, Any]) -> list[dict[str, Any]]:
    """The merged draft with `document` (possibly unsaved edits) in place of its stored self."""
    key = drafts.document_key(document)
    return [document if drafts.document_key(d.data) == key else d.data for d in drafts.merged_draft(conn)]


def field_impact(conn: sa.Connection, document: dict[str, Any], field: str) -> list[Reference]:
    """Every use of `field` of the entity `document` across the draft (it included).
    Raises KeyError for an unknown field."""
    if not any(f.get("name") == field for f in document.get("fields") or []):
        raise KeyError(field)
    return field_references(_others(conn, document), str(document.get("name")), field)


def archive_field(conn: sa.Connection, document: dict[str, Any], field: str,
                  by: int | None) -> tuple[list[Reference], list[MetadataError]]:
    """Stage `document` with `field` archived and the droppable uses removed from other
    documents. Returns (the references dropped, the errors that stopped it — then nothing
    is stored). Raises KeyError for an unknown field."""
    entity = str(document.get("name"))
    archived = _with_field_archived(document, field)
    changes: dict[Any, dict[str, Any] | None] = {drafts.parse_key("entity", entity): archived}
    dropped: list[Reference] = []
    for doc in _others(conn, archived):
        if doc.get("kind") == "entity":
            continue
        fixed = auto_remove(doc, entity, field)
        if fixed is not None:
            key = drafts.document_key(doc)
            kind, _, name = key.partition("/")
            changes[drafts.parse_key(kind, name)] = fixed
            dropped += [r for r in field_references([doc], entity, field) if r.fixable]
    errors = drafts.stage(conn, changes, by)
    return dropped, errors
