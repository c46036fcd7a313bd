"""The users admin screens (`/admin/users...`): the list with search and department
filter, create, edit (department, manager, roles, language), password reset, deactivate
(离职) and activate, and transferring a user's records to a colleague.

Forms become the admin API's JSON bodies and go to the same `runtime/people.py`
functions, so the rules (unknown roles, manager cycles, a transfer only to an active
user, no deactivating yourself) are the API's, with the same messages.
"""
from __future__ import annotations

from typing import Any, Mapping

import sqlalchemy as sa
from flask import redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from metacrm.runtime import people
from metacrm.runtime.errors import ServiceError, ValidationFailed
from metacrm.runtime.web.context import runtime
from metacrm.runtime.web.screen_context import flash_t, language, screen_principal

from .admin_pages import admin_blueprint, attempt, department_tree, failure_status, form_id, int_arg, user_choices
from .auth import keep_own_session

bp = admin_blueprint("metacrm_admin_users")
PAGE_SIZE = 50
#: The user form's fields, as the admin API names them.
PROFILE = ("display_name", "email", "language")


def _role_names() -> list[str]:
    return list(runtime().catalog().mset.roles)


def _user_body(form: MultiDict[str, str], creating: bool) -> dict[str, Any]:
    body: dict[str, Any] = {k: form.get(k, "") for k in PROFILE}
    body["email"] = body["email"].strip() or None
    body["department_id"] = form_id(form, "department_id")
    body["manager_id"] = form_id(form, "manager_id")
    body["roles"] = form.getlist("roles")
    body["is_admin"] = form.get("is_admin") == "1"
    if creating:
        body["username"] = form.get("username", "")
        body["password"] = form.get("password", "")
    return body


def _choices(conn: sa.Connection) -> dict[str, Any]:
    catalog = runtime().catalog(conn)
    return {"tree": department_tree(people.list_departments(conn)), "users": user_choices(conn),
            "roles": [(name, spec.label.get(language()) if spec.label else name)
                      for name, spec in catalog.mset.roles.items()]}


def _form_page(user: dict[str, Any] | None, form: Mapping[str, Any], status: int = 200,
               error: ServiceError | None = None) -> Any:
    with runtime().engine.connect() as conn:
        return render_template("admin/user_form.html", user=user, form=form, errors=error.fields if error else {},
                               message=error.message if error else None, **_choices(conn)), status


def _user_form(user: dict[str, Any]) -> dict[str, Any]:
    """A user as the form shows it (what a post would send back)."""
    return {**{k: user.get(k) or "" for k in PROFILE}, "department_id": user["department_id"] or "",
            "manager_id": user["manager_id"] or "", "roles": user["roles"], "is_admin": user["is_admin"]}


def _posted(form: MultiDict[str, str]) -> dict[str, Any]:
    return {**form.to_dict(), "roles": form.getlist("roles"), "is_admin": form.get("is_admin") == "1"}


def _user(user_id: int) -> dict[str, Any]:
    with runtime().engine.connect() as conn:
        return people.user_json(conn, user_id)


@bp.get("/users")
def users() -> Any:
    args = request.args
    q = (args.get("q") or "").replace("\x00", "").strip()[:100]
    dept = args.get("department", "")
    status = args.get("status", "active")
    page = int_arg(args.get("page"), 1) or 1
    active = {"active": True, "inactive": False}.get(status)
    with runtime().engine.connect() as conn:
        items, total = people.find_users(conn, q or None, int_arg(dept), active, page, PAGE_SIZE)
        departments = {d["id"]: d for d in people.list_departments(conn)}
        tree = department_tree(list(departments.values()))
    return render_template("admin/users.html", items=items, total=total, page=page,
                           pages=max(1, -(-total // PAGE_SIZE)), departments=departments, tree=tree, q=q,
                           department=dept, status=status, args=args)


@bp.route("/users/new", methods=["GET", "POST"])
def new_user() -> Any:
    if request.method == "GET":
        return _form_page(None, {"language": "zh" if request.accept_languages.best == "zh" else "en", "roles": []})
    by = screen_principal()
    roles = _role_names()
    made, error = attempt(lambda conn: people.create_user_from(conn, by, _user_body(request.form, True), roles))
    if error is not None:
        return _form_page(None, _posted(request.form), failure_status(error), error)
    flash_t("user_created", name=made["display_name"])
    return redirect(url_for(".edit_user", user_id=made["id"]))


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def edit_user(user_id: int) -> Any:
    user = _user(user_id)
    if request.method == "GET":
        return _form_page(user, _user_form(user))
    by = screen_principal()
    roles = _role_names()
    _, error = attempt(lambda conn: people.update_user(conn, by, user_id, _user_body(request.form, False), roles))
    if error is not None:
        return _form_page(user, _posted(request.form), failure_status(error), error)
    flash_t("saved")
    return redirect(url_for(".edit_user", user_id=user_id))


@bp.post("/users/<int:user_id>/password")
def reset_password(user_id: int) -> Any:
    user = _user(user_id)
    by = screen_principal()
    password = request.form.get("password", "")
    if password != request.form.get("password_again", ""):
        error: ServiceError | None = ValidationFailed("The two passwords differ.",
                                                      {"password_again": ["Type the same password twice."]})
    else:
        _, error = attempt(lambda conn: people.update_user(conn, by, user_id, {"password": password}, []))
    if error is not None:
        return _form_page(user, _user_form(user), failure_status(error), error)
    keep_own_session(user_id)
    flash_t("password_reset", name=user["display_name"])
    return redirect(url_for(".edit_user", user_id=user_id))


@bp.post("/users/<int:user_id>/<any(activate, deactivate):change>")
def set_active(user_id: int, change: str) -> Any:
    user = _user(user_id)
    by = screen_principal()
    _, error = attempt(lambda conn: people.set_active(conn, by, user_id, change == "activate"))
    if error is not None:
        return _form_page(user, _user_form(user), failure_status(error), error)
    flash_t("user_activated" if change == "activate" else "user_deactivated", name=user["display_name"])
    return redirect(url_for(".edit_user", user_id=user_id))


def _owned_entities() -> list[Any]:
    return [e for e in runtime().catalog().mset.active_entities if e.ownership and not e.child_of]


def _transfer_page(user: dict[str, Any], status: int = 200, error: ServiceError | None = None,
                   form: Mapping[str, Any] | None = None) -> Any:
    with runtime().engine.connect() as conn:
        targets = [u for u in user_choices(conn, active_only=True) if u.id != user["id"]]
    form = form or {"scope": "all", "entities": []}
    return render_template("admin/transfer.html", user=user, targets=targets, entities=_owned_entities(), form=form,
                           errors=error.fields if error else {}, message=error.message if error else None), status


@bp.route("/users/<int:user_id>/transfer", methods=["GET", "POST"])
def transfer(user_id: int) -> Any:
    user = _user(user_id)
    if request.method == "GET":
        return _transfer_page(user)
    by = screen_principal()
    form = request.form
    some = form.get("scope") == "some"
    chosen = form.getlist("entities") if some else None

    def move(conn: sa.Connection) -> dict[str, int]:
        if some and not chosen:
            raise ValidationFailed("Choose the kinds of records to transfer.", {"entities": ["Choose at least one."]})
        to_user = form_id(form, "to_user")
        return people.transfer_records(conn, runtime().catalog(conn), by, user_id, to_user, chosen)

    moved, error = attempt(move)
    if error is not None:
        return _transfer_page(user, failure_status(error), error,
                              {"scope": form.get("scope"), "entities": chosen or [], "to_user": form.get("to_user")})
    flash_t("records_transferred", n=sum(moved.values()))
    return redirect(url_for(".edit_user", user_id=user_id))
