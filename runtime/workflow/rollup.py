"""The workflow action `rollup`: keep a total on the record a lookup points at in step.

A receivable that finance confirms adds to its receivable plan's `received_amount`; one
voided later takes it away again. Rather than adding or subtracting (which drifts when a
step is repeated or skipped), the action recomputes the total from the rows themselves:

    {"on": "approved", "rollup": {"lookup": "plan", "field": "received_amount", "sum": "amount",
                                  "where": {"approval_status": ["approved"]},
                                  "set": {"status": "'done' if received_amount >= amount else 'partial'"}}}

target.field = sum(`sum`) over this entity's records whose `lookup` is the same target and
whose fields are in `where`; then each `set` expression is evaluated on the target (with
the new total) and written too. The target is updated through the record service as the
system, so its formulas, rules and history apply.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

import sqlalchemy as sa

from metacrm.metadata.expressions import ExpressionError, compile_expression

from ..errors import ValidationFailed
from ..history import jsonable
from ..principal import SYSTEM


def apply_rollup(conn: sa.Connection, catalog: Any, entity: str, spec: Mapping[str, Any],
                 record: Mapping[str, Any]) -> None:
    """Recompute `spec["field"]` on the record `record[spec["lookup"]]` points at (if any)."""
    from ..records import fetch_row, python_record, update_record  # the record service imports this package

    rt = catalog.get(entity)
    target_id = record.get(spec["lookup"])
    lookup = rt.entity.active_field(spec["lookup"])
    if target_id is None or lookup is None or not lookup.target:
        return
    target = catalog.entities.get(lookup.target)
    if target is None or target.entity.archived:
        return
    t = rt.table
    conditions = [t.c[spec["lookup"]] == target_id]
    for name, values in (spec.get("where") or {}).items():
        conditions.append(t.c[name].in_(list(values)))
    total = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(t.c[spec["sum"]]), 0)).where(*conditions)).scalar()
    total = Decimal(str(total))
    row = fetch_row(conn, target, target_id)
    current = python_record(target, row)
    current[spec["field"]] = total
    changes: dict[str, Any] = {spec["field"]: jsonable(total)}
    for name, source in (spec.get("set") or {}).items():
        try:
            changes[name] = jsonable(compile_expression(source).evaluate(current))
        except ExpressionError as exc:
            raise ValidationFailed(f"The workflow's rollup expression {source!r} failed: {exc}") from None
    # The totals may be read-only to users (nobody types a received amount): written as the engine.
    update_record(conn, catalog, SYSTEM, target.name, target_id, {**changes, "version": row["version"]},
                  workflow_fields=frozenset(changes))
