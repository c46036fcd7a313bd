"""A report call's parameters: the period, the people filter, and how many rows.

Parsed once from a query string (or a screen's form) into a frozen `ReportParams`, so
every report reads the same names and a bad value is a 400 naming its field before any
query runs. Periods reuse the list views' relative ranges (runtime/query.py), half-open
`[start, end)` in the instance's time zone.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Mapping
from zoneinfo import ZoneInfo

from ..errors import BadRequest
from ..query import _add_months, relative_range

#: Periods a report accepts (`from`/`to` dates are the other way to say one).
#: `last_12_months` is the current calendar month and the eleven before it; `all` has no
#: bounds (customer and product analysis), refused by reports that need months.
PERIODS = ("this_month", "last_month", "this_quarter", "last_quarter", "this_year", "last_year",
           "last_12_months", "all")
#: How far a from/to range may reach: trends and targets go month by month.
MAX_MONTHS = 60
MAX_LIMIT = 100
INT32 = 2**31 - 1


@dataclass(frozen=True)
class ReportParams:
    """What a report is asked for. `start`/`end` are None for `all`."""

    period: str
    start: dt.date | None
    end: dt.date | None
    tz: ZoneInfo
    today: dt.date
    user: int | None = None
    department: int | None = None
    limit: int = 10

    @property
    def bounded(self) -> bool:
        return self.start is not None and self.end is not None

    def previous(self) -> "ReportParams | None":
        """The period just before this one, as long as it: the month, quarter or year
        before a calendar one; the same number of days before a from/to range."""
        if not self.bounded:
            return None
        assert self.start is not None and self.end is not None
        months = _whole_months(self.start, self.end)
        if months:
            start, end = _add_months(self.start, -months), self.start
        else:
            start, end = self.start - (self.end - self.start), self.start
        return ReportParams("previous", start, end, self.tz, self.today, self.user, self.department, self.limit)

    def months(self) -> list[dt.date]:
        """The first day of every month the period touches, in order."""
        if not self.bounded:
            return []
        assert self.start is not None and self.end is not None
        out, month = [], self.start.replace(day=1)
        while month < self.end:
            out.append(month)
            month = _add_months(month, 1)
        return out

    def instant(self, day: dt.date) -> dt.datetime:
        """Midnight of `day` in the instance's zone, in UTC (what datetime columns hold)."""
        return dt.datetime.combine(day, dt.time(), self.tz).astimezone(dt.timezone.utc)


def _whole_months(start: dt.date, end: dt.date) -> int:
    """How many calendar months [start, end) is, when it is exactly that (else 0)."""
    if start.day != 1 or end.day != 1:
        return 0
    return (end.year - start.year) * 12 + end.month - start.month


def _date(raw: str, name: str) -> dt.date:
    """A from/to date; years 1900–9998, so the day after it and the period before it exist."""
    try:
        value = dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD).", {name: ["Use a date like 2026-01-31."]}) from None
    if not 1900 <= value.year <= 9998:
        raise BadRequest(f"{name} must be a date between 1900 and 9998.", {name: ["A year from 1900 to 9998."]})
    return value


def _id(raw: str | None, name: str) -> int | None:
    if raw in (None, ""):
        return None
    try:
        value = int(str(raw))
    except ValueError:
        raise BadRequest(f"{name} must be an id (a positive integer).", {name: ["Expected a positive integer."]}) \
            from None
    if not 0 < value <= INT32:
        raise BadRequest(f"{name} must be an id (a positive integer).", {name: ["Expected a positive integer."]})
    return value


def period_range(period: str, today: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """[start, end) of a named period (None, None for `all`)."""
    if period == "all":
        return None, None
    if period == "last_12_months":
        month = today.replace(day=1)
        return _add_months(month, -11), _add_months(month, 1)
    return relative_range(period, today)


def parse_params(args: Mapping[str, str], tz: ZoneInfo, today: dt.date, default_period: str) -> ReportParams:
    """`period` or `from`+`to` (inclusive dates), `user`, `department`, `limit`."""
    raw_from, raw_to = (args.get("from") or "").strip(), (args.get("to") or "").strip()
    period = (args.get("period") or "").strip()
    if raw_from or raw_to:
        if period:
            raise BadRequest("Give either period or from/to, not both.", {"period": ["Leave empty with from/to."]})
        if not raw_from or not raw_to:
            missing = "from" if not raw_from else "to"
            raise BadRequest(f"{missing} is needed with {'to' if missing == 'from' else 'from'}.",
                             {missing: ["Required with the other end of the range."]})
        start, last = _date(raw_from, "from"), _date(raw_to, "to")
        if last < start:
            raise BadRequest("to is before from.", {"to": ["The end date can't be before the start date."]})
        end = last + dt.timedelta(days=1)
        if (end.year - start.year) * 12 + end.month - start.month > MAX_MONTHS:
            raise BadRequest(f"The range may span at most {MAX_MONTHS} months.",
                             {"from": [f"At most {MAX_MONTHS} months."]})
        period = "custom"
    else:
        period = period or default_period
        if period not in PERIODS:
            raise BadRequest(f"Unknown period '{period[:40]}'.", {"period": [f"Use one of {', '.join(PERIODS)}."]})
        start, end = period_range(period, today)
    raw_limit = (args.get("limit") or "").strip()
    limit = 10
    if raw_limit:
        if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise BadRequest(f"limit must be 1 to {MAX_LIMIT}.", {"limit": [f"A whole number from 1 to {MAX_LIMIT}."]})
        limit = int(raw_limit)
    return ReportParams(period, start, end, tz, today, _id(args.get("user"), "user"),
                        _id(args.get("department"), "department"), limit)
