"""What the view, dedup and workflow editors share: finding a document in the draft,
checking an edited document against the whole draft without storing it, and saving it.

The editors hold the document being edited in the page and send it whole; the draft
store (`drafts.py`) keeps the staged copy. Validation here is the same two-pass
validation publish runs, over the merged draft with this one document swapped in, so an
error the editor shows is exactly the error publishing would report — its JSON pointer
points into the edited document and the page puts it beside the input it came from.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import sqlalchemy as sa

from metacrm.metadata.documents import Document, MetadataError
from metacrm.metadata.model import MetadataSet, build_metadata_set
from metacrm.metadata.validation import validate_documents
from metacrm.runtime.errors import BadRequest, NotFound, ValidationFailed

from . import drafts

def source_of(data: Mapping[str, Any]) -> str:
    """The `source` of the edited document's errors: its draft key (`view/customer/all`),
    as `drafts.put_document` reports them, so a page tells its own errors from the
    errors it causes in other documents."""
    return drafts.document_key(dict(data))


def identity(data: Mapping[str, Any]) -> tuple[Any, ...]:
    """Documents of a kind are one per name, except forms and views (one per entity and name)."""
    kind = data.get("kind")
    if kind in ("view", "form"):
        return (kind, data.get("entity"), data.get("name"))
    return (kind, data.get("name"))


def find_document(docs: Sequence[Document], kind: str, name: str, entity: str | None = None) -> dict[str, Any] | None:
    """A deep copy of the document of `kind`/`name` (and `entity` for views) in `docs`."""
    wanted = identity({"kind": kind, "name": name, "entity": entity})
    for doc in docs:
        if isinstance(doc.data, dict) and identity(doc.data) == wanted:
            return copy.deepcopy(doc.data)
    return None


def draft_document(conn: sa.Connection, kind: str, name: str, entity: str | None = None) -> dict[str, Any]:
    """The document as the draft has it (templates + draft merged); NotFound when absent."""
    found = find_document(drafts.merged_draft(conn), kind, name, entity)
    if found is None:
        raise NotFound(f"No {kind} named '{name}'" + (f" on {entity}." if entity else "."))
    return found


def with_document(docs: Sequence[Document], data: Mapping[str, Any]) -> list[Document]:
    """`docs` with `data` in place of the document of the same identity (or added)."""
    out = [d for d in docs if not (isinstance(d.data, dict) and identity(d.data) == identity(data))]
    return out + [Document(source_of(data), dict(data))]


def _repeats(items: Any, key: Any, path: str, what: str) -> list[tuple[str, str]]:
    seen: set[Any] = set()
    out = []
    for i, item in enumerate(items if isinstance(items, list) else ()):
        try:
            k = key(item)
        except (TypeError, KeyError, IndexError):
            continue
        if k in seen:
            out.append((f"{path}/{i}", f"{what} {k!r} is listed twice"))
        seen.add(k)
    return out


def editor_problems(data: Mapping[str, Any]) -> list[MetadataError]:
    """What the schema allows but a designer shouldn't save: a column shown twice, the
    same condition twice in a dedup rule."""
    kind = data.get("kind")
    found: list[tuple[str, str]] = []
    if kind == "view":
        found += _repeats(data.get("columns"), lambda c: c if isinstance(c, str) else None, "/columns", "column")
        found += _repeats(data.get("sort"), lambda s: s[0], "/sort", "sort field")
    elif kind == "dedup":
        found += _repeats(data.get("conditions"), lambda c: (c["field"], c["method"]), "/conditions", "condition")
    return [MetadataError(source_of(data), path, message) for path, message in found]


def check_document(conn: sa.Connection, data: Any, kind: str) -> list[MetadataError]:
    """Every problem of `data` against the merged draft (nothing is stored): its own errors
    first, then those it causes in other documents (a removed state an action names …)."""
    if not isinstance(data, dict):
        raise BadRequest(f"Expected the {kind} document as a JSON object.")
    if data.get("kind") != kind:
        return [MetadataError(source_of(data), "/kind", f"must be {kind!r}")]
    before = drafts.merged_draft(conn)
    own = source_of(data)
    old = {(e.source, e.path, e.message) for e in validate_documents(before)}
    errors = [e for e in validate_documents(with_document(before, data))
              if e.source == own or (e.source, e.path, e.message) not in old]
    return sorted(editor_problems(data) + errors, key=lambda e: e.source != own)


def draft_set(conn: sa.Connection, data: Mapping[str, Any] | None = None) -> MetadataSet:
    """The metadata model of the draft (with `data` swapped in); MetadataInvalid when the
    edited document doesn't validate (422), since a simulation of a broken document means nothing."""
    docs = drafts.merged_draft(conn)
    if data is not None:
        errors = check_document(conn, data, str(data.get("kind")))
        if errors:
            raise invalid(errors)
        docs = with_document(docs, data)
    return build_metadata_set(docs)


def save_document(conn: sa.Connection, data: Any, kind: str, by: int | None) -> None:
    """Store the edited document in the draft; a 422 with pointers when
    it or the draft it makes is invalid — then nothing is stored."""
    if not isinstance(data, dict):
        raise BadRequest(f"Expected the {kind} document as a JSON object.")
    if data.get("kind") != kind:
        raise invalid([MetadataError(source_of(data), "/kind", f"must be {kind!r}")])
    errors = editor_problems(data) or drafts.put_document(conn, data, by)
    if errors:
        raise invalid(list(errors))


def invalid(errors: Sequence[MetadataError]) -> ValidationFailed:
    """422 `{"error": {"code", "message", "errors": [{"source", "path", "message"}]}}` — the
    shape the core designer's API answers, so every designer page reads errors alike."""
    return ValidationFailed(f"{len(errors)} metadata error(s); nothing was stored.",
                            errors=[e.to_dict() for e in errors])


def error_dicts(errors: Sequence[MetadataError]) -> list[dict[str, str]]:
    return [e.to_dict() for e in errors]
