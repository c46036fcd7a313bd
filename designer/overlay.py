"""The inverse of layer merging: what an instance layer must hold to reach a document.

The designer edits *effective* documents (what the admin sees: the template's customer
with the instance's changes applied), but stores the instance's customisations as a
layer over the templates, so that a template upgrade still reaches what the admin left
alone. `overlay_entries(base, target)` computes the smallest layer entries that, merged
over `base` by metadata.layers' rules, give exactly `target`:

- keys whose value differs are set (objects recurse, so one changed label stays small);
- lists of named items (fields, options, states…) get the changed and new items, a
  `$remove` for each dropped one, and `$order` on the parent when the order differs;
- anything a layer can't express — a key the template sets and the target lacks — falls
  back to replacing the whole document: a `$remove` entry followed by the target.

Every result is checked by merging it back, so a case these rules miss costs a bigger
layer, never a wrong document.
"""
from __future__ import annotations

import copy
from typing import Any

from metacrm.metadata.documents import Document
from metacrm.metadata.fieldtypes import KIND_KEYS
from metacrm.metadata.layers import _item_key, merge_layers, merge_values

MARKERS = ("$order", "$remove")


class _NoOverlay(Exception):
    """The target can't be reached by merging over the base (a key would need removing)."""


def identity_keys(kind: str) -> tuple[str, ...]:
    """The keys that identify a document of `kind` ("name", or "entity" and "name")."""
    return KIND_KEYS.get(kind, ("name",))


def identity_of(data: dict[str, Any]) -> dict[str, Any]:
    """The identifying part of a document: kind plus its identity keys."""
    kind = data.get("kind")
    out = {"kind": kind}
    for key in identity_keys(str(kind)):
        out[key] = data.get(key)
    return out


def _overlay_list(base: list[Any], target: list[Any]) -> tuple[list[Any] | None, list[Any] | None]:
    """(items to put in the layer or None, the order to force or None) for one list."""
    key = _item_key(base) if base else None
    if key is None or not target or _item_key(target) != key:
        return (None if base == target else copy.deepcopy(target)), None
    by_name = {item[key]: item for item in base}
    wanted = {item[key] for item in target}
    items: list[Any] = []
    for item in target:
        below = by_name.get(item[key])
        if below is None:
            items.append(copy.deepcopy(item))
        elif below != item:
            changed = _overlay_value(below, item)
            items.append({key: item[key], **changed})
    items += [{key: item[key], "$remove": True} for item in base if item[key] not in wanted]
    merged = merge_values(base, items) if items else [i for i in base]
    order = [i[key] for i in target]
    forced = order if [i[key] for i in merged] != order else None
    if items and _item_key(items) != key:
        return copy.deepcopy(target), None  # the layer couldn't be read as named items
    return (items or None), forced


def _overlay_value(base: Any, target: Any) -> Any:
    """The value a layer needs over `base` to reach `target` (objects: only what differs)."""
    if isinstance(base, dict) and isinstance(target, dict):
        if any(k not in target for k in base):
            raise _NoOverlay
        out: dict[str, Any] = {}
        orders: dict[str, list[Any]] = {}
        for k, v in target.items():
            if k not in base:
                out[k] = copy.deepcopy(v)
            elif base[k] != v:
                if isinstance(base[k], list) and isinstance(v, list):
                    items, order = _overlay_list(base[k], v)
                    if items is not None:
                        out[k] = items
                    if order is not None:
                        orders[k] = order
                else:
                    out[k] = _overlay_value(base[k], v)
        if orders:
            out["$order"] = orders
        return out
    return copy.deepcopy(target)


def overlay_entries(base: dict[str, Any] | None, target: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The instance-layer entries (in order) that turn `base` into `target`.

    `base` is the document merged from the templates alone (None when no template has
    it); `target` the wanted effective document (None: the document should not exist).
    An empty list means "no customisation".
    """
    if target is None:
        return [] if base is None else [{**identity_of(base), "$remove": True}]
    if base is None:
        return [copy.deepcopy(target)]
    if base == target:
        return []
    try:
        value = _overlay_value(base, target)
        entries = [{**identity_of(target), **value}]
    except _NoOverlay:
        entries = []
    if entries and _merge_one(base, entries) == target:
        return entries
    return [{**identity_of(base), "$remove": True}, copy.deepcopy(target)]


def _merge_one(base: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    merged = merge_layers([[Document("base", base)], [Document("layer", e) for e in entries]])
    return merged[0].data if merged else None


def strip_markers(value: Any) -> Any:
    """A value without layer markers (what an effective document must look like)."""
    if isinstance(value, dict):
        return {k: strip_markers(v) for k, v in value.items() if k not in MARKERS}
    if isinstance(value, list):
        return [strip_markers(v) for v in value]
    return value
