"""The dedup step of an import: what a row that matches an existing record becomes.

Modes (ARCHITECTURE.md): `create` creates anyway — only a `block` rule still refuses,
inside the record service's own check; `skip` leaves a matched row out; `update`
updates the match (and creates when nothing matches); `update_only` updates the match
and never creates. A row with an `id` column names its record itself; otherwise the
dedup engine's rules with `on: import` find the match
(`metacrm.runtime.dedup.find_matches`), showing only what the importer may read.

The record service runs the rules again inside the write (`dedup_on`), under the
engine's key locks, only when a rule can refuse: that check is what keeps two
concurrent writers from both creating a blocked duplicate; a `warn` rule has nothing
to enforce, so its second run would only cost time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa

from ..catalog import Catalog
from ..dedup import find_matches
from ..dedup.engine import Match, rules_for
from ..principal import Principal

MODES = ("create", "skip", "update", "update_only")
EVENT = "import"


@dataclass(frozen=True)
class Decision:
    """`create`, `update` (record_id), `skip` (record_id, why) or `error` (why)."""

    action: str
    record_id: int | None = None
    message: str | None = None


def write_check(catalog: Catalog, entity: str, use_dedup: bool) -> str | None:
    """The `dedup_on` event the record service should check while writing (None: keys only)."""
    if not use_dedup:
        return None
    return EVENT if any(r.action == "block" for r in rules_for(catalog.mset, entity, EVENT)) else None


def _describe(match: Match) -> str:
    if match.id is None:
        owner = f", owner {match.owner}" if match.owner else ""
        return f"a {match.entity} you can't open (rule {match.rule}{owner})"
    title = f" '{match.title}'" if match.title else ""
    return f"{match.entity} #{match.id}{title} (rule {match.rule}, score {float(match.score):.2f})"


def _by_id(record_id: int, mode: str) -> Decision:
    if mode == "create":
        return Decision("error", message=f"The row names record #{record_id} in its id column; "
                                         "import with mode update to change it, or leave id empty.")
    if mode == "skip":
        return Decision("skip", record_id, f"Names existing record #{record_id}.")
    return Decision("update", record_id)


def decide(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str,
           values: Mapping[str, Any], mode: str, use_dedup: bool = True) -> Decision:
    """What to do with one row's values under `mode`."""
    if values.get("id") is not None:
        return _by_id(values["id"], mode)
    if mode == "create" or not use_dedup:
        return Decision("skip", None, "No matching record; update_only never creates.") \
            if mode == "update_only" else Decision("create")
    matches = find_matches(conn, catalog, principal, entity, values, on=EVENT)
    if not matches:
        if mode == "update_only":
            return Decision("skip", None, "No matching record; update_only never creates.")
        return Decision("create")
    if mode == "skip":
        first = matches[0]
        return Decision("skip", first.id if first.entity == entity else None, f"Duplicate of {_describe(first)}.")
    same = [m for m in matches if m.entity == entity]
    readable = sorted((m for m in same if m.id is not None), key=lambda m: -float(m.score))
    if not readable:
        if same:
            return Decision("error", message=f"Duplicate of {_describe(same[0])}; it can't be updated by you.")
        if mode == "update_only":
            return Decision("skip", None, f"Only matches {_describe(matches[0])}; update_only never creates.")
        return Decision("create")  # a match in another entity: a `block` rule still refuses in the write
    best = readable[0]
    tied = [m for m in readable[1:] if float(m.score) == float(best.score)]
    if tied:
        return Decision("error", message=f"Matches several records equally ({_describe(best)}, "
                                         f"{_describe(tied[0])}); add an id column to choose.")
    return Decision("update", best.id)
