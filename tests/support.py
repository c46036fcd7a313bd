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
