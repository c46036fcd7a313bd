"""The dashboard screen (`/dashboard`, 商业智能): a filter bar, the brief as cards, and
each report as an SVG chart with its numbers in a table and a CSV link.

It runs the same registered reports as `GET /api/v1/reports/<report>` in-process, with
the filter bar's query string, so the page and the API can't disagree. A report the
user may not read at all (finance and the funnel) is left off the page; a filter
outside their scope is the same 403 the API gives.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Blueprint, render_template, request, url_for
from markupsafe import Markup

from .. import systables
from ..clock import utcnow
from ..errors import PermissionDenied
from ..reports import BRIEF_ENTITIES, REPORTS, run_report
from ..reports.params import PERIODS, parse_params
from ..reports.scope import ReportContext, shared_for
from . import charts
from .context import runtime
from .screen_context import init_screen_blueprint, language, screen_principal, t

bp = init_screen_blueprint(Blueprint("metacrm_dashboard", __name__, template_folder="templates"))

FILTERS = ("period", "from", "to", "user", "department")
#: Periods shorter than this make a poor trend: the trend then shows the last 12 months.
DEFAULT_PERIOD = "this_month"
SHORT_PERIODS = frozenset({"this_month", "last_month", "this_quarter", "last_quarter"})


#: Table columns holding money (shown as ¥1,234.50) and numbers (right-aligned).
MONEY_KEYS = frozenset({"amount", "previous_amount", "target", "actual", "contract_amount", "receivable_amount"})
NUMERIC_KEYS = MONEY_KEYS | {"count", "previous_count", "change", "reached", "conversion", "completion", "quantity",
                             "new_customers", "rank_contract_amount", "rank_receivable_amount", "rank_new_customers"}


def money(value: Any, places: int = 2) -> str:
    return f"¥{Decimal(value or 0):,.{places}f}"


def cell(key: str, value: Any) -> str:
    """A table cell as people read it: money with ¥ and separators, rates with %."""
    if value is None or value == "":
        return "—"
    if key in MONEY_KEYS:
        return money(value)
    if key in ("change", "conversion", "completion"):
        return f"{value}%"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass(frozen=True)
class Section:
    """One report on the page: its result, its chart(s) and its CSV link."""

    name: str
    title: str
    result: dict[str, Any]
    charts: list[Markup]
    csv: str


def _chart_funnel(r: dict[str, Any], lang: str) -> list[Markup]:
    steps = [(row["label"], row["reached"], f"→ {row['conversion']}%" if row["conversion"] is not None else "")
             for row in r["rows"] if row["reached"] is not None]
    return [charts.funnel(steps, t("report_funnel"), t("no_data"))]


def _chart_trend(r: dict[str, Any], lang: str) -> list[Markup]:
    months = [row["month"] for row in r["rows"]]
    readable = [key for key in ("contract_amount", "receivable_amount", "new_customers")
                if r["rows"] and r["rows"][0][key] is not None]
    money_series = [(t(key), [Decimal(row[key]) for row in r["rows"]])
                    for key in ("contract_amount", "receivable_amount") if key in readable]
    out = [charts.columns(months, money_series, t("report_trend"), t("no_data"))] if money_series else []
    if "new_customers" in readable:
        out.append(charts.line(months, [(t("new_customers"), [row["new_customers"] for row in r["rows"]])],
                               t("new_customers"), t("no_data")))
    return out


def _chart_rankings(r: dict[str, Any], lang: str) -> list[Markup]:
    out = []
    for i, key in enumerate(("contract_amount", "receivable_amount", "new_customers")):
        items = [(x["name"], Decimal(str(x["value"])), money(x["value"], 0) if key != "new_customers" else str(x["value"]))
                 for x in r["top"][key]]
        out.append(Markup(f'<div class="small fw-semibold mt-2">{t(key)}</div>') +
                   charts.hbars(items, t(key), t("no_data"), color=charts.COLORS[i]))
    return out


def _chart_customers(r: dict[str, Any], lang: str) -> list[Markup]:
    out = []
    dims: dict[str, list[dict[str, Any]]] = {}
    for row in r["rows"]:
        dims.setdefault(row["dimension"], []).append(row)
    for i, rows in enumerate(dims.values()):
        items = [(row["label"], row["count"], str(row["count"])) for row in rows]
        out.append(Markup('<div class="small fw-semibold mt-2">{}</div>').format(rows[0]["dimension_label"]) +
                   charts.hbars(items, rows[0]["dimension_label"], t("no_data"), color=charts.COLORS[i + 3]))
    return out or [charts.hbars([], t("report_customers"), t("no_data"))]


def _chart_products(r: dict[str, Any], lang: str) -> list[Markup]:
    top = r["rows"][:10]
    return [charts.hbars([(p["name"], Decimal(p["amount"]), money(p["amount"], 0)) for p in top],
                         t("report_products"), t("no_data"), color=charts.COLORS[1]),
            charts.hbars([(c["label"], Decimal(c["amount"]), money(c["amount"], 0)) for c in r["categories"]],
                         t("by_category"), t("no_data"), color=charts.COLORS[2])]


#: The page's sections in order, and how each is drawn (the brief and targets have their own markup).
CHARTS: dict[str, Callable[[dict[str, Any], str], list[Markup]]] = {
    "brief": lambda r, lang: [], "targets": lambda r, lang: [],
    "trend": _chart_trend, "rankings": _chart_rankings, "funnel": _chart_funnel, "products": _chart_products,
    "customers": _chart_customers,
}


def _filter_options(conn: sa.Connection, ctx: ReportContext) -> tuple[list[Any], list[Any]]:
    """The people and departments the filter bar offers: those inside the user's scope."""
    visible = ctx.visible_in(BRIEF_ENTITIES)
    u, d = systables.users, systables.departments
    stmt = sa.select(u.c.id, u.c.display_name, u.c.username).where(u.c.active.is_(True)).order_by(u.c.id)
    if visible is not None:
        stmt = stmt.where(u.c.id.in_(sorted(visible)))
    users = conn.execute(stmt).all()
    departments = conn.execute(sa.select(d.c.id, d.c.name).order_by(d.c.position, d.c.id)).all()
    if visible is not None:
        departments = [row for row in departments if ctx.members(row.id) & visible]
    return users, departments


def _args_for(name: str, args: dict[str, str]) -> dict[str, str]:
    """The filter bar's parameters as one report takes them: one period for the page
    (this month by default), except that a trend over a month or a quarter shows the last
    12 months, and customer analysis without a chosen period covers all customers."""
    out = dict(args)
    if "from" in args:
        return out
    chosen = args.get("period")
    out["period"] = chosen or DEFAULT_PERIOD
    if name == "trend" and out["period"] in SHORT_PERIODS:
        out["period"] = "last_12_months"
    if name == "customers" and not chosen:
        out["period"] = "all"
    return out


@bp.get("/dashboard")
def dashboard() -> Any:
    principal = screen_principal()
    lang = language()
    args = {k: request.args[k].strip() for k in FILTERS if (request.args.get(k) or "").strip()}
    if "from" in args and "to" in args:
        args.pop("period", None)  # the filter bar's promise: dates replace the period
    rt = runtime()
    now = utcnow()
    sections: list[Section] = []
    with rt.engine.connect() as conn:
        catalog = rt.catalog(conn)
        zone = ZoneInfo(rt.timezone)
        params = parse_params(args, zone, now.astimezone(zone).date(), DEFAULT_PERIOD)
        shared = shared_for(conn)
        ctx = ReportContext(conn, catalog, principal, params, shared)
        for name, draw in CHARTS.items():
            report_args = _args_for(name, args)
            try:
                result = run_report(conn, catalog, principal, name, report_args, rt.timezone, now, shared)
            except PermissionDenied as exc:
                if exc.fields:
                    raise  # a filter outside the user's scope: the page says so
                continue  # a report over data this user doesn't read: not on their page
            csv = url_for("metacrm_reports_api.report", name=name, format="csv", **report_args)
            sections.append(Section(name, REPORTS[name].title(lang), result, draw(result, lang), csv))
        users, departments = _filter_options(conn, ctx)
    return render_template("dashboard.html", sections={s.name: s for s in sections}, order=list(CHARTS),
                           args=args, periods=PERIODS, users=users, departments=departments, money=money,
                           cell=cell, numeric=NUMERIC_KEYS,
                           columns={name: REPORTS[name].columns for name in REPORTS})
