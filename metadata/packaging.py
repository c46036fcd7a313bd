"""Writing template packages: documents in, a `.zip` out — the loader's inverse.

A package written here loads back with `loader.load_package` to the same documents: one
file per document, in a folder per kind, named after the document's identity
(`views/customer_all.json`), with a `template.json` whose `files` list covers them.
"""
from __future__ import annotations

import io
import json
import zipfile
from typing import Any, Iterable

from .documents import Document
from .fieldtypes import KIND_KEYS
from .layers import identity

#: The folder each kind of document goes to, in the order files are listed.
FOLDERS: dict[str, str] = {
    "entity": "entities", "form": "forms", "view": "views", "dedup": "dedup",
    "workflow": "workflows", "role": "roles", "pool": "pools",
}


def file_name(doc: Document) -> str:
    """`entities/customer.json`, `views/customer_all.json`: unique per identity."""
    kind = doc.kind or "other"
    folder = FOLDERS.get(kind, kind)
    stem = "_".join(str(part) for part in identity(doc)[1:] if part is not None) or "unnamed"
    return f"{folder}/{stem}.json"


def manifest_for(name: str, version: str, label: dict[str, str] | None = None,
                 requires: Iterable[str] = (), documents: Iterable[Document] = ()) -> dict[str, Any]:
    kinds = {d.kind for d in documents}
    return {"kind": "template", "name": name, "version": version,
            "label": label or {"en": name, "zh": name}, "requires": list(requires),
            "files": [f"{folder}/*.json" for kind, folder in FOLDERS.items() if kind in kinds]}


def package_zip(manifest: dict[str, Any], documents: Iterable[Document]) -> bytes:
    """The zip of a template package; refuses two documents that would share a file."""
    out = io.BytesIO()
    seen: dict[str, str] = {}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("template.json", _dump(manifest))
        for doc in documents:
            if doc.kind not in KIND_KEYS or doc.kind == "template":
                continue
            path = file_name(doc)
            if path in seen:
                raise ValueError(f"{doc.source} and {seen[path]} would both be written to {path}")
            seen[path] = doc.source
            z.writestr(path, _dump(doc.data))
    return out.getvalue()


def _dump(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
