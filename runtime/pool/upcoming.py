"""Records about to go back to their pool: what the workbench warns their owner about.

The same clock as recycling (`recycle.due_dates`): a record is "returning" once it is
inside its rule's reminder window (`remind_before` days, else `DEFAULT_WINDOW`) or
already due (the next `metacrm jobs run` moves it). Only the principal's own records
of pools whose rules apply to them are looked at; nothing is written or locked.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

import sqlalchemy as sa

from ..catalog import Catalog
from ..clock import utcnow
from ..principal import Principal
from .config import pools_of
from .recycle import candidates, due_dates, member_ids

#: Reminder window of a rule that names none.
DEFAULT_WINDOW = 3
#: At most this many of a user's records are examined per rule.
LIMIT = 500


def returning_soon(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str,
                   now: dt.datetime | None = None) -> dict[int, dt.datetime]:
    """{record id: when it goes back} for the principal's records of `entity` inside a
    reminder window; the earliest due moment when several rules apply."""
    now = now or utcnow()
    out: dict[int, dt.datetime] = {}
    if principal.user_id is None or entity not in catalog.entities:
        return out
    rt = catalog.get(entity)
    for pool in pools_of(catalog.mset, entity):
        if not pool.rules or principal.user_id not in member_ids(conn, pool):
            continue
        for rule in pool.rules:
            window = dt.timedelta(days=rule.remind_before or DEFAULT_WINDOW)
            # candidates() bounds by the reminder window: widen it to the one the workbench uses
            wide = replace(rule, remind_before=window.days)
            rows = candidates(conn, rt, pool, wide, [principal.user_id], now, 0, LIMIT, lock=False)
            for record_id, (due, _days) in due_dates(conn, catalog, rt, pool, rule, rows).items():
                if now >= due - window and (record_id not in out or due < out[record_id]):
                    out[record_id] = due
    return out

