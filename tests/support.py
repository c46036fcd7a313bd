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
