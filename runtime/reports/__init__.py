"""Dashboard reports (商业智能): plain functions over the generated tables, registered
by name in `REPORTS` — data, so the API, the CSV download and the dashboard screen all
look a report up the same way.

A report is called as `report(conn, catalog, principal, params)` and answers
`{"rows": [...], ...}`. Every query it runs is a SQLAlchemy Core select limited by the
caller's read scope (`scope.ReportContext.source`).

Permissions rule (the same as the list API's, spelled out in scope.py): a report never
reads an entity the caller may not read, nor filters, dates, groups, sums or shows a
field hidden or masked for them — child tables included (the contract's `lines` field
and the line entity's fields; a child follows its parent's access). What a report cannot
do without is refused with the usual 403; where a report already degrades per measure
(brief rows, trend series, rankings, amounts, targets' actuals) that measure is left out
or null. No Flask here: the web face is
`runtime/web/reports_api.py` and `runtime/web/dashboard.py`.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ..catalog import Catalog
from ..errors import BadRequest, NotFound
from ..principal import Principal
from .params import ReportParams, parse_params
from .pipeline import customers, funnel, products
from .sales import brief, rankings, trend
from .scope import ReportContext, Shared, make_context, shared_for
from .targets import targets

BRIEF_ENTITIES = ("lead", "customer", "followup", "opportunity", "contract", "receivable")
#: A CSV/table column: (key in a row, English label, Chinese label).
Column = tuple[str, str, str]


@dataclass(frozen=True)
class Report:
    """One registered report: how to run it and how to show its rows."""

    name: str
    label: tuple[str, str]
    run: Callable[[ReportContext], dict[str, Any]]
    #: The entities whose owners the `user` / `department` filters are checked against.
    people_of: tuple[str, ...]
    default_period: str
    columns: tuple[Column, ...]
    #: Goes month by month: the period must have bounds.
    monthly: bool = False

    def __call__(self, conn: sa.Connection, catalog: Catalog, principal: Principal,
                 params: ReportParams, shared: Shared | None = None) -> dict[str, Any]:
        if self.monthly and not params.bounded:
            raise BadRequest(f"The {self.name} report goes month by month: choose a period with dates.",
                             {"period": ["'all' has no months; pick a period or from/to."]})
        return self.run(make_context(conn, catalog, principal, params, self.people_of, shared))

    def title(self, language: str) -> str:
        return self.label[1] if language == "zh" else self.label[0]


REPORTS: dict[str, Report] = {r.name: r for r in (
    Report("brief", ("Sales brief", "销售简报"), brief, BRIEF_ENTITIES, "this_month", (
        ("label", "Metric", "指标"), ("count", "Count", "数量"), ("amount", "Amount", "金额"),
        ("previous_count", "Previous count", "上期数量"), ("previous_amount", "Previous amount", "上期金额"),
        ("change", "Change %", "环比 %"))),
    Report("targets", ("Targets", "业绩目标"), targets, ("contract", "receivable"), "this_month", (
        ("name", "Who", "对象"), ("kind_label", "Kind", "类型"), ("metric_label", "Metric", "指标"),
        ("month", "Month", "月份"), ("target", "Target", "目标"), ("actual", "Actual", "实际"),
        ("completion", "Completion %", "完成率 %")), monthly=True),
    Report("funnel", ("Sales funnel", "销售漏斗"), funnel, ("opportunity",), "this_year", (
        ("label", "Stage", "阶段"), ("count", "Count", "数量"), ("amount", "Amount", "金额"),
        ("reached", "Reached", "到达数"), ("conversion", "Conversion to next %", "转化率 %"))),
    Report("trend", ("Monthly trend", "月度趋势"), trend, ("contract", "receivable", "customer"), "last_12_months", (
        ("month", "Month", "月份"), ("contract_amount", "Contract amount", "合同金额"),
        ("receivable_amount", "Receivables", "回款金额"), ("new_customers", "New customers", "新增客户")),
        monthly=True),
    Report("rankings", ("Rankings", "排行榜"), rankings, ("contract", "receivable", "customer"), "this_month", (
        ("name", "Name", "姓名"), ("contract_amount", "Contract amount", "合同金额"),
        ("rank_contract_amount", "Contract rank", "合同排名"), ("receivable_amount", "Receivables", "回款金额"),
        ("rank_receivable_amount", "Receivables rank", "回款排名"), ("new_customers", "New customers", "新增客户"),
        ("rank_new_customers", "Customers rank", "客户排名"))),
    Report("customers", ("Customer analysis", "客户分析"), customers, ("customer",), "all", (
        ("dimension_label", "By", "维度"), ("label", "Value", "取值"), ("count", "Customers", "客户数"))),
    Report("products", ("Product sales", "产品销售"), products, ("contract",), "this_year", (
        ("name", "Product", "产品"), ("code", "Code", "编码"), ("category_label", "Category", "类别"),
        ("quantity", "Quantity", "数量"), ("amount", "Amount", "金额"))),
)}


def get_report(name: str) -> Report:
    report = REPORTS.get(name)
    if report is None:
        raise NotFound(f"No report named '{name[:60]}'; reports: {', '.join(REPORTS)}.")
    return report


def run_report(conn: sa.Connection, catalog: Catalog, principal: Principal, name: str,
               args: Mapping[str, str], timezone: str, now: dt.datetime,
               shared: Shared | None = None) -> dict[str, Any]:
    """Look a report up, parse its query-string parameters, run it; the result carries
    the period it covered (`period`, `from`, `to` — `to` inclusive). Reports of one
    request may pass one `shared` (scope.shared_for) to build scopes once."""
    report = get_report(name)
    tz = ZoneInfo(timezone)
    params = parse_params(args, tz, now.astimezone(tz).date(), report.default_period)
    result = report(conn, catalog, principal, params, shared)
    result["report"] = report.name
    result["period"] = params.period
    result["from"] = params.start.isoformat() if params.start else None
    result["to"] = (params.end - dt.timedelta(days=1)).isoformat() if params.end else None
    return result


def to_csv(report: Report, result: Mapping[str, Any], language: str) -> str:
    """The rows as CSV with a BOM (Excel opens UTF-8 Chinese correctly), headers in `language`."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow([zh if language == "zh" else en for _, en, zh in report.columns])
    for row in result.get("rows", []):
        writer.writerow(["" if row.get(key) is None else _cell(row.get(key)) for key, _, _ in report.columns])
    return out.getvalue()


def _cell(value: Any) -> str:
    text = str(value)
    # A cell starting with = + - @ is a formula to a spreadsheet: quote it (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "@") or (text[:1] == "-" and not _number(text)) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


__all__ = ["REPORTS", "Report", "ReportParams", "Shared", "shared_for", "get_report", "parse_params", "run_report", "to_csv"]
