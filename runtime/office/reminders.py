"""Schedule reminders: `metacrm jobs run` notifies a schedule's owner and participants
`reminder_minutes` before it starts (the bell, with a link to the schedule).

Safe to run every few minutes and twice at once: a reminder is a row keyed by (schedule,
start time) inserted with `ON CONFLICT DO NOTHING`, and only the run that inserted it
notifies. Moving a schedule to another time reminds again for the new time. A schedule
whose start has passed is not reminded (a job that did not run for a while stays quiet
about the past).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .. import systables
from ..catalog import Runtime
from ..clock import utcnow
from ..notifications import notify

ENTITY = "schedule"
#: The longest reminder the entity allows (its `reminder_minutes` max): the search window.
MAX_MINUTES = 10080
R = systables.schedule_reminders


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def _claim(conn: sa.Connection, schedule_id: int, starts_at: dt.datetime, now: dt.datetime) -> bool:
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(R).values(schedule_id=schedule_id, starts_at=starts_at, sent_at=now) \
        .on_conflict_do_nothing().returning(R.c.schedule_id)
    return conn.execute(stmt).first() is not None


def run(rt: Runtime, now: dt.datetime | None = None) -> dict[str, int]:
    """Send the reminders that are due; {"reminded": schedules, "notified": people}."""
    now = now or utcnow()
    totals = {"reminded": 0, "notified": 0}
    with rt.engine.begin() as conn:
        catalog = rt.catalog(conn)
        if ENTITY not in catalog.entities or catalog.entities[ENTITY].entity.archived:
            return totals
        srt = catalog.get(ENTITY)
        t = srt.table
        if "reminder_minutes" not in t.c:
            return totals
        rows = conn.execute(sa.select(t.c.id, t.c.title, t.c.start_at, t.c.location, t.c.owner, t.c.reminder_minutes)
                            .where(t.c.start_at > now, t.c.start_at <= now + dt.timedelta(minutes=MAX_MINUTES),
                                   t.c.reminder_minutes.is_not(None))).all()
        due = [r for r in rows if _aware(r.start_at) - dt.timedelta(minutes=r.reminder_minutes) <= now]
        people: dict[int, list[Any]] = {}
        child = srt.children.get("participants")
        if due and child is not None:
            c = child.table
            for row in conn.execute(sa.select(c.c.parent_id, c.c.user).where(c.c.parent_id.in_([r.id for r in due]))):
                people.setdefault(row.parent_id, []).append(row.user)
        for r in due:
            starts = _aware(r.start_at)
            if not _claim(conn, r.id, starts, now):
                continue
            minutes = max(1, int((starts - now).total_seconds() // 60))
            place = f" @ {r.location}" if r.location else ""
            totals["reminded"] += 1
            totals["notified"] += notify(
                conn, [r.owner, *people.get(r.id, [])], kind="schedule_reminder", entity=ENTITY, record_id=r.id,
                title={"en": f"In {minutes} min: {r.title}{place}", "zh": f"{minutes} 分钟后：{r.title}{place}"},
                body=f"{starts.isoformat()}")
    return totals
