"""Metadata layers: templates are base layers, the instance's customisations a layer on top.

A layer holds documents like any others, but a document whose identity (kind + name,
or kind + entity + name for forms and views) already exists below is merged over it
instead of replacing it. That is what lets a template upgrade keep a client's changes,
the way Frappe's Custom Field and Property Setter sit beside a DocType:

- objects merge key by key, recursively (`label: {"zh": "..."}` changes only Chinese,
  also over a plain-string label, which stands for both languages);
- lists of named objects (fields, options, sections, states, transitions, conditions)
  merge item by item on their identity key (`name`, or `value` for options): an item
  present below is merged, a new item is appended;
- any other value replaces the one below;
- `"$remove": true` on a document or a list item drops it (a removed *field* is not
  dropped by publish: its column is archived, see runtime.publish);
- `"$order": {"fields": ["a", "b"]}` reorders a named list: the names given first, in
  that order, the rest after them as they were.

The merged documents are what gets validated and published.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable, Sequence

from .documents import Document
from .fieldtypes import KIND_KEYS

#: Keys that identify an item inside a list of objects, tried in this order.
ITEM_KEYS = ("name", "value", "field")


def identity(doc: Document) -> tuple[Any, ...]:
    data = doc.data
    kind = doc.kind
    keys = KIND_KEYS.get(kind or "", ("name",))
    return (kind, *(data.get(k) for k in keys))


def _item_key(items: list[Any]) -> str | None:
    """The identity key shared by every item of a list of objects, if any."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in ITEM_KEYS:
        # Only string names identify items; anything else is left to validation to refuse.
        if all(isinstance(i.get(key), str) for i in items):
            return key
    return None


def _merge_lists(base: list[Any], over: list[Any]) -> list[Any]:
    key = _item_key(base) if base else None
    over_key = _item_key(over)
    if key is None or over_key != key:
        return [copy.deepcopy(i) for i in over if not (isinstance(i, dict) and i.get("$remove"))]
    out = [copy.deepcopy(i) for i in base]
    position = {item[key]: n for n, item in enumerate(out)}
    removed: set[Any] = set()
    for item in over:
        ident = item[key]
        if item.get("$remove"):
            removed.add(ident)
        elif ident in position:
            out[position[ident]] = merge_values(out[position[ident]], item)
        else:
            position[ident] = len(out)
            out.append(copy.deepcopy(item))
    return [i for i in out if i[key] not in removed]


#: The keys of a bilingual label object.
LANGUAGES = frozenset({"en", "zh"})


def merge_values(base: Any, over: Any) -> Any:
    """Merge one value over another with the layer rules above."""
    if isinstance(base, str) and isinstance(over, dict) and over and set(over) <= LANGUAGES:
        # A plain-string label means the same text in both languages, so overriding one
        # language ({"zh": "..."}) keeps the string for the other.
        base = {lang: base for lang in sorted(LANGUAGES)}
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base)
        for k, v in over.items():
            if k in ("$order", "$remove"):
                continue
            out[k] = merge_values(out[k], v) if k in out else copy.deepcopy(v)
        for list_key, names in (over.get("$order") or {}).items():
            out[list_key] = _reorder(out.get(list_key) or [], names)
        return out
    if isinstance(base, list) and isinstance(over, list):
        return _merge_lists(base, over)
    return copy.deepcopy(over)


def _reorder(items: list[Any], names: Sequence[Any]) -> list[Any]:
    key = _item_key(items)
    if key is None:
        return items
    by_name = {i[key]: i for i in items}
    first = [by_name[n] for n in names if n in by_name]
    rest = [i for i in items if i[key] not in set(names)]
    return first + rest


def _strip_markers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_markers(v) for k, v in value.items() if k not in ("$order", "$remove")}
    if isinstance(value, list):
        return [_strip_markers(v) for v in value]
    return value


def merge_layers(layers: Iterable[Sequence[Document]]) -> list[Document]:
    """Merge layers (lowest first) into one list of documents, in first-seen order."""
    merged: dict[tuple[Any, ...], Document] = {}
    for layer in layers:
        for doc in layer:
            ident = identity(doc)
            if doc.data.get("$remove"):
                merged.pop(ident, None)
            elif ident in merged:
                below = merged[ident]
                merged[ident] = Document(f"{below.source} + {doc.source}", merge_values(below.data, doc.data))
            else:
                merged[ident] = Document(doc.source, copy.deepcopy(doc.data))
    return [Document(d.source, _strip_markers(d.data)) for d in merged.values()]
