"""Entity actions: `POST /api/v1/records/<entity>/<id>/actions/<action>` (ARCHITECTURE.md).

An entity offers an action by naming it in its metadata (`"actions": [{"name": "claim",
"label": ...}]`); a role grants it like any other action (`"claim": "self"`, or `true`).
The code behind a name lives with the engine it belongs to (the public pool's `claim`,
the dedup engine's `merge`, lead conversion's `convert`), each module exporting a plain
`ACTIONS` mapping of name → handler; this module only joins those mappings and checks,
before any handler runs, that the entity offers the action and the caller holds it.

A handler is `handler(conn, catalog, principal, entity, record_id, body) -> dict`: it runs
inside the request's one transaction and reads and writes through the record service,
so scopes, validation and history apply to it as to any other write.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import sqlalchemy as sa

from .catalog import Catalog
from .errors import BadRequest, NotFound
from .principal import Principal
from .record_reads import require_access

ActionHandler = Callable[[sa.Connection, Catalog, Principal, str, int, Mapping[str, Any]], dict[str, Any]]

#: name → handler, joined from the engines' own ACTIONS mappings (one line per engine).
HANDLERS: dict[str, ActionHandler] = {}


def offered_actions(catalog: Catalog, entity: str) -> list[str]:
    """The action names the entity's metadata offers and this server can run."""
    return [a["name"] for a in catalog.get(entity).entity.actions if a["name"] in HANDLERS]


def run_action(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, record_id: int,
               action: str, body: Any) -> dict[str, Any]:
    """Check that `entity` offers `action` and the principal holds it, then run it."""
    rt = catalog.get(entity)
    if action not in {a["name"] for a in rt.entity.actions} or action not in HANDLERS:
        raise NotFound(f"{entity} has no action {action!r}.")
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        raise BadRequest("The action's body must be a JSON object.")
    require_access(catalog, principal, rt, action)
    return HANDLERS[action](conn, catalog, principal, entity, record_id, body)


from .dedup import merge as _dedup_merge  # noqa: E402 - engines register after HANDLERS exists
from . import lead_conversion as _lead_conversion  # noqa: E402

HANDLERS.update(_dedup_merge.ACTIONS)
HANDLERS.update(_lead_conversion.ACTIONS)
