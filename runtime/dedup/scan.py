"""Scanning a table for duplicate groups (the admin's clean-up list before merging).

Records that share a stored key are candidate pairs; a pair scoring over a condition's
threshold is an edge; a rule's `match` combines its conditions' edges (all: every
condition, any: one); connected records form a group. Only the entity's own records are
scanned (also_check is for new records), and only records the caller may read are listed.
"""
from __future__ import annotations

from itertools import combinations
from typing import Any

import sqlalchemy as sa

from ..access import scope_clause
from ..catalog import Catalog
from ..principal import Principal
from ..records import require_access
from .keys import K
from .normalise import EXACT_METHODS, match_keys, normalise, similarity
from .rules import Rule, rules_of

#: Records sharing one key beyond this many are compared only among the first ones: a
#: key that common (a blank-ish value) says little, and pairs grow with its square.
MAX_BUCKET = 50


def _edges(conn: sa.Connection, rule: Rule, field: str, method: str, threshold: float) -> dict[tuple[int, int], float]:
    shared = (sa.select(K.c.key).where(K.c.entity == rule.entity, K.c.field == field, K.c.method == method)
              .group_by(K.c.key).having(sa.func.count(sa.distinct(K.c.record_id)) > 1))
    rows = conn.execute(sa.select(K.c.key, K.c.record_id, K.c.norm).where(
        K.c.entity == rule.entity, K.c.field == field, K.c.method == method, K.c.key.in_(shared))
        .order_by(K.c.key, K.c.record_id)).all()
    buckets: dict[str, dict[int, str]] = {}
    for key, rid, norm in rows:
        bucket = buckets.setdefault(key, {})
        if len(bucket) < MAX_BUCKET:
            bucket[rid] = norm
    return _scored(buckets, method, threshold)


def _scored(buckets: dict[str, dict[Any, str]], method: str, threshold: float) -> dict[tuple[Any, Any], float]:
    """Pairs sharing a bucket (a key) that score at least `threshold` (records are ids, or
    (entity, id) when several entities are compared)."""
    edges: dict[tuple[Any, Any], float] = {}
    for bucket in buckets.values():
        for (a, na), (b, nb) in combinations(sorted(bucket.items()), 2):
            if (a, b) in edges:
                continue
            score = 1.0 if method in EXACT_METHODS else similarity(method, na, nb)
            if score >= threshold:
                edges[(a, b)] = round(score, 4)
    return edges


def _rule_edges(conn: sa.Connection, rule: Rule) -> dict[tuple[int, int], float]:
    return _combine(rule, [_edges(conn, rule, c.field, c.method, c.threshold) for c in rule.conditions])


def _combine(rule: Rule, per: list[dict[tuple[Any, Any], float]]) -> dict[tuple[Any, Any], float]:
    """A rule's `match`: all (pairs every condition found, weakest score) or any (strongest)."""
    if not per:
        return {}
    if rule.match == "all":
        pairs = set.intersection(*(set(p) for p in per))
        return {p: min(e[p] for e in per) for p in pairs}
    out: dict[tuple[Any, Any], float] = {}
    for e in per:
        for p, s in e.items():
            out[p] = max(s, out.get(p, 0.0))
    return out


def _groups(edges: dict[tuple[Any, Any], float]) -> list[tuple[list[Any], float]]:
    parent: dict[Any, Any] = {}

    def find(x: Any) -> Any:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    members: dict[Any, list[Any]] = {}
    for x in list(parent):
        members.setdefault(find(x), []).append(x)
    out = []
    for ids in members.values():
        ids.sort()
        score = min(s for (a, b), s in edges.items() if a in ids)
        out.append((ids, score))
    out.sort(key=lambda g: (-len(g[0]), -g[1], g[0][0]))
    return out


def duplicate_groups(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str,
                     rule: str | None = None, limit: int = 100) -> dict[str, Any]:
    """`{"groups": [{"rule", "score", "records": [{"id", "title", "owner"}]}], "total"}` for the
    entity's rules (or one of them); needs the `merge` right on the entity."""
    rt = catalog.get(entity)
    access = require_access(catalog, principal, rt, "merge")
    rules = [r for r in rules_of(catalog.mset, entity) if rule is None or r.name == rule]
    if rule is not None and not rules:
        from ..errors import NotFound
        raise NotFound(f"No dedup rule {rule!r} on {entity}.")
    t, ent = rt.table, rt.entity
    scope = scope_clause(t, ent, principal, access, "read", conn) if access.allows("read") else sa.false()
    found = []
    for r in rules:
        for ids, score in _groups(_rule_edges(conn, r)):
            found.append((r.name, score, ids))
    seen: set[tuple[int, ...]] = set()
    groups: list[dict[str, Any]] = []
    title = t.c[ent.title_field] if ent.title_field in t.c and ent.title_field not in access.unreadable else t.c.id
    for name, score, ids in found:
        stmt = sa.select(t.c.id, title, *([t.c.owner] if ent.ownership else [])).where(t.c.id.in_(ids))
        rows = conn.execute(stmt if scope is None else stmt.where(scope)).all()
        if len(rows) < 2 or tuple(r[0] for r in rows) in seen:
            continue
        seen.add(tuple(r[0] for r in rows))
        groups.append({"rule": name, "score": score, "records": [
            {"id": r[0], "title": None if r[1] is None else str(r[1]), "owner": r[2] if ent.ownership else None}
            for r in sorted(rows)]})
    return {"groups": groups[:limit], "total": len(groups)}


def _sample(conn: sa.Connection, table: sa.Table, fields: set[str], sample: int) -> list[Any]:
    cols = sorted(f for f in fields if f in table.c)
    return list(conn.execute(sa.select(table.c.id, *(table.c[f] for f in cols))
                             .order_by(table.c.id).limit(sample)).mappings())


def sample_groups(conn: sa.Connection, tables: dict[str, sa.Table], rule: Rule,
                  sample: int) -> tuple[list[tuple[list[tuple[str, int]], float]], dict[str, int]]:
    """The groups an unpublished rule would find among the first `sample` records (by id)
    of its entity — and, through `also_check`, of the other entities — with keys computed
    in memory: nothing is written to mc_dedup_keys, so a designer can try a rule before
    publishing it. Records are (entity, id); a group holds at least one record of the
    rule's own entity (also_check compares with it, not the others among themselves).
    `tables` are the published tables by entity; fields a table doesn't have yet read as
    empty. Returns (groups, records read per entity)."""
    sources = [(rule.entity, {c.field: c.field for c in rule.conditions})]
    sources += [(o.entity, dict(o.fields)) for o in rule.also_check if o.entity in tables]
    rows = {entity: _sample(conn, tables[entity], set(mapping.values()), sample) for entity, mapping in sources}
    per = []
    for c in rule.conditions:
        buckets: dict[str, dict[tuple[str, int], str]] = {}
        for entity, mapping in sources:
            field = mapping.get(c.field)
            if field is None:
                continue
            for row in rows[entity]:
                norm = normalise(c.method, row.get(field))
                for key in match_keys(c.method, norm):
                    bucket = buckets.setdefault(key, {})
                    if len(bucket) < MAX_BUCKET and norm is not None:
                        bucket[(entity, row["id"])] = norm
        edges = _scored({k: b for k, b in buckets.items() if len(b) > 1}, c.method, c.threshold)
        per.append({p: v for p, v in edges.items() if rule.entity in (p[0][0], p[1][0])})
    return _groups(_combine(rule, per)), {entity: len(r) for entity, r in rows.items()}
