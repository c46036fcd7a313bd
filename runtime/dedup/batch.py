"""The dedup step of a batch of new records (`create_records`, used by imports).

It gives each row exactly what `after_write` would give it had the rows been created one
by one in order: the same rules, the same keys locked (all of the batch's at once, in
one sorted order), the same candidates scored the same way — the stored records and the
rows of the batch accepted before it — and the same keys stored afterwards.

The difference is the number of queries: the stored candidates of every key of every
row come with one query per (entity, field, method) instead of one per row and
condition, and the rows accepted so far are an in-memory key index. A row of the batch
is known by a stand-in id (`-1 - position`) until it is inserted; `present` then swaps
in the real ids and shows the matches as `find_matches` would.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Sequence

import sqlalchemy as sa

from ..catalog import Catalog
from ..principal import Principal
from .engine import (
    CANDIDATE_LIMIT, Match, candidate_lock_ids, present_many, rule_hits, rules_for, score_candidates, targets,
)
from .keys import K, key_rows, lock_keys, specs_for
from .normalise import CACHED_VALUES, match_keys, normalise

#: Keys per IN list (SQLite's bound-parameter limit is far above; PostgreSQL caches the plan).
KEY_CHUNK = 500
#: (entity, record id or stand-in, score, rule name, action), as `present_matches` takes them.
Hit = tuple[str, int, float, str, str]


def _fetch_sql(conn: sa.Connection, keys: int) -> str:
    """The stored key rows of (entity, field, method) among `keys` keys, as the driver takes
    it: SQLAlchemy would render a 500-value IN list afresh for every execution."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    prep = conn.dialect.identifier_preparer
    return (f"SELECT {prep.quote('key')}, record_id, norm FROM {prep.format_table(K)} "
            f"WHERE entity = {mark} AND field = {mark} AND method = {mark} "
            f"AND {prep.quote('key')} IN ({', '.join([mark] * keys)})")


@lru_cache(maxsize=CACHED_VALUES)
def _sorted_keys(method: str, norm: str) -> tuple[str, ...]:
    """A value's keys in the order the row check reads them (sorted once, not per rule)."""
    return tuple(sorted(match_keys(method, norm)))


def stand_in(position: int) -> int:
    """The id a batch row goes by until it is inserted (never a real id: those are > 0)."""
    return -1 - position


class BatchDedup:
    """The duplicate check of one batch of new `entity` records for event `on` (None:
    no check, keys only). Call `lock_and_fetch` with the rows about to be checked, then
    `check` and `accept` each row in order, then `key_rows` and `present` after the insert."""

    def __init__(self, conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, on: str | None):
        self.conn, self.catalog, self.principal, self.entity = conn, catalog, principal, entity
        self.rules = rules_for(catalog.mset, entity, on) if on else []
        self.specs = specs_for(catalog.mset, entity)
        self._stored: dict[tuple[str, str, str], dict[str, list[tuple[int, str]]]] = {}
        self._accepted: dict[tuple[str, str], dict[str, list[tuple[int, str]]]] = {}
        self._keys: dict[int, list[dict[str, Any]]] = {}

    def lock_and_fetch(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Lock the keys of every row (as `lock_candidates`, but all at once), then read
        the stored key rows any of the rows' checks will look at."""
        if not self.rules:
            return
        if self.conn.dialect.name == "postgresql":  # SQLite's one writer at a time needs no lock
            lock_keys(self.conn, [i for values in rows for i in candidate_lock_ids(self.rules, values)])
        wanted: dict[tuple[str, str, str], set[str]] = {}
        for rule in self.rules:
            for entity, mapping in targets(rule):
                for c in rule.conditions:
                    if c.field in mapping:
                        keys = wanted.setdefault((entity, mapping[c.field], c.method), set())
                        for values in rows:
                            keys |= match_keys(c.method, normalise(c.method, values.get(c.field)))
        for (entity, field, method), keys in wanted.items():
            index = self._stored.setdefault((entity, field, method), {})
            ordered = sorted(keys)
            for i in range(0, len(ordered), KEY_CHUNK):
                chunk = ordered[i:i + KEY_CHUNK]
                for key, record_id, norm in self.conn.exec_driver_sql(_fetch_sql(self.conn, len(chunk)),
                                                                       (entity, field, method, *chunk)):
                    index.setdefault(key, []).append((record_id, norm))

    def _candidates(self, entity: str, field: str, method: str, norm: str, threshold: float) -> dict[int, float]:
        keys = _sorted_keys(method, norm)
        stored = self._stored.get((entity, field, method), {})
        rows = [r for key in keys for r in stored.get(key, ())][:CANDIDATE_LIMIT]
        if entity == self.entity:
            accepted = self._accepted.get((field, method), {})
            rows += [r for key in keys for r in accepted.get(key, ())]
        return score_candidates(rows, method, norm, threshold)

    def check(self, values: Mapping[str, Any]) -> list[Hit]:
        """What the rules find for one row among the stored records and the rows accepted so far."""
        return [(e, i, s, rule.name, rule.action) for rule in self.rules
                for e, i, s in rule_hits(self._candidates, rule, values, frozenset())]

    def accept(self, position: int, values: Mapping[str, Any]) -> None:
        """Row `position` will be created: later rows of the batch are checked against it."""
        rows = key_rows(self.entity, stand_in(position), self.specs, values)
        self._keys[position] = rows
        for r in rows:
            self._accepted.setdefault((r["field"], r["method"]), {}).setdefault(r["key"], []).append(
                (r["record_id"], r["norm"]))

    def key_rows(self, ids: Mapping[int, int]) -> list[dict[str, Any]]:
        """The key rows to store for the accepted rows, `ids` mapping position → record id."""
        return [dict(r, record_id=ids[position]) for position, rows in self._keys.items() for r in rows]

    def present(self, hits: Sequence[list[Hit]], ids: Mapping[int, int]) -> list[list[Match]]:
        """Each row's `hits` as `find_matches` shows them (one lookup for all rows), stand-ins
        replaced by the inserted ids."""
        real = [[(e, ids[-1 - i] if i < 0 else i, s, rule, action) for e, i, s, rule, action in row_hits]
                for row_hits in hits]
        return present_many(self.conn, self.catalog, self.principal, real)
