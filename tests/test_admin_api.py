"""The organisation administration API (`/api/v1/admin/...`): departments, users, roles
and the audit log — admins only, every change effective at the next request, every bad
input a 4xx with the error shape (never a 500)."""
from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from metacrm.runtime import accounts, systables
from metacrm.runtime.clock import utcnow
from metacrm.runtime.web.context import EXTENSION

from .support import ADMIN, add_user, admin_bearer, bearer, entity, error_of

CUSTOMER = entity("customer", {"name": "name", "type": "text", "required": True, "searchable": True},
                  {"name": "phone", "type": "phone"}, title_field="name", ownership=True)
READER = {"kind": "role", "name": "reader", "label": "Reader",
          "permissions": {"customer": {"read": "department_and_children"}}}
MANAGER = {"kind": "role", "name": "manager", "label": "Manager",
           "permissions": {"customer": {"read": "self_and_subordinates", "update": "self"}},
           "fields": {"customer": {"phone": "hidden"}}}
DOCS = [CUSTOMER, READER, MANAGER]


class Admin:
    """An app with the admin's token and a plain client; helpers for the admin API."""

    def __init__(self, make_app: Any, docs: list[dict[str, Any]] = DOCS):
        self.app = make_app(docs)
        self.engine: sa.Engine = self.app.extensions[EXTENSION].engine
        self.headers = admin_bearer(self.app)
        self.client = self.app.test_client()
        with self.engine.connect() as conn:
            self.admin_id = accounts.find_account(conn, ADMIN[0]).id  # type: ignore[union-attr]

    def call(self, method: str, path: str, status: int, body: Any = None, headers: Any = None) -> Any:
        r = self.client.open(f"/api/v1/admin{path}", method=method, json=body,
                             headers=self.headers if headers is None else headers)
        assert r.status_code == status, (method, path, body, r.status_code, r.get_data(as_text=True))
        return r.get_json()

    def department(self, name: str, parent: int | None = None, **more: Any) -> int:
        return self.call("POST", "/departments", 201, {"name": name, "parent": parent, **more})["id"]

    def user(self, username: str, **values: Any) -> tuple[int, dict[str, str]]:
        """A user inserted directly (cheap password hash) and a token for them."""
        with self.engine.begin() as conn:
            user_id = add_user(conn, username, **values)
            return user_id, bearer(conn, user_id)

    def customer(self, owner: int, department: int | None, name: str) -> int:
        t = self.app.extensions[EXTENSION].catalog().entities["customer"].table
        now = utcnow()
        with self.engine.begin() as conn:
            return conn.execute(t.insert().values(name=name, owner=owner, department=department, version=1,
                                                  created_at=now, updated_at=now).returning(t.c.id)).scalar_one()

    def visible(self, headers: dict[str, str]) -> set[str]:
        r = self.client.get("/api/v1/records/customer?page_size=100", headers=headers)
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        assert body["total"] == len(body["items"])
        return {i["name"] for i in body["items"]}


def _error(r: Any, low: int = 400) -> dict[str, Any]:
    """A 4xx answer in the contract's error shape."""
    assert low <= r.status_code < 500, (r.status_code, r.get_data(as_text=True))
    return error_of(r, r.status_code)


# ---------------------------------------------------------------- who may call it

ENDPOINTS = [("GET", "/departments", None), ("POST", "/departments", {"name": "X"}),
             ("GET", "/departments/{d}", None), ("PATCH", "/departments/{d}", {"name": "Y"}),
             ("DELETE", "/departments/{d}", None),
             ("GET", "/users", None), ("POST", "/users", {"username": "zed", "password": "zed-pass-123"}),
             ("GET", "/users/{u}", None), ("PATCH", "/users/{u}", {"display_name": "Zed"}),
             ("POST", "/users/{u}/deactivate", None), ("POST", "/users/{u}/activate", None),
             ("POST", "/users/{u}/transfer", {"to_user": "{me}"}),
             ("GET", "/roles", None), ("POST", "/roles", {"name": "newrole"}),
             ("GET", "/roles/reader", None), ("PATCH", "/roles/reader", {"label": "R"}),
             ("DELETE", "/roles/manager", None), ("GET", "/audit", None)]


def test_non_admins_get_403_and_anonymous_callers_401_on_every_admin_endpoint(make_app):
    a = Admin(make_app)
    dept = a.department("Sales")
    me, mine = a.user("rep", roles=("reader", "manager"), department_id=dept)
    other, _ = a.user("other", department_id=dept)
    anon = a.app.test_client()
    before = a.call("GET", "/audit", 200)["items"]
    for method, path, body in ENDPOINTS:
        path = path.format(d=dept, u=other)
        if isinstance(body, dict):
            body = {k: (me if v == "{me}" else v) for k, v in body.items()}
        r = a.client.open(f"/api/v1/admin{path}", method=method, json=body, headers=mine)
        error_of(r, 403, "forbidden")
        error_of(anon.open(f"/api/v1/admin{path}", method=method, json=body), 401, "unauthorized")
    # Nothing happened.
    assert a.call("GET", "/audit", 200)["items"] == before
    assert [d["name"] for d in a.call("GET", "/departments", 200)["items"]] == ["Sales"]
    assert a.call("GET", f"/users/{other}", 200)["active"] is True
    assert {r["name"] for r in a.call("GET", "/roles", 200)["items"]} == {"reader", "manager"}


# ---------------------------------------------------------------- departments

def test_departments_create_read_update_delete(make_app):
    a = Admin(make_app)
    hq = a.department("HQ")
    sales = a.department("Sales", hq, position=2)
    head, _ = a.user("boss")
    assert a.call("GET", f"/departments/{sales}", 200) == {"id": sales, "name": "Sales", "parent": hq,
                                                            "head": None, "position": 2}
    changed = a.call("PATCH", f"/departments/{sales}", 200, {"name": " Sales & Marketing ", "head": head,
                                                              "position": 1})
    assert changed == {"id": sales, "name": "Sales & Marketing", "parent": hq, "head": head, "position": 1}
    assert [(d["name"], d["parent"]) for d in a.call("GET", "/departments", 200)["items"]] == [
        ("HQ", None), ("Sales & Marketing", hq)]
    # Moving to the top and back.
    assert a.call("PATCH", f"/departments/{sales}", 200, {"parent": None})["parent"] is None
    assert a.call("PATCH", f"/departments/{sales}", 200, {"parent": hq})["parent"] == hq
    # A department with sub-departments or members can't go; an empty one can.
    assert "sub-departments" in error_of(a.client.delete(f"/api/v1/admin/departments/{hq}", headers=a.headers),
                                         409, "conflict")["message"]
    member, _ = a.user("member", department_id=sales)
    assert "members" in error_of(a.client.delete(f"/api/v1/admin/departments/{sales}", headers=a.headers),
                                 409, "conflict")["message"]
    a.call("PATCH", f"/users/{member}", 200, {"department_id": hq})
    # ... nor one that records still belong to.
    a.customer(member, sales, "Old customer")
    error_of(a.client.delete(f"/api/v1/admin/departments/{sales}", headers=a.headers), 409, "conflict")
    with a.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM ent_customer"))
    assert a.client.delete(f"/api/v1/admin/departments/{sales}", headers=a.headers).status_code == 204
    error_of(a.client.get(f"/api/v1/admin/departments/{sales}", headers=a.headers), 404, "not_found")
    error_of(a.client.patch(f"/api/v1/admin/departments/{sales}", json={"name": "x"}, headers=a.headers), 404)
    error_of(a.client.delete(f"/api/v1/admin/departments/{sales}", headers=a.headers), 404)


def test_a_department_cannot_move_under_itself_or_its_own_subtree(make_app):
    a = Admin(make_app)
    hq = a.department("HQ")
    sales = a.department("Sales", hq)
    north = a.department("North", sales)
    for target, parent in ((hq, hq), (hq, north), (sales, north), (north, north)):
        error = error_of(a.client.patch(f"/api/v1/admin/departments/{target}", json={"parent": parent},
                                        headers=a.headers), 422, "validation_error")
        assert error["fields"] == {"parent": ["Would create a cycle."]}
    assert [(d["id"], d["parent"]) for d in a.call("GET", "/departments", 200)["items"]] == [
        (hq, None), (sales, hq), (north, sales)]


def test_moving_a_department_moves_the_data_scopes_with_it_at_once(make_app):
    """department_and_children and the head's subordinates follow the moved subtree."""
    a = Admin(make_app)
    hq = a.department("HQ")
    sales = a.department("Sales", hq)
    east = a.department("East", sales)
    north = a.department("North", hq)
    north_team = a.department("North team", north)
    boss, boss_h = a.user("boss", roles=("manager",), department_id=sales)
    a.call("PATCH", f"/departments/{sales}", 200, {"head": boss})
    rep, rep_h = a.user("rep", roles=("reader",), department_id=east)
    n1, _ = a.user("n1", department_id=north)
    n2, _ = a.user("n2", department_id=north_team)
    a.customer(rep, east, "East customer")
    a.customer(n1, north, "North customer")
    a.customer(n2, north_team, "North team customer")
    a.customer(boss, sales, "Sales customer")
    assert a.visible(rep_h) == {"East customer"}
    assert a.visible(boss_h) == {"East customer", "Sales customer"}

    a.call("PATCH", f"/departments/{north}", 200, {"parent": east})  # North (and its team) under East
    assert a.visible(rep_h) == {"East customer", "North customer", "North team customer"}
    assert a.visible(boss_h) == {"East customer", "North customer", "North team customer", "Sales customer"}
    a.call("PATCH", f"/departments/{north_team}", 200, {"parent": hq})  # the team leaves again
    assert a.visible(rep_h) == {"East customer", "North customer"}
    assert a.visible(boss_h) == {"East customer", "North customer", "Sales customer"}
    a.call("PATCH", f"/departments/{north}", 200, {"parent": hq})
    assert a.visible(rep_h) == {"East customer"}
    assert a.visible(boss_h) == {"East customer", "Sales customer"}
    # Moving the user moves their own scope too.
    a.call("PATCH", f"/users/{rep}", 200, {"department_id": north})
    assert a.visible(rep_h) == {"North customer"}


# ---------------------------------------------------------------- users

def test_users_create_edit_roles_and_password_reset(make_app):
    a = Admin(make_app)
    sales = a.department("Sales")
    boss, _ = a.user("boss", department_id=sales)
    created = a.call("POST", "/users", 201, {"username": "newbie", "password": "first-pass-1", "display_name": "New",
                                             "email": "new@example.com", "language": "zh", "department_id": sales,
                                             "manager_id": boss, "roles": ["reader"]})
    uid = created["id"]
    assert {k: created[k] for k in ("username", "display_name", "email", "language", "is_admin", "active",
                                    "department_id", "manager_id", "roles")} == {
        "username": "newbie", "display_name": "New", "email": "new@example.com", "language": "zh",
        "is_admin": False, "active": True, "department_id": sales, "manager_id": boss, "roles": ["reader"]}
    assert "password" not in json.dumps(created) and created["created_at"].endswith("+00:00")
    assert a.call("GET", f"/users/{uid}", 200) == created
    assert uid in [u["id"] for u in a.call("GET", "/users", 200)["items"]]

    session = a.app.test_client()
    assert session.post("/api/v1/auth/login", json={"username": "newbie", "password": "first-pass-1"}
                        ).status_code == 200
    assert session.get("/api/v1/auth/me").get_json()["user"]["roles"] == ["reader"]

    changed = a.call("PATCH", f"/users/{uid}", 200, {"display_name": "Newer", "roles": ["manager", "reader"],
                                                     "manager_id": None, "email": None})
    assert (changed["display_name"], changed["roles"], changed["manager_id"], changed["email"]) == (
        "Newer", ["manager", "reader"], None, None)
    # The running session sees the new roles at its next request.
    assert session.get("/api/v1/auth/me").get_json()["user"]["roles"] == ["manager", "reader"]
    a.call("PATCH", f"/users/{uid}", 200, {"password": "second-pass-2"})
    fresh = a.app.test_client()
    error_of(fresh.post("/api/v1/auth/login", json={"username": "newbie", "password": "first-pass-1"}), 401)
    assert fresh.post("/api/v1/auth/login", json={"username": "newbie", "password": "second-pass-2"}
                      ).status_code == 200

    a.call("POST", f"/users/{uid}/deactivate", 200)
    assert [u["id"] for u in a.call("GET", "/users?active=false", 200)["items"]] == [uid]
    assert uid not in [u["id"] for u in a.call("GET", "/users?active=true", 200)["items"]]
    assert a.call("POST", f"/users/{uid}/activate", 200)["active"] is True
    assert "yourself" in error_of(a.client.post(f"/api/v1/admin/users/{a.admin_id}/deactivate",
                                                headers=a.headers), 409, "conflict")["message"]


BAD_USERS = [
    ({"password": "long-enough-1"}, "username"),
    ({"username": "", "password": "long-enough-1"}, "username"),
    ({"username": "x" * 151, "password": "long-enough-1"}, "username"),
    ({"username": "nul\x00", "password": "long-enough-1"}, "username"),
    ({"username": 5, "password": "long-enough-1"}, "username"),
    ({"username": "u1"}, "password"),
    ({"username": "u1", "password": "short"}, "password"),
    ({"username": "u1", "password": ["long-enough-1"]}, "password"),
    ({"username": "u1", "password": "long-enough-1", "roles": ["nope"]}, "roles"),
    ({"username": "u1", "password": "long-enough-1", "roles": "reader"}, "roles"),
    ({"username": "u1", "password": "long-enough-1", "department_id": 999}, "department_id"),
    ({"username": "u1", "password": "long-enough-1", "department_id": "1"}, "department_id"),
    ({"username": "u1", "password": "long-enough-1", "department_id": 2**40}, "department_id"),
    ({"username": "u1", "password": "long-enough-1", "manager_id": 999}, "manager_id"),
    ({"username": "u1", "password": "long-enough-1", "language": "fr"}, "language"),
    ({"username": "u1", "password": "long-enough-1", "is_admin": "yes"}, "is_admin"),
    ({"username": "u1", "password": "long-enough-1", "email": "not-an-email"}, "email"),
    ({"username": "u1", "password": "long-enough-1", "email": "a@" + "b" * 300}, "email"),
    ({"username": "u1", "password": "long-enough-1", "display_name": " "}, "display_name"),
    ({"username": "u1", "password": "long-enough-1", "display_name": "d" * 201}, "display_name"),
    ({"username": "u1", "password": "long-enough-1", "colour": "red"}, "colour"),
    ({"username": "u1", "password": "long-enough-1", "active": False}, "active"),
]


@pytest.mark.parametrize("body,field", BAD_USERS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_USERS)])
def test_bad_user_input_is_422_naming_the_field(make_app, body, field):
    a = Admin(make_app, [CUSTOMER, READER])
    r = a.client.post("/api/v1/admin/users", json=body, headers=a.headers)
    assert field in error_of(r, 422, "validation_error")["fields"]
    existing = a.user("someone")[0]
    if "username" not in body or field in ("username", "password"):
        return
    r = a.client.patch(f"/api/v1/admin/users/{existing}", json={k: v for k, v in body.items()
                                                                  if k not in ("username", "password")},
                       headers=a.headers)
    assert field in error_of(r, 422, "validation_error")["fields"]
    assert [u["username"] for u in a.call("GET", "/users", 200)["items"]] == [ADMIN[0], "someone"]


def test_user_conflicts_cycles_and_unknown_ids(make_app):
    a = Admin(make_app)
    boss, _ = a.user("boss")
    lead, _ = a.user("lead", manager_id=boss)
    rep, _ = a.user("rep", manager_id=lead)
    error_of(a.client.post("/api/v1/admin/users", json={"username": "boss", "password": "long-enough-1"},
                           headers=a.headers), 409, "conflict")
    for manager in (boss, lead, rep):  # the boss can't report to themselves or anyone below them
        error = error_of(a.client.patch(f"/api/v1/admin/users/{boss}", json={"manager_id": manager},
                                        headers=a.headers), 422, "validation_error")
        assert error["fields"] == {"manager_id": ["Would create a cycle."]}, manager
    for path in ("/users/999", "/users/99999999999999999999", "/users/999/deactivate", "/users/999/activate",
                 "/users/999/transfer", "/departments/999", "/departments/99999999999999999999",
                 "/roles/nope"):
        for method in ("GET", "PATCH", "POST", "DELETE"):
            r = a.client.open(f"/api/v1/admin{path}", method=method, json={"to_user": rep, "name": "x"},
                              headers=a.headers)
            assert r.status_code in (404, 405), (method, path, r.status_code)
            _error(r)


# ---------------------------------------------------------------- roles

def test_roles_are_published_and_effective_at_once(make_app):
    a = Admin(make_app)
    sales = a.department("Sales")
    rep, rep_h = a.user("rep", department_id=sales)
    other, _ = a.user("other", department_id=sales)
    a.customer(rep, sales, "Mine")
    a.customer(other, sales, "Theirs")
    error_of(a.client.get("/api/v1/records/customer", headers=rep_h), 403, "forbidden")

    role = {"name": "viewer", "label": {"en": "Viewer", "zh": "查看"},
            "permissions": {"customer": {"read": "self", "update": "self"}},
            "fields": {"customer": {"phone": "hidden"}}}
    created = a.call("POST", "/roles", 201, role)
    assert created == {"kind": "role", **role}
    assert a.call("GET", "/roles/viewer", 200) == created
    assert "viewer" in {r["name"] for r in a.call("GET", "/roles", 200)["items"]}
    error_of(a.client.post("/api/v1/admin/roles", json=role, headers=a.headers), 409, "conflict")
    a.call("PATCH", f"/users/{rep}", 200, {"roles": ["viewer"]})
    assert a.visible(rep_h) == {"Mine"}
    item = a.client.get("/api/v1/records/customer", headers=rep_h).get_json()["items"][0]
    assert "phone" not in item

    # Widening the scope applies at the very next request; a null lifts the field restriction.
    updated = a.call("PATCH", "/roles/viewer", 200, {"permissions": {"customer": {"read": "department"}}})
    assert updated["permissions"]["customer"] == {"read": "department", "update": "self"}
    assert updated["label"] == {"en": "Viewer", "zh": "查看"}
    assert a.visible(rep_h) == {"Mine", "Theirs"}
    updated = a.call("PATCH", "/roles/viewer", 200, {"fields": {"customer": {"phone": None}}})
    assert updated.get("fields", {}).get("customer", {}) == {}
    assert "phone" in a.client.get("/api/v1/records/customer", headers=rep_h).get_json()["items"][0]
    updated = a.call("PATCH", "/roles/viewer", 200, {"label": {"zh": "只读"}})
    assert updated["label"] == {"en": "Viewer", "zh": "只读"}
    assert updated["permissions"]["customer"] == {"read": "department", "update": "self"}

    # A role still held can't be deleted; once nobody has it, it can.
    error = error_of(a.client.delete("/api/v1/admin/roles/viewer", headers=a.headers), 409, "conflict")
    assert "viewer" in error["message"]
    assert a.visible(rep_h) == {"Mine", "Theirs"}
    a.call("PATCH", f"/users/{rep}", 200, {"roles": []})
    assert a.client.delete("/api/v1/admin/roles/viewer", headers=a.headers).status_code == 204
    error_of(a.client.get("/api/v1/admin/roles/viewer", headers=a.headers), 404, "not_found")
    error_of(a.client.get("/api/v1/records/customer", headers=rep_h), 403, "forbidden")
    error = error_of(a.client.patch(f"/api/v1/admin/users/{rep}", json={"roles": ["viewer"]}, headers=a.headers),
                     422, "validation_error")
    assert "roles" in error["fields"]


def test_a_template_role_can_be_edited_deleted_and_defined_afresh(make_app):
    a = Admin(make_app)
    sales = a.department("Sales")
    rep, rep_h = a.user("rep", department_id=sales, roles=("reader",))
    mine = a.customer(rep, sales, "Mine")
    assert a.visible(rep_h) == {"Mine"}
    error_of(a.client.patch(f"/api/v1/records/customer/{mine}", json={"name": "Renamed", "version": 1},
                            headers=rep_h), 403, "forbidden")
    # Edited: the override sits in the instance layer, over the template's definition.
    edited = a.call("PATCH", "/roles/reader", 200, {"permissions": {"customer": {"update": "self"}}})
    assert edited["permissions"]["customer"] == {"read": "department_and_children", "update": "self"}
    r = a.client.patch(f"/api/v1/records/customer/{mine}", json={"name": "Renamed", "version": 1}, headers=rep_h)
    assert r.status_code == 200, r.get_json()
    a.call("PATCH", f"/users/{rep}", 200, {"roles": []})
    assert a.client.delete("/api/v1/admin/roles/reader", headers=a.headers).status_code == 204
    assert "reader" not in {r["name"] for r in a.call("GET", "/roles", 200)["items"]}
    # Defined again: nothing of the template's (or the old override's) definition comes back.
    fresh = a.call("POST", "/roles", 201, {"name": "reader", "permissions": {"customer": {"read": "self"}}})
    assert fresh == {"kind": "role", "name": "reader", "permissions": {"customer": {"read": "self"}}}
    again = a.call("PATCH", "/roles/reader", 200, {"label": "Reader again"})
    assert again == {**fresh, "label": "Reader again"}
    assert a.call("GET", "/roles/reader", 200) == again


BAD_ROLES = [
    {}, {"name": ["x"]}, {"name": 5}, {"name": "Bad Name"}, {"name": "r1", "$remove": True},
    {"name": "r1", "permissions": {"customer": {"read": "everything"}}},
    {"name": "r1", "permissions": {"nothing_here": {"read": "all"}}},
    {"name": "r1", "permissions": "all"}, {"name": "r1", "fields": {"customer": {"name": "invisible"}}},
    {"name": "r1", "colour": "red"}, {"name": "r1", "label": {"fr": "Rôle"}},
]


def test_bad_role_input_is_4xx_with_the_error_shape_and_changes_nothing(make_app):
    a = Admin(make_app)
    before = a.call("GET", "/roles", 200)
    for body in BAD_ROLES:
        _error(a.client.post("/api/v1/admin/roles", json=body, headers=a.headers))
        patch = {k: v for k, v in body.items() if k != "name"}
        if patch:
            _error(a.client.patch("/api/v1/admin/roles/reader", json=patch, headers=a.headers))
    _error(a.client.patch("/api/v1/admin/roles/reader", json={"name": "renamed"}, headers=a.headers))
    for junk in ("[]", "nope", "{", "[" * 50000):
        _error(a.client.post("/api/v1/admin/roles", data=junk, content_type="application/json", headers=a.headers))
        _error(a.client.patch("/api/v1/admin/roles/reader", data=junk, content_type="application/json",
                              headers=a.headers))
    assert a.call("GET", "/roles", 200) == before
    assert not [x for x in a.call("GET", "/audit", 200)["items"] if x["action"].startswith("role.")]


# ---------------------------------------------------------------- bad input anywhere

JUNK = [None, "[]", "nope", "{", "[" * 50000, '{"name": "\\ud800"}', '"text"', "12"]
JUNK_FIELDS = [{"name": None}, {"name": ""}, {"name": "x" * 201}, {"name": "nul\x00"}, {"name": 5},
               {"name": "ok", "parent": "1"}, {"name": "ok", "parent": 10**20}, {"name": "ok", "parent": 9999},
               {"name": "ok", "head": 9999}, {"name": "ok", "head": True}, {"name": "ok", "position": 2**40},
               {"name": "ok", "position": "1"}, {"name": "ok", "colour": "red"}]


def test_bad_input_to_department_and_user_endpoints_is_4xx_never_500(make_app):
    a = Admin(make_app)
    dept = a.department("Sales")
    uid, _ = a.user("rep", department_id=dept)
    posts = ["/departments", "/users", f"/users/{uid}/transfer"]
    patches = [f"/departments/{dept}", f"/users/{uid}"]
    for junk in JUNK:
        for path in posts:
            _error(a.client.post(f"/api/v1/admin{path}", data=junk, content_type="application/json",
                                 headers=a.headers))
        for path in patches:
            _error(a.client.patch(f"/api/v1/admin{path}", data=junk, content_type="application/json",
                                  headers=a.headers))
    for body in JUNK_FIELDS:
        _error(a.client.post("/api/v1/admin/departments", json=body, headers=a.headers))
        _error(a.client.patch(f"/api/v1/admin/departments/{dept}", json=body, headers=a.headers))
    for body in ({"to_user": 10**20}, {"to_user": -1}, {"to_user": uid}, {"to_user": a.admin_id, "entities": [1]},
                 {"to_user": a.admin_id, "entities": ["customer", "nothing"]}, {"to_user": None}):
        _error(a.client.post(f"/api/v1/admin/users/{uid}/transfer", json=body, headers=a.headers))
    for body in ({"manager_id": 10**20}, {"manager_id": uid}, {"department_id": -5}, {"roles": [1]},
                 {"password": None}, {"password": "short"}, {"is_admin": None}):
        _error(a.client.patch(f"/api/v1/admin/users/{uid}", json=body, headers=a.headers))
    assert a.call("GET", f"/departments/{dept}", 200) == {"id": dept, "name": "Sales", "parent": None, "head": None,
                                                          "position": 0}
    user = a.call("GET", f"/users/{uid}", 200)
    assert (user["manager_id"], user["department_id"], user["roles"], user["is_admin"]) == (None, dept, [], False)


# ---------------------------------------------------------------- audit log

def test_the_audit_log_lists_admin_actions_newest_first(make_app):
    a = Admin(make_app)
    d = a.department("Sales")
    a.call("PATCH", f"/departments/{d}", 200, {"name": "Sales 2"})
    uid = a.call("POST", "/users", 201, {"username": "newbie", "password": "first-pass-1", "roles": ["reader"]})["id"]
    a.call("PATCH", f"/users/{uid}", 200, {"roles": ["manager"], "password": "second-pass-2"})
    a.call("POST", f"/users/{uid}/deactivate", 200)
    a.call("POST", f"/users/{uid}/activate", 200)
    a.call("POST", f"/users/{uid}/transfer", 200, {"to_user": a.admin_id})
    a.call("POST", "/roles", 201, {"name": "temp"})
    a.call("PATCH", "/roles/temp", 200, {"label": "Temp"})
    assert a.client.delete("/api/v1/admin/roles/temp", headers=a.headers).status_code == 204
    a.call("PATCH", f"/users/{uid}", 200, {"department_id": None})  # no change: not audited
    assert a.client.delete(f"/api/v1/admin/departments/{d}", headers=a.headers).status_code == 204
    items = a.call("GET", "/audit", 200)["items"]
    assert [(i["action"], i["target"]) for i in items] == [
        ("department.delete", f"department:{d}"), ("role.delete", "role:temp"),
        ("role.update", "role:temp"), ("role.create", "role:temp"), ("user.transfer", f"user:{uid}"),
        ("user.activate", f"user:{uid}"), ("user.deactivate", f"user:{uid}"), ("user.update", f"user:{uid}"),
        ("user.create", f"user:{uid}"), ("department.update", f"department:{d}"),
        ("department.create", f"department:{d}")]
    assert {(i["by"], i["by_name"]) for i in items} == {(a.admin_id, "Admin")}
    assert all(i["at"].endswith("+00:00") for i in items)
    roles_change = items[7]["detail"]
    assert roles_change["changes"]["roles"] == {"old": ["reader"], "new": ["manager"]}
    assert roles_change["changes"]["password"] == {"old": "***", "new": "***"}
    text = json.dumps(items)
    assert "first-pass-1" not in text and "second-pass-2" not in text
    with a.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(systables.audit_log)).scalar_one() == len(items)
