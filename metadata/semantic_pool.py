"""Semantic checks of public pools (`kind: pool`, pass 2): what a pool names must exist.

A pool holds the unowned records of one entity (default `customer`), so that entity must
have owners and a text field `pool`; the records that move with a claimed customer
(`related`) and the ones that stay with their author but stay visible (`shared`) must
link to it; per-level recycling days must name values of the level field; `deal` is a
filter like a view's; member and admin roles must exist.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from .documents import pointer
from .semantic_context import Context, EntityInfo, Problem, did_you_mean, quoted
from .semantic_views import filter_problems

#: The field of the pooled entity that names its pool (METADATA.md's customer.pool).
POOL_FIELD = "pool"
#: What `deal` means when a pool doesn't say (the default CRM's customer.deal_status).
DEFAULT_DEAL = (("deal_status", "=", "sold"),)
DEFAULT_LEVEL_FIELD = "level"


def links_to(entity: EntityInfo, target: str, kinds: tuple[str, ...]) -> list[str]:
    """The active fields of `entity` of one of `kinds` (lookup/reference) that point at `target`."""
    out = []
    for name, f in entity.fields.items():
        if f.get("archived") or f.get("type") not in kinds:
            continue
        if f.get("target") == target or target in (f.get("targets") or ()):
            out.append(name)
    return out


def _link_problems(ctx: Context, link: Mapping[str, Any], target: str, kinds: tuple[str, ...],
                   base: tuple[Any, ...], owned: bool) -> Iterator[Problem]:
    problem = ctx.entity_problem(link["entity"])
    if problem:
        yield pointer(*base, "entity"), problem
        return
    other = ctx.entity(link["entity"])
    if other is None:
        return
    if owned and not other.data.get("ownership"):
        yield pointer(*base, "entity"), f"entity '{other.name}' has no owners, so it can't move with a {target}"
    candidates = links_to(other, target, kinds)
    field = link.get("field")
    if field is not None:
        if field not in candidates:
            problem = other.problem(field, system=False)
            yield pointer(*base, "field"), problem or (
                f"field '{field}' of '{other.name}' is not a {' or '.join(kinds)} to '{target}'"
                + (f" (use one of {quoted(candidates)})" if candidates else ""))
    elif len(candidates) != 1:
        what = "no" if not candidates else f"{len(candidates)} ({quoted(candidates)})"
        yield pointer(*base), (f"entity '{other.name}' has {what} {' or '.join(kinds)} fields to '{target}'; "
                               "name the one to follow with 'field'")
    if link.get("filters") is not None:
        yield from filter_problems(other, list(link["filters"]), base + ("filters",))


def check_pool(ctx: Context, data: Mapping[str, Any]) -> Iterator[Problem]:
    """The pooled entity, member/admin roles, links, the deal filter and the recycling rules."""
    entity_name = data.get("entity", "customer")
    for group in ("members", "admins"):
        for i, role in enumerate((data.get(group) or {}).get("roles") or ()):
            problem = ctx.role_problem(role)
            if problem:
                yield pointer(group, "roles", i), problem
    problem = ctx.entity_problem(entity_name)
    if problem:
        yield "/entity", problem
        return
    entity = ctx.entity(entity_name)
    if entity is None:
        return
    if not entity.data.get("ownership"):
        yield "/entity", f"entity '{entity_name}' has no owners (\"ownership\": true), so it can't have a pool"
    pool_field = entity.active(POOL_FIELD)
    if pool_field is None or pool_field.get("type") != "text":
        yield "/entity", f"entity '{entity_name}' needs a text field '{POOL_FIELD}' to hold its pool's name"
    for i, link in enumerate(data.get("related") or ()):
        yield from _link_problems(ctx, link, entity_name, ("lookup",), ("related", i), owned=True)
    for i, link in enumerate(data.get("shared") or ()):
        yield from _link_problems(ctx, link, entity_name, ("reference", "lookup"), ("shared", i), owned=True)

    rules = data.get("recycle") or ()
    if "deal" in data:
        yield from filter_problems(entity, list(data["deal"]), ("deal",))
    elif any(r.get("exempt_deals") or r["when"] == "no_deal" for r in rules) and entity.active("deal_status") is None:
        yield "/recycle", (f"entity '{entity_name}' has no field 'deal_status': say what a deal is with "
                           "'deal' (a filter, e.g. [[\"deal_status\", \"=\", \"sold\"]])")
    level_name = data.get("level_field", DEFAULT_LEVEL_FIELD)
    level = entity.active(level_name)
    if "level_field" in data and (level is None or level.get("type") != "select"):
        yield "/level_field", entity.problem(level_name) or f"'{level_name}' is not a select field"
    levels = [str(o.get("value")) for o in (level or {}).get("options") or ()]
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule["name"] in seen:
            yield pointer("recycle", i, "name"), f"duplicate rule '{rule['name']}'"
        seen.add(rule["name"])
        days = rule["days"]
        if isinstance(days, dict):
            if level is None or level.get("type") != "select":
                yield pointer("recycle", i, "days"), (
                    f"days per level need a select field '{level_name}' on '{entity_name}' (or set 'level_field')")
            else:
                for key in days:
                    if key != "default" and key not in levels:
                        yield pointer("recycle", i, "days", key), (
                            f"'{key}' is not a value of {level_name}{did_you_mean(key, levels)} "
                            f"(one of {quoted(levels + ['default'])})")
        shortest = min(days.values()) if isinstance(days, dict) else days
        if rule.get("remind_before") is not None and rule["remind_before"] >= shortest:
            yield pointer("recycle", i, "remind_before"), (
                f"the reminder ({rule['remind_before']} days before) must come after the record is taken "
                f"(days: {shortest})")
        if "source" in rule:
            if rule["when"] == "no_deal":
                yield pointer("recycle", i, "source"), "a no_deal rule has no source (the deal filter decides)"
            else:
                kinds = ("lookup",) if rule["when"] == "no_opportunity" else ("reference", "lookup")
                yield from _link_problems(ctx, rule["source"], entity_name, kinds, ("recycle", i, "source"),
                                          owned=False)
        elif rule["when"] == "no_opportunity" and "opportunity" not in ctx.entities:
            yield pointer("recycle", i), "no entity 'opportunity': name the records that count with 'source'"


POOL_CHECKS = (check_pool,)
