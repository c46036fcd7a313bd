"""Delegation while away: approvals meant for a user go to their stand-in for a date range.

A delegation applies when a step becomes current (the task is the stand-in's, marked "on
behalf of" the approver), so the trail shows both names. Users manage their own; admins
manage anyone's.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

import sqlalchemy as sa

from .. import systables
from ..clock import utcnow
from ..errors import BadRequest, Conflict, NotFound, PermissionDenied, ValidationFailed
from ..principal import Principal

D = systables.delegations


def _row(r: Any, names: Mapping[int, str]) -> dict[str, Any]:
    return {"id": r.id, "from_user": r.from_user, "from_user_name": names.get(r.from_user), "to_user": r.to_user,
            "to_user_name": names.get(r.to_user), "starts_on": r.starts_on.isoformat(),
            "ends_on": r.ends_on.isoformat(), "reason": r.reason, "active": r.revoked_at is None}


def _names(conn: sa.Connection, ids: set[int]) -> dict[int, str]:
    u = systables.users
    return dict(conn.execute(sa.select(u.c.id, u.c.display_name).where(u.c.id.in_(ids))).all()) if ids else {}


def list_delegations(conn: sa.Connection, principal: Principal, all_users: bool = False) -> list[dict[str, Any]]:
    """The principal's delegations (from or to them); admins may ask for everyone's."""
    stmt = sa.select(D).order_by(D.c.id.desc())
    if not (all_users and principal.is_admin):
        stmt = stmt.where(sa.or_(D.c.from_user == principal.user_id, D.c.to_user == principal.user_id))
    rows = list(conn.execute(stmt))
    names = _names(conn, {r.from_user for r in rows} | {r.to_user for r in rows})
    return [_row(r, names) for r in rows]


def _date(value: Any, key: str, errors: dict[str, list[str]]) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        pass
    errors[key] = ["Expected a date (YYYY-MM-DD)."]
    return None


def create_delegation(conn: sa.Connection, principal: Principal, body: Any) -> dict[str, Any]:
    """`{"to_user", "starts_on", "ends_on", "reason"?, "from_user"? (admins)}`."""
    if not isinstance(body, Mapping):
        raise BadRequest("Expected a JSON object.")
    from_user = body.get("from_user", principal.user_id)
    if from_user != principal.user_id and not principal.is_admin:
        raise PermissionDenied("Only administrators may set up delegations for someone else.")
    errors: dict[str, list[str]] = {}
    starts, ends = _date(body.get("starts_on"), "starts_on", errors), _date(body.get("ends_on"), "ends_on", errors)
    if starts and ends and ends < starts:
        errors["ends_on"] = ["Ends before it starts."]
    u = systables.users
    for key in ("from_user", "to_user"):
        uid = from_user if key == "from_user" else body.get("to_user")
        if isinstance(uid, bool) or not isinstance(uid, int) or conn.execute(
                sa.select(u.c.id).where(u.c.id == uid, u.c.active.is_(True))).first() is None:
            errors[key] = ["No active user with this id."]
    if not errors and body["to_user"] == from_user:
        errors["to_user"] = ["A user can't delegate to themselves."]
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        errors["reason"] = ["Text of at most 500 characters."]
    if errors:
        first = next(iter(errors.items()))
        raise ValidationFailed(f"{first[0]}: {first[1][0]}", errors)
    overlap = conn.execute(sa.select(D.c.id).where(D.c.from_user == from_user, D.c.revoked_at.is_(None),
                                                   D.c.starts_on <= ends, D.c.ends_on >= starts)).first()
    if overlap is not None:
        raise Conflict(f"This user already has a delegation in that period (id {overlap.id}); revoke it first.")
    new_id = conn.execute(D.insert().values(from_user=from_user, to_user=body["to_user"], starts_on=starts,
                                            ends_on=ends, reason=reason, created_by=principal.user_id,
                                            created_at=utcnow()).returning(D.c.id)).scalar_one()
    row = conn.execute(sa.select(D).where(D.c.id == new_id)).one()
    return _row(row, _names(conn, {row.from_user, row.to_user}))


def revoke_delegation(conn: sa.Connection, principal: Principal, delegation_id: int) -> None:
    row = conn.execute(sa.select(D).where(D.c.id == delegation_id)).first()
    if row is None or (row.from_user != principal.user_id and not principal.is_admin):
        raise NotFound(f"No delegation with id {delegation_id}.")
    conn.execute(D.update().where(D.c.id == delegation_id).values(revoked_at=utcnow()))
