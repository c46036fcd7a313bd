"""The published metadata as JSON for clients (`/api/v1/meta/...`): what screens and
integrations need to render and validate a record without reading the raw documents.

It is the caller's view of the metadata: entities their roles grant nothing on are not
listed (403 when asked for by name), fields hidden from them are left out everywhere
(fields, forms, view columns), fields their roles make read-only are `writable: false`,
and masked ones say `masked: true` so a screen can show the mask as a mask.
"""
from __future__ import annotations

from typing import Any

from metacrm.metadata.model import Entity, Field, thaw

from ..access import Access, access_for
from ..catalog import Catalog
from ..errors import PermissionDenied
from ..principal import Principal
from ..view_access import may_use_view

FIELD_KEYS = ("help", "required", "unique", "default", "max_length", "min", "max", "pattern", "searchable",
              "visible_when", "required_when", "readonly_when", "readonly", "target", "expression",
              "result_type", "precision", "scale", "format")


def field_json(f: Field, access: Access | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": f.name, "type": f.type, "label": f.label.to_dict()}
    if f.system:
        out["system"] = True
        return out
    for key in FIELD_KEYS:
        value = getattr(f, key)
        if value not in (None, False, "", ()):
            out[key] = value.to_dict() if hasattr(value, "to_dict") else value
    if f.targets:
        out["targets"] = list(f.targets)
    if f.options:
        out["options"] = [{"value": o.value, "label": o.label.to_dict(), **({"color": o.color} if o.color else {})}
                          for o in f.options]
    if access is not None and f.name in access.masked:
        out["masked"] = True
    out["writable"] = f.writable and (access is None or f.name not in access.readonly)
    return out


def may_use(catalog: Catalog, entity: Entity, principal: Principal) -> bool:
    """Whether any of the principal's roles grants any action on the entity."""
    access = access_for(catalog.mset, principal, entity)
    return access.unrestricted or any(access.scopes.values())


def entity_summary(catalog: Catalog, entity: Entity, principal: Principal) -> dict[str, Any]:
    return {"name": entity.name, "label": entity.label.to_dict(), "title_field": entity.title_field,
            "ownership": entity.ownership}


def _fields(entity: Entity, access: Access) -> list[dict[str, Any]]:
    return [field_json(f, access) for f in entity.active_fields if f.name not in access.hidden]


def entity_detail(catalog: Catalog, entity: Entity, principal: Principal) -> dict[str, Any]:
    mset = catalog.mset
    if not may_use(catalog, entity, principal):
        raise PermissionDenied(f"You may not use {entity.label.get(principal.language)} records.")
    access = access_for(mset, principal, entity)
    hidden = access.hidden
    children = {}
    for f in entity.table_fields:
        child = mset.entities.get(f.target or "")
        if child is not None and f.name not in hidden:
            children[f.name] = {"entity": child.name, "label": child.label.to_dict(),
                                "fields": _fields(child, access_for(mset, principal, child))}
    return {
        **entity_summary(catalog, entity, principal),
        "version": catalog.version,
        "system_fields": [field_json(f) for f in entity.system_fields],
        "fields": _fields(entity, access),
        "children": children,
        "validations": [{"rule": v.rule, "message": v.message.to_dict()} for v in entity.validations],
        "forms": [{"name": fm.name, "sections": [{"label": s.label.to_dict(), "columns": s.columns,
                                                   "fields": [n for n in s.fields if n not in hidden]}
                                                  for s in fm.sections]}
                  for fm in mset.forms_of(entity.name)],
        "views": [{"name": v.name, "label": v.label.to_dict(), "type": v.type,
                   "columns": [c for c in v.columns if c not in hidden],
                   "filters": thaw(v.filters), "sort": [list(s) for s in v.sort if s[0] not in access.unreadable], "page_size": v.page_size,
                   "group_by": v.group_by} for v in mset.views_of(entity.name)
                  if may_use_view(v, principal, access)],
        "actions": [thaw(a) for a in entity.actions],
        "dedup_rules": [r.name for r in mset.dedup_rules.values() if r.entity == entity.name],
        "workflows": [w.name for w in mset.workflows.values() if w.entity == entity.name],
    }
