"""The global duplicate check (查重): one name or phone searched everywhere it is keyed.

A rep about to chase a company asks "is it anyone's already?". The answer lists each
match's entity, score and owner — and whether a customer sits in the public pool (no
owner) — but its id and title only when the rep may read the record, so the tool tells
that a customer exists and whose it is without showing anything of it.

The search uses the stored keys (`mc_dedup_keys`) of every entity a rule keys, with
each (field, method) pair's own normalisation of the query, so it costs a few index
lookups like any check.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..catalog import Catalog
from ..errors import BadRequest
from ..principal import Principal
from .engine import _candidates, present_matches
from .normalise import DEFAULT_THRESHOLDS, normalise
from .rules import key_specs, rules_of

#: Which stored methods a free-text query is tried against, and the score it needs there.
QUERY_METHODS = {"phone": 1.0, "email": 1.0, "iexact": 1.0, "exact": 1.0, **DEFAULT_THRESHOLDS}
MAX_QUERY = 200


def _worth_trying(method: str, q: str) -> bool:
    digits = sum(ch.isdigit() for ch in q)
    if method == "phone":
        return digits >= 7 and digits >= len(q.replace(" ", "").replace("-", "").replace("+", "")) - 2
    if method == "email":
        return "@" in q
    return digits < 7 or method in ("exact", "iexact")


def search_duplicates(conn: sa.Connection, catalog: Catalog, principal: Principal, q: str) -> dict[str, Any]:
    q = (q or "").strip()
    if len(q) < 2 or len(q) > MAX_QUERY:
        raise BadRequest(f"q must be 2 to {MAX_QUERY} characters: a name, company or phone number.")
    raw = []
    for entity, specs in sorted(key_specs(rules_of(catalog.mset)).items()):
        for field, method in sorted(specs):
            if method not in QUERY_METHODS or not _worth_trying(method, q):
                continue
            norm = normalise(method, q)
            if norm is None:
                continue
            for rid, score in _candidates(conn, entity, field, method, norm, QUERY_METHODS[method]).items():
                raw.append((entity, rid, score, f"{field}:{method}", "warn"))
    matches = present_matches(conn, catalog, principal, raw)
    out = []
    for m in matches:
        item: dict[str, Any] = {"entity": m.entity, "score": m.score, "owner": m.owner, "matched_on": m.rule,
                                # an owned record without an owner is a customer in the public pool
                                "in_pool": catalog.entities[m.entity].entity.ownership and m.owner is None}
        if m.id is not None:
            item.update(id=m.id, title=m.title)
        out.append(item)
    return {"matches": out}
