"""The dedup rule designer's model: what the page offers for one rule of the draft.

Conditions pick a field of the rule's entity and a method (with a threshold for the
similarity methods); `also_check` maps each condition's field to a field of another
entity, so a new customer is also checked against the leads (METADATA.md "Dedup rule").
"""
from __future__ import annotations

from typing import Any, Mapping

from metacrm.metadata.model import Entity, MetadataSet
from metacrm.runtime.dedup.normalise import DEFAULT_THRESHOLDS, METHODS, SIMILAR_METHODS
from metacrm.runtime.dedup.rules import EVENTS

ACTIONS = ("block", "warn", "link")
MATCHES = ("any", "all")
#: Methods in the order the select lists them (exact-like first).
METHOD_ORDER = ("exact", "iexact", "email", "phone", "date", "company_name", "person_name", "fuzzy")
#: Field types worth matching on.
MATCHABLE = frozenset({"text", "textarea", "email", "phone", "url", "date", "datetime", "select", "autonumber"})


def new_rule(entity: Entity, name: str) -> dict[str, Any]:
    field = entity.title_field or entity.active_fields[0].name
    return {"kind": "dedup", "name": name, "entity": entity.name,
            "label": {"en": name.replace("_", " ").capitalize(), "zh": name},
            "on": list(EVENTS), "action": "warn", "match": "any",
            "conditions": [{"field": field, "method": "iexact"}]}


def _fields(entity: Entity, lang: str) -> list[dict[str, str]]:
    return [{"name": f.name, "label": f.label.get(lang)} for f in entity.active_fields if f.type in MATCHABLE]


def dedup_context(mset: MetadataSet, doc: Mapping[str, Any], lang: str) -> dict[str, Any]:
    entity = mset.entity(str(doc.get("entity")))
    if entity is None:
        return {"entity": None}
    others = [e for e in mset.active_entities if not e.child_of and e.name != entity.name]
    condition_fields = [c.get("field") for c in doc.get("conditions") or () if isinstance(c, Mapping)]
    also = []
    for item in doc.get("also_check") or ():
        other = mset.entity(str(item.get("entity"))) if isinstance(item, Mapping) else None
        also.append({"fields": _fields(other, lang) if other else []})
    return {
        "entity": entity, "fields": _fields(entity, lang),
        "methods": [m for m in METHOD_ORDER if m in METHODS], "similar": sorted(SIMILAR_METHODS),
        "default_thresholds": DEFAULT_THRESHOLDS, "actions": ACTIONS, "matches": MATCHES, "events": EVENTS,
        "others": [{"name": e.name, "label": e.label.get(lang)} for e in others],
        "condition_fields": [f for f in condition_fields if isinstance(f, str)], "also": also,
    }
