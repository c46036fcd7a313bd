"""The public pool's read API (`/api/v1/pools`, `/api/v1/records/<entity>/<id>/moves`).

The actions themselves go through the entity-action door (`.../actions/claim`, ...);
this blueprint answers what the screens need around them: the pools a user belongs to
with their limits and how much of them the user has used, and a record's move log.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, jsonify

from .. import systables
from ..access import scope_clause
from ..coercion import utc
from ..pool.actions import start_of_today
from ..pool.config import pools_of
from ..record_reads import fetch_row, require_access
from .context import require_principal, runtime

bp = Blueprint("metacrm_pools", __name__, url_prefix="/api/v1")


@bp.get("/pools")
def pools_view() -> Any:
    """The pools the caller belongs to (admins: all), with their limits and the caller's usage."""
    principal = require_principal()
    rt = runtime()
    with rt.engine.connect() as conn:
        catalog = rt.catalog(conn)
        m = systables.pool_moves
        items = []
        for pool in pools_of(catalog.mset):
            if not pool.is_member(principal):
                continue
            table = catalog.get(pool.entity).table
            item = pool.to_dict(principal.language)
            item["admin"] = pool.is_admin(principal)
            item["records"] = conn.execute(sa.select(sa.func.count()).select_from(table).where(
                table.c.owner.is_(None), table.c.pool == pool.name)).scalar_one()
            item["held"] = conn.execute(sa.select(sa.func.count()).select_from(table).where(
                table.c.owner == principal.user_id)).scalar_one() if principal.user_id else 0
            item["claimed_today"] = conn.execute(sa.select(sa.func.count()).select_from(m).where(
                m.c.to_owner == principal.user_id, m.c.action == "claim", m.c.pool == pool.name,
                m.c.at >= start_of_today())).scalar_one() if principal.user_id else 0
            items.append(item)
    return jsonify({"items": items})


@bp.get("/records/<entity>/<int:record_id>/moves")
def moves_view(entity: str, record_id: int) -> Any:
    """A record's changes of hands (claims, assignments, releases, transfers, recycling), newest first."""
    principal = require_principal()
    rt = runtime()
    with rt.engine.connect() as conn:
        catalog = rt.catalog(conn)
        ert = catalog.get(entity)
        access = require_access(catalog, principal, ert, "read")
        fetch_row(conn, ert, record_id, scope=scope_clause(ert.table, ert.entity, principal, access, "read", conn))
        m, u = systables.pool_moves, systables.users
        rows = conn.execute(sa.select(m, u.c.display_name.label("by_name")).select_from(m.outerjoin(u, u.c.id == m.c.by))
                            .where(m.c.entity == entity, m.c.record_id == record_id).order_by(m.c.id.desc())
                            .limit(200)).mappings().all()
    return jsonify({"items": [{"at": utc(r["at"]).isoformat(), "by": r["by"], "by_name": r["by_name"],
                               "action": r["action"], "pool": r["pool"], "from_owner": r["from_owner"],
                               "to_owner": r["to_owner"], "rule": r["rule"], "reason": r["reason"]}
                              for r in rows]})
