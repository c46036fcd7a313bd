"""The dedup step of an import: what a row that matches an existing record becomes.

Modes (ARCHITECTURE.md): `create` creates anyway (a `block` rule still refuses),
`skip` leaves a matched row out, `update` updates the match (and creates when nothing
matches), `update_only` updates the match and never creates. A row with an `id` column
names its record itself; otherwise the dedup engine's rules with `on: import` find the
match (`metacrm.runtime.dedup.find_matches`), within what the importer may read.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa

from ..catalog import Catalog
from ..principal import Principal

try:  # the dedup engine is its own module; without it, only the `id` column finds matches
    from ..dedup import find_matches
except ImportError:  # pragma: no cover - exercised only on a tree without the engine
    find_matches = None  # type: ignore[assignment]

MODES = ("create", "skip", "update", "update_only")
DEDUP_AVAILABLE = find_matches is not None


@dataclass(frozen=True)
class Decision:
    """`create`, `update` (record_id), `skip` (record_id, why) or `error` (why)."""

    action: str
    record_id: int | None = None
    message: str | None = None


def _describe(match: Any) -> str:
    title = f" '{match.title}'" if getattr(match, "title", None) else ""
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
    matches = []
    if use_dedup and find_matches is not None:
        matches = find_matches(conn, catalog, principal, entity, values, on="import")
    blocking = [m for m in matches if getattr(m, "action", None) == "block"]
    if not matches:
        if mode == "update_only":
            return Decision("skip", None, "No matching record; update_only never creates.")
        return Decision("create")
    if mode == "skip":
        return Decision("skip", matches[0].id if matches[0].entity == entity else None,
                        "Duplicate of " + _describe(matches[0]) + ".")
    if mode == "create":
        if blocking:
            return Decision("error", message="Duplicate of " + _describe(blocking[0]) + "; the rule blocks it.")
        return Decision("create")
    same = sorted((m for m in matches if m.entity == entity), key=lambda m: -float(m.score))
    if not same:
        if mode == "update_only":
            return Decision("skip", None, "Only matches other records: " + _describe(matches[0]) + ".")
        if blocking:
            return Decision("error", message="Duplicate of " + _describe(blocking[0]) + "; the rule blocks it.")
        return Decision("create")
    tied = [m for m in same if float(m.score) == float(same[0].score) and m.id != same[0].id]
    if tied:
        return Decision("error", message=f"Matches several records equally ({_describe(same[0])}, "
                                         f"{_describe(tied[0])}); add an id column to choose.")
    return Decision("update", same[0].id)
