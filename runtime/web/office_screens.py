"""The office module's own screens: the calendar (month and week grids of schedules),
the address book, and announcements with read tracking. Schedules, tasks, logs and
requests are created and edited on the generated record pages (`/r/<entity>/...`).
"""
from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, render_template, request
from sqlalchemy import Connection

from ..clock import utcnow
from ..errors import NotFound
from ..office import announcements, calendar, contacts
from ..principal import Principal
from .context import runtime
from .screen_context import init_screen_blueprint, screen_principal

bp = init_screen_blueprint(Blueprint("metacrm_office", __name__, template_folder="templates"))


def _today() -> dt.date:
    return utcnow().astimezone(ZoneInfo(runtime().timezone)).date()


@bp.get("/office/calendar")
def calendar_page() -> Any:
    principal = screen_principal()
    rt = runtime()
    mode = request.args.get("view") or "month"
    today = _today()
    anchor = calendar.parse_day(request.args.get("date"), today)
    team = request.args.get("team") == "1"
    with rt.engine.connect() as conn:
        catalog = rt.catalog(conn)
        if "schedule" not in catalog.entities:
            raise NotFound("The office module is not installed.")
        grid = calendar.build_grid(conn, catalog, principal, mode, anchor, rt.timezone, mine_only=not team)
    return render_template("office_calendar.html", grid=grid, today=today, team=team)


@bp.get("/office/contacts")
def contacts_page() -> Any:
    screen_principal()
    q = (request.args.get("q") or "").strip()
    with runtime().engine.connect() as conn:
        groups = contacts.address_book(conn, q)
    return render_template("office_contacts.html", groups=groups, q=q)


@bp.get("/office/announcements")
def announcements_page() -> Any:
    principal = screen_principal()
    rt = runtime()
    with rt.engine.connect() as conn:
        catalog = rt.catalog(conn)
        announcements.require_installed(catalog)
        result = announcements.list_announcements(conn, catalog, principal, rt.timezone, 1, 100)
        entity = catalog.get("announcement").entity
    return render_template("office_announcements.html", result=result, entity=entity)


@bp.get("/office/announcements/<int:announcement_id>")
def announcement_page(announcement_id: int) -> Any:
    """Opening an announcement marks it read for the user."""
    principal = screen_principal()
    rt = runtime()
    with rt.engine.begin() as conn:
        catalog = rt.catalog(conn)
        announcements.require_installed(catalog)
        record = announcements.open_announcement(conn, catalog, principal, announcement_id, rt.timezone)
        entity = catalog.get("announcement").entity
    return render_template("office_announcement.html", record=record, entity=entity)


def unread_announcements(conn: Connection, principal: Principal) -> int:
    """The sidebar badge beside Announcements (a SHELL_COUNTS entry)."""
    rt = runtime()
    return announcements.unread_count(conn, rt.catalog(conn), principal, rt.timezone)
