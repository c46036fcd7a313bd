"""Credentials that must die, views that must not open, and export across every scope:
- deactivating a user revokes their API tokens and ends their sessions for good (a later
  reactivation revives neither); a password reset ends the user's other sessions;
- a view restricted to roles is neither listed for nor usable by anyone else, and a view
  filtering on a field hidden from the user is refused (its sort on one is dropped);
- export honours each data scope exactly as the list does.
"""
from __future__ import annotations

import csv
import io
from typing import Any

import pytest
import sqlalchemy as sa

from metacrm.runtime import accounts, systables
from metacrm.runtime.web.context import EXTENSION

from . import test_permissions as perms
from .support import ADMIN, add_user, admin_bearer, bearer, entity, error_of, login

CUSTOMER = entity("customer", {"name": "name", "type": "text", "required": True, "searchable": True},
                  {"name": "credit", "type": "integer"}, title_field="name", ownership=True)
REP = {"kind": "role", "name": "rep", "label": "Rep",
       "permissions": {"customer": {"create": True, "read": "all", "update": "self", "export": "all"}},
       "fields": {"customer": {"credit": "hidden"}}}
BOSS = {"kind": "role", "name": "boss", "label": "Boss", "permissions": {"customer": {"read": "all", "export": "all"}}}
VIEWS = [
    {"kind": "view", "entity": "customer", "name": "bosses_only", "label": "Bosses only", "roles": ["boss"],
     "columns": ["name"]},
    {"kind": "view", "entity": "customer", "name": "rich", "label": "Rich", "columns": ["name"],
     "filters": [{"any": [["credit", ">", 500], ["name", "=", "nobody"]]}]},
    {"kind": "view", "entity": "customer", "name": "by_credit", "label": "By credit", "columns": ["name"],
     "sort": [["credit", "desc"]]},
]


def _app(make_app: Any) -> tuple[Any, Any]:
    app = make_app([CUSTOMER, REP, BOSS, *VIEWS])
    engine = app.extensions[EXTENSION].engine
    table = app.extensions[EXTENSION].catalog().entities["customer"].table
    from metacrm.runtime.clock import utcnow
    with engine.begin() as conn:
        for i, (name, credit) in enumerate([("Low", 100), ("High", 1000), ("Mid", 600)]):
            conn.execute(table.insert().values(name=name, credit=credit, version=1, created_at=utcnow(),
                                               updated_at=utcnow()))
    return app, engine


def _session(app: Any, username: str, password: str) -> Any:
    return login(app.test_client(), username, password)


# ---------------------------------------------------------------- tokens and sessions

def test_deactivation_revokes_tokens_and_sessions_and_reactivation_revives_neither(make_app):
    app, engine = _app(make_app)
    admin = admin_bearer(app)
    with engine.begin() as conn:
        rep = add_user(conn, "rep", roles=["rep"])
        token = bearer(conn, rep)
    session = _session(app, "rep", "rep-pass-1")
    c = app.test_client()
    assert c.get("/api/v1/auth/me", headers=token).status_code == 200
    assert session.get("/api/v1/auth/me").status_code == 200
    assert c.post(f"/api/v1/admin/users/{rep}/deactivate", headers=admin).status_code == 200
    assert c.post(f"/api/v1/admin/users/{rep}/activate", headers=admin).status_code == 200
    error_of(c.get("/api/v1/auth/me", headers=token), 401)
    error_of(session.get("/api/v1/auth/me"), 401)
    with engine.connect() as conn:
        assert all(t["revoked"] for t in accounts.list_tokens(conn, rep))
        log = systables.audit_log
        entry = conn.execute(sa.select(log.c.detail).where(log.c.action == "user.deactivate")).scalar_one()
    assert entry["tokens_revoked"] == 1
    # Signing in afresh works, and a new token does too.
    assert _session(app, "rep", "rep-pass-1").get("/api/v1/auth/me").status_code == 200
    with engine.begin() as conn:
        fresh = bearer(conn, rep)
    assert c.get("/api/v1/auth/me", headers=fresh).status_code == 200


def test_a_password_reset_ends_the_users_other_sessions_but_not_the_resetters(make_app):
    app, engine = _app(make_app)
    with engine.begin() as conn:
        rep = add_user(conn, "rep", roles=["rep"])
        admin_id = accounts.find_account(conn, ADMIN[0]).id  # type: ignore[union-attr]
    rep_session = _session(app, "rep", "rep-pass-1")
    admin_here, admin_elsewhere = _session(app, *ADMIN), _session(app, *ADMIN)
    r = admin_here.patch(f"/api/v1/admin/users/{rep}", json={"password": "new-pass-123"})
    assert r.status_code == 200, r.get_json()
    error_of(rep_session.get("/api/v1/auth/me"), 401)
    assert _session(app, "rep", "new-pass-123").get("/api/v1/auth/me").status_code == 200
    # The admin resets their own password: this session goes on, the other one ends.
    r = admin_here.patch(f"/api/v1/admin/users/{admin_id}", json={"password": "admin-pass-2"})
    assert r.status_code == 200, r.get_json()
    assert admin_here.get("/api/v1/auth/me").status_code == 200
    error_of(admin_elsewhere.get("/api/v1/auth/me"), 401)


# ---------------------------------------------------------------- views

def test_a_role_restricted_view_is_not_listed_or_usable_for_other_roles(make_app):
    app, engine = _app(make_app)
    with engine.begin() as conn:
        rep = bearer(conn, add_user(conn, "rep", roles=["rep"]))
        boss = bearer(conn, add_user(conn, "boss", roles=["boss"]))
    c = app.test_client()
    names = {v["name"] for v in c.get("/api/v1/meta/entities/customer", headers=rep).get_json()["views"]}
    assert "bosses_only" not in names
    error = error_of(c.get("/api/v1/records/customer?view=bosses_only", headers=rep), 403, "forbidden")
    assert "boss" in error["message"]
    error_of(c.get("/api/v1/records/customer/export?view=bosses_only", headers=rep), 403, "forbidden")
    assert c.get("/api/v1/records/customer?view=bosses_only", headers=boss).get_json()["total"] == 3
    assert "bosses_only" in {v["name"] for v in
                             c.get("/api/v1/meta/entities/customer", headers=boss).get_json()["views"]}
    # The list screen: no tab, and the URL answers 403 with the reason.
    screen = _session(app, "rep", "rep-pass-1")
    assert "bosses_only" not in screen.get("/r/customer").get_data(as_text=True)
    r = screen.get("/r/customer?view=bosses_only")
    assert r.status_code == 403 and "boss" in r.get_data(as_text=True)


def test_a_view_filtering_on_a_hidden_field_is_refused_and_its_hidden_sort_dropped(make_app):
    app, engine = _app(make_app)
    with engine.begin() as conn:
        rep = bearer(conn, add_user(conn, "rep", roles=["rep"]))
    c = app.test_client()
    names = {v["name"] for v in c.get("/api/v1/meta/entities/customer", headers=rep).get_json()["views"]}
    assert "rich" not in names and "by_credit" in names
    error = error_of(c.get("/api/v1/records/customer?view=rich", headers=rep), 403, "forbidden")
    assert "credit" in error["message"]
    error_of(c.get("/api/v1/records/customer/export?view=rich", headers=rep), 403, "forbidden")
    # The admin's order by credit (High, Mid, Low) would tell the rep who has the most credit:
    # the rep gets the default order (newest first) instead.
    admin = admin_bearer(app)
    assert [i["name"] for i in c.get("/api/v1/records/customer?view=by_credit", headers=admin)
            .get_json()["items"]] == ["High", "Mid", "Low"]
    assert [i["name"] for i in c.get("/api/v1/records/customer?view=by_credit", headers=rep)
            .get_json()["items"]] == ["Mid", "High", "Low"]
    meta = c.get("/api/v1/meta/entities/customer", headers=rep).get_json()
    assert next(v for v in meta["views"] if v["name"] == "by_credit")["sort"] == []
    assert c.get("/api/v1/records/customer?view=rich", headers=admin).get_json()["total"] == 2


# ---------------------------------------------------------------- export, every scope

EXPORT_ROLES = [{"kind": "role", "name": f"export_{s}", "label": s,
                 "permissions": {"customer": {"read": s, "export": s}}} for s in perms.SCOPES]


@pytest.mark.parametrize("scope", perms.SCOPES, ids=perms.SCOPES)
def test_each_scope_exports_exactly_the_records_it_lists(make_app, scope):
    org = perms.build_org(lambda docs: make_app(list(docs) + EXPORT_ROLES),
                          {p: (f"export_{scope}",) for p in perms.PEOPLE})
    for viewer in perms.VIEWERS:
        r = org.client.get("/api/v1/records/customer/export?format=csv", headers=org.tokens[viewer])
        assert r.status_code == 200, r.get_data(as_text=True)
        rows = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
        names = {dict(zip(rows[0], row))["Name"] for row in rows[1:]}
        assert names == perms._acme(perms.EXPECTED[scope][viewer]), (scope, viewer)
