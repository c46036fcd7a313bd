"""Dedup rules (`kind: dedup`, METADATA.md) as frozen objects the engine runs on.

The metadata layer keeps a rule as a frozen mapping (`Spec`); this module reads it once
into `Rule`s with defaults settled, and derives the key specs — which (entity, field,
method) triples need stored keys — from the rules and their `also_check` mappings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from metacrm.metadata.model import MetadataSet

from .normalise import threshold_of

#: `on` events a rule may name; "convert" (lead conversion) selects `link` rules.
EVENTS = ("create", "update", "import")
#: Most severe first: how matches of several rules are ordered.
ACTION_ORDER = {"block": 0, "link": 1, "warn": 2}


@dataclass(frozen=True)
class Condition:
    field: str
    method: str
    threshold: float


@dataclass(frozen=True)
class OtherEntity:
    """`also_check`: another entity, with our field → its field."""

    entity: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class Rule:
    name: str
    entity: str
    action: str
    match: str
    on: frozenset[str]
    conditions: tuple[Condition, ...]
    also_check: tuple[OtherEntity, ...] = ()

    def applies_to(self, on: str) -> bool:
        """Whether a check for event `on` runs this rule. "any" (the duplicates endpoint, the
        scan) runs every rule; "convert" runs `link` rules and the blocking ones."""
        if on == "any":
            return True
        if on == "convert":
            return self.action in ("link", "block")
        return self.action != "link" and on in self.on

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(c.field for c in self.conditions)


def _rule(spec: Mapping[str, Any]) -> Rule:
    action = spec.get("action") or "warn"
    # A `link` rule without `on` is for conversions only; other rules default to every write.
    on = frozenset(spec.get("on") or (() if action == "link" else EVENTS))
    return Rule(
        name=spec["name"], entity=spec["entity"], action=action, match=spec.get("match") or "any", on=on,
        conditions=tuple(Condition(c["field"], c["method"], threshold_of(c["method"], c.get("threshold")))
                         for c in spec["conditions"]),
        also_check=tuple(OtherEntity(o["entity"], dict(o["fields"])) for o in spec.get("also_check") or ()),
    )


def rules_of(mset: MetadataSet, entity: str | None = None) -> list[Rule]:
    """The active rules (of one entity, or all), in name order."""
    out = []
    for name in sorted(mset.dedup_rules):
        spec = mset.dedup_rules[name].spec
        if entity is None or spec.get("entity") == entity:
            if mset.entity(spec["entity"]) is not None:
                out.append(_rule(spec))
    return out


def key_specs(rules: Iterable[Rule]) -> dict[str, frozenset[tuple[str, str]]]:
    """entity → the (field, method) pairs whose keys must be stored for its records: the
    rules' own conditions, and the fields other entities' rules look at through also_check."""
    specs: dict[str, set[tuple[str, str]]] = {}
    for rule in rules:
        for c in rule.conditions:
            specs.setdefault(rule.entity, set()).add((c.field, c.method))
            for other in rule.also_check:
                if c.field in other.fields:
                    specs.setdefault(other.entity, set()).add((other.fields[c.field], c.method))
    return {e: frozenset(s) for e, s in specs.items()}


#: Public name for reading one rule document (the designer tries unpublished rules).
rule_from_spec = _rule
