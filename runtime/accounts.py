"""Users and API tokens: the rows behind login. The shell (`metacrm.auth`) does the HTTP side.

Passwords are hashed with werkzeug's scrypt; API tokens are random, shown once, and
stored only as a SHA-256 hash, so a leaked database doesn't leak working tokens.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from . import systables
from .clock import utcnow
from .coercion import utc
from .errors import Conflict, NotFound, ValidationFailed
from .org import load_org
from .principal import Principal

TOKEN_PREFIX = "mcrm_"
TOKEN_TOUCH_INTERVAL = dt.timedelta(minutes=1)
MIN_PASSWORD = 8


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    display_name: str
    language: str
    is_admin: bool
    active: bool
    department_id: int | None
    #: The sign-in generation: a session carries the value it was minted under (see end_sessions).
    auth_epoch: int = 0


def _account(row: Any) -> Account:
    return Account(row.id, row.username, row.display_name, row.language, row.is_admin, row.active,
                   row.department_id, row.auth_epoch)


def create_user(conn: sa.Connection, username: str, password: str, display_name: str | None = None,
                is_admin: bool = False, language: str = "en", email: str | None = None,
                department_id: int | None = None, manager_id: int | None = None,
                roles: tuple[str, ...] = (), password_hash: str | None = None) -> Account:
    """A new user. `password_hash`, when given, is stored instead of hashing `password`
    again (the demo's twenty users share one password: one scrypt, not twenty)."""
    username = (username or "").strip()
    errors: dict[str, list[str]] = {}
    if not username or len(username) > 150:
        errors["username"] = ["A username of 1 to 150 characters is required."]
    if not password or len(password) < MIN_PASSWORD:
        errors["password"] = [f"A password of at least {MIN_PASSWORD} characters is required."]
    if errors:
        raise ValidationFailed("The user is not valid.", errors)
    u = systables.users
    if conn.execute(sa.select(u.c.id).where(u.c.username == username)).first():
        raise Conflict(f"A user named '{username}' exists already.")
    user_id = conn.execute(u.insert().values(
        username=username, password_hash=password_hash or generate_password_hash(password),
        display_name=display_name or username,
        email=email, language=language, is_admin=is_admin, active=True, department_id=department_id,
        manager_id=manager_id, created_at=utcnow()).returning(u.c.id)).scalar_one()
    if roles:
        conn.execute(systables.user_roles.insert(), [{"user_id": user_id, "role": r} for r in roles])
    return get_account(conn, user_id)


def set_password(conn: sa.Connection, user_id: int, password: str) -> None:
    if not password or len(password) < MIN_PASSWORD:
        raise ValidationFailed("Password too short.",
                               {"password": [f"At least {MIN_PASSWORD} characters."]})
    u = systables.users
    conn.execute(u.update().where(u.c.id == user_id).values(password_hash=generate_password_hash(password)))
    end_sessions(conn, user_id)


def end_sessions(conn: sa.Connection, user_id: int) -> None:
    """Make every session and remember-me cookie of the user stale: they carry the old
    `auth_epoch` in their id (the shell's SessionUser), which no longer matches."""
    u = systables.users
    conn.execute(u.update().where(u.c.id == user_id).values(auth_epoch=u.c.auth_epoch + 1))


def revoke_all_tokens(conn: sa.Connection, user_id: int) -> int:
    """Revoke every live API token of the user (on deactivation, so reactivating them
    doesn't bring old tokens back to life); how many were revoked."""
    t = systables.api_tokens
    return conn.execute(t.update().where(t.c.user_id == user_id, t.c.revoked_at.is_(None))
                        .values(revoked_at=utcnow())).rowcount


def get_account(conn: sa.Connection, user_id: int) -> Account:
    row = conn.execute(sa.select(systables.users).where(systables.users.c.id == user_id)).first()
    if row is None:
        raise NotFound(f"No user with id {user_id}.")
    return _account(row)


def find_account(conn: sa.Connection, username: str) -> Account | None:
    row = conn.execute(sa.select(systables.users).where(systables.users.c.username == username)).first()
    return _account(row) if row else None


def authenticate(conn: sa.Connection, username: str, password: str) -> Account | None:
    """The active account with this username and password, or None (no hint which was wrong)."""
    u = systables.users
    row = conn.execute(sa.select(u).where(u.c.username == username)).first()
    if row is None:
        check_password_hash(generate_password_hash("timing"), password or "")  # same work either way
        return None
    if not check_password_hash(row.password_hash, password or "") or not row.active:
        return None
    conn.execute(u.update().where(u.c.id == row.id).values(last_login_at=utcnow()))
    return _account(row)


def principal_for(conn: sa.Connection, account: Account) -> Principal:
    """The principal of an account: roles, and the org chart's closure its data scopes use
    (read per request, so a moved department or a new manager applies at once)."""
    roles = frozenset(conn.execute(sa.select(systables.user_roles.c.role)
                                   .where(systables.user_roles.c.user_id == account.id)).scalars())
    org = load_org(conn)
    return Principal(user_id=account.id, username=account.username, display_name=account.display_name,
                     roles=roles, department_id=account.department_id, is_admin=account.is_admin,
                     language=account.language, subordinate_ids=org.subordinates(account.id),
                     department_ids=org.child_departments(account.department_id)
                     if account.department_id is not None else frozenset(),
                     department_path=org.parent_departments(account.department_id)
                     if account.department_id is not None else frozenset())


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: sa.Connection, user_id: int, name: str) -> dict[str, Any]:
    """A new API token; the secret is in the answer and nowhere else."""
    name = (name or "").strip() or "API token"
    if len(name) > 200:
        raise ValidationFailed("Token name too long.", {"name": ["At most 200 characters."]})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    t = systables.api_tokens
    now = utcnow()
    token_id = conn.execute(t.insert().values(user_id=user_id, name=name, token_hash=_hash_token(secret),
                                              prefix=secret[:12], created_at=now).returning(t.c.id)).scalar_one()
    return {"id": token_id, "name": name, "token": secret, "prefix": secret[:12], "created_at": now.isoformat()}


def list_tokens(conn: sa.Connection, user_id: int) -> list[dict[str, Any]]:
    t = systables.api_tokens
    rows = conn.execute(sa.select(t).where(t.c.user_id == user_id).order_by(t.c.id)).all()
    return [{"id": r.id, "name": r.name, "prefix": r.prefix, "created_at": utc(r.created_at).isoformat(),
             "last_used_at": utc(r.last_used_at).isoformat() if r.last_used_at else None,
             "revoked": r.revoked_at is not None} for r in rows]


def revoke_token(conn: sa.Connection, user_id: int, token_id: int) -> None:
    t = systables.api_tokens
    result = conn.execute(t.update().where(t.c.id == token_id, t.c.user_id == user_id, t.c.revoked_at.is_(None))
                          .values(revoked_at=utcnow()))
    if result.rowcount != 1:
        raise NotFound(f"No active token with id {token_id}.")


def account_for_token(conn: sa.Connection, token: str) -> Account | None:
    """The active account owning an unrevoked token, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    t, u = systables.api_tokens, systables.users
    row = conn.execute(sa.select(t.c.id, t.c.user_id, t.c.last_used_at)
                       .select_from(t.join(u, u.c.id == t.c.user_id))
                       .where(t.c.token_hash == _hash_token(token), t.c.revoked_at.is_(None),
                              u.c.active.is_(True))).first()
    if row is None:
        return None
    now = utcnow()
    # "Last used" to the minute is enough; writing it on every request would make every
    # API read a write (a commit on PostgreSQL, the write lock on SQLite).
    if row.last_used_at is None or now - utc(row.last_used_at) > TOKEN_TOUCH_INTERVAL:
        conn.execute(t.update().where(t.c.id == row.id).values(last_used_at=now))
    return get_account(conn, row.user_id)


# ------------------------------------------------------------------ sign-in throttling

#: Failed sign-ins allowed per (username, address) and per username in the window.
MAX_FAILURES_PER_ADDRESS = 5
MAX_FAILURES_PER_USERNAME = 20
FAILURE_WINDOW = dt.timedelta(minutes=15)


def sign_in_wait(conn: sa.Connection, username: str, remote_addr: str | None) -> int:
    """Seconds the caller must wait before trying this username again (0 = go ahead).

    Counting per address stops one guesser quickly; the higher per-username limit slows
    guessing spread over many addresses without letting one address lock a user out."""
    f = systables.login_failures
    since = utcnow() - FAILURE_WINDOW
    rows = conn.execute(sa.select(f.c.at, f.c.remote_addr).where(f.c.username == username, f.c.at > since)
                        .order_by(f.c.at)).all()
    mine = [r.at for r in rows if r.remote_addr == (remote_addr or "")[:64]]
    blocking = mine[-MAX_FAILURES_PER_ADDRESS] if len(mine) >= MAX_FAILURES_PER_ADDRESS else (
        rows[-MAX_FAILURES_PER_USERNAME].at if len(rows) >= MAX_FAILURES_PER_USERNAME else None)
    if blocking is None:
        return 0
    blocking = utc(blocking)
    return max(1, int((blocking + FAILURE_WINDOW - utcnow()).total_seconds()))


def record_sign_in(conn: sa.Connection, username: str, remote_addr: str | None, ok: bool) -> None:
    f = systables.login_failures
    if ok:
        conn.execute(f.delete().where(f.c.username == username))
    else:
        conn.execute(f.insert().values(username=username[:150], remote_addr=(remote_addr or "")[:64], at=utcnow()))
