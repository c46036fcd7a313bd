"""Live expression checks for the designer: one expression against one entity's fields.

The same check metadata validation runs (metadata.expressions.check_expression with the
entity's names and its child tables' fields), answered while the admin types, with the
list of names and functions the expression may use.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from metacrm.metadata.expressions import FUNCTIONS, check_expression
from metacrm.metadata.semantic_context import EntityInfo

from . import drafts


def check(conn: sa.Connection, document: dict[str, Any], expression: str, field: str | None = None) -> dict[str, Any]:
    """`{"ok", "errors": [...], "names": [...], "child_fields": {...}, "functions": [...]}`.

    `document` is the entity as edited (unsaved fields count); `field`, when given, is
    left out of the names a formula may read about itself."""
    info = EntityInfo.of(document)
    entities = {d.data["name"]: d.data for d in drafts.merged_draft(conn) if d.kind == "entity"}
    children: dict[str, list[str]] = {}
    for f in document.get("fields") or []:
        if f.get("type") == "table" and not f.get("archived") and f.get("target") in entities:
            children[f["name"]] = sorted(EntityInfo.of(entities[f["target"]]).names())
    names = sorted(info.names() - ({field} if field else set()))
    errors = check_expression(expression, names, children) if expression.strip() else []
    return {"ok": not errors, "errors": errors, "names": names, "child_fields": children,
            "functions": sorted(FUNCTIONS)}
