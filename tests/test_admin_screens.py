"""The organisation admin screens (`/admin/...`) over HTTP: every page renders for an
admin and is 403 for anyone else; posts need the CSRF token; creating a department and
a user, deactivating and transferring, and saving the role matrix go through the same
runtime functions as the admin API, with refusals shown next to the field."""
from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from metacrm.runtime import accounts, systables
from metacrm.runtime.clock import utcnow
from metacrm.runtime.web.context import EXTENSION

from .support import ADMIN, add_user, entity

CUSTOMER = entity("customer", {"name": "name", "type": "text", "required": True, "searchable": True},
                  {"name": "phone", "type": "phone"}, title_field="name", ownership=True)
NOTE = entity("note", {"name": "title", "type": "text", "required": True}, title_field="title", ownership=True)
REP = {"kind": "role", "name": "rep", "label": {"en": "Rep", "zh": "销售"},
       "permissions": {"customer": {"create": True, "read": "self", "update": "self"}}}
DOCS = [CUSTOMER, NOTE, REP]
PAGES = ["/admin/users", "/admin/users/new", "/admin/departments", "/admin/roles", "/admin/roles/rep",
         "/admin/audit"]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def sign_in(client: Any, username: str, password: str) -> Any:
    token = csrf_of(client.get("/login").get_data(as_text=True))
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": token, "next": "/"})
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    return client


class Site:
    def __init__(self, make_app: Any):
        self.app = make_app(DOCS)
        self.engine: sa.Engine = self.app.extensions[EXTENSION].engine
        self.admin = sign_in(self.app.test_client(), *ADMIN)
        self.token = csrf_of(self.admin.get("/admin/users").get_data(as_text=True))

    def post(self, url: str, data: dict[str, Any], status: int = 302, client: Any = None) -> Any:
        r = (client or self.admin).post(url, data={"csrf_token": self.token, **data})
        assert r.status_code == status, (url, r.status_code, r.get_data(as_text=True)[:2000])
        return r

    def scalar(self, stmt: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(stmt).scalar()

    def user_id(self, username: str) -> int:
        return self.scalar(sa.select(systables.users.c.id).where(systables.users.c.username == username))

    def department_id(self, name: str) -> int:
        return self.scalar(sa.select(systables.departments.c.id).where(systables.departments.c.name == name))

    def customer(self, owner: int, name: str) -> int:
        t = self.app.extensions[EXTENSION].catalog().entities["customer"].table
        with self.engine.begin() as conn:
            return conn.execute(t.insert().values(name=name, owner=owner, version=1, created_at=utcnow(),
                                                  updated_at=utcnow()).returning(t.c.id)).scalar_one()


@pytest.fixture
def site(make_app: Any) -> Site:
    return Site(make_app)


def test_every_admin_page_renders_for_an_admin_in_both_languages_and_links_in_the_sidebar(site):
    for url in PAGES:
        r = site.admin.get(url)
        assert r.status_code == 200, (url, r.get_data(as_text=True)[:500])
    # Odd query strings are filters that match nothing, never a 500.
    for url in ("/admin/audit?target=%00x&action=%00&by=%D9%A3&page=%D9%A3",
                "/admin/users?q=%00&department=%D9%A3&page=0&status=nope"):
        assert site.admin.get(url).status_code == 200, url
    html = site.admin.get("/admin/users").get_data(as_text=True)
    for endpoint in ("/admin/users", "/admin/departments", "/admin/roles", "/admin/audit"):
        assert f'href="{endpoint}"' in html
    site.post("/lang", {"language": "zh", "next": "/admin/roles/rep"})
    html = site.admin.get("/admin/roles/rep").get_data(as_text=True)
    assert "角色权限" in html and "本部门及下级部门" in html and "字段权限" in html


def test_non_admins_get_403_on_every_admin_page_and_post_and_see_no_link(site):
    with site.engine.begin() as conn:
        add_user(conn, "rep", roles=["rep"])
    rep = sign_in(site.app.test_client(), "rep", "rep-pass-1")
    token = csrf_of(rep.get("/").get_data(as_text=True))
    assert 'href="/admin/users"' not in rep.get("/").get_data(as_text=True)
    for url in PAGES:
        assert rep.get(url).status_code == 403, url
    r = rep.post("/admin/departments", data={"csrf_token": token, "name": "Rogue"})
    assert r.status_code == 403
    assert site.scalar(sa.select(sa.func.count()).select_from(systables.departments)) == 0
    # Not signed in: the login page.
    r = site.app.test_client().get("/admin/users")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_posts_without_the_csrf_token_are_refused_and_change_nothing(site):
    r = site.admin.post("/admin/departments", data={"name": "Sales"})
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
    r = site.admin.post("/admin/users/new", data={"username": "x", "password": "long-enough-1"})
    assert r.status_code == 400
    assert site.scalar(sa.select(sa.func.count()).select_from(systables.departments)) == 0
    assert site.user_id("x") is None


def test_department_tree_create_rename_move_head_and_refused_cycles_and_deletes(site):
    site.post("/admin/departments", {"name": "HQ", "parent": ""})
    hq = site.department_id("HQ")
    site.post("/admin/departments", {"name": "Sales", "parent": str(hq)})
    sales = site.department_id("Sales")
    site.post("/admin/departments", {"name": "North", "parent": str(sales)})
    north = site.department_id("North")
    html = site.admin.get("/admin/departments").get_data(as_text=True)
    # Tree order, each level indented one step further.
    assert html.index("<strong>HQ</strong>") < html.index("<strong>Sales</strong>") < html.index("<strong>North</strong>")
    assert 'style="padding-left: 3.0rem" data-department="%d"' % north in html
    # An empty name is refused next to the field.
    r = site.post("/admin/departments", {"name": "  ", "parent": ""}, status=422)
    assert 'data-error-for="name"' in r.get_data(as_text=True)
    # So is a parent id no row can have (PostgreSQL's integer would overflow).
    r = site.post("/admin/departments", {"name": "Far", "parent": "9999999999"}, status=422)
    assert "parent must be an id." in r.get_data(as_text=True)
    # Moving HQ under its own grandchild is a cycle: refused, nothing changes.
    r = site.post(f"/admin/departments/{hq}", {"name": "HQ", "parent": str(north), "head": ""}, status=422)
    assert "Would create a cycle." in r.get_data(as_text=True)
    assert site.scalar(sa.select(systables.departments.c.parent_id).where(systables.departments.c.id == hq)) is None
    # Rename, move and set the head in one save.
    admin_id = site.user_id(ADMIN[0])
    site.post(f"/admin/departments/{north}", {"name": "North China", "parent": str(hq), "head": str(admin_id)})
    with site.engine.connect() as conn:
        row = conn.execute(sa.select(systables.departments).where(systables.departments.c.id == north)).one()
    assert (row.name, row.parent_id, row.head_id) == ("North China", hq, admin_id)
    # A department with children or people can't be deleted; an empty one can.
    r = site.post(f"/admin/departments/{hq}/delete", {}, status=409)
    assert "sub-departments" in r.get_data(as_text=True)
    with site.engine.begin() as conn:
        add_user(conn, "member", department_id=sales)
    r = site.post(f"/admin/departments/{sales}/delete", {}, status=409)
    assert "members" in r.get_data(as_text=True)
    site.post(f"/admin/departments/{north}/delete", {})
    assert site.department_id("North China") is None


def test_admin_creates_edits_deactivates_and_reactivates_a_user_through_the_forms(site):
    site.post("/admin/departments", {"name": "Sales", "parent": ""})
    sales = site.department_id("Sales")
    r = site.post("/admin/users/new", {"username": "ann", "password": "short", "display_name": "Ann",
                                       "department_id": str(sales), "roles": "rep", "language": "zh"}, status=422)
    html = r.get_data(as_text=True)
    assert 'data-error-for="password"' in html and 'value="ann"' in html  # what was typed is kept
    assert site.user_id("ann") is None
    r = site.post("/admin/users/new", {"username": "ann", "password": "ann-pass-123", "display_name": "Ann",
                                       "department_id": str(sales), "roles": "nope", "language": "zh"}, status=422)
    assert "Unknown role" in r.get_data(as_text=True)
    site.post("/admin/users/new", {"username": "ann", "password": "ann-pass-123", "display_name": "Ann",
                                   "department_id": str(sales), "roles": "rep", "language": "zh"})
    ann = site.user_id("ann")
    with site.engine.connect() as conn:
        account = accounts.get_account(conn, ann)
        roles = set(conn.execute(sa.select(systables.user_roles.c.role)
                                 .where(systables.user_roles.c.user_id == ann)).scalars())
    assert (account.department_id, account.language, roles) == (sales, "zh", {"rep"})
    # The list finds her by name and by department; the manager can't be herself.
    assert 'data-user="ann"' in site.admin.get("/admin/users?q=aNN").get_data(as_text=True)  # any case
    assert 'data-user="ann"' in site.admin.get(f"/admin/users?department={sales}").get_data(as_text=True)
    assert 'data-user="ann"' not in site.admin.get("/admin/users?q=zzz").get_data(as_text=True)
    site.post(f"/admin/users/{ann}", {"display_name": "Ann Lee", "email": "", "department_id": "", "manager_id": "",
                                      "language": "en", "roles": "rep"})
    assert site.admin.get(f"/admin/users/{ann}").status_code == 200
    with site.engine.connect() as conn:
        account = accounts.get_account(conn, ann)
    assert (account.display_name, account.department_id, account.language) == ("Ann Lee", None, "en")
    # Deactivated (离职): her session ends; reactivated, she signs in again.
    ann_client = sign_in(site.app.test_client(), "ann", "ann-pass-123")
    site.post(f"/admin/users/{ann}/deactivate", {})
    assert ann_client.get("/r/customer").status_code == 302
    assert 'data-user="ann"' in site.admin.get("/admin/users?status=inactive").get_data(as_text=True)
    site.post(f"/admin/users/{ann}/activate", {})
    sign_in(site.app.test_client(), "ann", "ann-pass-123")
    # The admin can't deactivate themselves: the page says why.
    r = site.post(f"/admin/users/{site.user_id(ADMIN[0])}/deactivate", {}, status=409)
    assert "deactivate yourself" in r.get_data(as_text=True)
    # Password reset: two different entries are refused; a good one works.
    r = site.post(f"/admin/users/{ann}/password", {"password": "new-pass-123", "password_again": "x"}, status=422)
    assert 'data-error-for="password_again"' in r.get_data(as_text=True)
    site.post(f"/admin/users/{ann}/password", {"password": "new-pass-123", "password_again": "new-pass-123"})
    sign_in(site.app.test_client(), "ann", "new-pass-123")
    actions = site.admin.get(f"/admin/audit?target=user:{ann}").get_data(as_text=True)
    for action in ("user.create", "user.update", "user.deactivate", "user.activate"):
        assert f'data-action="{action}"' in actions
    assert 'data-action="department.create"' not in actions


def test_transfer_through_the_form_moves_all_or_some_kinds_of_records(site):
    with site.engine.begin() as conn:
        ann = add_user(conn, "ann", roles=["rep"])
        bob = add_user(conn, "bob", roles=["rep"])
    c1, c2 = site.customer(ann, "Ann 1"), site.customer(ann, "Ann 2")
    t = site.app.extensions[EXTENSION].catalog().entities["note"].table
    with site.engine.begin() as conn:
        conn.execute(t.insert().values(title="Ann note", owner=ann, version=1, created_at=utcnow(), updated_at=utcnow()))
    assert site.admin.get(f"/admin/users/{ann}/transfer").status_code == 200
    r = site.post(f"/admin/users/{ann}/transfer", {"to_user": "", "scope": "all"}, status=422)
    assert 'data-error-for="to_user"' in r.get_data(as_text=True)
    r = site.post(f"/admin/users/{ann}/transfer", {"to_user": str(bob), "scope": "some"}, status=422)
    assert 'data-error-for="entities"' in r.get_data(as_text=True)
    site.post(f"/admin/users/{ann}/transfer", {"to_user": str(bob), "scope": "some", "entities": "customer"})
    customers = site.app.extensions[EXTENSION].catalog().entities["customer"].table
    with site.engine.connect() as conn:
        owners = dict(conn.execute(sa.select(customers.c.id, customers.c.owner)).all())
        note_owner = conn.execute(sa.select(t.c.owner)).scalar_one()
    assert owners == {c1: bob, c2: bob} and note_owner == ann
    site.post(f"/admin/users/{ann}/transfer", {"to_user": str(bob), "scope": "all"})
    assert site.scalar(sa.select(t.c.owner)) == bob


def test_role_matrix_saves_through_the_publish_path_and_shows_bad_cells_inline(site):
    with site.engine.begin() as conn:
        ann = add_user(conn, "ann", roles=["rep"])
        bob = add_user(conn, "bob", roles=["rep"])
    site.customer(ann, "Ann's")
    site.customer(bob, "Bob's")
    ann_client = sign_in(site.app.test_client(), "ann", "ann-pass-1")
    assert {i["name"] for i in ann_client.get("/api/v1/records/customer").get_json()["items"]} == {"Ann's"}
    html = site.admin.get("/admin/roles/rep").get_data(as_text=True)
    assert re.search(r'name="perm.customer.read"[^>]*>.*?<option value="self" selected', html, re.S)
    # An unknown scope: 422, the message under that cell, nothing published.
    r = site.post("/admin/roles/rep", {"perm.customer.read": "everything", "perm.customer.create": "1"}, status=422)
    html = r.get_data(as_text=True)
    assert 'data-error-for="perm.customer.read"' in html and "Not a scope: everything" in html
    assert {i["name"] for i in ann_client.get("/api/v1/records/customer").get_json()["items"]} == {"Ann's"}
    # A good save: read widened to all, update dropped, phone hidden; applies at once.
    site.post("/admin/roles/rep", {"label_en": "Rep", "label_zh": "销售", "perm.customer.create": "1",
                                   "perm.customer.read": "all", "perm.customer.update": "",
                                   "perm.note.read": "self", "field.customer.phone": "hidden"})
    items = ann_client.get("/api/v1/records/customer").get_json()["items"]
    assert {i["name"] for i in items} == {"Ann's", "Bob's"} and all("phone" not in i for i in items)
    role = site.admin.get("/api/v1/admin/roles/rep").get_json()
    assert role["permissions"] == {"customer": {"create": True, "read": "all"}, "note": {"read": "self"}}
    assert role["fields"] == {"customer": {"phone": "hidden"}}
    assert role["label"] == {"en": "Rep", "zh": "销售"}
    # Clearing the field restriction and the note row lifts them.
    site.post("/admin/roles/rep", {"label_en": "Rep", "label_zh": "销售", "perm.customer.create": "1",
                                   "perm.customer.read": "all", "field.customer.phone": ""})
    role = site.admin.get("/api/v1/admin/roles/rep").get_json()
    assert role["permissions"] == {"customer": {"create": True, "read": "all"}} and not role.get("fields", {}).get("customer")
    assert 'data-action="role.update"' in site.admin.get("/admin/audit?action=role.update").get_data(as_text=True)


def test_roles_are_created_refused_with_a_reason_and_deleted_when_unheld(site):
    r = site.post("/admin/roles", {"name": "Bad Name"}, status=422)
    assert 'data-error-for="name"' in r.get_data(as_text=True) or "mc-form-error" in r.get_data(as_text=True)
    site.post("/admin/roles", {"name": "auditor", "label_en": "Auditor", "label_zh": "审计"})
    assert site.admin.get("/admin/roles/auditor").status_code == 200
    r = site.post("/admin/roles", {"name": "auditor"}, status=409)
    assert "exists already" in r.get_data(as_text=True)
    r = site.post("/admin/roles/rep/delete", {}, status=302)  # nobody holds rep here
    site.post("/admin/roles/auditor/delete", {})
    assert site.admin.get("/admin/roles/auditor").status_code == 404
