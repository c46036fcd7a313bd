"""Targets (业绩目标): monthly targets per person and per department, against actuals.

Targets are records of the `sales_target` entity (year, month, user or department,
metric, amount). Actuals are the brief's measures — approved contract amount and
confirmed receivables — read within the caller's scope. A department's actual sums
its whole subtree (runtime/org.py).

Whose targets a caller sees: people inside their read scope of the measure's entity; a
department only when their scope covers everyone in it (a rep sees no department row:
their scope would make the department's actual their own numbers).

Permissions (see scope.py): the targets are read within the caller's read scope of
`sales_target`; without read access to it, or with one of its fields the report reads
hidden or masked, the report is refused (403). An actual whose measure the caller may
not read (the contract's amount, approval status or dates hidden, say) is null, and so
is its completion — never a sum over a hidden field, never a misleading zero.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ..errors import PermissionDenied
from .common import ZERO, money, percent
from .sales import MEASURES, monthly
from .scope import ReportContext, department_names, user_names

TARGET_ENTITY = "sales_target"
#: metric option → the measure whose amount is its actual.
METRICS = {"contract_amount": "contracts", "receivable_amount": "receivables"}
#: The sales_target fields the report reads: hidden or masked, the report is refused.
TARGET_FIELDS = ("year", "month", "user", "department", "metric", "amount")
KIND_LABELS = {"user": ("Person", "员工"), "department": ("Department", "部门")}


def targets(ctx: ReportContext) -> dict[str, Any]:
    """Rows per (person or department, metric, month): target, actual, completion %;
    `totals` the same over the whole period."""
    rt = ctx.catalog.entities.get(TARGET_ENTITY)
    if ctx.source("contract") is None:
        raise PermissionDenied("Targets need read access to contracts.")
    months = ctx.params.months()
    if rt is None or rt.entity.archived or not months:
        return {"rows": [], "totals": []}
    # The targets themselves: the caller's read scope of sales_target (not the people
    # filters, which pick whose targets below), and every field read must be readable.
    src = ctx.source(TARGET_ENTITY, dataclasses.replace(ctx.params, user=None, department=None))
    if src is None or not src.readable(*TARGET_FIELDS):
        raise PermissionDenied("Targets need read access to sales targets.")
    t = rt.table
    month_index = {(m.year, m.month): i for i, m in enumerate(months)}
    period = sa.or_(*(sa.and_(t.c.year == y, t.c.month.in_(sorted(mm for yy, mm in month_index if yy == y)))
                      for y in sorted({y for y, _ in month_index})))
    found = ctx.conn.execute(sa.select(t.c.year, t.c.month, t.c.user, t.c.department, t.c.metric, t.c.amount)
                             .where(*src.where, period, t.c.metric.in_(sorted(METRICS)))).all()
    wanted = _subjects(ctx, found)
    goal: dict[tuple[str, int, str, int], Decimal] = {}
    for r in found:
        key = ("user", r.user) if r.user is not None else ("department", r.department)
        if key in wanted:
            k = (key[0], key[1], r.metric, month_index[(r.year, r.month)])
            goal[k] = goal.get(k, ZERO) + Decimal(r.amount or 0)
    actual, unknown = _actuals(ctx, months, {s for s in wanted})
    names = {"user": user_names(ctx.conn, {i for k, i in wanted if k == "user"}),
             "department": department_names(ctx.conn, {i for k, i in wanted if k == "department"})}
    labels = _metric_labels(ctx)
    rows, totals = [], []
    for kind, sid in sorted(wanted, key=lambda s: (s[0] != "department", names[s[0]].get(s[1], ""), s[1])):
        for metric in METRICS:
            if not any((kind, sid, metric, i) in goal for i in range(len(months))):
                continue
            sum_goal = sum_actual = ZERO
            for i, month in enumerate(months):
                g = goal.get((kind, sid, metric, i))
                a = None if metric in unknown else actual.get((metric, kind, sid, i), ZERO)
                sum_actual += a or ZERO
                if g is None:
                    continue
                sum_goal += g
                rows.append(_row(kind, sid, names, metric, labels, month.strftime("%Y-%m"), g, a, ctx.language))
            totals.append(_row(kind, sid, names, metric, labels, None, sum_goal,
                               None if metric in unknown else sum_actual, ctx.language))
    return {"rows": rows, "totals": totals}


def _row(kind: str, sid: int, names: dict[str, dict[int, str]], metric: str, labels: dict[str, str],
         month: str | None, goal: Decimal, actual: Decimal | None, language: str) -> dict[str, Any]:
    return {"kind": kind, "kind_label": KIND_LABELS[kind][1 if language == "zh" else 0], "id": sid,
            "name": names[kind].get(sid, f"#{sid}"), "metric": metric,
            "metric_label": labels.get(metric, metric), "month": month, "target": money(goal),
            "actual": None if actual is None else money(actual),
            "completion": None if actual is None else percent(actual, goal)}


def _subjects(ctx: ReportContext, found: list[Any]) -> set[tuple[str, int]]:
    """The people and departments with targets the caller may compare (see the module doc)."""
    visible = ctx.visible_users("contract")
    p = ctx.params
    out: set[tuple[str, int]] = set()
    scope_members = ctx.members(p.department) if p.department is not None else None
    scope_departments = ctx.org.child_departments(p.department) if p.department is not None else None
    for r in found:
        if r.user is not None:
            if (visible is None or r.user in visible) and (p.user is None or r.user == p.user) \
                    and (scope_members is None or r.user in scope_members):
                out.add(("user", r.user))
        elif r.department is not None and p.user is None:
            members = ctx.members(r.department)
            if (visible is None or (members and members <= visible)) \
                    and (scope_departments is None or r.department in scope_departments):
                out.add(("department", r.department))
    return out


def _actuals(ctx: ReportContext, months: list[dt.date], subjects: set[tuple[str, int]]
             ) -> tuple[dict[tuple[str, str, int, int], Decimal], set[str]]:
    """({(metric, "user"|"department", id, month index): actual}, the metrics whose
    actuals the caller may not read — null, not zero); departments roll up their subtree."""
    users = frozenset(i for k, i in subjects if k == "user")
    departments = {i for k, i in subjects if k == "department"}
    out: dict[tuple[str, str, int, int], Decimal] = {}
    unknown: set[str] = set()
    for metric, measure in METRICS.items():
        m = MEASURES[measure]
        if users:
            found = monthly(ctx, m, months, "owner", users)
            if found is None:
                unknown.add(metric)
            for (owner, i), v in (found or {}).items():
                out[(metric, "user", owner, i)] = v
        if departments:
            below = {d: ctx.org.child_departments(d) for d in departments}
            per_dept = monthly(ctx, m, months, "department", frozenset().union(*below.values()))
            if per_dept is None:
                unknown.add(metric)
            for d, subtree in below.items():
                for (dept, i), v in (per_dept or {}).items():
                    if dept in subtree:
                        out[(metric, "department", d, i)] = out.get((metric, "department", d, i), ZERO) + v
    return out, unknown


def _metric_labels(ctx: ReportContext) -> dict[str, str]:
    rt = ctx.catalog.entities.get(TARGET_ENTITY)
    f = rt.entity.active_field("metric") if rt is not None else None
    return {o.value: o.label.get(ctx.language) for o in (f.options if f else ())}
