"""Sales reports: the brief (简报) with the period before for comparison, the monthly
trend, and the people rankings.

Which rows count (documented in the README):
- new leads / customers / follow-ups / opportunities: created in the period;
- contracts: *approved* ones, dated by `sign_date` (or, without one, when created);
- receivables: *confirmed* ones (`approval_status` approved), dated by `received_at`.

A measure whose date, fallback date or status field is hidden or masked for the caller
is left out like an unreadable entity (`measure_readable`): the brief drops its row, the
trend's series and a ranking are null; its amount alone hidden leaves only the amount
null. Rankings need the contract measure (403 without it).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ..errors import PermissionDenied
from .common import ZERO, money, percent
from .params import ReportParams
from .scope import ReportContext, Source, in_period, month_bucket, user_names


@dataclass(frozen=True)
class Measure:
    """A counted kind of row: which entity, which date puts it in a period, what is summed."""

    key: str
    entity: str
    date: str
    amount: str | None = None
    #: A date used when `date` is empty (a contract not signed yet counts when created).
    fallback_date: str | None = None
    #: (field, value) the row must have to count: approved contracts, confirmed receivables.
    status: tuple[str, str] | None = None
    label: tuple[str, str] = ("", "")


MEASURES: dict[str, Measure] = {m.key: m for m in (
    Measure("new_leads", "lead", "created_at", label=("New leads", "新增线索")),
    Measure("new_customers", "customer", "created_at", label=("New customers", "新增客户")),
    Measure("followups", "followup", "created_at", label=("Follow-ups", "跟进记录")),
    Measure("new_opportunities", "opportunity", "created_at", "amount", label=("New opportunities", "新增商机")),
    Measure("contracts", "contract", "sign_date", "amount", "created_at", ("approval_status", "approved"),
            label=("Approved contracts", "已审合同")),
    Measure("receivables", "receivable", "received_at", "amount", status=("approval_status", "approved"),
            label=("Receivables", "回款")),
)}


def measure_readable(src: Source, m: Measure, *more: str | None) -> bool:
    """The caller may read every field the measure filters or dates by (and `more`):
    otherwise the measure is left out, never computed over a hidden/masked field."""
    return src.readable(m.date, m.fallback_date, m.status[0] if m.status else None, *more)


def measure_base(src: Source, m: Measure) -> list[sa.ColumnElement[bool]]:
    """The WHERE parts of a measure before dates: scope, filters, status."""
    where = list(src.where)
    if m.status is not None and m.status[0] in src.table.c:
        where.append(src.table.c[m.status[0]] == m.status[1])
    return where


def measure_dated(src: Source, m: Measure, params: ReportParams) -> sa.ColumnElement[bool]:
    """A row of the measure falls in the period (by its date, or its fallback when empty)."""
    if m.date not in src.table.c:
        return sa.false()
    dated = in_period(src, m.date, params.start, params.end, params)
    if m.fallback_date and params.bounded:
        dated = sa.or_(sa.and_(src.table.c[m.date].is_not(None), dated),
                       sa.and_(src.table.c[m.date].is_(None),
                               in_period(src, m.fallback_date, params.start, params.end, params)))
    return dated


def measure_where(src: Source, m: Measure, params: ReportParams) -> list[sa.ColumnElement[bool]]:
    """The WHERE parts of a measure in a period: scope, filters, status and date."""
    return measure_base(src, m) + [measure_dated(src, m, params)]


Totals = tuple[int, "Decimal | None"]


def _totals(ctx: ReportContext, m: Measure, params: ReportParams,
            previous: ReportParams | None) -> tuple[Totals, Totals | None] | None:
    """(count, amount) in the period and in the one before; None when not readable.

    One query per period, each a range on the date's index: measured on SQLite, that is
    faster than one query of conditional aggregates over both periods (an OR of ranges)."""
    src = ctx.source(m.entity, params)
    if src is None or not measure_readable(src, m):
        return None
    amount = src.column(m.amount) if m.amount else None
    cols = [sa.func.count()] + ([sa.func.coalesce(sa.func.sum(amount), 0)] if amount is not None else [])
    out: list[Totals] = []
    for p in [params] + ([previous] if previous is not None else []):
        row = ctx.conn.execute(sa.select(*cols).select_from(src.table).where(*measure_where(src, m, p))).one()
        out.append((int(row[0]), Decimal(row[1]) if amount is not None else None))
    return out[0], (out[1] if previous is not None else None)


def brief(ctx: ReportContext) -> dict[str, Any]:
    """One row per measure: count (and amount) in the period and in the period before."""
    previous = ctx.params.previous()
    rows = []
    for m in MEASURES.values():
        found = _totals(ctx, m, ctx.params, previous)
        if found is None:
            continue  # not readable for this caller (or not in this instance): left out
        now, before = found
        has_amount = now[1] is not None
        rows.append({
            "metric": m.key, "label": m.label[1] if ctx.language == "zh" else m.label[0],
            "count": now[0], "amount": money(now[1]) if has_amount else None,
            "previous_count": before[0] if before else None,
            "previous_amount": money(before[1]) if before and has_amount else None,
            "change": _change(now, before, has_amount),
        })
    return {"rows": rows, "previous": _range(previous)}


def _change(now: tuple[int, Decimal | None], before: tuple[int, Decimal | None] | None,
            by_amount: bool) -> float | None:
    """Growth over the period before, in percent (amount when there is one, else count)."""
    if before is None:
        return None
    a, b = (now[1], before[1]) if by_amount else (now[0], before[0])
    ratio = percent(Decimal(a or 0) - Decimal(b or 0), b)
    return ratio


def _range(params: ReportParams | None) -> dict[str, str] | None:
    if params is None or not params.bounded:
        return None
    assert params.start is not None and params.end is not None
    return {"from": params.start.isoformat(), "to": (params.end - dt.timedelta(days=1)).isoformat()}


# ------------------------------------------------------------------ monthly trend

TREND_SERIES = (("contract_amount", "contracts", True), ("receivable_amount", "receivables", True),
                ("new_customers", "new_customers", False))


def monthly(ctx: ReportContext, m: Measure, months: list[Any], group: str | None = None,
            only: frozenset[int] | None = None) -> dict[tuple[Any, int], Decimal] | None:
    """{(group value or None, month index): amount or count} of a measure in the period;
    None when the caller may not read the entity or the amount."""
    src = ctx.source(m.entity)
    if src is None or not measure_readable(src, m, group):
        return None
    amount = src.column(m.amount) if m.amount else None
    if m.amount and amount is None:
        return None
    value = sa.func.coalesce(sa.func.sum(amount), 0) if amount is not None else sa.func.count()
    # The bucket follows the date a row counts by (the fallback when the date is empty).
    bucket = month_bucket(src, m.date, months, ctx.params)
    if m.fallback_date:
        bucket = sa.case((src.table.c[m.date].is_(None), month_bucket(src, m.fallback_date, months, ctx.params)),
                         else_=bucket)
    keys = [bucket.label("bucket")]
    if group is not None:
        keys.insert(0, src.table.c[group].label("grp"))
    where = measure_where(src, m, ctx.params)
    if only is not None and group is not None:
        where.append(src.table.c[group].in_(sorted(only)))
    stmt = sa.select(*keys, value.label("value")).where(*where).group_by(*keys)
    out: dict[tuple[Any, int], Decimal] = {}
    for row in ctx.conn.execute(stmt):
        out[(row.grp if group is not None else None, int(row.bucket))] = Decimal(row.value or 0)
    return out


def trend(ctx: ReportContext) -> dict[str, Any]:
    """Month by month: approved contract amount, confirmed receivables, new customers."""
    months = ctx.params.months()
    series = {key: monthly(ctx, MEASURES[measure], months) for key, measure, _ in TREND_SERIES}
    if all(v is None for v in series.values()):
        raise PermissionDenied("The trend needs read access to contracts, receivables or customers.")
    rows = []
    for i, month in enumerate(months):
        row: dict[str, Any] = {"month": month.strftime("%Y-%m")}
        for key, _, is_money in TREND_SERIES:
            found = series[key]
            if found is None:
                row[key] = None  # not readable for this caller
                continue
            v = found.get((None, i), ZERO)
            row[key] = money(v) if is_money else int(v)
        rows.append(row)
    return {"rows": rows}


# ------------------------------------------------------------------ rankings

RANKED = (("contract_amount", "contracts", True), ("receivable_amount", "receivables", True),
          ("new_customers", "new_customers", False))


def rankings(ctx: ReportContext) -> dict[str, Any]:
    """People by approved contract amount, confirmed receivables and new customers.

    `rows` has everyone in the top `limit` of any of the three, best contract amount
    first, with each value and rank; `top` lists each ranking on its own."""
    if ctx.source("contract") is None:
        raise PermissionDenied("Rankings need read access to contracts.")
    values: dict[str, dict[int, Decimal]] = {}
    unavailable: set[str] = set()  # measures the caller may not read: null, not zero
    for key, measure, _ in RANKED:
        m = MEASURES[measure]
        src = ctx.source(m.entity)
        values[key] = {}
        if src is None or not src.rt.entity.ownership or not measure_readable(src, m, "owner"):
            unavailable.add(key)
            continue
        amount = src.column(m.amount) if m.amount else None
        if m.amount and amount is None:
            unavailable.add(key)
            continue
        value = sa.func.coalesce(sa.func.sum(amount), 0) if amount is not None else sa.func.count()
        owner = src.table.c.owner
        stmt = sa.select(owner, value.label("value")).where(*measure_where(src, m, ctx.params), owner.is_not(None)) \
            .group_by(owner)
        values[key] = {r.owner: Decimal(r.value or 0) for r in ctx.conn.execute(stmt) if r.value}
    if "contract_amount" in unavailable:
        raise PermissionDenied("Rankings need the contracts' amount, approval status, sign date and owner, "
                               "some of which are hidden from you.")
    ranks: dict[str, dict[int, int]] = {}
    top: dict[str, list[int]] = {}
    for key, _, _ in RANKED:
        ordered = sorted(values[key], key=lambda u: (-values[key][u], u))
        ranks[key] = {u: i + 1 for i, u in enumerate(ordered)}
        top[key] = ordered[:ctx.params.limit]
    chosen = {u for ids in top.values() for u in ids}
    names = user_names(ctx.conn, chosen)

    def row(u: int) -> dict[str, Any]:
        out: dict[str, Any] = {"user": u, "name": names.get(u, f"#{u}")}
        for key, _, is_money in RANKED:
            if key in unavailable:
                out[key] = out[f"rank_{key}"] = None
                continue
            v = values[key].get(u, ZERO)
            out[key] = money(v) if is_money else int(v)
            out[f"rank_{key}"] = ranks[key].get(u)
        return out

    rows = [row(u) for u in sorted(chosen, key=lambda u: (-values["contract_amount"].get(u, ZERO), u))]
    by_id = {r["user"]: r for r in rows}
    return {"rows": rows, "top": {key: [{"user": u, "name": by_id[u]["name"], "value": by_id[u][key]}
                                        for u in ids] for key, ids in top.items()}}
