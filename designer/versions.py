"""Published versions: the list, the difference between two, and rolling back to one.

Every publish records the whole merged metadata in `mc_meta_versions`, so a difference
is a comparison of two document lists and a rollback is a new publish whose documents
equal an old version's. The rollback goes through the draft (every document staged as
the old version had it, then published), so the instance layer afterwards is exactly
what produces that version: `metacrm plan` shows nothing pending, and a later template
upgrade still merges under it. Columns are never dropped, so data stays: a field the
old version lacked comes back archived, one it had and a later version archived comes
back live with its values.
"""
from __future__ import annotations

from typing import Any, Iterable

import sqlalchemy as sa

from metacrm.metadata.documents import MetadataInvalid
from metacrm.runtime import systables
from metacrm.runtime.errors import Conflict, NotFound
from metacrm.runtime.publish import Plan

from . import drafts
from .impacts import Doc

#: Keys that identify an item in a list of objects, for a diff that names items, not indexes.
ITEM_KEYS = ("name", "value", "field")


def list_versions(conn: sa.Connection) -> list[dict[str, Any]]:
    """Newest first: version, when, who, note and how many plan steps it applied."""
    v, u = systables.meta_versions, systables.users
    rows = conn.execute(sa.select(v.c.version, v.c.published_at, v.c.note, v.c.plan, u.c.username, u.c.display_name)
                        .select_from(v.outerjoin(u, u.c.id == v.c.published_by))
                        .order_by(v.c.version.desc())).all()
    return [{"version": r.version, "published_at": r.published_at, "note": r.note,
             "by": r.display_name or r.username, "steps": len((r.plan or {}).get("steps") or [])} for r in rows]


def version_documents(conn: sa.Connection, version: int) -> list[dict[str, Any]]:
    v = systables.meta_versions
    row = conn.execute(sa.select(v.c.documents).where(v.c.version == version)).first()
    if row is None:
        raise NotFound(f"There is no metadata version {version}.")
    return list(row.documents)


def _item_key(items: list[Any]) -> str | None:
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    return next((k for k in ITEM_KEYS if all(k in i for i in items)), None)


def diff_values(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """Added, removed and changed keys between two values, as JSON-pointer-like paths
    (list items by their name: `/fields/wechat/label`)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[dict[str, Any]] = []
        for key in list(old) + [k for k in new if k not in old]:
            here = f"{path}/{key}"
            if key not in new:
                out.append({"path": here, "change": "removed", "old": old[key]})
            elif key not in old:
                out.append({"path": here, "change": "added", "new": new[key]})
            elif old[key] != new[key]:
                out += diff_values(old[key], new[key], here)
        return out
    if isinstance(old, list) and isinstance(new, list):
        key = _item_key(old + new)
        if key is not None:
            before = {i[key]: i for i in old}
            after = {i[key]: i for i in new}
            if list(before) != list(after) and set(before) == set(after):
                return [{"path": path, "change": "changed", "old": list(before), "new": list(after)}]
            out = []
            for name in list(before) + [n for n in after if n not in before]:
                out += diff_values(before.get(name, _MISSING), after.get(name, _MISSING), f"{path}/{name}")
            return out
    if old is _MISSING:
        return [{"path": path, "change": "added", "new": new}]
    if new is _MISSING:
        return [{"path": path, "change": "removed", "old": old}]
    return [] if old == new else [{"path": path or "/", "change": "changed", "old": old, "new": new}]


_MISSING: Any = object()


def diff_documents(old_docs: Iterable[Doc], new_docs: Iterable[Doc]) -> list[dict[str, Any]]:
    """Per document that differs: key, added/removed/changed, and the keys inside."""
    old = {drafts.document_key(d): d for d in old_docs}
    new = {drafts.document_key(d): d for d in new_docs}
    out = []
    for key in list(old) + [k for k in new if k not in old]:
        if key not in new:
            out.append({"key": key, "change": "removed", "keys": []})
        elif key not in old:
            out.append({"key": key, "change": "added", "keys": []})
        elif old[key] != new[key]:
            out.append({"key": key, "change": "changed", "keys": diff_values(old[key], new[key])})
    return out


def rollback(conn: sa.Connection, version: int, by: int | None) -> Plan:
    """Publish a new version whose documents equal `version`'s (data kept).

    Refused (Conflict) while the draft has changes, so nobody's unpublished work is
    swept into it. Run it in a `db.schema_transaction(engine)`."""
    if drafts.has_staged(conn):
        raise Conflict("Publish or discard the draft before rolling back.")
    target = {drafts.parse_key(str(d["kind"]), drafts.document_key(d).split("/", 1)[1]): d
              for d in version_documents(conn, version) if d.get("kind") in drafts.EDITABLE_KINDS}
    current = {drafts.parse_key(str(d.kind), drafts.document_key(d.data).split("/", 1)[1])
               for d in drafts.merged_draft(conn)}
    changes: dict[Any, dict[str, Any] | None] = {ident: None for ident in current - set(target)}
    changes.update(target)
    errors = drafts.stage(conn, changes, by)
    if errors:
        drafts.discard_draft(conn)
        raise MetadataInvalid(errors)
    return drafts.publish_draft(conn, by, f"rollback to version {version}")
