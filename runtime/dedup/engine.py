"""The duplicate check: rules × stored keys → scored matches, shown as the caller may see them.

`find_matches` is the one function everything calls (the duplicates endpoint, imports,
lead conversion); `after_write` is the record service's hook: it locks the keys, runs the
rules for the event, refuses a `block` match (DuplicateFound, 409) and stores the
record's keys, all inside the write's savepoint so a refused write leaves nothing.

A check is, per rule condition and per entity checked, one indexed query on
`mc_dedup_keys` (the value's keys → at most CANDIDATE_LIMIT candidates with their
normalised values), then a similarity score for each candidate in Python. Its cost
depends on how many records share a key, not on how many records there are.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import sqlalchemy as sa

from metacrm.metadata.model import MetadataSet

from .. import systables
from ..access import access_for, mask, scope_clause
from ..catalog import Catalog
from ..errors import Conflict
from ..principal import Principal
from .keys import K, lock_ids, lock_keys, store_keys
from .normalise import EXACT_METHODS, match_keys, normalise, similarity
from .rules import ACTION_ORDER, Rule, rules_of

#: At most this many key rows are read per condition and entity: bounds a check's cost
#: even when a key is very common (the best candidates are still scored).
CANDIDATE_LIMIT = 400


@dataclass(frozen=True)
class Match:
    """One record a rule found. For a record the caller may not read, `id` and `title`
    are None: only that it exists, its entity, rule, score and owner are shown."""

    entity: str
    id: int | None
    score: float
    rule: str
    title: str | None
    owner: str | None
    action: str

    def to_dict(self) -> dict[str, Any]:
        return {"entity": self.entity, "id": self.id, "score": self.score, "rule": self.rule,
                "title": self.title, "owner": self.owner, "action": self.action}


class DuplicateFound(Conflict):
    """A `block` rule matched: 409 `{"error": {"code": "duplicate", "message", "matches"}}`."""

    code = "duplicate"


# ------------------------------------------------------------------ candidates and scores

def _candidates(conn: sa.Connection, entity: str, field: str, method: str, norm: str,
                threshold: float) -> dict[int, float]:
    """record id → score of the records of `entity` whose `field` matches `norm`."""
    keys = sorted(match_keys(method, norm))
    rows = conn.execute(
        sa.select(K.c.record_id, K.c.norm)
        .where(K.c.entity == entity, K.c.field == field, K.c.method == method, K.c.key.in_(keys))
        .limit(CANDIDATE_LIMIT)).all()
    return score_candidates(rows, method, norm, threshold)


def score_candidates(rows: Iterable[tuple[int, str]], method: str, norm: str, threshold: float) -> dict[int, float]:
    """record id → score of the (record id, normalised value) key rows scoring `threshold` or more."""
    out: dict[int, float] = {}
    for record_id, other in rows:
        if record_id in out:
            continue
        score = 1.0 if method in EXACT_METHODS else similarity(method, norm, other)
        if score >= threshold:
            out[record_id] = round(score, 4)
    return out


#: (entity, field, method, norm, threshold) → record id → score: where a check finds candidates.
Candidates = Callable[[str, str, str, str, float], dict[int, float]]


def targets(rule: Rule) -> list[tuple[str, Mapping[str, str]]]:
    """The entities a rule checks, each with (our field → its field)."""
    own = {c.field: c.field for c in rule.conditions}
    return [(rule.entity, own)] + [(o.entity, o.fields) for o in rule.also_check]


def rule_hits(candidates: Candidates, rule: Rule, values: Mapping[str, Any],
              exclude: frozenset[tuple[str, int]]) -> list[tuple[str, int, float]]:
    """(entity, record id, score) of what `rule` finds for `values` among `candidates`."""
    hits: list[tuple[str, int, float]] = []
    for entity, mapping in targets(rule):
        conditions = [c for c in rule.conditions if c.field in mapping]
        if not conditions:
            continue
        found: list[dict[int, float]] = []
        for c in conditions:
            norm = normalise(c.method, values.get(c.field))
            if norm is None:
                if rule.match == "all":
                    found = []
                    break
                continue
            found.append(candidates(entity, mapping[c.field], c.method, norm, c.threshold))
        if not found:
            continue
        if rule.match == "all":
            ids = set.intersection(*(set(f) for f in found))
            scored = {i: min(f[i] for f in found) for i in ids}
        else:
            scored = {}
            for f in found:
                for i, s in f.items():
                    scored[i] = max(s, scored.get(i, 0.0))
        hits += [(entity, i, s) for i, s in scored.items() if (entity, i) not in exclude]
    return hits


# ------------------------------------------------------------------ what the caller may see

def present_matches(conn: sa.Connection, catalog: Catalog, principal: Principal,
                    raw: Iterable[tuple[str, int, float, str, str]]) -> list[Match]:
    """Raw hits (entity, id, score, rule name, action) as the principal may see them: the
    best hit per record, most severe action first; an unreadable record keeps only its
    entity, rule, score and owner's name (id and title None)."""
    return present_many(conn, catalog, principal, [raw])[0]


def present_many(conn: sa.Connection, catalog: Catalog, principal: Principal,
                 raws: Sequence[Iterable[tuple[str, int, float, str, str]]]) -> list[list[Match]]:
    """`present_matches` of several checks (a batch's rows) with one lookup of the records
    they found: an import of a file full of duplicates presents each row's."""
    bests = [_best(raw) for raw in raws]
    by_entity: dict[str, set[int]] = {}
    for best in bests:
        for entity, rid in best:
            by_entity.setdefault(entity, set()).add(rid)
    shown = _shown(conn, catalog, principal, by_entity)
    out = []
    for best in bests:
        matches = []
        for (entity, rid), (score, rule, action) in best.items():
            if (entity, rid) not in shown:
                continue  # deleted meanwhile (its keys are gone with it at commit)
            readable, title, owner = shown[(entity, rid)]
            matches.append(Match(entity, rid if readable else None, score, rule, title if readable else None,
                                 owner, action))
        matches.sort(key=lambda m: (ACTION_ORDER[m.action], -m.score, m.entity, m.id or 0))
        out.append(matches)
    return out


def _best(raw: Iterable[tuple[str, int, float, str, str]]) -> dict[tuple[str, int], tuple[float, str, str]]:
    """The most severe, then best-scoring, hit per record."""
    best: dict[tuple[str, int], tuple[float, str, str]] = {}
    for entity, rid, score, rule, action in raw:
        held = best.get((entity, rid))
        if held is None or (ACTION_ORDER[action], -score) < (ACTION_ORDER[held[2]], -held[0]):
            best[(entity, rid)] = (score, rule, action)
    return best


#: Ids per IN list when presenting matches.
_ID_CHUNK = 500


def _shown(conn: sa.Connection, catalog: Catalog, principal: Principal, by_entity: Mapping[str, set[int]],
           ) -> dict[tuple[str, int], tuple[bool, str | None, str | None]]:
    """(entity, id) → (readable, title as shown, owner's name) of the records that exist."""
    shown: dict[tuple[str, int], tuple[bool, str | None, str | None]] = {}
    u = systables.users
    for entity, id_set in by_entity.items():
        rt = catalog.entities[entity]
        t, ent = rt.table, rt.entity
        access = access_for(catalog.mset, principal, ent)
        title_col = t.c[ent.title_field] if ent.title_field and ent.title_field in t.c else t.c.id
        cols: list[Any] = [t.c.id, title_col]
        stmt_from: Any = t
        if ent.ownership:
            cols.append(u.c.display_name)
            stmt_from = t.outerjoin(u, u.c.id == t.c.owner)
        scope = scope_clause(t, ent, principal, access, "read", conn) if access.allows("read") else None
        all_ids = sorted(id_set)
        for i in range(0, len(all_ids), _ID_CHUNK):
            ids = all_ids[i:i + _ID_CHUNK]
            rows = conn.execute(sa.select(*cols).select_from(stmt_from).where(t.c.id.in_(ids))).all()
            readable: set[int] = set()
            if access.allows("read"):
                stmt = sa.select(t.c.id).where(t.c.id.in_(ids))
                readable = set(conn.execute(stmt if scope is None else stmt.where(scope)).scalars())
            for row in rows:
                title = None if row[1] is None else str(row[1])
                if ent.title_field in access.hidden:
                    title = None
                elif ent.title_field in access.masked:
                    title = mask(title)
                owner = row[2] if ent.ownership else None
                shown[(entity, row[0])] = (row[0] in readable, title, owner)
    return shown


def _find(conn: sa.Connection, catalog: Catalog, principal: Principal, rules: Iterable[Rule],
          values: Mapping[str, Any], exclude: frozenset[tuple[str, int]]) -> list[Match]:
    def candidates(*args: Any) -> dict[int, float]:
        return _candidates(conn, *args)

    raw = [(e, i, s, rule.name, rule.action) for rule in rules for e, i, s in rule_hits(candidates, rule, values, exclude)]
    return present_matches(conn, catalog, principal, raw) if raw else []


# ------------------------------------------------------------------ the public face

def rules_for(mset: MetadataSet, entity: str, on: str) -> list[Rule]:
    return [r for r in rules_of(mset, entity) if r.applies_to(on)]


def find_matches(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str,
                 values: Mapping[str, Any], *, on: str, exclude_id: int | None = None) -> list[Match]:
    """The records (of `entity` and of the entities its rules also check) that the rules for
    event `on` ("create", "update", "import"; "convert" for link rules; "any" for every
    rule) consider duplicates of `values`, most severe action and best score first.

    Only what `principal` may see: unreadable matches carry no id and no title."""
    catalog.get(entity)
    exclude = frozenset({(entity, exclude_id)}) if exclude_id is not None else frozenset()
    return _find(conn, catalog, principal, rules_for(catalog.mset, entity, on), values, exclude)


def lock_candidates(conn: sa.Connection, mset: MetadataSet, rules: Iterable[Rule],
                    values: Mapping[str, Any]) -> None:
    """Serialise writers that could duplicate each other: lock every key of `values` under
    the rules that refuse or link (two such records always share a key)."""
    lock_keys(conn, candidate_lock_ids(rules, values))


def candidate_lock_ids(rules: Iterable[Rule], values: Mapping[str, Any]) -> list[int]:
    """The advisory-lock ids `lock_candidates` takes for `values`."""
    ids: list[int] = []
    for rule in rules:
        if rule.action in ("block", "link"):
            for c in rule.conditions:
                ids += lock_ids(c.method, match_keys(c.method, normalise(c.method, values.get(c.field))))
    return ids


def after_write(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int,
                values: Mapping[str, Any], *, on: str | None, changed: Iterable[str] | None = None,
                exclude: Iterable[tuple[str, int]] = ()) -> list[Match]:
    """The record service's dedup step, run inside the write's savepoint: lock, check the
    rules for `on` (None: no check, keys only), refuse a `block` match, store the keys.
    Returns the `warn` matches. On update, only rules over a `changed` field run."""
    changed_set = None if changed is None else set(changed)
    rules = rules_for(catalog.mset, entity, on) if on else []
    if changed_set is not None:
        rules = [r for r in rules if r.fields & changed_set]
    matches: list[Match] = []
    if rules:
        lock_candidates(conn, catalog.mset, rules, values)
        matches = _find(conn, catalog, principal, rules, values,
                        frozenset({(entity, record_id), *exclude}))
        blocking = [m for m in matches if m.action == "block"]
        if blocking:
            raise duplicate_error(catalog, entity, blocking, principal.language)
    store_keys(conn, catalog.mset, entity, record_id, values, changed_set)
    return [m for m in matches if m.action == "warn"]


def duplicate_error(catalog: Catalog, entity: str, matches: list[Match], language: str = "en") -> DuplicateFound:
    label = catalog.get(entity).entity.label.get(language)
    first = matches[0]
    what = f"{first.entity} '{first.title}'" if first.title else f"a {first.entity} you can't open" + (
        f" (owner: {first.owner})" if first.owner else "")
    return DuplicateFound(f"This {label} duplicates {what} (rule {first.rule}); nothing was saved.",
                          matches=[m.to_dict() for m in matches])
