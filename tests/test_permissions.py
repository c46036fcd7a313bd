"""The permission matrix at HTTP level: for every data scope and every path to the data
(list and count, `q`, filters, reads by id, updates, deletes, `expand=` titles, history,
the lookup picker), a user sees exactly the records their roles allow — no more and no
fewer. Then team members, field permissions on every path, users without roles, and
deactivation with record transfer.

The org (three levels below the CEO):

    HQ (head: ceo)                      ceo
    ├── Sales (head: director)          └── director (manager: ceo)
    │   ├── North (head: lead_n)            ├── lead_n → rep_n1, rep_n2 (manager: lead_n)
    │   └── East (head: lead_e)             └── lead_e → rep_e1 (manager: lead_e), rep_e2 (no manager:
    └── Finance                                 below lead_e only as a member of the East department)
                                        fin (Finance, manager: ceo)

Every person owns one customer, "Acme <username>", in their own department.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from metacrm.runtime import systables
from metacrm.runtime.clock import utcnow
from metacrm.runtime.web.context import EXTENSION

from .support import add_user, admin_bearer, bearer, entity, error_of, table_checksum

CUSTOMER = entity("customer",
                  {"name": "name", "type": "text", "required": True, "searchable": True},
                  {"name": "phone", "type": "phone", "searchable": True},
                  {"name": "credit_limit", "type": "currency"},
                  {"name": "level", "type": "select", "options": [{"value": "A"}, {"value": "B"}, {"value": "C"}]},
                  title_field="name", ownership=True)
CONTACT = entity("contact",
                 {"name": "name", "type": "text", "required": True},
                 {"name": "customer", "type": "lookup", "target": "customer"},
                 title_field="name", ownership=True)
SCOPES = ("self", "self_and_subordinates", "department", "department_and_children", "all")


def _role(name: str, customer: dict[str, Any], fields: dict[str, str] | None = None) -> dict[str, Any]:
    doc = {"kind": "role", "name": name, "label": name,
           "permissions": {"customer": customer, "contact": {"read": "all", "create": True, "update": "self"}}}
    if fields:
        doc["fields"] = {"customer": fields}
    return doc


ROLES = [
    *(_role(f"scope_{s}", {"read": s, "update": s, "delete": s}) for s in SCOPES),
    # Read everything, but change and delete only within the scope: the 403 cases.
    *(_role(f"write_{s}", {"read": "all", "update": s, "delete": s}) for s in SCOPES),
    _role("restricted", {"create": True, "read": "all", "update": "all"},
          {"phone": "masked", "credit_limit": "hidden", "level": "readonly"}),
    _role("plain", {"create": True, "read": "all", "update": "all"}),
    _role("self_only", {"read": "self", "update": "self", "delete": "self"}),
    {"kind": "role", "name": "contacts_only", "label": "Contacts only", "permissions": {"contact": {"read": "all"}}},
]
DOCS = [CUSTOMER, CONTACT, *ROLES]

PEOPLE = ("ceo", "director", "lead_n", "lead_e", "rep_n1", "rep_n2", "rep_e1", "rep_e2", "fin")
#: username → (department, manager)
ORG = {"ceo": ("HQ", None), "director": ("Sales", "ceo"), "lead_n": ("North", "director"),
       "lead_e": ("East", "director"), "rep_n1": ("North", "lead_n"), "rep_n2": ("North", "lead_n"),
       "rep_e1": ("East", "lead_e"), "rep_e2": ("East", None), "fin": ("Finance", "ceo")}
#: department → (parent, head)
DEPARTMENTS = {"HQ": (None, "ceo"), "Sales": ("HQ", "director"), "North": ("Sales", "lead_n"),
               "East": ("Sales", "lead_e"), "Finance": ("HQ", None)}

EVERYONE = frozenset(PEOPLE)
NORTH = frozenset({"lead_n", "rep_n1", "rep_n2"})
EAST = frozenset({"lead_e", "rep_e1", "rep_e2"})
SALES = NORTH | EAST | {"director"}
VIEWERS = ("ceo", "director", "lead_e", "rep_n1", "rep_e2", "fin")
#: scope → viewer → whose customers they may see (written out by hand, not computed).
EXPECTED: dict[str, dict[str, frozenset[str]]] = {
    "self": {v: frozenset({v}) for v in VIEWERS},
    "self_and_subordinates": {"ceo": EVERYONE, "director": SALES, "lead_e": EAST, "rep_n1": frozenset({"rep_n1"}),
                              "rep_e2": frozenset({"rep_e2"}), "fin": frozenset({"fin"})},
    "department": {"ceo": frozenset({"ceo"}), "director": frozenset({"director"}), "lead_e": EAST,
                   "rep_n1": NORTH, "rep_e2": EAST, "fin": frozenset({"fin"})},
    "department_and_children": {"ceo": EVERYONE, "director": SALES, "lead_e": EAST, "rep_n1": NORTH,
                                "rep_e2": EAST, "fin": frozenset({"fin"})},
    "all": {v: EVERYONE for v in VIEWERS},
}


@dataclass
class Org:
    app: Any
    client: Any
    engine: sa.Engine
    admin: dict[str, str]
    users: dict[str, int] = field(default_factory=dict)
    departments: dict[str, int] = field(default_factory=dict)
    customers: dict[str, int] = field(default_factory=dict)  # owner's username → customer id
    contacts: dict[str, int] = field(default_factory=dict)  # the customer's owner → contact id
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    sessions: dict[str, Any] = field(default_factory=dict)

    def table(self, entity: str) -> sa.Table:
        return self.app.extensions[EXTENSION].catalog().entities[entity].table

    def insert_customer(self, owner: str, name: str | None = None, **values: Any) -> int:
        t = self.table("customer")
        now = utcnow()
        with self.engine.begin() as conn:
            return conn.execute(t.insert().values(
                name=name or f"Acme {owner}", owner=self.users[owner],
                department=self.departments[ORG[owner][0]], version=1, created_at=now, updated_at=now,
                **values).returning(t.c.id)).scalar_one()

    def as_(self, username: str) -> Any:
        """A test client signed in as `username` (a session: cheaper per request than a
        token, whose every use is written down)."""
        if username not in self.sessions:
            client = self.app.test_client()
            r = client.post("/api/v1/auth/login", json={"username": username, "password": f"{username}-pass-1"})
            assert r.status_code == 200, r.get_json()
            self.sessions[username] = client
        return self.sessions[username]

    def checksum(self) -> Any:
        return table_checksum(self.engine, "ent_customer", ["name", "phone", "credit_limit", "level", "owner",
                                                             "department", "version"])


def build_org(make_app: Any, roles: dict[str, tuple[str, ...]]) -> Org:
    """The org above, each person holding `roles[username]` (default none), one customer
    each (phone 1381234<nnnn>, credit 1000) and one contact per customer owned by the admin."""
    app = make_app(DOCS)
    engine = app.extensions[EXTENSION].engine
    org = Org(app, app.test_client(), engine, admin_bearer(app))
    d = systables.departments
    with engine.begin() as conn:
        for name, (parent, _) in DEPARTMENTS.items():
            org.departments[name] = conn.execute(d.insert().values(
                name=name, parent_id=org.departments.get(parent or ""), created_at=utcnow()).returning(d.c.id)
            ).scalar_one()
        for username, (dept, manager) in ORG.items():
            org.users[username] = add_user(conn, username, roles=roles.get(username, ()),
                                           department_id=org.departments[dept],
                                           manager_id=org.users[manager] if manager else None)
            org.tokens[username] = bearer(conn, org.users[username])
        for name, (_, head) in DEPARTMENTS.items():
            if head:
                conn.execute(d.update().where(d.c.id == org.departments[name]).values(head_id=org.users[head]))
    for i, p in enumerate(PEOPLE):
        org.customers[p] = org.insert_customer(p, phone=f"1381234{i:04d}", credit_limit=1000, level="A")
    t = org.table("contact")
    now = utcnow()
    with engine.begin() as conn:
        for p in PEOPLE:
            org.contacts[p] = conn.execute(t.insert().values(
                name=f"Contact of {p}", customer=org.customers[p], version=1, created_at=now,
                updated_at=now).returning(t.c.id)).scalar_one()
    return org


def _get(org: Org, who: str, url: str, status: int = 200) -> Any:
    r = org.as_(who).get(url)
    assert r.status_code == status, (who, url, r.status_code, r.get_data(as_text=True))
    return r.get_json()


def _names(body: dict[str, Any]) -> set[str]:
    return {item["name"] for item in body["items"]}


def _acme(people: frozenset[str] | set[str]) -> set[str]:
    return {f"Acme {p}" for p in people}


def _filter(conditions: Any) -> str:
    return quote(json.dumps(conditions))


# ---------------------------------------------------------------- the matrix: reading

@pytest.mark.parametrize("scope", SCOPES, ids=SCOPES)
def test_each_scope_sees_exactly_its_records_on_every_read_path(make_app, scope):
    org = build_org(make_app, {p: (f"scope_{scope}",) for p in PEOPLE})
    for viewer in VIEWERS:
        allowed = EXPECTED[scope][viewer]
        want = _acme(allowed)
        # The list and its count.
        body = _get(org, viewer, "/api/v1/records/customer?page_size=100")
        assert _names(body) == want and body["total"] == len(want), (viewer, _names(body))
        # Paging doesn't leak either: page 2 of size 1 holds the second allowed record, total unchanged.
        body = _get(org, viewer, "/api/v1/records/customer?page_size=1&page=2&sort=name")
        assert body["total"] == len(want) and [i["name"] for i in body["items"]] == sorted(want)[1:2]
        # Full-text q, and a filter on the name (one condition matching every record).
        body = _get(org, viewer, "/api/v1/records/customer?q=acme&page_size=100")
        assert _names(body) == want and body["total"] == len(want), viewer
        body = _get(org, viewer, "/api/v1/records/customer?page_size=100&filter="
                    + _filter([["name", "in", sorted(_acme(EVERYONE))]]))
        assert _names(body) == want and body["total"] == len(want), viewer
        body = _get(org, viewer, "/api/v1/records/customer?filter="
                    + _filter([{"any": [["name", "starts with", "Acme"], ["owner", "is not empty"]]}]))
        assert body["total"] == len(want), viewer
        for p in PEOPLE:
            # The lookup picker: the list searched by what the user types, ten at a time.
            body = _get(org, viewer, f"/api/v1/records/customer?q={p}&page_size=10")
            assert _names(body) == _acme({p} & allowed) and body["total"] == len({p} & allowed), (viewer, p)
            # Read by id and history: 404 outside the scope (never 403, which would confirm it exists).
            url = f"/api/v1/records/customer/{org.customers[p]}"
            if p in allowed:
                assert _get(org, viewer, url)["name"] == f"Acme {p}"
                assert _get(org, viewer, url + "/history")["items"] is not None
            else:
                error_of(org.as_(viewer).get(url), 404, "not_found")
                error_of(org.as_(viewer).get(url + "/history"), 404, "not_found")
        # expand= on contacts (readable by everyone): a customer's title only when it is readable.
        body = _get(org, viewer, "/api/v1/records/contact?expand=customer&page_size=100")
        assert body["total"] == len(PEOPLE)
        titles = {item["name"]: item["customer__title"] for item in body["items"]}
        assert titles == {f"Contact of {p}": (f"Acme {p}" if p in allowed else None) for p in PEOPLE}, viewer
        for p in PEOPLE:
            one = _get(org, viewer, f"/api/v1/records/contact/{org.contacts[p]}?expand=customer")
            assert one["customer"] == org.customers[p]
            assert one["customer__title"] == (f"Acme {p}" if p in allowed else None), (viewer, p)


# ---------------------------------------------------------------- the matrix: writing

@pytest.mark.parametrize("scope", SCOPES, ids=SCOPES)
def test_each_scope_changes_and_deletes_exactly_its_records(make_app, scope):
    org = build_org(make_app, {p: (f"scope_{scope}",) for p in PEOPLE})
    for n, viewer in enumerate(VIEWERS):
        allowed = EXPECTED[scope][viewer]
        c = org.as_(viewer)
        before = org.checksum()
        for p in sorted(EVERYONE - allowed):  # outside the read scope: 404 for both, nothing changes
            url = f"/api/v1/records/customer/{org.customers[p]}"
            error_of(c.patch(url, json={"name": "Hacked", "version": 1}), 404, "not_found")
            error_of(c.delete(url), 404, "not_found")
            error_of(c.delete(url + "?version=1"), 404, "not_found")
        assert org.checksum() == before
        for p in sorted(allowed):  # inside: every one of them can be changed
            url = f"/api/v1/records/customer/{org.customers[p]}"
            version = _get(org, viewer, url)["version"]
            r = c.patch(url, json={"credit_limit": str(2000 + n), "version": version})
            assert r.status_code == 200, (viewer, p, r.get_json())
            assert r.get_json()["credit_limit"] == f"{2000 + n}.00"
        # Deleting: a throw-away record per person; exactly the allowed ones go.
        extra = {p: org.insert_customer(p, name=f"Extra {p}") for p in PEOPLE}
        for p in PEOPLE:
            r = c.delete(f"/api/v1/records/customer/{extra[p]}")
            if p in allowed:
                assert r.status_code == 204, (viewer, p, r.get_data(as_text=True))
            else:
                error_of(r, 404, "not_found")
        t = org.table("customer")
        with org.engine.begin() as conn:
            left = set(conn.execute(sa.select(t.c.name).where(t.c.name.like("Extra %"))).scalars())
            assert left == {f"Extra {p}" for p in EVERYONE - allowed}, viewer
            conn.execute(t.delete().where(t.c.name.like("Extra %")))


@pytest.mark.parametrize("scope", SCOPES[:-1], ids=SCOPES[:-1])
def test_readable_records_outside_the_write_scope_are_403_and_unchanged(make_app, scope):
    """A role reading everything but changing only within `scope`: the others answer 403."""
    org = build_org(make_app, {p: (f"write_{scope}",) for p in PEOPLE})
    for viewer in VIEWERS:
        allowed = EXPECTED[scope][viewer]
        c = org.as_(viewer)
        body = _get(org, viewer, "/api/v1/records/customer?page_size=100")
        assert body["total"] == len(PEOPLE)
        before = org.checksum()
        for p in sorted(EVERYONE - allowed):
            url = f"/api/v1/records/customer/{org.customers[p]}"
            version = _get(org, viewer, url)["version"]
            error = error_of(c.patch(url, json={"name": "Hacked", "version": version}), 403, "forbidden")
            assert "update" in error["message"]
            error = error_of(c.delete(url), 403, "forbidden")
            assert "delete" in error["message"]
        assert org.checksum() == before
        for p in sorted(allowed):
            url = f"/api/v1/records/customer/{org.customers[p]}"
            version = _get(org, viewer, url)["version"]
            r = c.patch(url, json={"level": "B" if version % 2 else "C", "version": version})
            assert r.status_code == 200, (viewer, p, r.get_json())


def test_no_role_granting_read_is_403_on_every_path(make_app):
    org = build_org(make_app, {"rep_n1": ("contacts_only",)})
    c = org.as_("rep_n1")
    own = f"/api/v1/records/customer/{org.customers['rep_n1']}"
    for r in (c.get("/api/v1/records/customer"), c.get("/api/v1/records/customer?q=acme"),
              c.get(own), c.get(own + "/history"),
              c.patch(own, json={"name": "x", "version": 1}), c.delete(own),
              c.post("/api/v1/records/customer", json={"name": "Mine"})):
        error_of(r, 403, "forbidden")
    # The contact list works, but expanding its customer shows no title.
    body = _get(org, "rep_n1", "/api/v1/records/contact?expand=customer&page_size=100")
    assert {i["customer__title"] for i in body["items"]} == {None}
    assert org.checksum()[0] == len(PEOPLE)


# ---------------------------------------------------------------- team members

def test_team_members_gain_read_and_with_write_update_on_that_record_only(make_app):
    org = build_org(make_app, {p: ("self_only",) for p in PEOPLE})
    c = org.as_("rep_n1")
    me = org.users["rep_n1"]
    tm = systables.team_members
    with org.engine.begin() as conn:
        conn.execute(tm.insert(), [
            {"entity": "customer", "record_id": org.customers["rep_e1"], "user_id": me, "access": "read",
             "added_at": utcnow()},
            {"entity": "customer", "record_id": org.customers["rep_e2"], "user_id": me, "access": "write",
             "added_at": utcnow()},
            # Shares of other entities, or with someone else, open nothing here.
            {"entity": "contact", "record_id": org.customers["fin"], "user_id": me, "access": "write",
             "added_at": utcnow()},
            {"entity": "customer", "record_id": org.customers["ceo"], "user_id": org.users["rep_n2"],
             "access": "write", "added_at": utcnow()},
        ])
    want = _acme({"rep_n1", "rep_e1", "rep_e2"})
    for url in ("/api/v1/records/customer?page_size=100", "/api/v1/records/customer?q=acme",
                "/api/v1/records/customer?filter=" + _filter([["name", "starts with", "Acme"]])):
        body = _get(org, "rep_n1", url)
        assert _names(body) == want and body["total"] == 3, url
    for p in ("rep_e1", "rep_e2"):
        assert _get(org, "rep_n1", f"/api/v1/records/customer/{org.customers[p]}")["name"] == f"Acme {p}"
    for p in ("fin", "ceo", "rep_n2"):
        error_of(c.get(f"/api/v1/records/customer/{org.customers[p]}"), 404)
    before = org.checksum()
    read_only = f"/api/v1/records/customer/{org.customers['rep_e1']}"
    error_of(c.patch(read_only, json={"name": "Mine now", "version": 1}), 403, "forbidden")
    error_of(c.delete(read_only), 403, "forbidden")
    writable = f"/api/v1/records/customer/{org.customers['rep_e2']}"
    error_of(c.delete(writable), 403, "forbidden")  # deleting stays with the owner's scope
    assert org.checksum() == before
    r = c.patch(writable, json={"name": "Acme rep_e2 (edited)", "version": 1})
    assert r.status_code == 200 and r.get_json()["owner"] == org.users["rep_e2"]
    # Changing the owner is a transfer, which team members don't get.
    error = error_of(c.patch(writable, json={"owner": me, "version": 2}), 403, "forbidden")
    assert "owner" in error["fields"]
    # The team member's view of the contact list shows the shared customers' titles.
    titles = {i["name"]: i["customer__title"]
              for i in _get(org, "rep_n1", "/api/v1/records/contact?expand=customer&page_size=100")["items"]}
    assert titles["Contact of rep_e1"] == "Acme rep_e1" and titles["Contact of fin"] is None


# ---------------------------------------------------------------- field permissions

def _field_org(make_app: Any) -> Org:
    return build_org(make_app, {"rep_n1": ("restricted",), "rep_n2": ("restricted", "plain"),
                                "lead_n": ("plain",)})


def test_hidden_and_masked_fields_in_lists_reads_and_write_responses(make_app):
    org = _field_org(make_app)
    c = org.as_("rep_n1")
    body = _get(org, "rep_n1", "/api/v1/records/customer?page_size=100")
    assert body["total"] == len(PEOPLE)
    for item in body["items"]:
        assert "credit_limit" not in item and item["level"] == "A"
        assert item["phone"].startswith("138****") and len(item["phone"]) == 11
    one = _get(org, "rep_n1", f"/api/v1/records/customer/{org.customers['rep_n1']}")
    assert "credit_limit" not in one and one["phone"] == "138****0004"
    r = c.post("/api/v1/records/customer", json={"name": "New one"})
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert "credit_limit" not in created and created["phone"] is None and created["owner"] == org.users["rep_n1"]
    r = org.client.patch(f"/api/v1/records/customer/{created['id']}", json={"phone": "13900001111", "version": 1},
                         headers=org.admin)
    assert r.status_code == 200 and r.get_json()["phone"] == "13900001111" and "credit_limit" in r.get_json()
    r = c.patch(f"/api/v1/records/customer/{created['id']}", json={"name": "Renamed", "version": 2})
    assert r.status_code == 200, r.get_json()
    assert "credit_limit" not in r.get_json() and r.get_json()["phone"] == "139****1111"
    # A contact's expanded customer still has a title (the title field is readable).
    body = _get(org, "rep_n1", "/api/v1/records/contact?expand=customer&page_size=100")
    assert {i["customer__title"] for i in body["items"]} == _acme(EVERYONE)
    # Expanding a hidden/masked field is refused like an unknown one.
    error_of(c.get("/api/v1/records/customer?expand=credit_limit"), 400)


def test_hidden_and_masked_fields_cannot_be_probed_by_filter_sort_or_q(make_app):
    org = _field_org(make_app)
    c = org.as_("rep_n1")
    for name in ("credit_limit", "phone"):
        for url in (f"/api/v1/records/customer?filter={_filter([[name, 'is not empty']])}",
                    f"/api/v1/records/customer?filter={_filter([{'any': [['name', '=', 'x'], [name, '=', '1']]}])}",
                    f"/api/v1/records/customer?sort={name}", f"/api/v1/records/customer?sort=-{name}"):
            error = error_of(c.get(url), 400, "bad_request")
            assert f"unknown field '{name}'" in error["message"], url
    # q searches the phone for those who may read it, and not for the others.
    assert _get(org, "lead_n", "/api/v1/records/customer?q=12340004")["total"] == 1
    assert _get(org, "rep_n1", "/api/v1/records/customer?q=12340004")["total"] == 0
    assert _get(org, "rep_n1", "/api/v1/records/customer?q=138****")["total"] == 0
    # The readonly field may be filtered and sorted on: it is readable.
    assert _get(org, "rep_n1", f"/api/v1/records/customer?filter={_filter([['level', '=', 'A']])}&sort=-level"
                )["total"] == len(PEOPLE)


def test_readonly_hidden_and_masked_fields_are_refused_on_write_with_the_field_named(make_app):
    org = _field_org(make_app)
    c = org.as_("rep_n1")
    url = f"/api/v1/records/customer/{org.customers['rep_n1']}"
    before = org.checksum()
    for payload in ({"level": "B"}, {"credit_limit": "5"}, {"phone": "13911112222"},
                    {"level": "B", "credit_limit": "5", "name": "fine"}):
        error = error_of(c.patch(url, json={**payload, "version": 1}), 403, "forbidden")
        assert set(error["fields"]) == set(payload) - {"name"}, error
        error = error_of(c.post("/api/v1/records/customer", json={"name": "N", **payload}), 403,
                         "forbidden")
        assert set(error["fields"]) == set(payload) - {"name"}
    assert org.checksum() == before
    # Sending the record back as read — the masked phone, the readonly level unchanged — is accepted.
    current = _get(org, "rep_n1", url)
    r = c.patch(url, json={**current, "name": "Acme rep_n1 renamed"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["phone"] == current["phone"] and r.get_json()["level"] == "A"
    with org.engine.connect() as conn:
        t = org.table("customer")
        row = conn.execute(sa.select(t).where(t.c.id == org.customers["rep_n1"])).mappings().one()
    assert row["phone"] == "13812340004" and row["credit_limit"] == 1000 and row["name"] == "Acme rep_n1 renamed"
    # Someone with a second role that doesn't restrict the fields may write them.
    url2 = f"/api/v1/records/customer/{org.customers['rep_n2']}"
    r = org.as_("rep_n2").patch(url2, json={"level": "C", "credit_limit": "7", "version": 1})
    assert r.status_code == 200 and r.get_json()["level"] == "C" and r.get_json()["credit_limit"] == "7.00"


def test_history_omits_hidden_fields_and_masks_masked_ones(make_app):
    org = _field_org(make_app)
    c = org.client
    url = f"/api/v1/records/customer/{org.customers['rep_n1']}"
    r = c.patch(url, json={"phone": "13955556666", "credit_limit": "1234.5", "level": "B", "version": 1},
                headers=org.admin)
    assert r.status_code == 200
    items = _get(org, "rep_n1", url + "/history")["items"]
    by_field = {i["field"]: i for i in items}
    assert "credit_limit" not in by_field and "credit_limit" not in json.dumps(items)
    assert (by_field["phone"]["old"], by_field["phone"]["new"]) == ("138****0004", "139****6666")
    assert (by_field["level"]["old"], by_field["level"]["new"]) == ("A", "B")
    full = {i["field"]: i for i in _get(org, "lead_n", url + "/history")["items"]}
    assert full["credit_limit"]["new"] == "1234.50" and full["phone"]["new"] == "13955556666"
    union = {i["field"]: i for i in _get(org, "rep_n2", url + "/history")["items"]}
    assert union["credit_limit"]["new"] == "1234.50" and union["phone"]["new"] == "13955556666"


def test_union_of_roles_shows_what_any_role_shows(make_app):
    org = _field_org(make_app)
    one = _get(org, "rep_n2", f"/api/v1/records/customer/{org.customers['fin']}")
    assert one["credit_limit"] == "1000.00" and one["phone"] == "13812340008"
    assert _get(org, "rep_n2", f"/api/v1/records/customer?filter={_filter([['credit_limit', '>', 1]])}")[
        "total"] == len(PEOPLE)
    detail = _get(org, "rep_n2", "/api/v1/meta/entities/customer")
    fields = {f["name"]: f for f in detail["fields"]}
    assert fields["credit_limit"]["writable"] and fields["level"]["writable"] and "masked" not in fields["phone"]
    schema = _get(org, "rep_n2", "/api/v1/openapi.json")["components"]["schemas"]["customer"]
    assert "credit_limit" in schema["properties"]


def _read_only(schema: dict[str, Any]) -> bool:
    return bool(schema.get("readOnly") or any(s.get("readOnly") for s in schema.get("anyOf", ())))


def test_openapi_and_entity_metadata_follow_the_callers_field_rights(make_app):
    org = _field_org(make_app)
    doc = _get(org, "rep_n1", "/api/v1/openapi.json")
    props = doc["components"]["schemas"]["customer"]["properties"]
    assert "credit_limit" not in props and "credit_limit" not in json.dumps(doc)
    assert set(props) >= {"name", "phone", "level"}
    assert _read_only(props["level"]) and _read_only(props["phone"]) and not _read_only(props["name"])
    admin_doc = org.client.get("/api/v1/openapi.json", headers=org.admin).get_json()
    assert "credit_limit" in admin_doc["components"]["schemas"]["customer"]["properties"]

    detail = _get(org, "rep_n1", "/api/v1/meta/entities/customer")
    fields = {f["name"]: f for f in detail["fields"]}
    assert "credit_limit" not in fields and "credit_limit" not in json.dumps(detail)
    assert fields["level"]["writable"] is False and fields["phone"]["writable"] is False
    assert fields["phone"].get("masked") is True and fields["name"]["writable"] is True
    admin_fields = {f["name"]: f for f in org.client.get("/api/v1/meta/entities/customer",
                                                         headers=org.admin).get_json()["fields"]}
    assert admin_fields["credit_limit"]["writable"] is True and admin_fields["level"]["writable"] is True


def test_openapi_and_entity_list_leave_out_entities_the_caller_cannot_read(make_app):
    org = build_org(make_app, {"rep_n1": ("contacts_only",)})
    doc = _get(org, "rep_n1", "/api/v1/openapi.json")
    assert "/api/v1/records/customer" not in doc["paths"] and "customer" not in doc["components"]["schemas"]
    assert "/api/v1/records/contact" in doc["paths"]
    names = {e["name"] for e in _get(org, "rep_n1", "/api/v1/meta/entities")["items"]}
    assert names == {"contact"}
    error_of(org.as_("rep_n1").get("/api/v1/meta/entities/customer"), 403, "forbidden")


# ---------------------------------------------------------------- deactivation and transfer

def test_deactivated_user_is_refused_at_once_and_their_records_can_be_transferred(make_app):
    org = build_org(make_app, {"rep_n1": ("scope_self",), "rep_n2": ("scope_self",)})
    c = org.client
    rep, heir = org.users["rep_n1"], org.users["rep_n2"]
    session = org.app.test_client()
    r = session.post("/api/v1/auth/login", json={"username": "rep_n1", "password": "rep_n1-pass-1"})
    assert r.status_code == 200
    assert session.get("/api/v1/records/customer").get_json()["total"] == 1
    assert c.get("/api/v1/records/customer", headers=org.tokens["rep_n1"]).status_code == 200
    second = org.insert_customer("rep_n1", name="Acme rep_n1 second")

    r = c.post(f"/api/v1/admin/users/{rep}/deactivate", headers=org.admin)
    assert r.status_code == 200 and r.get_json()["active"] is False
    error_of(session.get("/api/v1/records/customer"), 401, "unauthorized")
    error_of(c.get("/api/v1/records/customer", headers=org.tokens["rep_n1"]), 401, "unauthorized")
    error_of(app_login(org, "rep_n1"), 401, "unauthorized")
    t = org.table("customer")
    with org.engine.connect() as conn:
        assert set(conn.execute(sa.select(t.c.id).where(t.c.owner == rep)).scalars()) == {
            org.customers["rep_n1"], second}

    r = c.post(f"/api/v1/admin/users/{rep}/transfer", json={"to_user": heir, "entities": ["customer"]},
               headers=org.admin)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"moved": {"customer": 2}}
    with org.engine.connect() as conn:
        assert not conn.execute(sa.select(t.c.id).where(t.c.owner == rep)).first()
        rows = conn.execute(sa.select(t.c.owner, t.c.department, t.c.version)
                            .where(t.c.id.in_([org.customers["rep_n1"], second]))).all()
    assert {(r.owner, r.department, r.version) for r in rows} == {(heir, org.departments["North"], 2)}
    # The heir now sees them (scope self), with a "transfer" history entry each.
    body = _get(org, "rep_n2", "/api/v1/records/customer?page_size=100")
    assert _names(body) == {"Acme rep_n1", "Acme rep_n1 second", "Acme rep_n2"}
    for rid in (org.customers["rep_n1"], second):
        items = _get(org, "rep_n2", f"/api/v1/records/customer/{rid}/history")["items"]
        assert [(i["action"], i["field"], i["old"], i["new"]) for i in items if i["action"] == "transfer"] == [
            ("transfer", "owner", rep, heir)]
    audit = c.get("/api/v1/admin/audit", headers=org.admin).get_json()["items"]
    transfer = next(a for a in audit if a["action"] == "user.transfer")
    assert transfer["target"] == f"user:{rep}" and transfer["detail"]["moved"] == {"customer": 2}
    assert any(a["action"] == "user.deactivate" and a["target"] == f"user:{rep}" for a in audit)
    # Contacts were not asked for: they stay where they were.
    with org.engine.connect() as conn:
        ct = org.table("contact")
        assert conn.execute(sa.select(sa.func.count()).select_from(ct).where(ct.c.owner == heir)).scalar_one() == 0

    r = c.post(f"/api/v1/admin/users/{rep}/activate", headers=org.admin)
    assert r.status_code == 200 and r.get_json()["active"] is True
    session = org.app.test_client()
    assert session.post("/api/v1/auth/login", json={"username": "rep_n1", "password": "rep_n1-pass-1"}
                        ).status_code == 200
    assert session.get("/api/v1/records/customer").get_json()["total"] == 0


def app_login(org: Org, username: str) -> Any:
    return org.app.test_client().post("/api/v1/auth/login",
                                      json={"username": username, "password": f"{username}-pass-1"})


def test_transfer_is_refused_to_an_inactive_or_unknown_user_and_for_unknown_entities(make_app):
    org = build_org(make_app, {})
    c = org.client
    rep = org.users["rep_n1"]
    c.post(f"/api/v1/admin/users/{org.users['rep_n2']}/deactivate", headers=org.admin)
    before = org.checksum()
    for body in ({"to_user": org.users["rep_n2"]}, {"to_user": 99999}, {"to_user": "x"}, {},
                 {"to_user": org.users["fin"], "entities": ["nope"]},
                 {"to_user": org.users["fin"], "entities": "customer"}):
        error = error_of(c.post(f"/api/v1/admin/users/{rep}/transfer", json=body, headers=org.admin), 422)
        assert error["fields"], body
    error_of(c.post("/api/v1/admin/users/99999/transfer", json={"to_user": org.users["fin"]},
                    headers=org.admin), 404)
    assert org.checksum() == before


# ---------------------------------------------------------------- child tables

LINE = entity("order_line", {"name": "product", "type": "text"}, {"name": "cost", "type": "currency"},
              {"name": "supplier_phone", "type": "phone"}, child_of="order")
ORDER = entity("order", {"name": "name", "type": "text"}, {"name": "lines", "type": "table", "target": "order_line"},
               title_field="name", ownership=True)
ORDER_ROLE = {"kind": "role", "name": "order_clerk", "label": "Order clerk",
              "permissions": {"order": {"create": True, "read": "all", "update": "all"}},
              "fields": {"order_line": {"cost": "hidden", "supplier_phone": "masked"}}}


def test_hidden_and_masked_fields_of_child_rows_on_every_path(make_app):
    app = make_app([ORDER, LINE, ORDER_ROLE])
    engine = app.extensions[EXTENSION].engine
    with engine.begin() as conn:
        clerk = bearer(conn, add_user(conn, "clerk", roles=("order_clerk",)))
    admin = admin_bearer(app)
    c = app.test_client()
    r = c.post("/api/v1/records/order", json={"name": "O-1", "lines": [
        {"product": "bolt", "cost": "2.50", "supplier_phone": "13812345678"}]}, headers=admin)
    assert r.status_code == 201, r.get_json()
    order = r.get_json()
    r = c.patch(f"/api/v1/records/order/{order['id']}", headers=admin, json={"version": 1, "lines": [
        {**order["lines"][0], "cost": "3.75", "supplier_phone": "13900001111"}, {"product": "nut", "cost": "0.10"}]})
    assert r.status_code == 200, r.get_json()

    seen = c.get(f"/api/v1/records/order/{order['id']}", headers=clerk).get_json()
    assert [set(line) & {"cost"} for line in seen["lines"]] == [set(), set()]
    assert seen["lines"][0]["supplier_phone"] == "139****1111"
    history = c.get(f"/api/v1/records/order/{order['id']}/history", headers=clerk).get_json()["items"]
    text = json.dumps(history)
    assert "3.75" not in text and "2.50" not in text and '"cost"' not in text, history
    assert "13900001111" not in text and "13812345678" not in text, history
    assert "139****1111" in text
    schema = c.get("/api/v1/openapi.json", headers=clerk).get_json()["components"]["schemas"]["order_line"]
    assert "cost" not in schema["properties"]
    meta = c.get("/api/v1/meta/entities/order", headers=clerk).get_json()
    assert [f["name"] for f in meta["children"]["lines"]["fields"]] == ["product", "supplier_phone"]

    # Writing a hidden child field is refused with its path; the rows sent back as read are accepted.
    error = error_of(c.patch(f"/api/v1/records/order/{order['id']}", headers=clerk, json={
        "version": 2, "lines": [{**seen["lines"][0], "cost": "0"}]}), 403, "forbidden")
    assert list(error["fields"]) == ["lines[0].cost"]
    r = c.patch(f"/api/v1/records/order/{order['id']}", headers=clerk,
                json={"version": 2, "name": "O-1 renamed", "lines": seen["lines"]})
    assert r.status_code == 200, r.get_json()
    full = c.get(f"/api/v1/records/order/{order['id']}", headers=admin).get_json()
    assert [(line["cost"], line["supplier_phone"]) for line in full["lines"]] == [
        ("3.75", "13900001111"), ("0.10", None)]


def test_a_lookup_can_only_point_at_a_record_the_user_may_read(make_app):
    """Linking answers "No customer with id N" alike for missing and unreadable records."""
    org = build_org(make_app, {p: ("scope_self",) for p in PEOPLE})
    c = org.as_("rep_n1")
    theirs, mine = org.customers["rep_n2"], org.customers["rep_n1"]
    for target in (theirs, 99999):
        error = error_of(c.post("/api/v1/records/contact", json={"name": "Sneaky", "customer": target}),
                         422, "validation_error")
        assert error["fields"] == {"customer": [f"No customer with id {target}."]}
    r = c.post("/api/v1/records/contact", json={"name": "Mine", "customer": mine})
    assert r.status_code == 201, r.get_json()
    contact = r.get_json()
    error = error_of(c.patch(f"/api/v1/records/contact/{contact['id']}", json={"customer": theirs, "version": 1}),
                     422, "validation_error")
    assert error["fields"] == {"customer": [f"No customer with id {theirs}."]}
    # A link that is kept needn't be readable still: the record can be saved unchanged.
    r = org.client.patch(f"/api/v1/records/contact/{contact['id']}", json={"customer": theirs, "version": 1},
                         headers=org.admin)
    assert r.status_code == 200
    r = c.patch(f"/api/v1/records/contact/{contact['id']}", json={"name": "Mine 2", "customer": theirs, "version": 2})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["customer"] == theirs
