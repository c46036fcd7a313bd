"""The view designer's model: what the page offers for one list view of the draft.

Columns come from the entity's fields as the draft has them (a field added in the same
draft is offered at once), kanban `group_by` from its select fields, the visible-to list
from the draft's roles; filters use the list page's own filter builder, fed the same
field descriptions (`filter_fields`).
"""
from __future__ import annotations

from typing import Any, Mapping

from metacrm.metadata.model import Entity, MetadataSet
from metacrm.metadata.fieldtypes import FILTER_OPERATORS, RELATIVE_RANGES

#: Field types a list can't show as a column.
NOT_COLUMNS = frozenset({"table", "location"})
#: Field types the filter builder can't filter on (as on the list page).
NOT_FILTERABLE = frozenset({"table", "location", "file", "image", "reference"})
PAGE_SIZES = (10, 20, 50, 100, 200)


def new_view(entity: Entity, name: str) -> dict[str, Any]:
    """A starting document: the title field and the owner (when the entity has one)."""
    columns = [entity.title_field] if entity.title_field else [entity.active_fields[0].name]
    if entity.ownership:
        columns.append("owner")
    return {"kind": "view", "entity": entity.name, "name": name,
            "label": {"en": name.replace("_", " ").capitalize(), "zh": name}, "type": "table",
            "columns": columns, "filters": [], "sort": [["updated_at", "desc"]], "page_size": 50}


def filter_fields(entity: Entity, lang: str) -> list[dict[str, Any]]:
    """The fields the filter builder offers, in the list page's shape."""
    out = []
    for f in list(entity.system_fields) + list(entity.active_fields):
        if f.type in NOT_FILTERABLE or f.name in ("version", "parent_id", "idx"):
            continue
        out.append({"name": f.name, "label": f.label.get(lang), "kind": f.value_kind, "type": f.type,
                    "options": [{"value": o.value, "label": o.label.get(lang)} for o in f.options],
                    "target": f.target})
    return out


def simple_filters(filters: Any) -> bool:
    """Whether the builder can edit the filters (a flat list of conditions); nested any/all
    groups are edited as JSON instead."""
    return isinstance(filters, list) and all(isinstance(c, list) for c in filters)


def view_context(mset: MetadataSet, doc: Mapping[str, Any], lang: str, labels: Mapping[str, str]) -> dict[str, Any]:
    entity = mset.entity(str(doc.get("entity")))
    if entity is None:
        return {"entity": None}
    fields = [f for f in list(entity.active_fields) + list(entity.system_fields) if f.type not in NOT_COLUMNS
              and f.name not in ("version", "parent_id", "idx")]
    label_of = {f.name: f.label.get(lang) for f in fields}
    columns = [c for c in doc.get("columns") or () if isinstance(c, str)]
    filters = doc.get("filters") or []
    return {
        "entity": entity,
        "fields": [{"name": f.name, "label": f.label.get(lang)} for f in fields],
        "label_of": label_of,
        "columns": columns,
        "unused": [f for f in fields if f.name not in columns],
        "select_fields": [f for f in entity.active_fields if f.type == "select"],
        "roles": sorted(mset.roles),
        "role_labels": {n: (s.label.get(lang) if s.label else n) for n, s in mset.roles.items()},
        "simple_filters": simple_filters(filters),
        "page_sizes": PAGE_SIZES,
        "filter_meta": {"fields": filter_fields(entity, lang), "operators": FILTER_OPERATORS,
                        "ranges": list(RELATIVE_RANGES), "filters": filters if simple_filters(filters) else [],
                        "lang": lang, "labels": dict(labels)},
    }
