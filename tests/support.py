"""Helpers the tests share: metadata packages from small dicts, and logged-in clients."""
from __future__ import annotations

from typing import Any, Iterable

from metacrm.metadata.documents import Document
from metacrm.metadata.loader import Package

ADMIN = ("admin", "admin-pass-1")


def package(docs: Iterable[dict[str, Any]], name: str = "test", version: str = "1.0.0") -> Package:
    manifest = Document(f"{name}/template.json", {"kind": "template", "name": name, "version": version,
                                                  "label": name, "files": ["*.json"]})
    return Package(manifest, tuple(Document(f"{name}/{d.get('kind')}_{d.get('name')}.json", d) for d in docs), ())


def entity(name: str, *fields: dict[str, Any], **keys: Any) -> dict[str, Any]:
    """A small entity document: entity("customer", {"name": "name", "type": "text"}, ownership=True)."""
    return {"kind": "entity", "name": name, "label": {"en": name.title(), "zh": name}, "fields": list(fields),
            **keys}


def login(client: Any, username: str = ADMIN[0], password: str = ADMIN[1]) -> Any:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.get_json()
    return client


# ------------------------------------------------------------------ publish / schema helpers

def republish(app: Any, docs: Iterable[dict[str, Any]], name: str = "test", version: str = "1.1.0") -> Any:
    """Upgrade the `make_app` template to `docs` (how a consultant ships a change); the Plan."""
    from metacrm.runtime.db import schema_transaction
    from metacrm.runtime.metastore import install_template
    from metacrm.runtime.web.context import EXTENSION

    rt = app.extensions[EXTENSION]
    with schema_transaction(rt.engine) as conn:
        plan = install_template(conn, package(list(docs), name=name, version=version), upgrade=True)
    return plan


def pending_plan(app: Any, docs: Iterable[dict[str, Any]], name: str = "test") -> Any:
    """The plan an upgrade of the `make_app` template to `docs` would apply (rolled back)."""
    from metacrm.metadata.layers import merge_layers
    from metacrm.runtime.metastore import layer_documents
    from metacrm.runtime.publish import make_plan
    from metacrm.runtime.web.context import EXTENSION

    rt = app.extensions[EXTENSION]
    docs = list(docs)
    with rt.engine.connect() as conn:
        staged = package(docs, name=name)
        merged = merge_layers(layer_documents(conn, replace={name: list(staged.documents)}))
        return make_plan(conn, merged)


def schema_snapshot(engine: Any) -> dict[str, Any]:
    """Every entity table's columns (name, type, nullable), indexes and foreign keys."""
    import sqlalchemy as sa

    insp = sa.inspect(engine)
    out: dict[str, Any] = {}
    for t in sorted(insp.get_table_names()):
        if not t.startswith("ent_"):
            continue
        out[t] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in insp.get_indexes(t)),
            "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"]) for f in insp.get_foreign_keys(t)),
        }
    return out


def meta_version(engine: Any) -> int:
    import sqlalchemy as sa

    from metacrm.runtime import systables

    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.coalesce(sa.func.max(systables.meta_versions.c.version), 0))).scalar_one()


def table_checksum(engine: Any, table: str, columns: Iterable[str]) -> tuple[int, str]:
    """Row count and a digest of the given columns of every row, in id order."""
    import hashlib

    import sqlalchemy as sa

    cols = list(columns)
    t = sa.table(table, sa.column("id"), *(sa.column(c) for c in cols))
    digest = hashlib.sha256()
    n = 0
    with engine.connect() as conn:
        for row in conn.execute(sa.select(t.c.id, *(t.c[c] for c in cols)).order_by(t.c.id)):
            digest.update(repr(tuple(row)).encode())
            n += 1
    return n, digest.hexdigest()


# ------------------------------------------------------------------ users and tokens, fast

#: A cheap password hash for test users: scrypt costs ~50 ms a user, this a fraction of one.
CHEAP_HASH = "pbkdf2:sha256:1000"


def add_user(conn: Any, username: str, password: str | None = None, *, roles: Iterable[str] = (),
             department_id: int | None = None, manager_id: int | None = None, is_admin: bool = False,
             display_name: str | None = None, language: str = "en") -> int:
    """Insert a user directly (cheap hash, password `<username>-pass-1` unless given); its id."""
    from werkzeug.security import generate_password_hash

    from metacrm.runtime import systables
    from metacrm.runtime.clock import utcnow

    u = systables.users
    user_id = conn.execute(u.insert().values(
        username=username, password_hash=generate_password_hash(password or f"{username}-pass-1", method=CHEAP_HASH),
        display_name=display_name or username, language=language, is_admin=is_admin, active=True,
        department_id=department_id, manager_id=manager_id, created_at=utcnow()).returning(u.c.id)).scalar_one()
    roles = list(roles)
    if roles:
        conn.execute(systables.user_roles.insert(), [{"user_id": user_id, "role": r} for r in roles])
    return user_id


def bearer(conn: Any, user_id: int) -> dict[str, str]:
    """Headers authenticating as `user_id` with a fresh API token (no password check, so fast)."""
    from metacrm.runtime import accounts

    return {"Authorization": f"Bearer {accounts.create_token(conn, user_id, 'test')['token']}"}


def admin_bearer(app: Any) -> dict[str, str]:
    """Headers authenticating as the `make_app` admin."""
    from metacrm.runtime import accounts
    from metacrm.runtime.web.context import EXTENSION

    with app.extensions[EXTENSION].engine.begin() as conn:
        return bearer(conn, accounts.find_account(conn, ADMIN[0]).id)  # type: ignore[union-attr]


def error_of(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The `error` object of an API error response, after checking its status and shape."""
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True))
    body = r.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"].get("code"), str) and body["error"].get("message"), body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def role(name: str, *entities: str, scope: str = "self", **extra: Any) -> dict[str, Any]:
    """A role document granting create/read/update/delete (with `scope`) on `entities`."""
    return {"kind": "role", "name": name, "label": name,
            "permissions": {e: {"create": True, "read": scope, "update": scope, "delete": scope}
                            for e in entities}, **extra}
