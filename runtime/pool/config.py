"""A public pool (公海) as the runtime reads it from its `kind: pool` metadata.

The metadata is validated before it is published (metadata/semantic_pool.py), so this
module only gives the document's keys names and defaults, and answers the questions
every pool action asks: who is a member, who administers it, which records move with a
pooled one and which stay with their author but stay visible.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from metacrm.metadata.model import Entity, Label, MetadataSet, Spec, thaw
from metacrm.metadata.semantic_pool import DEFAULT_DEAL, DEFAULT_LEVEL_FIELD, POOL_FIELD

from ..principal import Principal

__all__ = ["Pool", "Link", "Rule", "POOL_FIELD", "pools_of", "pool_named", "member_pools", "in_group"]


@dataclass(frozen=True)
class Link:
    """Records of `entity` whose `field` (a lookup or reference) points at a pooled record."""

    entity: str
    field: str
    reference: bool = False
    filters: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Rule:
    """A recycling rule: back to the pool after `days` (per level) without activity."""

    name: str
    when: str  # no_followup | no_opportunity | no_deal
    days: int | Mapping[str, int]
    remind_before: int | None
    exempt_deals: bool
    label: Label
    source: Link | None

    def days_for(self, level: Any) -> int | None:
        """The days a record of this level may go without activity; None: exempt."""
        if isinstance(self.days, int):
            return self.days
        return self.days.get(str(level)) if level is not None and str(level) in self.days \
            else self.days.get("default")

    @property
    def longest(self) -> int:
        return self.days if isinstance(self.days, int) else max(self.days.values())

    @property
    def shortest(self) -> int:
        return self.days if isinstance(self.days, int) else min(self.days.values())


@dataclass(frozen=True)
class Pool:
    name: str
    entity: str
    label: Label
    members: Mapping[str, Any]
    admins: Mapping[str, Any]
    max_held: int | None
    max_claims_per_day: int | None
    reclaim_after_days: int
    level_field: str
    deal: tuple[Any, ...]
    related: tuple[Link, ...]
    shared: tuple[Link, ...]
    rules: tuple[Rule, ...]

    def is_member(self, principal: Principal) -> bool:
        """Members (and the pool's admins) see its records and may claim them."""
        return in_group(self.members, principal) or self.is_admin(principal)

    def is_admin(self, principal: Principal) -> bool:
        """Pool admins (and system admins) assign its records to people."""
        return principal.is_admin or in_group(self.admins, principal)

    def to_dict(self, language: str = "en") -> dict[str, Any]:
        return {"name": self.name, "entity": self.entity, "label": self.label.get(language),
                "limits": {"max_held": self.max_held, "max_claims_per_day": self.max_claims_per_day,
                           "reclaim_after_days": self.reclaim_after_days},
                "recycle": [{"name": r.name, "label": r.label.get(language), "when": r.when,
                             "days": thaw(r.days), "remind_before": r.remind_before,
                             "exempt_deals": r.exempt_deals} for r in self.rules]}


def in_group(group: Mapping[str, Any], principal: Principal) -> bool:
    """Is the principal one of `{"users", "departments", "roles"}` (a department counts
    with every department below it)."""
    users = group.get("users") or ()
    return (principal.user_id in users or principal.username in users
            or not principal.department_path.isdisjoint(group.get("departments") or ())
            or not principal.roles.isdisjoint(group.get("roles") or ()))


def _links_to(entity: Entity, target: str, kinds: tuple[str, ...]) -> list[str]:
    return [f.name for f in entity.active_fields if f.type in kinds
            and (f.target == target or target in f.targets)]


def _link(mset: MetadataSet, data: Mapping[str, Any], target: str, kinds: tuple[str, ...]) -> Link | None:
    other = mset.entity(data["entity"])
    if other is None:
        return None
    name = data.get("field") or next(iter(_links_to(other, target, kinds)), None)
    f = other.active_field(name) if name else None
    if f is None:
        return None
    return Link(other.name, f.name, f.type == "reference", tuple(data.get("filters") or ()))


def _discovered(mset: MetadataSet, target: str, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """Owned entities with exactly one link of `kinds` to `target` (defaults of related/shared)."""
    out = []
    for e in mset.active_entities:
        if e.ownership and not e.child_of and e.name != target:
            links = _links_to(e, target, kinds)
            if len(links) == 1:
                out.append({"entity": e.name, "field": links[0]})
    return out


def build_pool(mset: MetadataSet, spec: Spec) -> Pool:
    data = thaw(spec.spec)
    entity = data.get("entity", "customer")
    limits = data.get("limits") or {}
    related = data["related"] if "related" in data else _discovered(mset, entity, ("lookup",))
    shared = data["shared"] if "shared" in data else _discovered(mset, entity, ("reference",))
    rules = []
    for r in data.get("recycle") or ():
        source = r.get("source")
        if source is None and r["when"] == "no_opportunity":
            source = {"entity": "opportunity"}
        kinds = ("lookup",) if r["when"] == "no_opportunity" else ("reference", "lookup")
        link = _link(mset, source, entity, kinds) if source else None
        if link is None and r["when"] == "no_followup":
            link = next((x for x in (_link(mset, s, entity, kinds) for s in shared) if x is not None), None)
        rules.append(Rule(r["name"], r["when"], r["days"], r.get("remind_before"), bool(r.get("exempt_deals")),
                          Label.of(r.get("label"), r["name"].replace("_", " ")), link))
    return Pool(
        name=spec.name, entity=entity, label=spec.label or Label.of(None, spec.name),
        members=data.get("members") or {}, admins=data.get("admins") or {},
        max_held=limits.get("max_held"), max_claims_per_day=limits.get("max_claims_per_day"),
        reclaim_after_days=limits.get("reclaim_after_days", 0),
        level_field=data.get("level_field", DEFAULT_LEVEL_FIELD),
        deal=tuple(data["deal"]) if "deal" in data else tuple(list(c) for c in DEFAULT_DEAL),
        related=tuple(x for x in (_link(mset, d, entity, ("lookup",)) for d in related) if x is not None),
        shared=tuple(x for x in (_link(mset, d, entity, ("reference", "lookup")) for d in shared) if x is not None),
        rules=tuple(rules),
    )


_CACHE: dict[int, tuple[MetadataSet, dict[str, Pool]]] = {}


def _all_pools(mset: MetadataSet) -> dict[str, Pool]:
    """Every pool of a metadata set, built once per set (a catalog's set lives as long as its version)."""
    cached = _CACHE.get(id(mset))
    if cached is None or cached[0] is not mset:
        _CACHE.clear()  # one published version at a time is current; keep the cache small
        cached = (mset, {name: build_pool(mset, spec) for name, spec in sorted(mset.pools.items())})
        _CACHE[id(mset)] = cached
    return cached[1]


def pools_of(mset: MetadataSet, entity: str | None = None) -> list[Pool]:
    """The pools (of one entity), by name."""
    return [p for p in _all_pools(mset).values() if entity is None or p.entity == entity]


def pool_named(mset: MetadataSet, name: str) -> Pool | None:
    return _all_pools(mset).get(name)


def member_pools(mset: MetadataSet, principal: Principal, entity: str) -> frozenset[str]:
    """The names of the pools of `entity` whose records the principal may see."""
    if not mset.pools:
        return frozenset()
    return frozenset(p.name for p in pools_of(mset, entity) if p.is_member(principal))
