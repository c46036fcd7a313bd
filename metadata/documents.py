"""Raw metadata documents and the error type every validation pass reports.

A `Document` is one JSON object as read from a file, a template package or the database,
with the place it came from, so that every error can name its file and JSON path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """One metadata document: `data` is the parsed JSON object, `source` where it came from."""

    source: str
    data: dict[str, Any] = field(hash=False, compare=False)

    @property
    def kind(self) -> str | None:
        kind = self.data.get("kind") if isinstance(self.data, dict) else None
        return kind if isinstance(kind, str) else None


@dataclass(frozen=True)
class MetadataError:
    """A problem in metadata: the file, the JSON pointer inside it, and what is wrong."""

    source: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.path or '/'}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "path": self.path or "/", "message": self.message}


class MetadataInvalid(Exception):
    """Raised when a set of documents does not validate; carries every error found."""

    def __init__(self, errors: list[MetadataError]):
        self.errors = list(errors)
        shown = "\n".join(str(e) for e in self.errors[:20])
        more = f"\n... and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        super().__init__(f"{len(self.errors)} metadata error(s):\n{shown}{more}")


def pointer(*parts: object) -> str:
    """A JSON pointer (RFC 6901) from path parts: pointer("fields", 3, "type") == "/fields/3/type"."""
    out = []
    for p in parts:
        out.append(str(p).replace("~", "~0").replace("/", "~1"))
    return "/" + "/".join(out) if out else ""
