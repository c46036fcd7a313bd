"""The calendar's month and week grids of schedules.

A grid is the days shown (whole weeks, Monday first, in the user's time zone) and the
schedules overlapping them, read through `list_records` — so the role's read scope on
`schedule` applies — and placed on every day they cover (a three-day trip shows on
three days).
"""
from __future__ import annotations

import calendar as _calendar
import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ..catalog import Catalog
from ..errors import BadRequest
from ..principal import Principal
from ..query import ListRequest, list_records

ENTITY = "schedule"
#: The most schedules one grid shows (a month of a busy team fits easily).
MAX_SCHEDULES = 500
MODES = ("month", "week")


@dataclass
class Grid:
    mode: str
    anchor: dt.date  # the day the grid was asked for
    days: list[dt.date]
    previous: dt.date
    next: dt.date
    by_day: dict[dt.date, list[dict[str, Any]]] = field(default_factory=dict)
    truncated: bool = False

    @property
    def weeks(self) -> list[list[dt.date]]:
        return [self.days[i:i + 7] for i in range(0, len(self.days), 7)]


def parse_day(raw: str | None, today: dt.date) -> dt.date:
    if not raw:
        return today
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise BadRequest("date must be a day as YYYY-MM-DD.", {"date": ["Expected YYYY-MM-DD."]}) from None


def _days(mode: str, anchor: dt.date) -> tuple[list[dt.date], dt.date, dt.date]:
    """(days shown, the anchor of the previous grid, of the next one)."""
    if mode == "week":
        start = anchor - dt.timedelta(days=anchor.weekday())
        return [start + dt.timedelta(days=i) for i in range(7)], anchor - dt.timedelta(days=7), \
            anchor + dt.timedelta(days=7)
    first = anchor.replace(day=1)
    last = anchor.replace(day=_calendar.monthrange(anchor.year, anchor.month)[1])
    start = first - dt.timedelta(days=first.weekday())
    end = last + dt.timedelta(days=6 - last.weekday())
    previous = (first - dt.timedelta(days=1)).replace(day=1)
    following = last + dt.timedelta(days=1)
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)], previous, following


def _local(value: Any, tz: ZoneInfo) -> dt.datetime | None:
    if not value:
        return None
    moment = dt.datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(tz)


def build_grid(conn: sa.Connection, catalog: Catalog, principal: Principal, mode: str, anchor: dt.date,
               timezone: str = "UTC", mine_only: bool = True) -> Grid:
    """The grid around `anchor` with the schedules the principal may read (only their
    own unless `mine_only` is False: then everyone's in their read scope)."""
    if mode not in MODES:
        raise BadRequest("view must be month or week.", {"view": ["Choose month or week."]})
    tz = ZoneInfo(timezone)
    days, previous, following = _days(mode, anchor)
    grid = Grid(mode, anchor, days, previous, following, {d: [] for d in days})
    start = dt.datetime.combine(days[0], dt.time(), tz)
    end = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(), tz)
    filters: list[Any] = [["start_at", "<", end.isoformat()], ["end_at", ">=", start.isoformat()]]
    if mine_only:
        filters.append(["owner", "=", "$me"])
    result = list_records(conn, catalog, principal, ENTITY, ListRequest(
        filters=filters, sort=[("start_at", "asc"), ("id", "asc")], page_size=MAX_SCHEDULES, expand=["owner"]),
        timezone)
    grid.truncated = result["total"] > len(result["items"])
    for item in result["items"]:
        begins, ends = _local(item.get("start_at"), tz), _local(item.get("end_at"), tz)
        if begins is None:
            continue
        item["_starts"], item["_ends"] = begins, ends
        day = max(begins.date(), days[0])
        last = min((ends or begins).date(), days[-1])
        while day <= last:
            grid.by_day[day].append(item)
            day += dt.timedelta(days=1)
    return grid
