"""The organisation admin screens (`/admin/...`): the departments tree and the audit log,
and what the users and roles screens share (admin_user_pages.py, admin_role_pages.py).

Every change goes through the same functions the admin API calls (`runtime/people.py`,
the role save path in `admin.py`), so a screen can't do what the API would refuse. A
refused change re-renders the form with the posted values and the message next to the
field (422/409), and changes nothing. Every page answers 403 to non-admins; posts need
the CSRF token like every screen.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Mapping

import sqlalchemy as sa
from flask import Blueprint, redirect, render_template, request, url_for

from metacrm.runtime import people, systables
from metacrm.runtime.coercion import MAX_ID
from metacrm.runtime.errors import PermissionDenied, ServiceError, ValidationFailed
from metacrm.runtime.web.context import runtime
from metacrm.runtime.web.screen_context import flash_t, init_screen_blueprint, screen_principal
from metacrm.runtime.web.screen_support import format_datetime

AUDIT_PAGE_SIZE = 50


def _require_admin() -> None:
    if not screen_principal().is_admin:
        raise PermissionDenied("Only administrators may open the admin screens.")


def admin_blueprint(name: str) -> Blueprint:
    """A screens blueprint under /admin: signed-in users only (else the login page), admins
    only (else 403), service errors as error pages; templates from platform/templates."""
    bp = init_screen_blueprint(Blueprint(name, __name__, url_prefix="/admin", template_folder="templates"))
    bp.before_request(_require_admin)
    return bp


def int_arg(value: str | None, default: int | None = None) -> int | None:
    """A positive id or page number from a query string; `default` for anything else."""
    value = value or ""
    if value.isascii() and value.isdigit() and len(value) <= 9 and int(value) > 0:
        return int(value)
    return default


def form_id(form: Mapping[str, str], key: str) -> int | None:
    """An optional id from a select ("" = none); ValidationFailed on the field otherwise."""
    raw = (form.get(key) or "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or int(raw) > MAX_ID:
        raise ValidationFailed(f"{key} must be an id.", {key: ["Choose one from the list."]})
    return int(raw)


def attempt(change: Callable[[sa.Connection], Any]) -> tuple[Any, ServiceError | None]:
    """Run `change(conn)` in one transaction: (its result, None), or — rolled back, nothing
    changed — (None, the service error) for the form to show."""
    try:
        with runtime().engine.begin() as conn:
            return change(conn), None
    except ServiceError as exc:
        return None, exc


def failure_status(exc: ServiceError) -> int:
    return exc.status if 400 <= exc.status < 500 else 422


def user_choices(conn: sa.Connection, active_only: bool = False) -> list[Any]:
    """(id, username, display_name, active) of every user, for selects."""
    u = systables.users
    stmt = sa.select(u.c.id, u.c.username, u.c.display_name, u.c.active).order_by(u.c.display_name, u.c.id)
    if active_only:
        stmt = stmt.where(u.c.active.is_(True))
    return list(conn.execute(stmt))


def department_tree(departments: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Departments in tree order with their depth, any depth, each once (a parent missing
    from the list puts its child at the top)."""
    ids = {d["id"] for d in departments}
    children: dict[int | None, list[dict[str, Any]]] = {}
    for d in departments:
        children.setdefault(d["parent"] if d["parent"] in ids else None, []).append(d)
    out: list[tuple[dict[str, Any], int]] = []
    seen: set[int] = set()
    stack = [(d, 0) for d in reversed(children.get(None, []))]
    while stack:
        d, depth = stack.pop()
        if d["id"] in seen:
            continue
        seen.add(d["id"])
        out.append((d, depth))
        stack += [(c, depth + 1) for c in reversed(children.get(d["id"], []))]
    return out


bp = admin_blueprint("metacrm_admin_pages")


# ------------------------------------------------------------------ departments

def _department_body(form: Mapping[str, str], with_head: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"name": form.get("name", ""), "parent": form_id(form, "parent")}
    if with_head:
        body["head"] = form_id(form, "head")
    return body


def _departments_page(conn: sa.Connection, status: int = 200, **extra: Any) -> Any:
    depts = people.list_departments(conn)
    members = Counter(conn.execute(sa.select(systables.users.c.department_id)).scalars())
    users = {u.id: u for u in user_choices(conn)}
    page = {"tree": department_tree(depts), "members": members, "users": users, "form": {}, "errors": {},
            "message": None, "editing": None, **extra}
    return render_template("admin/departments.html", **page), status


@bp.get("/")
def home() -> Any:
    return redirect(url_for("metacrm_admin_users.users"))


@bp.get("/departments")
def departments() -> Any:
    with runtime().engine.connect() as conn:
        editing = None
        edit = int_arg(request.args.get("edit"))
        if edit is not None:
            editing = people.get_department(conn, edit)
        return _departments_page(conn, editing=editing)


def _departments_error(error: ServiceError, **extra: Any) -> Any:
    with runtime().engine.connect() as conn:
        return _departments_page(conn, failure_status(error), errors=error.fields, message=error.message, **extra)


@bp.post("/departments")
def create_department() -> Any:
    by = screen_principal()
    made, error = attempt(lambda conn: people.create_department(conn, by, _department_body(request.form, False)))
    if error is not None:
        return _departments_error(error, form=request.form)
    flash_t("department_created", name=made["name"])
    return redirect(url_for(".departments"))


def _department(department_id: int) -> dict[str, Any]:
    with runtime().engine.connect() as conn:
        return people.get_department(conn, department_id)


@bp.post("/departments/<int:department_id>")
def update_department(department_id: int) -> Any:
    by = screen_principal()
    current = _department(department_id)
    _, error = attempt(lambda conn: people.update_department(conn, by, department_id,
                                                             _department_body(request.form, True)))
    if error is not None:
        return _departments_error(error, editing=current, form=request.form)
    flash_t("saved")
    return redirect(url_for(".departments"))


@bp.post("/departments/<int:department_id>/delete")
def delete_department(department_id: int) -> Any:
    by = screen_principal()
    current = _department(department_id)
    _, error = attempt(lambda conn: people.delete_department(conn, by, department_id))
    if error is not None:
        return _departments_error(error, editing=current)
    flash_t("department_deleted", name=current["name"])
    return redirect(url_for(".departments"))


# ------------------------------------------------------------------ audit log

def _plain(value: str | None, max_length: int) -> str | None:
    """A query-string filter the database will take (no NUL, which PostgreSQL refuses)."""
    value = (value or "").replace("\x00", "").strip()[:max_length]
    return value or None


@bp.get("/audit")
def audit() -> Any:
    args = request.args
    page = int_arg(args.get("page"), 1) or 1
    with runtime().engine.connect() as conn:
        items, total = people.audit_page(conn, action=_plain(args.get("action"), 64),
                                         by=int_arg(args.get("by")),
                                         target=_plain(args.get("target"), 200),
                                         page=page, page_size=AUDIT_PAGE_SIZE)
        actions = people.audit_actions(conn)
        users = user_choices(conn)
    pages = max(1, -(-total // AUDIT_PAGE_SIZE))
    tz = runtime().timezone
    return render_template("admin/audit.html", items=items, total=total, page=page, pages=pages,
                           actions=actions, users=users, args=args, at_local=lambda v: format_datetime(v, tz))



def init_admin_pages(app: Any) -> None:
    """Mount the admin screens (after init_pages: they need CSRF and the shell's globals)."""
    from . import admin_role_pages, admin_user_pages

    for module_bp in (bp, admin_user_pages.bp, admin_role_pages.bp):
        app.register_blueprint(module_bp)
