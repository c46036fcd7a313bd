"""What the workbench (工作台, `/`) shows a user, read in one place so the page and the
API answer the same lists.

Every list goes through `list_records` (the role's read scope, hidden fields) and is
further limited to the user's own work: their to-dos are records they own, their tasks
are tasks assigned to them, team activity is their subordinates' follow-ups (empty for
someone with no reports). Entities a template doesn't have, or the user may not read,
are simply left out.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ..access import access_for
from ..catalog import Catalog
from ..clock import utcnow
from ..principal import Principal
from ..query import ListRequest, list_records
from ..workflow.reading import inbox

#: Rows shown per list (the "more" link opens the full list).
SHOWN = 8


@dataclass(frozen=True)
class Todo:
    """One to-do list: records of `entity` the user owns matching `filters`; `field` is
    the date the row shows; `label` a ui_text key."""
    key: str
    entity: str
    field: str
    label: str
    filters: Callable[["Moments"], list[Any]]
    sort: tuple[str, str]


@dataclass(frozen=True)
class Moments:
    today: dt.date
    day_start: dt.datetime  # today 00:00 in the user's zone
    day_end: dt.datetime    # tomorrow 00:00


#: Follow-ups due: every owned entity with this field (but follow-ups themselves) gets a
#: list of the user's records whose next follow-up falls today or earlier …
FOLLOWUP_FIELD = "next_followup_at"
#: … left out once the record is closed (only conditions on fields the entity has apply).
STILL_OPEN: dict[str, list[Any]] = {
    "lead": [["status", "in", ["new", "following"]]],
    "opportunity": [["stage", "not in", ["won", "lost", "invalid"]]],
}

TODOS: tuple[Todo, ...] = (
    Todo("receivables_due", "receivable_plan", "plan_date", "todo_receivables_due",
         lambda m: [["plan_date", "<=", "$today"], ["status", "!=", "done"]], ("plan_date", "asc")),
    Todo("contracts_expiring", "contract", "end_date", "todo_contracts_expiring",
         lambda m: [["end_date", "=", "next_30_days"], ["approval_status", "=", "approved"]], ("end_date", "asc")),
)


def followup_todos(catalog: Catalog) -> list[Todo]:
    """One "follow-ups due" list per entity that has a next follow-up date, in metadata
    order (customers, leads, contacts, opportunities in the default CRM)."""
    out = []
    for rt in catalog.entities.values():
        e = rt.entity
        if e.archived or e.child_of or not e.ownership or e.name == "followup" or e.active_field(FOLLOWUP_FIELD) is None:
            continue
        extra = [c for c in STILL_OPEN.get(e.name, []) if e.active_field(c[0]) is not None]
        out.append(Todo(f"followups_due_{e.name}", e.name, FOLLOWUP_FIELD, "todo_followups_due",
                        lambda m, extra=extra: [[FOLLOWUP_FIELD, "<", m.day_end.isoformat()], *extra],
                        (FOLLOWUP_FIELD, "asc")))
    return out


def moments(timezone: str, now: dt.datetime | None = None) -> Moments:
    tz = ZoneInfo(timezone)
    today = (now or utcnow()).astimezone(tz).date()
    start = dt.datetime.combine(today, dt.time(), tz)
    return Moments(today, start, start + dt.timedelta(days=1))


def _readable(catalog: Catalog, principal: Principal, entity: str, *fields: str) -> bool:
    rt = catalog.entities.get(entity)
    if rt is None or rt.entity.archived:
        return False
    access = access_for(catalog.mset, principal, rt.entity)
    return access.allows("read") and all(rt.entity.active_field(f) is not None and f not in access.unreadable
                                         for f in fields)


def _list(conn: sa.Connection, catalog: Catalog, principal: Principal, entity: str, filters: list[Any],
          sort: tuple[str, str], timezone: str, expand: tuple[str, ...] = ()) -> dict[str, Any]:
    return list_records(conn, catalog, principal, entity, ListRequest(
        filters=filters, sort=[sort, ("id", "asc")], page_size=SHOWN, expand=list(expand)), timezone)


def todos(conn: sa.Connection, catalog: Catalog, principal: Principal, timezone: str = "UTC",
          now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The user's to-do lists that have something in them: `{key, label, entity, field,
    items, total}` (and `returns_at` per item for customers returning to the pool). A
    list whose fields the user may not read (a role hiding `status`, say) is left out:
    filtering on them would reveal their values."""
    from ..pool.upcoming import returning_soon

    m = moments(timezone, now)
    out = []
    for todo in [*followup_todos(catalog), *TODOS]:
        fields = [f[0] for f in todo.filters(m) if isinstance(f, list)]
        if not _readable(catalog, principal, todo.entity, todo.field, *fields):
            continue
        result = _list(conn, catalog, principal, todo.entity, [["owner", "=", "$me"], *todo.filters(m)],
                       todo.sort, timezone)
        if result["total"]:
            out.append({"key": todo.key, "label": todo.label, "entity": todo.entity, "field": todo.field,
                        "items": result["items"], "total": result["total"]})
    if _readable(catalog, principal, "customer"):
        due = returning_soon(conn, catalog, principal, "customer", now)
        if due:
            ids = sorted(due, key=lambda i: due[i])
            result = list_records(conn, catalog, principal, "customer", ListRequest(
                filters=[["owner", "=", "$me"], ["id", "in", ids[:200]]], page_size=200), timezone)
            items = sorted(result["items"], key=lambda r: due[r["id"]])[:SHOWN]
            for r in items:
                r["returns_at"] = due[r["id"]].isoformat()
            if items:
                out.append({"key": "returning_to_pool", "label": "todo_returning_to_pool", "entity": "customer",
                            "field": None, "items": items, "total": result["total"]})
    return out


def my_tasks(conn: sa.Connection, catalog: Catalog, principal: Principal, timezone: str = "UTC") -> dict[str, Any] | None:
    if not _readable(catalog, principal, "task", "assignee", "status"):
        return None
    return _list(conn, catalog, principal, "task", [["assignee", "=", "$me"], ["status", "in", ["todo", "doing"]]],
                 ("due_date", "asc"), timezone)


def todays_schedule(conn: sa.Connection, catalog: Catalog, principal: Principal, timezone: str = "UTC",
                    now: dt.datetime | None = None) -> dict[str, Any] | None:
    if not _readable(catalog, principal, "schedule", "start_at", "end_at"):
        return None
    m = moments(timezone, now)
    return _list(conn, catalog, principal, "schedule",
                 [["owner", "=", "$me"], ["start_at", "<", m.day_end.isoformat()],
                  ["end_at", ">=", m.day_start.isoformat()]], ("start_at", "asc"), timezone)


def team_activity(conn: sa.Connection, catalog: Catalog, principal: Principal,
                  timezone: str = "UTC") -> dict[str, Any] | None:
    """The newest follow-ups written by the user's subordinates (None: no reports, or no
    follow-ups to read)."""
    if not principal.subordinate_ids or not _readable(catalog, principal, "followup"):
        return None
    result = list_records(conn, catalog, principal, "followup", ListRequest(
        filters=[["owner", "in", sorted(principal.subordinate_ids)]], sort=[("created_at", "desc"), ("id", "desc")],
        page_size=SHOWN, expand=["owner"]), timezone)
    reference_titles(conn, catalog, principal, result["items"], "subject", timezone)
    return result


def reference_titles(conn: sa.Connection, catalog: Catalog, principal: Principal, items: list[dict[str, Any]],
                     name: str, timezone: str = "UTC") -> None:
    """Set `<name>__title` on each item whose reference `name` points at a record the
    principal may read (one scoped list query per target entity); others get none."""
    wanted: dict[str, set[int]] = {}
    for item in items:
        ref = item.get(name)
        if isinstance(ref, dict) and ref.get("entity") in catalog.entities and isinstance(ref.get("id"), int):
            wanted.setdefault(ref["entity"], set()).add(ref["id"])
    titles: dict[tuple[str, int], str] = {}
    for entity, ids in wanted.items():
        rt = catalog.get(entity)
        title = rt.entity.title_field
        if not _readable(catalog, principal, entity) or not title or \
                title in access_for(catalog.mset, principal, rt.entity).unreadable:
            continue
        found = list_records(conn, catalog, principal, entity, ListRequest(
            filters=[["id", "in", sorted(ids)]], page_size=len(ids)), timezone)
        titles.update({(entity, r["id"]): str(r.get(title) or f"#{r['id']}") for r in found["items"]})
    for item in items:
        ref = item.get(name)
        if isinstance(ref, dict):
            item[f"{name}__title"] = titles.get((ref.get("entity"), ref.get("id")))


def pending_approvals(conn: sa.Connection, catalog: Catalog, principal: Principal) -> dict[str, Any]:
    return inbox(conn, catalog, principal, "pending", 1, SHOWN)


def workbench(conn: sa.Connection, catalog: Catalog, principal: Principal, timezone: str = "UTC",
              now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything the workbench shows, as JSON-ready dicts (see the module docstring)."""
    from .announcements import unread_count

    return {"todos": todos(conn, catalog, principal, timezone, now),
            "tasks": my_tasks(conn, catalog, principal, timezone),
            "schedule": todays_schedule(conn, catalog, principal, timezone, now),
            "approvals": pending_approvals(conn, catalog, principal),
            "team": team_activity(conn, catalog, principal, timezone),
            "unread_announcements": unread_count(conn, catalog, principal, timezone)}
