"""Administering the organisation: departments, users, deactivation (离职) and record
transfer, each admin action written to the audit log.

These are the functions behind `/api/v1/admin/...`; they take the acting principal
explicitly and check nothing about HTTP. Callers make sure the principal is an admin.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import sqlalchemy as sa

from . import systables
from .accounts import Account, create_user, end_sessions, get_account, revoke_all_tokens, set_password
from .catalog import Catalog
from .clock import utcnow
from .coercion import MAX_ID, utc
from .errors import BadRequest, Conflict, NotFound, ValidationFailed
from .history import record_changes
from .principal import Principal

USER_FIELDS = ("display_name", "email", "phone", "language", "is_admin", "department_id", "manager_id")
LANGUAGES = ("en", "zh")
#: The system tables' integer columns are 32-bit: a larger id can't exist, a larger position can't be stored.
INT32 = 2**31 - 1


def _text(value: Any, field: str, max_length: int, required: bool = True) -> str | None:
    """A name-like string the database will take: trimmed, not empty (when required), not
    longer than its column, without NUL or unpaired surrogates (PostgreSQL refuses both,
    which would otherwise surface as a 500)."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValidationFailed(f"{field} must be a non-empty string.", {field: ["Required; a string."]})
    value = value.strip()
    if len(value) > max_length:
        raise ValidationFailed(f"{field} is too long.", {field: [f"At most {max_length} characters."]})
    if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value):
        raise ValidationFailed(f"{field} contains a NUL or an unpaired surrogate.",
                               {field: ["Contains a character that can't be stored."]})
    return value


def _account(conn: sa.Connection, user_id: int) -> Account:
    """The account with this id; 404 also for ids no row can have (a URL may hold any number)."""
    if not 1 <= user_id <= MAX_ID:
        raise NotFound(f"No user with id {user_id}.")
    return get_account(conn, user_id)


def audit(conn: sa.Connection, by: Principal, action: str, target: str, detail: Mapping[str, Any] | None = None) -> None:
    conn.execute(systables.audit_log.insert().values(at=utcnow(), by=by.user_id, action=action, target=target,
                                                     detail=dict(detail or {})))


def read_audit(conn: sa.Connection, limit: int = 200) -> list[dict[str, Any]]:
    return audit_page(conn, page_size=limit)[0]


def audit_page(conn: sa.Connection, action: str | None = None, by: int | None = None, target: str | None = None,
               page: int = 1, page_size: int = 50) -> tuple[list[dict[str, Any]], int]:
    """One page of the audit log, newest first, and how many entries match: `action`
    exactly, `by` a user id, `target` a substring ("user:5", "department:", "role:sales")."""
    a, u = systables.audit_log, systables.users
    where = []
    if action:
        where.append(a.c.action == action)
    if by is not None:
        where.append(a.c.by == by)
    if target:
        where.append(a.c.target.contains(target, autoescape=True))
    total = conn.execute(sa.select(sa.func.count()).select_from(a).where(*where)).scalar_one()
    rows = conn.execute(sa.select(a, u.c.display_name).select_from(a.outerjoin(u, u.c.id == a.c.by))
                        .where(*where).order_by(a.c.id.desc()).limit(page_size)
                        .offset((page - 1) * page_size)).all()
    return [{"id": r.id, "at": utc(r.at).isoformat(), "by": r.by, "by_name": r.display_name, "action": r.action,
             "target": r.target, "detail": r.detail} for r in rows], total


def audit_actions(conn: sa.Connection) -> list[str]:
    """The actions the log holds, for a filter's choices."""
    a = systables.audit_log
    return list(conn.execute(sa.select(a.c.action).distinct().order_by(a.c.action)).scalars())


# ------------------------------------------------------------------ departments

def _department_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "parent": row.parent_id, "head": row.head_id, "position": row.position}


def list_departments(conn: sa.Connection) -> list[dict[str, Any]]:
    d = systables.departments
    return [_department_json(r) for r in conn.execute(sa.select(d).order_by(d.c.position, d.c.id))]


def get_department(conn: sa.Connection, department_id: int) -> dict[str, Any]:
    if not 1 <= department_id <= MAX_ID:
        raise NotFound(f"No department with id {department_id}.")
    row = conn.execute(sa.select(systables.departments).where(systables.departments.c.id == department_id)).first()
    if row is None:
        raise NotFound(f"No department with id {department_id}.")
    return _department_json(row)


def _check_id(conn: sa.Connection, table: sa.Table, value: Any, field: str, label: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"{field} must be an id.", {field: ["Expected an integer id."]})
    if not 1 <= value <= MAX_ID or conn.execute(sa.select(table.c.id).where(table.c.id == value)).first() is None:
        raise ValidationFailed(f"No {label} with id {value}.", {field: [f"No {label} with id {value}."]})
    return value


def _department_values(conn: sa.Connection, body: Mapping[str, Any], department_id: int | None) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise BadRequest("Expected a JSON object.")
    unknown = set(body) - {"name", "parent", "head", "position"}
    if unknown:
        raise ValidationFailed("Unknown fields.", {k: ["Unknown field."] for k in sorted(unknown)})
    values: dict[str, Any] = {}
    if "name" in body or department_id is None:
        values["name"] = _text(body.get("name"), "name", 200)
    if "parent" in body:
        parent = _check_id(conn, systables.departments, body["parent"], "parent", "department")
        if parent is not None and department_id is not None:
            from .org import load_org
            if parent in load_org(conn).child_departments(department_id):
                raise ValidationFailed("A department can't move under itself or its own sub-department.",
                                       {"parent": ["Would create a cycle."]})
        values["parent_id"] = parent
    if "head" in body:
        values["head_id"] = _check_id(conn, systables.users, body["head"], "head", "user")
    if "position" in body:
        if isinstance(body["position"], bool) or not isinstance(body["position"], int) \
                or not -INT32 - 1 <= body["position"] <= INT32:
            raise ValidationFailed("position must be an integer.", {"position": ["Expected a 32-bit integer."]})
        values["position"] = body["position"]
    return values


def create_department(conn: sa.Connection, by: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
    values = _department_values(conn, body, None)
    d = systables.departments
    new_id = conn.execute(d.insert().values(created_at=utcnow(), **values).returning(d.c.id)).scalar_one()
    audit(conn, by, "department.create", f"department:{new_id}", {"name": values["name"]})
    return get_department(conn, new_id)


def update_department(conn: sa.Connection, by: Principal, department_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
    before = get_department(conn, department_id)
    values = _department_values(conn, body, department_id)
    if values:
        d = systables.departments
        conn.execute(d.update().where(d.c.id == department_id).values(**values))
        audit(conn, by, "department.update", f"department:{department_id}",
              {"before": before, "changes": {k: v for k, v in body.items()}})
    return get_department(conn, department_id)


def delete_department(conn: sa.Connection, by: Principal, department_id: int) -> None:
    before = get_department(conn, department_id)
    d, u = systables.departments, systables.users
    if conn.execute(sa.select(d.c.id).where(d.c.parent_id == department_id).limit(1)).first():
        raise Conflict("The department has sub-departments; move or delete them first.")
    if conn.execute(sa.select(u.c.id).where(u.c.department_id == department_id).limit(1)).first():
        raise Conflict("The department still has members; move them first.")
    try:
        with conn.begin_nested():
            conn.execute(d.delete().where(d.c.id == department_id))
    except sa.exc.IntegrityError:
        raise Conflict("Records still belong to this department; transfer them first.") from None
    audit(conn, by, "department.delete", f"department:{department_id}", {"before": before})


# ------------------------------------------------------------------ users

def user_json(conn: sa.Connection, user_id: int) -> dict[str, Any]:
    u = systables.users
    row = conn.execute(sa.select(u).where(u.c.id == user_id)).first() if 1 <= user_id <= MAX_ID else None
    if row is None:
        raise NotFound(f"No user with id {user_id}.")
    roles = sorted(conn.execute(sa.select(systables.user_roles.c.role)
                                .where(systables.user_roles.c.user_id == user_id)).scalars())
    return {"id": row.id, "username": row.username, "display_name": row.display_name, "email": row.email,
            "phone": row.phone, "language": row.language, "is_admin": row.is_admin, "active": row.active,
            "department_id": row.department_id, "manager_id": row.manager_id, "roles": roles,
            "created_at": utc(row.created_at).isoformat(),
            "last_login_at": utc(row.last_login_at).isoformat() if row.last_login_at else None}


def list_users(conn: sa.Connection, active: bool | None = None) -> list[dict[str, Any]]:
    u = systables.users
    stmt = sa.select(u.c.id).order_by(u.c.id)
    if active is not None:
        stmt = stmt.where(u.c.active.is_(active))
    return [user_json(conn, uid) for uid in conn.execute(stmt).scalars()]


def find_users(conn: sa.Connection, q: str | None = None, department_id: int | None = None,
               active: bool | None = None, page: int = 1, page_size: int = 50) -> tuple[list[dict[str, Any]], int]:
    """One page of users (by display name) matching a search on username, name or email,
    a department, and active or not; and how many match."""
    u = systables.users
    where = []
    if q:
        where.append(sa.or_(*(c.icontains(q, autoescape=True) for c in (u.c.username, u.c.display_name, u.c.email))))
    if department_id is not None:
        where.append(u.c.department_id == department_id)
    if active is not None:
        where.append(u.c.active.is_(active))
    total = conn.execute(sa.select(sa.func.count()).select_from(u).where(*where)).scalar_one()
    ids = conn.execute(sa.select(u.c.id).where(*where).order_by(u.c.display_name, u.c.id)
                       .limit(page_size).offset((page - 1) * page_size)).scalars()
    return [user_json(conn, uid) for uid in ids], total


def _roles(value: Any, known: Iterable[str]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise ValidationFailed("roles must be a list of role names.", {"roles": ["Expected a list of names."]})
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ValidationFailed(f"Unknown role(s): {', '.join(unknown)}.", {"roles": [f"Unknown role '{r}'." for r in unknown]})
    return sorted(set(value))


def _user_values(conn: sa.Connection, body: Mapping[str, Any], user_id: int | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "display_name" in body:
        values["display_name"] = _text(body["display_name"], "display_name", 200)
    if "email" in body:
        email = _text(body["email"], "email", 254, required=False)
        if email is not None and "@" not in email:
            raise ValidationFailed("Not a valid email address.", {"email": ["Not a valid email address."]})
        values["email"] = email
    if "phone" in body:
        values["phone"] = _text(body["phone"], "phone", 50, required=False)
    if "language" in body:
        if body["language"] not in LANGUAGES:
            raise ValidationFailed("language is en or zh.", {"language": ["Must be one of: en, zh."]})
        values["language"] = body["language"]
    if "is_admin" in body:
        if not isinstance(body["is_admin"], bool):
            raise ValidationFailed("is_admin must be true or false.", {"is_admin": ["Not a valid boolean."]})
        values["is_admin"] = body["is_admin"]
    if "department_id" in body:
        values["department_id"] = _check_id(conn, systables.departments, body["department_id"], "department_id",
                                            "department")
    if "manager_id" in body:
        manager = _check_id(conn, systables.users, body["manager_id"], "manager_id", "user")
        if manager is not None and user_id is not None:
            from .org import load_org
            if manager == user_id or manager in load_org(conn).subordinates(user_id):
                raise ValidationFailed("A user can't report to themselves or to their own report.",
                                       {"manager_id": ["Would create a cycle."]})
        values["manager_id"] = manager
    return values


def create_user_from(conn: sa.Connection, by: Principal, body: Mapping[str, Any], known_roles: Iterable[str]) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise BadRequest("Expected a JSON object.")
    unknown = set(body) - {"username", "password", "roles", *USER_FIELDS}
    if unknown:
        raise ValidationFailed("Unknown fields.", {k: ["Unknown field."] for k in sorted(unknown)})
    values = _user_values(conn, body, None)
    roles = _roles(body.get("roles", []), known_roles)
    username = _text(body.get("username"), "username", 150)
    if not isinstance(body.get("password"), str):
        raise ValidationFailed("A password is required.", {"password": ["Required; a string."]})
    phone = values.pop("phone", None)  # not a create_user() argument: set just after
    account = create_user(conn, username or "", body["password"],
                          display_name=values.pop("display_name", None), roles=tuple(roles), **values)
    if phone is not None:
        conn.execute(sa.update(systables.users).where(systables.users.c.id == account.id).values(phone=phone))
    audit(conn, by, "user.create", f"user:{account.id}", {"username": account.username, "roles": roles,
                                                           "is_admin": account.is_admin})
    return user_json(conn, account.id)


def update_user(conn: sa.Connection, by: Principal, user_id: int, body: Mapping[str, Any],
                known_roles: Iterable[str]) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise BadRequest("Expected a JSON object.")
    before = user_json(conn, user_id)
    unknown = set(body) - {"password", "roles", *USER_FIELDS}
    if unknown:
        raise ValidationFailed("Unknown fields.", {k: ["Unknown field."] for k in sorted(unknown)})
    values = _user_values(conn, body, user_id)
    if values:
        conn.execute(systables.users.update().where(systables.users.c.id == user_id).values(**values))
    if "roles" in body:
        roles = _roles(body["roles"], known_roles)
        ur = systables.user_roles
        conn.execute(ur.delete().where(ur.c.user_id == user_id))
        if roles:
            conn.execute(ur.insert(), [{"user_id": user_id, "role": r} for r in roles])
    if "password" in body:
        if not isinstance(body["password"], str):
            raise ValidationFailed("password must be a string.", {"password": ["Expected a string."]})
        set_password(conn, user_id, body["password"])
    after = user_json(conn, user_id)
    changed = {k: {"old": before.get(k), "new": after.get(k)} for k in after if before.get(k) != after.get(k)}
    if "password" in body:
        changed["password"] = {"old": "***", "new": "***"}
    if changed:
        audit(conn, by, "user.update", f"user:{user_id}", {"username": after["username"], "changes": changed})
    return after


def set_active(conn: sa.Connection, by: Principal, user_id: int, active: bool) -> dict[str, Any]:
    """Deactivate (离职) or reactivate a user. Their records stay theirs until transferred."""
    account = _account(conn, user_id)
    if by.user_id == user_id and not active:
        raise Conflict("You can't deactivate yourself.")
    conn.execute(systables.users.update().where(systables.users.c.id == user_id).values(active=active))
    detail: dict[str, Any] = {"username": account.username}
    if not active:
        # Deactivation ends the user's sessions and revokes their tokens for good: a later
        # reactivation must not silently revive credentials issued before it.
        end_sessions(conn, user_id)
        detail["tokens_revoked"] = revoke_all_tokens(conn, user_id)
    audit(conn, by, "user.activate" if active else "user.deactivate", f"user:{user_id}", detail)
    return user_json(conn, user_id)


def transfer_records(conn: sa.Connection, catalog: Catalog, by: Principal, from_user: int, to_user: Any,
                     entities: Any = None) -> dict[str, int]:
    """Hand every record a user owns (in the given entities, or all owned entities) to
    another active user, in one transaction, with a history entry per record."""
    _account(conn, from_user)
    if isinstance(to_user, bool) or not isinstance(to_user, int):
        raise ValidationFailed("to_user must be a user id.", {"to_user": ["Expected an integer id."]})
    target = get_account(conn, to_user) if 1 <= to_user <= MAX_ID and conn.execute(
        sa.select(systables.users.c.id).where(systables.users.c.id == to_user)).first() else None
    if target is None or not target.active:
        raise ValidationFailed("Transfer to an active user.", {"to_user": [f"No active user with id {to_user}."]})
    if to_user == from_user:
        raise ValidationFailed("Transfer to another user.", {"to_user": ["The records are this user's already."]})
    owned = [e for e in catalog.mset.active_entities if e.ownership and not e.child_of]
    if entities is None:
        chosen = owned
    else:
        if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
            raise ValidationFailed("entities must be a list of entity names.", {"entities": ["Expected a list."]})
        by_name = {e.name: e for e in owned}
        unknown = [e for e in entities if e not in by_name]
        if unknown:
            raise ValidationFailed(f"Not entities with owners: {', '.join(unknown)}.",
                                   {"entities": [f"Unknown or unowned entity '{e}'." for e in unknown]})
        chosen = [by_name[e] for e in entities]
    now = utcnow()
    moved: dict[str, int] = {}
    for entity in chosen:
        table = catalog.entities[entity.name].table
        ids = list(conn.execute(sa.select(table.c.id).where(table.c.owner == from_user)).scalars())
        if not ids:
            continue
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            conn.execute(table.update().where(table.c.id.in_(part)).values(
                owner=to_user, department=target.department_id, version=table.c.version + 1,
                updated_at=now, updated_by=by.user_id))
            for rid in part:
                record_changes(conn, entity.name, rid, by.user_id, now, "transfer",
                               [("owner", from_user, to_user)])
        moved[entity.name] = len(ids)
    audit(conn, by, "user.transfer", f"user:{from_user}", {"to_user": to_user, "moved": moved})
    return moved
