"""Uploaded files for `file` and `image` fields: storing, checking and who may download.

A file is stored once, under the upload folder, by a random token (never by its name, so
no name can reach outside the folder or overwrite another file); `mc_files` keeps its
name, size, type and uploader. A record's field holds the value `"<token>/<name>"`, so a
list or record page can show the name without another query, and the download URL
`/api/v1/files/<token>/<name>` names the file for the browser.

- **Types.** An image is recognised by its first bytes (PNG, JPEG, GIF, WebP — not SVG,
  which can carry script), whatever the browser claimed; an `image` field takes nothing
  else. Other files are served as `application/octet-stream` attachments, so an uploaded
  HTML page can never run on this site.
- **Who may download.** The uploader (a file not yet saved on a record, or one whose
  record they can no longer read), or anyone who may read a record — and the field —
  that holds the value. Nothing else; a refused download is a 404, as for a record.
- **Saving a record** with a file value checks the file exists (and is an image for an
  image field): `check_file_values()`, called by the record service beside its lookups.

No Flask here: the web face (`runtime/web/files_api.py`) passes the stream and the folder.
"""
from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Mapping

import sqlalchemy as sa

from . import systables
from .access import access_for, scope_clause
from .catalog import Catalog, EntityRuntime
from .clock import utcnow
from .errors import NotFound, ServiceError, ValidationFailed
from .principal import Principal

F = systables.files
FILE_TYPES = frozenset({"file", "image"})
TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")
#: Magic numbers of the image formats browsers show safely: (prefix, offset, type).
IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
)
CHUNK = 64 * 1024
NAME_LIMIT = 180


class TooLarge(ServiceError):
    """The upload is over the configured size limit."""

    status = 413
    code = "too_large"


@dataclass(frozen=True)
class StoredFile:
    token: str
    name: str
    size: int
    content_type: str

    @property
    def value(self) -> str:
        """What a record's file or image field holds."""
        return f"{self.token}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.value, "name": self.name, "size": self.size, "content_type": self.content_type,
                "url": f"/api/v1/files/{self.value}"}


def sniff(head: bytes) -> str | None:
    """The image type the first bytes announce, or None (not an image we serve as one)."""
    for magic, offset, kind in IMAGE_SIGNATURES:
        if head[offset:offset + len(magic)] == magic and (kind != "image/webp" or head[:4] == b"RIFF"):
            return kind
    return None


def safe_name(name: str | None) -> str:
    """A display name without folders, control characters or slashes (it's never a path)."""
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", name or ""))[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if len(base) > NAME_LIMIT:
        stem, dot, ext = base.rpartition(".")
        base = (stem[:NAME_LIMIT - len(ext) - 1] + dot + ext) if dot and len(ext) <= 16 else base[:NAME_LIMIT]
    return base or "file"


def _path(folder: Path, token: str) -> Path:
    return folder / token[:2] / token


def split_value(value: Any) -> tuple[str, str] | None:
    """(token, name) of a field value `"<token>/<name>"`, or None when it isn't one."""
    if not isinstance(value, str):
        return None
    token, slash, name = value.partition("/")
    return (token, name) if slash and TOKEN.match(token) else None


def _field_of(catalog: Catalog, entity: str | None, field: str | None) -> Any:
    """The file/image field an upload names (both or neither of entity and field)."""
    if entity is None and field is None:
        return None
    rt = catalog.entities.get(entity or "")
    f = rt.entity.active_field(field or "") if rt else None
    if f is None or f.type not in FILE_TYPES:
        raise ValidationFailed(f"{entity}.{field} is not a file or image field.",
                               {"field": [f"No file or image field '{field}' on '{entity}'."]})
    return f


def store(conn: sa.Connection, catalog: Catalog, principal: Principal, stream: BinaryIO, name: str | None,
          folder: Path, limit: int, entity: str | None = None, field: str | None = None) -> StoredFile:
    """Copy an upload into the folder under a new token and record it. Refused, with
    nothing kept: over `limit` bytes (413), empty, or not an image for an image field (422
    naming the field)."""
    f = _field_of(catalog, entity, field)
    token = secrets.token_urlsafe(24)
    path = _path(folder, token)
    path.parent.mkdir(parents=True, exist_ok=True)
    size, head = 0, b""
    try:
        with open(path, "xb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"The file is larger than the limit of {limit // (1024 * 1024)} MB.",
                                   {"file": [f"At most {limit // (1024 * 1024)} MB."]}, limit=limit)
                if len(head) < 16:
                    head += chunk[:16]
                out.write(chunk)
        if size == 0:
            raise ValidationFailed("The file is empty.", {"file": ["Choose a file that isn't empty."]})
        image = sniff(head)
        if f is not None and f.type == "image" and image is None:
            raise ValidationFailed(f"'{f.label.get(principal.language)}' takes images only (PNG, JPEG, GIF or WebP).",
                                   {f.name: ["Not an image (PNG, JPEG, GIF or WebP)."]})
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    stored = StoredFile(token, safe_name(name), size, image or "application/octet-stream")
    conn.execute(F.insert().values(token=token, name=stored.name, size=size, content_type=stored.content_type,
                                   uploaded_by=principal.user_id, uploaded_at=utcnow(),
                                   entity=entity if f is not None else None, field=f.name if f is not None else None))
    return stored


# ------------------------------------------------------------------ saving a record

def check_file_values(conn: sa.Connection, rt: EntityRuntime, values: Mapping[str, Any],
                      before: Mapping[str, Any] | None, errors: Any, prefix: str = "") -> None:
    """A changed file/image value names a stored file (by token and name); an image
    field's file is an image. Unchanged values aren't checked again."""
    for f in rt.entity.active_fields:
        if f.type not in FILE_TYPES:
            continue
        value = values.get(f.name)
        if value in (None, "") or (before is not None and before.get(f.name) == value):
            continue
        parts = split_value(value)
        row = conn.execute(sa.select(F.c.name, F.c.content_type).where(F.c.token == parts[0])).first() \
            if parts else None
        if row is None or row.name != parts[1]:  # type: ignore[index]
            errors.add(f"{prefix}{f.name}", "No such uploaded file: upload it with POST /api/v1/files first.")
        elif f.type == "image" and not row.content_type.startswith("image/"):
            errors.add(f"{prefix}{f.name}", "Not an image (PNG, JPEG, GIF or WebP).")


# ------------------------------------------------------------------ downloading

def _holders(catalog: Catalog, principal: Principal) -> list[tuple[EntityRuntime, list[str], EntityRuntime | None]]:
    """(entity, its file/image fields the principal may read, its parent for child tables)."""
    out = []
    parents = {child.name: rt for rt in catalog.entities.values() for child in rt.children.values()}
    for rt in catalog.entities.values():
        if rt.entity.archived:
            continue
        access = access_for(catalog.mset, principal, rt.entity)
        names = [f.name for f in rt.entity.active_fields if f.type in FILE_TYPES and f.name not in access.unreadable]
        if names:
            out.append((rt, names, parents.get(rt.name)))
    return out


def _readable_holder(conn: sa.Connection, catalog: Catalog, principal: Principal, value: str) -> bool:
    """Whether some record the principal may read holds `value` in a field they may read."""
    for rt, names, parent in _holders(catalog, principal):
        owner = parent or rt
        access = access_for(catalog.mset, principal, owner.entity)
        if not access.allows("read"):
            continue
        if parent is not None:
            parent_access = access_for(catalog.mset, principal, parent.entity)
            if any(table in parent_access.unreadable for table, child in parent.children.items()
                   if child.name == rt.name):
                continue
        hit = sa.or_(*(rt.table.c[n] == value for n in names))
        scope = scope_clause(owner.table, owner.entity, principal, access, "read", conn)
        if parent is None:
            stmt = sa.select(rt.table.c.id).where(hit)
        else:
            stmt = sa.select(rt.table.c.id).select_from(
                rt.table.join(parent.table, parent.table.c.id == rt.table.c.parent_id)).where(hit)
        if scope is not None:
            stmt = stmt.where(scope)
        if conn.execute(stmt.limit(1)).first() is not None:
            return True
    return False


def open_for(conn: sa.Connection, catalog: Catalog, principal: Principal, token: str, name: str | None,
             folder: Path) -> tuple[StoredFile, Path]:
    """The stored file and its path, for a principal allowed to download it (else 404)."""
    missing = NotFound("No such file, or not yours to see.")
    if not TOKEN.match(token):
        raise missing
    row = conn.execute(sa.select(F).where(F.c.token == token)).first()
    if row is None or (name is not None and name != row.name):
        raise missing
    stored = StoredFile(row.token, row.name, row.size, row.content_type)
    allowed = principal.is_admin or (principal.user_id is not None and row.uploaded_by == principal.user_id) \
        or _readable_holder(conn, catalog, principal, stored.value)
    path = _path(folder, token)
    if not allowed or not path.is_file():
        raise missing
    return stored, path


def upload_folder(instance_path: str, configured: str | None) -> Path:
    """The folder files are kept in: METACRM_UPLOAD_DIR, else `<instance>/uploads`."""
    return Path(configured).resolve() if configured else Path(instance_path) / "uploads"
