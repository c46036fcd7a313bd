"""Uploads and downloads for `file` and `image` fields (`/api/v1/files`).

| call | does |
|---|---|
| `POST /files` (multipart: `file`, optional `entity` + `field`) | store the upload → 201 `{"key", "name", "size", "content_type", "url"}`; 413 over the size limit, 422 when the named field is an image field and the file isn't an image |
| `GET /files/<key>` | the file, to the uploader or to whoever may read a record (and field) holding the key; else 404 |

The key is what a record's field takes (`"attachment": key`). Images are served inline
with their sniffed type; anything else as an `application/octet-stream` attachment, with
`nosniff`, so an uploaded page never runs on this site. The size limit is
`METACRM_MAX_UPLOAD_MB` (default 20), the folder `METACRM_UPLOAD_DIR` (default
`<instance>/uploads`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, request, send_file

from ..errors import ValidationFailed
from ..files import TooLarge, open_for, store, upload_folder
from .context import require_principal, runtime

bp = Blueprint("metacrm_files", __name__, url_prefix="/api/v1")

DEFAULT_LIMIT_MB = 20


def upload_limit() -> int:
    """The largest upload in bytes (METACRM_MAX_UPLOAD_MB)."""
    return int(current_app.config.get("MAX_UPLOAD_MB") or DEFAULT_LIMIT_MB) * 1024 * 1024


def folder() -> Path:
    return upload_folder(current_app.instance_path, current_app.config.get("UPLOAD_DIR"))


def save_upload(conn: Any, catalog: Any, principal: Any, upload: Any, entity: str | None = None,
                field: str | None = None) -> Any:
    """Store one werkzeug FileStorage (the API's and the screens' forms share this)."""
    return store(conn, catalog, principal, upload.stream, upload.filename, folder(), upload_limit(),
                 entity=entity, field=field)


@bp.post("/files")
def upload_view() -> Any:
    principal = require_principal()
    limit = upload_limit()
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        # Refuse before reading the body (the form's other parts are small).
        raise TooLarge(f"The file is larger than the limit of {limit // (1024 * 1024)} MB.",
                       {"file": [f"At most {limit // (1024 * 1024)} MB."]}, limit=limit)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationFailed("Send the file as multipart/form-data under the name 'file'.",
                               {"file": ["A file is required."]})
    entity, field = request.form.get("entity") or None, request.form.get("field") or None
    rt = runtime()
    with rt.engine.begin() as conn:
        stored = save_upload(conn, rt.catalog(conn), principal, upload, entity, field)
    return jsonify(stored.to_dict()), 201


@bp.get("/files/<token>")
@bp.get("/files/<token>/<path:name>")
def download_view(token: str, name: str | None = None) -> Any:
    principal = require_principal()
    rt = runtime()
    with rt.engine.connect() as conn:
        stored, path = open_for(conn, rt.catalog(conn), principal, token, name, folder())
    image = stored.content_type.startswith("image/")
    response = send_file(path, mimetype=stored.content_type, as_attachment=not image,
                         download_name=stored.name, conditional=True, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
