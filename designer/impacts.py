"""Who uses a field or an entity: the impact list shown before archiving and publishing.

A scan of merged documents for references, one small reader per kind (data in, a list
of `Reference`s out): view columns, filters, sort and grouping; form sections; dedup
conditions and cross-entity checks; workflow state fields, expressions, approver fields,
editable fields and actions; role field rules; pool settings; the entity's own title,
formulas, conditions, validations and indexes; other entities' lookups to an entity.

`auto_remove` is what the designer may drop by itself when the admin archives a field
(a column, a sort key, a plain filter, a form slot); everything else needs the admin to
change the document that uses it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

from metacrm.metadata.expressions import compile_expression

from .drafts import document_key

Doc = Mapping[str, Any]


@dataclass(frozen=True)
class Reference:
    """`key` (document) uses the field at JSON pointer `path`; `fixable`: auto_remove can drop it."""

    key: str
    path: str
    what: str
    fixable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "path": self.path, "what": self.what, "fixable": self.fixable}


def _expr_names(text: Any) -> frozenset[str]:
    if not isinstance(text, str) or not text.strip():
        return frozenset()
    try:
        return compile_expression(text).names
    except Exception:  # noqa: BLE001 - a broken expression names nothing we can trust
        return frozenset()


def _filter_fields(filters: Any, path: str) -> Iterator[tuple[str, str, bool]]:
    """(field, pointer, plain) for each condition of a (nested) filter list."""
    for n, item in enumerate(filters or []):
        here = f"{path}/{n}"
        if isinstance(item, list) and item and isinstance(item[0], str):
            yield item[0], here, True
        elif isinstance(item, dict):
            for group in ("any", "all"):
                if group in item:
                    yield from ((f, p, False) for f, p, _ in _filter_fields(item[group], f"{here}/{group}"))


def _view_refs(doc: Doc, entity: str, name: str) -> Iterator[tuple[str, str, bool]]:
    if doc.get("entity") != entity:
        return
    for n, col in enumerate(doc.get("columns") or []):
        if col == name:
            yield f"/columns/{n}", "column", True
    for f, path, plain in _filter_fields(doc.get("filters"), "/filters"):
        if f == name:
            yield path, "filter", plain
    for n, item in enumerate(doc.get("sort") or []):
        if isinstance(item, list) and item and item[0] == name:
            yield f"/sort/{n}", "sort", True
    if doc.get("group_by") == name:
        yield "/group_by", "kanban grouping", False


def _form_refs(doc: Doc, entity: str, name: str) -> Iterator[tuple[str, str, bool]]:
    if doc.get("entity") != entity:
        return
    for s, section in enumerate(doc.get("sections") or []):
        for n, f in enumerate(section.get("fields") or []):
            if f == name:
                yield f"/sections/{s}/fields/{n}", "form section", True
        for key in ("visible_when",):
            if name in _expr_names(section.get(key)):
                yield f"/sections/{s}/{key}", "section condition", False


def _dedup_refs(doc: Doc, entity: str, name: str) -> Iterator[tuple[str, str, bool]]:
    if doc.get("entity") == entity:
        for n, cond in enumerate(doc.get("conditions") or []):
            if cond.get("field") == name:
                yield f"/conditions/{n}/field", "duplicate check", False
        for n, other in enumerate(doc.get("also_check") or []):
            if name in (other.get("fields") or {}):
                yield f"/also_check/{n}/fields/{name}", "duplicate check", False
    for n, other in enumerate(doc.get("also_check") or []):
        if other.get("entity") == entity:
            for ours, theirs in (other.get("fields") or {}).items():
                if theirs == name:
                    yield f"/also_check/{n}/fields/{ours}", "duplicate check (other entity)", False


def _walk_expressions(value: Any, path: str, keys: frozenset[str]) -> Iterator[tuple[str, Any]]:
    """(pointer, text) of every value stored under one of `keys`, anywhere below."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in keys:
                yield f"{path}/{k}", v
            yield from _walk_expressions(v, f"{path}/{k}", keys)
    elif isinstance(value, list):
        for n, v in enumerate(value):
            yield from _walk_expressions(v, f"{path}/{n}", keys)


EXPRESSION_KEYS = frozenset({"when", "condition", "expression", "rule", "visible_when", "required_when",
                             "readonly_when"})


def _workflow_refs(doc: Doc, entity: str, name: str) -> Iterator[tuple[str, str, bool]]:
    if doc.get("entity") != entity:
        return
    if doc.get("state_field") == name:
        yield "/state_field", "workflow state field", False
    for path, text in _walk_expressions(doc, "", EXPRESSION_KEYS):
        if name in _expr_names(text):
            yield path, "workflow condition", False
    for path, approvers in _walk_expressions(doc, "", frozenset({"approvers", "cc", "fallback_approvers"})):
        for n, spec in enumerate(approvers if isinstance(approvers, list) else [approvers]):
            if isinstance(spec, dict) and spec.get("type") == "field" and spec.get("field") == name:
                yield path, "approver field", False
    for path, fields in _walk_expressions(doc, "", frozenset({"editable_fields"})):
        if isinstance(fields, list) and name in fields:
            yield path, "editable in an approval step", False
    for n, action in enumerate(doc.get("actions") or []):
        if name in (action.get("set") or {}):
            yield f"/actions/{n}/set/{name}", "workflow action", False


def _role_refs(doc: Doc, entity: str, name: str) -> Iterator[tuple[str, str, bool]]:
    if name in ((doc.get("fields") or {}).get(entity) or {}):
        yield f"/fields/{entity}/{name}", "role field rule", False


def _pool_refs(doc: Doc, entity: str, name: str) -> Iterator[tuple[str, str, bool]]:
    if doc.get("entity") == entity:
        if doc.get("level_field") == name:
            yield "/level_field", "pool level field", False
        for f, path, _ in _filter_fields(doc.get("deal"), "/deal"):
            if f == name:
                yield path, "pool deal condition", False
    for n, link in enumerate(doc.get("related") or []):
        if link.get("entity") == entity and link.get("field") == name:
            yield f"/related/{n}/field", "pool related records", False
    for n, link in enumerate(doc.get("shared") or []):
        if link.get("entity") == entity and link.get("field") == name:
            yield f"/shared/{n}/field", "pool shared records", False


def _entity_refs(doc: Doc, entity: str, name: str) -> Iterator[tuple[str, str, bool]]:
    if doc.get("name") != entity:
        return
    if doc.get("title_field") == name:
        yield "/title_field", "title field", False
    for n, f in enumerate(doc.get("fields") or []):
        if f.get("name") == name or f.get("archived"):
            continue
        for key in ("expression", "visible_when", "required_when", "readonly_when"):
            if name in _expr_names(f.get(key)):
                yield f"/fields/{n}/{key}", f"field {f.get('name')}", False
    for n, rule in enumerate(doc.get("validations") or []):
        if name in _expr_names(rule.get("rule")):
            yield f"/validations/{n}/rule", "validation rule", False
    for n, index in enumerate(doc.get("indexes") or []):
        if name in (index if isinstance(index, list) else (index or {}).get("fields") or []):
            yield f"/indexes/{n}", "index", False


#: The reader of each kind: (document, entity, field) → (pointer, what, fixable).
READERS: dict[str, Callable[[Doc, str, str], Iterable[tuple[str, str, bool]]]] = {
    "view": _view_refs, "form": _form_refs, "dedup": _dedup_refs, "workflow": _workflow_refs,
    "role": _role_refs, "pool": _pool_refs, "entity": _entity_refs,
}


def field_references(docs: Iterable[Doc], entity: str, name: str) -> list[Reference]:
    """Every place in `docs` that uses `entity`.`name` (the entity's field list excluded)."""
    out: list[Reference] = []
    for doc in docs:
        reader = READERS.get(str(doc.get("kind")))
        if reader is not None:
            out += [Reference(document_key(doc), path, what, fixable) for path, what, fixable in reader(doc, entity, name)]
    return out


def entity_references(docs: Iterable[Doc], entity: str) -> list[Reference]:
    """Other entities' lookups, references and child tables that point at `entity`, and
    the documents built on it (views, forms, rules, workflows, pools)."""
    out: list[Reference] = []
    for doc in docs:
        key = document_key(doc)
        if doc.get("kind") == "entity" and doc.get("name") != entity and not doc.get("archived"):
            for n, f in enumerate(doc.get("fields") or []):
                if f.get("archived"):
                    continue
                if f.get("target") == entity or entity in (f.get("targets") or []):
                    out.append(Reference(key, f"/fields/{n}", f"{f.get('type')} field {f.get('name')}"))
            if doc.get("child_of") == entity:
                out.append(Reference(key, "/child_of", "child entity"))
        elif doc.get("kind") in ("view", "form", "dedup", "workflow", "pool") and doc.get("entity") == entity:
            out.append(Reference(key, "/entity", str(doc.get("kind"))))
    return out


def auto_remove(doc: Doc, entity: str, name: str) -> dict[str, Any] | None:
    """`doc` without the fixable uses of the field (None when it has none)."""
    refs = [(p, w) for p, w, fixable in READERS.get(str(doc.get("kind")), lambda *_: ())(doc, entity, name) if fixable]
    if not refs:
        return None
    out = copy.deepcopy(dict(doc))
    if out.get("kind") == "view":
        out["columns"] = [c for c in out.get("columns") or [] if c != name]
        out["sort"] = [s for s in out.get("sort") or [] if not (isinstance(s, list) and s and s[0] == name)]
        out["filters"] = [f for f in out.get("filters") or []
                          if not (isinstance(f, list) and f and f[0] == name)]
    elif out.get("kind") == "form":
        for section in out.get("sections") or []:
            section["fields"] = [f for f in section.get("fields") or [] if f != name]
    return out
