"""Files chosen in a record form that was posted without JavaScript.

With the page's script, a file input uploads as soon as a file is chosen (POST
/api/v1/files) and the form posts only the key, in the field's hidden input. Without it,
the browser posts the file itself as `<field>.upload` (`lines-0-scan.upload` in a child
row) in the multipart form; this stores each one the same way and puts its key where the
hidden input would have, so `form_payload()` and the record service see the same post.
"""
from __future__ import annotations

from typing import Any

from werkzeug.datastructures import MultiDict

from ..catalog import Catalog, EntityRuntime
from ..errors import ServiceError, ValidationFailed
from ..principal import Principal
from .files_api import save_upload
from .form_input import ROW_KEY

SUFFIX = ".upload"


def _target(rt: EntityRuntime, key: str) -> tuple[EntityRuntime, str, str] | None:
    """(entity, field, error key) of an upload's form key, or None when it names no file field."""
    name = key[:-len(SUFFIX)]
    match = ROW_KEY.match(name)
    if match and match["table"] in rt.children:
        child = rt.children[match["table"]]
        return child, match["field"], f"{match['table']}[{match['index']}].{match['field']}"
    return (rt, name, name) if rt.entity.active_field(name) is not None else None


def with_uploads(conn: Any, catalog: Catalog, principal: Principal, rt: EntityRuntime, form: MultiDict,
                 files: MultiDict) -> MultiDict:
    """The form with each posted file stored and replaced by its key; a refused file
    (too large, not an image for an image field) is a 422 naming its field."""
    out = MultiDict(form)
    errors: dict[str, list[str]] = {}
    for key, upload in files.items(multi=True):
        if not key.endswith(SUFFIX) or not upload or not upload.filename:
            continue
        target = _target(rt, key)
        if target is None:
            continue
        entity, field, error_key = target
        f = entity.entity.active_field(field)
        if f is None or f.type not in ("file", "image"):
            continue
        try:
            stored = save_upload(conn, catalog, principal, upload, entity.name, field)
        except ServiceError as exc:
            errors[error_key] = [m for v in exc.fields.values() for m in v] or [exc.message]
            continue
        out.setlist(key[:-len(SUFFIX)], [stored.value])
    if errors:
        raise ValidationFailed("A file was refused: " + " ".join(m for v in errors.values() for m in v), errors)
    return out
