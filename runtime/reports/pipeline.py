"""Pipeline and portfolio reports: the opportunity funnel, customer analysis, product sales.

The funnel's stage order is the opportunity workflow's (the workflow whose state field is
`stage`), or the stage field's option order without one. Its *path* is the non-final
states followed by the first final one (won); the other final states (lost, invalid) are
shown with their counts but are not steps. Stage history is not replayed: an
opportunity counts as having reached every path stage up to the one it is in now, so
"conversion" from a stage is reached(next) / reached(this).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from metacrm.metadata.model import Label

from ..errors import PermissionDenied
from .common import ZERO, money, option_label, percent, quantity
from .sales import MEASURES, measure_readable, measure_where
from .scope import ReportContext, in_period

CUSTOMER_DIMENSIONS = ("level", "industry", "source")


def stage_order(ctx: ReportContext) -> tuple[list[tuple[str, str]], list[str]]:
    """([(stage, label)] in order, [the path's stages]) of the opportunity stages."""
    lang = ctx.language
    for wf in ctx.catalog.mset.workflows.values():
        spec = wf.spec
        if wf.entity == "opportunity" and spec.get("state_field") == "stage":
            states = spec.get("states") or []
            labels = [(s["name"], Label.of(s.get("label"), s["name"]).get(lang)) for s in states]
            path = [s["name"] for s in states if not s.get("final")]
            finals = [s["name"] for s in states if s.get("final")]
            return labels, path + finals[:1]
    f = ctx.catalog.entities["opportunity"].entity.active_field("stage")
    stages = [(o.value, o.label.get(lang)) for o in (f.options if f else ())]
    return stages, [s for s, _ in stages]


def funnel(ctx: ReportContext) -> dict[str, Any]:
    """Opportunities created in the period by stage: count, amount, reached, conversion."""
    src = ctx.source("opportunity")
    if src is None:
        raise PermissionDenied("The funnel needs read access to opportunities.")
    if not src.readable("stage", "created_at"):
        raise PermissionDenied("The funnel needs the opportunities' stage, which is hidden from you.")
    stage = src.table.c.stage
    amount = src.column("amount")
    cols = [stage, sa.func.count().label("n")] + \
        ([sa.func.coalesce(sa.func.sum(amount), 0).label("amount")] if amount is not None else [])
    stmt = sa.select(*cols).where(*src.where, in_period(src, "created_at", ctx.params.start, ctx.params.end,
                                                        ctx.params)).group_by(stage)
    found = {r.stage: (int(r.n), Decimal(r.amount) if amount is not None else None)
             for r in ctx.conn.execute(stmt)}
    stages, path = stage_order(ctx)
    reached: dict[str, int] = {}
    running = 0
    for name in reversed(path):
        running += found.get(name, (0, None))[0]
        reached[name] = running
    rows = []
    for name, label in stages:
        n, amt = found.get(name, (0, ZERO if amount is not None else None))
        row: dict[str, Any] = {"stage": name, "label": label, "count": n,
                               "amount": money(amt) if amount is not None else None,
                               "reached": reached.get(name), "conversion": None}
        if name in path and path.index(name) + 1 < len(path):
            row["conversion"] = percent(reached[path[path.index(name) + 1]], reached[name])
        rows.append(row)
    won = path[-1] if path else None
    total = sum(n for n, _ in found.values())
    return {"rows": rows, "total": total,
            "win_rate": percent(found.get(won, (0, None))[0], total) if won else None}


def customers(ctx: ReportContext) -> dict[str, Any]:
    """Customers created in the period counted by level, industry and source (each option,
    in the field's order, then the empty ones)."""
    src = ctx.source("customer")
    if src is None:
        raise PermissionDenied("Customer analysis needs read access to customers.")
    period = in_period(src, "created_at", ctx.params.start, ctx.params.end, ctx.params)
    rows = []
    for dim in CUSTOMER_DIMENSIONS:
        col = src.column(dim)
        if col is None:
            continue
        f = src.rt.entity.active_field(dim)
        counts = {r[0]: int(r[1]) for r in ctx.conn.execute(
            sa.select(col, sa.func.count()).where(*src.where, period).group_by(col))}
        order = [o.value for o in (f.options if f else ())] + sorted(
            (v for v in counts if v is not None and v not in {o.value for o in (f.options if f else ())}), key=str)
        for value in order + [None]:
            if counts.get(value):
                rows.append({"dimension": dim, "dimension_label": f.label.get(ctx.language) if f else dim,
                             "value": value, "label": option_label(f, value, ctx.language), "count": counts[value]})
    return {"rows": rows}


def products(ctx: ReportContext) -> dict[str, Any]:
    """Product sales from the lines of approved contracts in the period: quantity and
    amount by product (best first), and by category."""
    contracts = ctx.source("contract")
    measure = MEASURES["contracts"]
    if contracts is None or not measure_readable(contracts, measure):
        raise PermissionDenied("Product sales need read access to contracts.")
    field = next((name for name, c in contracts.rt.children.items() if c.entity.active_field("product")), None)
    product_src = ctx.source("product")
    product_rt = ctx.catalog.entities.get("product")
    if field is None or product_rt is None or product_rt.entity.archived:
        return {"rows": [], "categories": []}
    line_src = ctx.child(contracts, field)
    # The report ranks and charts by amount: it needs the lines' product, quantity and
    # amount and the contract's amount (the line amounts add up to it) readable.
    if line_src is None or product_src is None or not line_src.readable("product", "quantity", "amount") \
            or not contracts.readable("amount"):
        raise PermissionDenied("Product sales need read access to products and to the contracts' product lines "
                               "and amounts.")
    lines, product = line_src.table, product_src.table
    contract_ids = sa.select(contracts.table.c.id).where(*measure_where(contracts, measure, ctx.params))
    amount = lines.c.amount if "amount" in lines.c else None
    value = sa.func.coalesce(sa.func.sum(amount), 0) if amount is not None else sa.literal(0)
    stmt = (sa.select(lines.c["product"], sa.func.coalesce(sa.func.sum(lines.c.quantity), 0).label("quantity"),
                      value.label("amount"))
            .where(lines.c.parent_id.in_(contract_ids), lines.c["product"].is_not(None))
            .group_by(lines.c["product"]))
    sold = {r.product: (Decimal(r.quantity), Decimal(r.amount)) for r in ctx.conn.execute(stmt)}
    # A product's name, code or category hidden/masked for the caller is null (and not grouped by).
    shown = {name: product_src.column(name) for name in ("name", "code", "category")}
    info = {r.id: r for r in ctx.conn.execute(
        sa.select(product.c.id, *(sa.null().label(n) if c is None else c.label(n) for n, c in shown.items()))
        .where(*product_src.where, product.c.id.in_(sorted(sold))))} if sold else {}
    category_field = product_src.rt.entity.active_field("category") if shown["category"] is not None else None
    rows, by_category = [], {}
    for pid, (qty, amt) in sorted(sold.items(), key=lambda kv: (-kv[1][1], kv[0])):
        p = info.get(pid)
        category = p.category if p is not None else None
        rows.append({"product": pid, "name": p.name if p is not None and p.name is not None else f"#{pid}",
                     "code": p.code if p is not None else None, "category": category,
                     "category_label": option_label(category_field, category, ctx.language),
                     "quantity": quantity(qty), "amount": money(amt)})
        if shown["category"] is None:
            continue  # the category is hidden: no totals by it
        q, a = by_category.get(category, (ZERO, ZERO))
        by_category[category] = (q + qty, a + amt)
    categories = [{"category": c, "label": option_label(category_field, c, ctx.language),
                   "quantity": quantity(q), "amount": money(a)}
                  for c, (q, a) in sorted(by_category.items(), key=lambda kv: (-kv[1][1], str(kv[0])))]
    return {"rows": rows, "categories": categories}
