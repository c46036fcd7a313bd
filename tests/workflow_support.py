"""A small company and a `deal` entity with an approval workflow, for the workflow tests.

Org: 销售部 (head: director) with 华北组 (head: lead); rep → lead → director → gm;
finance fin1..fin3 (role finance), hr (role hr). Each test passes the approval chain(s)
it is about; `company()` returns tokens for everyone.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from metacrm.runtime import systables
from metacrm.runtime.clock import utcnow
from metacrm.runtime.web.context import EXTENSION

from .support import add_user, bearer, entity

STATES = ("draft", "pending", "approved", "rejected", "void")

DEAL = entity(
    "deal",
    {"name": "name", "type": "text", "required": True},
    {"name": "amount", "type": "currency"},
    {"name": "days", "type": "integer"},
    {"name": "reviewer", "type": "user"},
    {"name": "note", "type": "text"},
    {"name": "signed_at", "type": "datetime", "readonly": True},
    {"name": "approved_by", "type": "user", "readonly": True},
    {"name": "void_reason", "type": "text", "required_when": "status == 'void'"},
    {"name": "status", "type": "select", "default": "draft", "options": [{"value": v} for v in STATES]},
    ownership=True, title_field="name")

TASK = entity("todo", {"name": "subject", "type": "text"}, {"name": "about", "type": "reference",
                                                            "targets": ["deal"]}, ownership=True)


def roles() -> list[dict[str, Any]]:
    crud = {"create": True, "read": "self", "update": "self", "delete": "self"}
    return [
        {"kind": "role", "name": "rep", "label": "Rep", "permissions": {"deal": crud, "todo": crud}},
        {"kind": "role", "name": "boss", "label": "Boss", "permissions": {"deal": {
            "create": True, "read": "self_and_subordinates", "update": "self_and_subordinates", "delete": "self"}}},
        {"kind": "role", "name": "finance", "label": "Finance", "permissions": {"deal": {"read": "all"}}},
        {"kind": "role", "name": "hr", "label": "HR", "permissions": {}},
    ]


def workflow(steps: list[dict[str, Any]], **chain: Any) -> dict[str, Any]:
    return {
        "kind": "workflow", "name": "deal_approval", "entity": "deal", "state_field": "status",
        "states": [{"name": "draft", "initial": True}, {"name": "pending", "locked": True},
                   {"name": "approved", "final": True, "locked": True}, {"name": "rejected"},
                   {"name": "void", "final": True}],
        "transitions": [
            {"name": "submit", "from": ["draft", "rejected"], "to": "pending", "approval": "steps",
             "when": "amount is not None"},
            {"name": "void", "from": ["draft", "rejected", "approved"], "to": "void", "roles": ["boss"]},
        ],
        "approvals": {"steps": {"steps": steps, "on_approve": "approved", "on_reject": "rejected", **chain}},
        "actions": [{"on": "approved", "set": {"signed_at": "$now", "approved_by": "$me"}, "notify": ["owner"]}],
    }


@dataclass
class Company:
    app: Any
    ids: dict[str, int]
    h: dict[str, dict[str, str]]
    client: Any

    def as_(self, who: str) -> Any:
        return _As(self.client, self.h[who])

    def deal(self, who: str = "rep", **values: Any) -> dict[str, Any]:
        r = self.as_(who).post("/api/v1/records/deal", json={"name": "Deal", "amount": "1000", **values})
        assert r.status_code == 201, r.get_json()
        return r.get_json()

    def fire(self, who: str, deal_id: int, name: str, body: dict[str, Any] | None = None, status: int = 200) -> Any:
        r = self.as_(who).post(f"/api/v1/records/deal/{deal_id}/transitions/{name}", json=body or {})
        assert r.status_code == status, (name, who, r.status_code, r.get_json())
        return r.get_json()

    def approvals(self, who: str, deal_id: int) -> dict[str, Any]:
        r = self.as_(who).get(f"/api/v1/records/deal/{deal_id}/approvals")
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    def pending(self, deal_id: int) -> list[str]:
        """Usernames with a pending task on the deal's current approval."""
        cur = self.approvals("admin", deal_id)["current"]
        names = {v: k for k, v in self.ids.items()}
        return sorted(names[p["user"]] for p in cur["pending"]) if cur else []

    def status(self, deal_id: int) -> str:
        return self.as_("admin").get(f"/api/v1/records/deal/{deal_id}").get_json()["status"]


class _As:
    def __init__(self, client: Any, headers: dict[str, str]):
        self.client, self.headers = client, headers

    def __getattr__(self, method: str) -> Any:
        def call(path: str, **kw: Any) -> Any:
            return getattr(self.client, method)(path, headers=self.headers, **kw)
        return call


def company(make_app: Any, wf: dict[str, Any] | None, extra_docs: list[dict[str, Any]] = ()) -> Company:
    docs = [copy.deepcopy(DEAL), TASK, *roles(), *extra_docs]
    if wf is not None:
        docs.append(wf)
    app = make_app(docs)
    engine = app.extensions[EXTENSION].engine
    ids: dict[str, int] = {}
    with engine.begin() as conn:
        d = systables.departments
        sales = conn.execute(d.insert().values(name="销售部", created_at=utcnow()).returning(d.c.id)).scalar_one()
        north = conn.execute(d.insert().values(name="华北组", parent_id=sales, created_at=utcnow())
                             .returning(d.c.id)).scalar_one()
        ids["gm"] = add_user(conn, "gm", roles=["boss"])
        ids["director"] = add_user(conn, "director", roles=["boss"], department_id=sales, manager_id=ids["gm"])
        ids["lead"] = add_user(conn, "lead", roles=["boss", "rep"], department_id=north, manager_id=ids["director"])
        ids["rep"] = add_user(conn, "rep", roles=["rep"], department_id=north, manager_id=ids["lead"])
        ids["rep2"] = add_user(conn, "rep2", roles=["rep"], department_id=north, manager_id=ids["lead"])
        for n in ("fin1", "fin2", "fin3"):
            ids[n] = add_user(conn, n, roles=["finance"])
        ids["hr"] = add_user(conn, "hr", roles=["hr"])
        ids["loner"] = add_user(conn, "loner", roles=["rep"])  # no manager, no department
        conn.execute(d.update().where(d.c.id == sales).values(head_id=ids["director"]))
        conn.execute(d.update().where(d.c.id == north).values(head_id=ids["lead"]))
        u = systables.users
        ids["admin"] = conn.execute(sa.select(u.c.id).where(u.c.username == "admin")).scalar_one()
        h = {name: bearer(conn, uid) for name, uid in ids.items()}
    return Company(app, ids, h, app.test_client())
