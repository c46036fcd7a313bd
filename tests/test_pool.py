"""The public pool (公海): who sees and claims pooled customers, the limits, assigning,
releasing, transferring, locking, and the recycling job — through the HTTP API, with
the runtime clock frozen where days matter."""
from __future__ import annotations

import datetime as dt
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from metacrm.runtime import systables
from metacrm.runtime.clock import set_clock
from metacrm.runtime.jobs import run_jobs
from metacrm.runtime.web.context import EXTENSION

from .support import add_user, admin_bearer, bearer, entity, error_of

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
ACTIONS = [{"name": n} for n in ("claim", "assign", "release", "transfer", "lock", "unlock")]
OWNED = {"create": True, "read": "self", "update": "self", "transfer": "self"}


def customer_doc() -> dict[str, Any]:
    return entity(
        "customer",
        {"name": "name", "type": "text", "required": True},
        {"name": "level", "type": "select", "default": "B", "options": [{"value": v} for v in "ABC"]},
        {"name": "deal_status", "type": "select", "default": "unsold",
         "options": [{"value": "unsold"}, {"value": "sold"}]},
        {"name": "pool", "type": "text", "max_length": 64, "readonly": True},
        {"name": "locked", "type": "boolean", "default": False, "readonly": True},
        {"name": "last_followup_at", "type": "datetime"},
        ownership=True, actions=ACTIONS, indexes=[["pool"]])


def pool_doc(name: str = "east", **keys: Any) -> dict[str, Any]:
    doc = {"kind": "pool", "name": name, "label": {"en": name.title(), "zh": name},
           "members": {"roles": ["rep", "manager"]}, "admins": {"roles": ["manager"]},
           "limits": {"max_held": 3, "max_claims_per_day": 2, "reclaim_after_days": 5},
           "related": [{"entity": "contact"},
                       {"entity": "opportunity", "filters": [["stage", "not in", ["won", "lost"]]]}],
           "shared": [{"entity": "followup"}]}
    doc.update(keys)
    return doc


def docs(*pools: dict[str, Any]) -> list[dict[str, Any]]:
    linked = {e: dict(OWNED) for e in ("contact", "opportunity", "contract", "followup")}
    return [
        customer_doc(),
        entity("contact", {"name": "name", "type": "text"}, {"name": "customer", "type": "lookup", "target": "customer"},
               ownership=True),
        entity("opportunity", {"name": "name", "type": "text"},
               {"name": "customer", "type": "lookup", "target": "customer"},
               {"name": "stage", "type": "select", "default": "open",
                "options": [{"value": "open"}, {"value": "won"}, {"value": "lost"}]}, ownership=True),
        entity("contract", {"name": "name", "type": "text"},
               {"name": "customer", "type": "lookup", "target": "customer"}, ownership=True),
        entity("followup", {"name": "content", "type": "text"},
               {"name": "subject", "type": "reference", "targets": ["customer"]}, ownership=True),
        {"kind": "role", "name": "rep", "label": "rep", "permissions": {
            "customer": {**OWNED, "claim": True, "release": "self", "lock": "self", "unlock": "self"}, **linked}},
        {"kind": "role", "name": "outsider", "label": "outsider", "permissions": {
            "customer": {**OWNED, "claim": True, "release": "self"}, **linked}},
        {"kind": "role", "name": "manager", "label": "manager", "permissions": {
            "customer": {"create": True, "read": "self_and_subordinates", "update": "self_and_subordinates",
                         "transfer": "self_and_subordinates", "claim": True, "assign": True,
                         "release": "self_and_subordinates", "lock": "self_and_subordinates",
                         "unlock": "self_and_subordinates"},
            **{e: {**OWNED, "read": "self_and_subordinates"} for e in linked}}},
        {"kind": "view", "entity": "customer", "name": "pool", "label": "pool",
         "filters": [["owner", "is empty"], ["pool", "is not empty"]]},
        *(pools or (pool_doc(),)),
    ]


@dataclass
class World:
    app: Any
    client: Any
    admin: dict[str, str]
    ids: dict[str, int] = field(default_factory=dict)
    auth: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def engine(self) -> sa.Engine:
        return self.app.extensions[EXTENSION].engine

    def post(self, who: str, path: str, body: Any = None) -> Any:
        return self.client.post(f"/api/v1{path}", json=body if body is not None else {},
                                headers=self.admin if who == "admin" else self.auth[who])

    def get(self, who: str, path: str) -> Any:
        return self.client.get(f"/api/v1{path}", headers=self.admin if who == "admin" else self.auth[who])

    def act(self, who: str, cid: int, action: str, body: Any = None) -> Any:
        return self.post(who, f"/records/customer/{cid}/actions/{action}", body)

    def create(self, who: str, entity_name: str, **values: Any) -> dict[str, Any]:
        r = self.post(who, f"/records/{entity_name}", values)
        assert r.status_code == 201, r.get_json()
        return r.get_json()

    def row(self, entity_name: str, rid: int) -> Any:
        extra = ("pool", "department", "locked") if entity_name == "customer" else ()
        t = sa.table(f"ent_{entity_name}", sa.column("id"), sa.column("owner"), *map(sa.column, extra))
        with self.engine.connect() as conn:
            return conn.execute(sa.select(t).where(t.c.id == rid)).mappings().one()

    def pooled(self, name: str, pool: str = "east", level: str = "B", contacts: int = 1,
               opportunities: tuple[str, ...] = ()) -> int:
        """A customer made by the admin, with contacts and opportunities, released into `pool`."""
        cid = self.create("admin", "customer", name=name, level=level)["id"]
        for i in range(contacts):
            self.create("admin", "contact", name=f"{name} contact {i}", customer=cid)
        for stage in opportunities:
            self.create("admin", "opportunity", name=f"{name} {stage}", customer=cid, stage=stage)
        r = self.act("admin", cid, "release", {"pool": pool, "reason": "seeding the pool"})
        assert r.status_code == 200, r.get_json()
        return cid


@pytest.fixture
def frozen():
    """frozen(moment) freezes the runtime clock; restored after the test."""
    def freeze(moment: dt.datetime) -> None:
        set_clock(lambda: moment)
    yield freeze
    set_clock(None)


def make_world(make_app: Any, *pools: dict[str, Any]) -> World:
    app = make_app(docs(*pools))
    world = World(app, app.test_client(), admin_bearer(app))
    with world.engine.begin() as conn:
        east = conn.execute(systables.departments.insert().values(name="East", created_at=T0)
                            .returning(systables.departments.c.id)).scalar_one()
        world.ids["east_dept"] = east
        carl = add_user(conn, "carl", roles=["manager"], department_id=east)
        people = {"carl": carl,
                  "alice": add_user(conn, "alice", roles=["rep"], department_id=east, manager_id=carl),
                  "bob": add_user(conn, "bob", roles=["rep"], department_id=east, manager_id=carl),
                  "olga": add_user(conn, "olga", roles=["outsider"])}
        for name, uid in people.items():
            world.ids[name] = uid
            world.auth[name] = bearer(conn, uid)
    return world


def customers_seen(world: World, who: str, view: str = "pool") -> set[str]:
    r = world.get(who, f"/records/customer?view={view}&page_size=500")
    assert r.status_code == 200, r.get_json()
    return {c["name"] for c in r.get_json()["items"]}


# ------------------------------------------------------------------ seeing the pool

def test_members_list_and_read_pool_customers_and_outsiders_see_nothing(make_app):
    w = make_world(make_app)
    cid = w.pooled("Acme")
    mine = w.create("alice", "customer", name="Alice's own")["id"]
    assert customers_seen(w, "alice") == {"Acme"}
    assert customers_seen(w, "olga") == set()
    # The plain list: members see their own and the pool's; nobody else's.
    r = w.get("alice", "/records/customer")
    assert {c["name"] for c in r.get_json()["items"]} == {"Acme", "Alice's own"}
    assert {c["name"] for c in w.get("olga", "/records/customer").get_json()["items"]} == set()
    assert w.get("alice", f"/records/customer/{cid}").get_json()["pool"] == "east"
    error_of(w.get("olga", f"/records/customer/{cid}"), 404)
    error_of(w.get("olga", f"/records/customer/{mine}"), 404)
    # Reading is not changing: a member may not edit a pooled customer.
    error_of(w.client.patch(f"/api/v1/records/customer/{cid}", json={"version": 2, "name": "x"},
                            headers=w.auth["alice"]), 403)
    # An outsider can't claim it, and isn't told it exists.
    error_of(w.act("olga", cid, "claim"), 404)
    assert w.row("customer", cid)["owner"] is None


def test_large_pools_are_scoped_by_a_clause_instead_of_an_id_list(make_app, monkeypatch):
    from metacrm.runtime import access

    monkeypatch.setattr(access, "MAX_SHARED_IDS", 1)
    w = make_world(make_app)
    for name in ("P1", "P2", "P3"):
        w.pooled(name)
    w.create("bob", "customer", name="Bob's")
    assert customers_seen(w, "alice") == {"P1", "P2", "P3"}
    assert {c["name"] for c in w.get("alice", "/records/customer").get_json()["items"]} == {"P1", "P2", "P3"}
    assert {c["name"] for c in w.get("olga", "/records/customer").get_json()["items"]} == set()


def test_pool_membership_by_user_and_department(make_app, client_of):
    w = make_world(make_app, pool_doc(), pool_doc("west", members={"users": ["olga"]}, limits={}))
    west = w.pooled("West Co", pool="west")
    r = w.get("olga", "/records/customer")
    assert {c["name"] for c in r.get_json()["items"]} == {"West Co"}
    error_of(w.act("alice", west, "claim"), 404)
    # Admins add a department (with its sub-departments) to the pool through the admin API.
    with w.engine.begin() as conn:
        sub = conn.execute(systables.departments.insert().values(
            name="East A", parent_id=w.ids["east_dept"], created_at=T0).returning(systables.departments.c.id)).scalar_one()
        conn.execute(systables.users.update().where(systables.users.c.id == w.ids["bob"]).values(department_id=sub))
    admin = client_of(w.app)
    r = admin.patch("/api/v1/admin/pools/west", json={"members": {"users": ["olga"], "departments": [w.ids["east_dept"]]}})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["members"]["departments"] == [w.ids["east_dept"]]
    r = w.act("bob", west, "claim")
    assert r.status_code == 200, r.get_json()
    assert w.row("customer", west)["owner"] == w.ids["bob"]


# ------------------------------------------------------------------ claim

def test_claim_moves_contacts_and_open_opportunities_and_shares_followups(make_app):
    w = make_world(make_app)
    cid = w.create("bob", "customer", name="Acme")["id"]
    contact = w.create("bob", "contact", name="Ann", customer=cid)["id"]
    open_opp = w.create("bob", "opportunity", name="Deal", customer=cid)["id"]
    won_opp = w.create("bob", "opportunity", name="Old deal", customer=cid, stage="won")["id"]
    contract = w.create("bob", "contract", name="Contract", customer=cid)["id"]
    note = w.create("bob", "followup", content="called", subject={"entity": "customer", "id": cid})["id"]
    colleague_contact = w.create("carl", "contact", name="Carl's", customer=cid)["id"]

    r = w.act("bob", cid, "release", {"pool": "east", "reason": "no budget this year"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["moved"] == {"contact": 1, "opportunity": 1}
    assert w.row("contact", contact)["owner"] is None and w.row("opportunity", open_opp)["owner"] is None
    assert w.row("opportunity", won_opp)["owner"] == w.ids["bob"]
    assert w.row("contact", colleague_contact)["owner"] == w.ids["carl"]

    r = w.act("alice", cid, "claim")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["owner"] == w.ids["alice"] and body["pool"] is None
    assert body["moved"] == {"contact": 1, "opportunity": 1} and body["shared"] == 1
    customer = w.row("customer", cid)
    assert (customer["owner"], customer["pool"], customer["department"]) == (w.ids["alice"], None, w.ids["east_dept"])
    assert w.row("contact", contact)["owner"] == w.ids["alice"]
    assert w.row("opportunity", open_opp)["owner"] == w.ids["alice"]
    assert w.row("opportunity", won_opp)["owner"] == w.ids["bob"]  # closed: stays with who won it
    assert w.row("contract", contract)["owner"] == w.ids["bob"]
    assert w.row("contact", colleague_contact)["owner"] == w.ids["carl"]  # a colleague's stays theirs
    # The history stays visible: bob's follow-up (still bob's) and the previous owners.
    r = w.get("alice", f"/records/followup/{note}")
    assert r.status_code == 200 and r.get_json()["owner"] == w.ids["bob"]
    error_of(w.client.patch(f"/api/v1/records/followup/{note}", json={"version": 1, "content": "x"},
                            headers=w.auth["alice"]), 403)
    history = w.get("alice", f"/records/customer/{cid}/history").get_json()["items"]
    owners = [(h["action"], h["old"], h["new"]) for h in history if h["field"] == "owner"]
    assert owners[:2] == [("claim", None, w.ids["alice"]), ("release", w.ids["bob"], None)]
    assert ("release", "no budget this year") in [(h["action"], h["new"]) for h in history if h["field"] is None]
    moves = w.get("alice", f"/records/customer/{cid}/moves").get_json()["items"]
    assert [(m["action"], m["from_owner"], m["to_owner"], m["pool"], m["reason"]) for m in moves] == [
        ("claim", None, w.ids["alice"], "east", None),
        ("release", w.ids["bob"], None, "east", "no budget this year")]
    # Claimed means gone from the pool: a second claim is a conflict.
    error_of(w.act("bob", cid, "claim"), 409)


def test_claim_limits_on_held_customers_and_claims_per_day(make_app, frozen):
    frozen(T0)
    w = make_world(make_app, pool_doc(limits={"max_held": 3, "max_claims_per_day": 2}))
    ids = [w.pooled(f"C{i}") for i in range(5)]
    assert w.act("alice", ids[0], "claim").status_code == 200
    assert w.act("alice", ids[1], "claim").status_code == 200
    err = error_of(w.act("alice", ids[2], "claim"), 409)
    assert err["reason"] == "max_claims_per_day" and err["limit"] == 2
    assert w.row("customer", ids[2])["owner"] is None
    r = w.get("alice", "/pools").get_json()["items"]
    assert [(p["name"], p["held"], p["claimed_today"], p["records"]) for p in r] == [("east", 2, 2, 3)]
    frozen(T0 + dt.timedelta(days=1))  # a new day
    assert w.act("alice", ids[2], "claim").status_code == 200
    err = error_of(w.act("alice", ids[3], "claim"), 409)
    assert err["reason"] == "max_held" and err["current"] == 3
    assert w.act("bob", ids[3], "claim").status_code == 200


def test_former_owner_cannot_reclaim_within_the_cooldown(make_app, frozen):
    frozen(T0)
    w = make_world(make_app)
    cid = w.create("alice", "customer", name="Acme")["id"]
    assert w.act("alice", cid, "release", {"reason": "not interested"}).status_code == 200
    frozen(T0 + dt.timedelta(days=4, hours=23))
    err = error_of(w.act("alice", cid, "claim"), 409)
    assert err["reason"] == "reclaim_after_days" and err["available_at"].startswith("2026-03-07T09:00")
    frozen(T0 + dt.timedelta(days=5, minutes=1))
    assert w.act("alice", cid, "claim").status_code == 200


def test_action_bodies_are_checked(make_app):
    w = make_world(make_app)
    cid = w.pooled("Acme")
    error_of(w.act("alice", cid, "claim", {"surprise": 1}), 422)
    error_of(w.act("alice", cid, "claim", [1]), 400)
    error_of(w.act("alice", 999999, "claim"), 404)
    error_of(w.act("alice", cid, "nope"), 404)


# ------------------------------------------------------------------ assign

def test_assign_is_for_pool_admins_and_respects_the_assignees_limit(make_app):
    w = make_world(make_app, pool_doc(limits={"max_held": 1}))
    a, b = w.pooled("A", contacts=2), w.pooled("B")
    error_of(w.act("alice", a, "assign", {"to_user": w.ids["bob"]}), 403)  # no role grants assign
    err = error_of(w.act("carl", a, "assign", {"to_user": "bob"}), 422)
    assert "to_user" in err["fields"]
    error_of(w.act("carl", a, "assign", {"to_user": 999999}), 422)
    r = w.act("carl", a, "assign", {"to_user": w.ids["bob"], "reason": "his territory"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["moved"] == {"contact": 2}
    assert w.row("customer", a)["owner"] == w.ids["bob"]
    moves = w.get("bob", f"/records/customer/{a}/moves").get_json()["items"]
    assert (moves[0]["action"], moves[0]["by"], moves[0]["reason"]) == ("assign", w.ids["carl"], "his territory")
    err = error_of(w.act("carl", b, "assign", {"to_user": w.ids["bob"]}), 409)
    assert err["reason"] == "max_held"
    error_of(w.act("carl", a, "assign", {"to_user": w.ids["alice"]}), 409)  # not in the pool any more


# ------------------------------------------------------------------ release

def test_release_needs_a_reason_and_a_pool_and_the_owner(make_app):
    w = make_world(make_app, pool_doc(), pool_doc("west", members={"users": ["olga"]}))
    cid = w.create("alice", "customer", name="Acme")["id"]
    contact = w.create("alice", "contact", name="Ann", customer=cid)["id"]
    assert error_of(w.act("alice", cid, "release", {"pool": "east"}), 422)["fields"] == {
        "reason": ["Missing data for required field."]}
    assert "pool" in error_of(w.act("alice", cid, "release", {"reason": "x"}), 422)["fields"]  # two pools: choose
    assert "pool" in error_of(w.act("alice", cid, "release", {"pool": "north", "reason": "x"}), 422)["fields"]
    error_of(w.act("bob", cid, "release", {"pool": "east", "reason": "x"}), 404)  # not his
    assert w.row("customer", cid)["owner"] == w.ids["alice"]
    r = w.act("alice", cid, "release", {"pool": "west", "reason": "moved to the west coast"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json() | {"version": 0} == {"id": cid, "version": 0, "owner": None, "pool": "west",
                                              "moved": {"contact": 1}}
    row = w.row("customer", cid)
    assert (row["owner"], row["department"], row["pool"]) == (None, None, "west")
    assert w.row("contact", contact)["owner"] is None
    # Released into west: olga (west) sees it, alice (east only) no longer does.
    assert w.get("olga", f"/records/customer/{cid}").status_code == 200
    error_of(w.get("alice", f"/records/customer/{cid}"), 404)
    history = w.get("admin", f"/records/customer/{cid}/history").get_json()["items"]
    assert {(h["action"], h["field"], h["new"]) for h in history} >= {
        ("release", "owner", None), ("release", "pool", "west"), ("release", None, "moved to the west coast")}
    error_of(w.act("admin", cid, "release", {"pool": "east", "reason": "x"}), 409)  # in a pool already


# ------------------------------------------------------------------ transfer

def test_transfer_keeps_the_old_owner_as_reader_or_writer_and_moves_chosen_records(make_app):
    w = make_world(make_app)
    cid = w.create("alice", "customer", name="Acme")["id"]
    contact = w.create("alice", "contact", name="Ann", customer=cid)["id"]
    opp = w.create("alice", "opportunity", name="Deal", customer=cid)["id"]
    contract = w.create("alice", "contract", name="Contract", customer=cid)["id"]
    assert "keep_as" in error_of(w.act("alice", cid, "transfer", {"to_user": w.ids["bob"], "keep_as": "owner"}),
                                 422)["fields"]
    assert "related" in error_of(w.act("alice", cid, "transfer", {"to_user": w.ids["bob"], "related": ["followup"]}),
                                 422)["fields"]
    assert "to_user" in error_of(w.act("alice", cid, "transfer", {"to_user": w.ids["alice"]}), 422)["fields"]
    error_of(w.act("bob", cid, "transfer", {"to_user": w.ids["bob"]}), 404)

    r = w.act("alice", cid, "transfer", {"to_user": w.ids["bob"], "keep_as": "read",
                                         "related": ["contact", "contract"]})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["moved"] == {"contact": 1, "contract": 1}
    assert w.row("customer", cid)["owner"] == w.ids["bob"]
    assert (w.row("contact", contact)["owner"], w.row("contract", contract)["owner"]) == (w.ids["bob"], w.ids["bob"])
    assert w.row("opportunity", opp)["owner"] == w.ids["alice"]  # not asked for
    # alice stays as a reader: she sees the customer and the moved contact, but can't change them.
    customer = w.get("alice", f"/records/customer/{cid}").get_json()
    assert customer["owner"] == w.ids["bob"]
    assert w.get("alice", f"/records/contact/{contact}").status_code == 200
    error_of(w.client.patch(f"/api/v1/records/customer/{cid}", json={"version": customer["version"], "name": "x"},
                            headers=w.auth["alice"]), 403)
    # bob hands it on, keeping write access; then carl (his manager) can't be a no-op target.
    r = w.act("bob", cid, "transfer", {"to_user": w.ids["carl"], "keep_as": "write"})
    assert r.status_code == 200, r.get_json()
    customer = w.get("bob", f"/records/customer/{cid}").get_json()
    r = w.client.patch(f"/api/v1/records/customer/{cid}", json={"version": customer["version"], "name": "Acme 2"},
                       headers=w.auth["bob"])
    assert r.status_code == 200, r.get_json()
    # And without keep_as the old owner leaves.
    r = w.act("carl", cid, "transfer", {"to_user": w.ids["alice"]})
    assert r.status_code == 200
    error_of(w.get("olga", f"/records/customer/{cid}"), 404)
    moves = w.get("alice", f"/records/customer/{cid}/moves").get_json()["items"]
    assert [m["action"] for m in moves] == ["transfer"] * 3
    error_of(w.act("alice", w.pooled("Pooled"), "transfer", {"to_user": w.ids["bob"]}), 403)  # seen, not hers


# ------------------------------------------------------------------ lock / unlock

def test_lock_and_unlock(make_app):
    w = make_world(make_app)
    cid = w.create("alice", "customer", name="Acme")["id"]
    error_of(w.act("bob", cid, "lock"), 404)
    r = w.act("alice", cid, "lock", {"reason": "strategic account"})
    assert r.status_code == 200 and r.get_json()["locked"] is True
    assert w.row("customer", cid)["locked"] in (True, 1)
    assert w.act("alice", cid, "lock").get_json()["locked"] is True  # again: no change
    error_of(w.act("alice", cid, "release", {"reason": "x"}), 409)  # unlock first
    # The field itself stays read-only in forms.
    version = w.get("alice", f"/records/customer/{cid}").get_json()["version"]
    error_of(w.client.patch(f"/api/v1/records/customer/{cid}", json={"version": version, "locked": False},
                            headers=w.auth["alice"]), 422)
    r = w.act("carl", cid, "unlock")  # her manager
    assert r.status_code == 200 and r.get_json()["locked"] is False
    history = w.get("alice", f"/records/customer/{cid}/history").get_json()["items"]
    assert [(h["action"], h["new"]) for h in history if h["field"] == "locked"] == [("unlock", False), ("lock", True)]


# ------------------------------------------------------------------ recycling

def recycling_pool(*rules: dict[str, Any], **keys: Any) -> dict[str, Any]:
    return pool_doc(limits={}, recycle=list(rules), **keys)


def run_recycling(w: World) -> dict[str, int]:
    return run_jobs(w.app.extensions[EXTENSION], ["pool_recycling"])["pool_recycling"]


def reminders(w: World, who: str) -> list[str]:
    return [n["title"] for n in w.get(who, "/notifications").get_json()["items"] if n["kind"] == "pool_reminder"]


def test_recycling_without_followup_per_level_with_one_reminder(make_app, frozen):
    frozen(T0)
    w = make_world(make_app, recycling_pool(
        {"name": "silent", "when": "no_followup", "days": {"A": 20, "B": 10}, "remind_before": 3}))
    a = w.create("alice", "customer", name="Key", level="A")["id"]
    b = w.create("alice", "customer", name="Normal", level="B")["id"]
    c = w.create("alice", "customer", name="Minor", level="C")["id"]  # no days for C: exempt
    followed = w.create("alice", "customer", name="Followed", level="B")["id"]
    frozen(T0 + dt.timedelta(days=5))
    w.create("alice", "followup", content="call", subject={"entity": "customer", "id": followed})
    frozen(T0 + dt.timedelta(days=7, hours=1))  # inside B's reminder window (day 7..10)
    assert run_recycling(w) == {"moved": 0, "reminded": 1, "skipped": 0}
    assert run_recycling(w) == {"moved": 0, "reminded": 0, "skipped": 0}  # once per cycle
    assert reminders(w, "alice") == [{"en": "Normal goes back to the pool 'East' in 3 day(s)",
                                      "zh": "Normal 将在 3 天后被收回公海「east」"}]
    frozen(T0 + dt.timedelta(days=10, hours=1))
    assert run_recycling(w) == {"moved": 1, "reminded": 0, "skipped": 0}  # b; "Followed" is due on day 15
    assert run_recycling(w) == {"moved": 0, "reminded": 0, "skipped": 0}  # idempotent
    assert (w.row("customer", b)["owner"], w.row("customer", b)["pool"]) == (None, "east")
    assert w.row("customer", followed)["owner"] == w.ids["alice"]
    moves = w.get("admin", f"/records/customer/{b}/moves").get_json()["items"]
    assert [(m["action"], m["by"], m["from_owner"], m["rule"]) for m in moves] == [
        ("recycle", None, w.ids["alice"], "silent")]
    assert "10 days without a follow-up" in moves[0]["reason"]
    frozen(T0 + dt.timedelta(days=20, hours=1))
    assert run_recycling(w)["moved"] == 2  # the key account (20 days) and "Followed" (5 + 10 days)
    assert w.row("customer", c)["owner"] == w.ids["alice"]
    assert w.row("customer", a)["pool"] == "east"


def test_recycling_clock_restarts_when_the_customer_changes_hands(make_app, frozen):
    frozen(T0)
    w = make_world(make_app, recycling_pool({"name": "silent", "when": "no_followup", "days": 10}))
    cid = w.create("alice", "customer", name="Acme", last_followup_at=T0.isoformat())["id"]
    frozen(T0 + dt.timedelta(days=9))
    assert w.act("alice", cid, "transfer", {"to_user": w.ids["bob"]}).status_code == 200
    frozen(T0 + dt.timedelta(days=12))
    assert run_recycling(w)["moved"] == 0  # bob has had it for 3 days
    frozen(T0 + dt.timedelta(days=19, hours=1))
    assert run_recycling(w)["moved"] == 1


def test_recycling_without_opportunity_and_without_deal_with_exemptions(make_app, frozen):
    frozen(T0)
    w = make_world(make_app, recycling_pool(
        {"name": "no_opp", "when": "no_opportunity", "days": 30, "exempt_deals": True},
        {"name": "no_deal", "when": "no_deal", "days": 60, "remind_before": 10}))
    plain = w.create("bob", "customer", name="Plain")["id"]
    with_opp = w.create("bob", "customer", name="With opportunity")["id"]
    sold = w.create("bob", "customer", name="Sold", deal_status="sold")["id"]
    locked = w.create("bob", "customer", name="Locked")["id"]
    assert w.act("bob", locked, "lock").status_code == 200
    frozen(T0 + dt.timedelta(days=20))
    w.create("bob", "opportunity", name="Deal", customer=with_opp)
    frozen(T0 + dt.timedelta(days=30, hours=1))
    assert run_recycling(w)["moved"] == 1
    assert w.row("customer", plain)["owner"] is None
    assert w.row("customer", sold)["owner"] == w.ids["bob"]  # a deal: exempt from no_opp
    frozen(T0 + dt.timedelta(days=50, hours=1))
    result = run_recycling(w)
    assert result["moved"] == 1  # with_opp: 30 days after its opportunity
    assert result["reminded"] == 0  # no_deal's window for the unsold ones opens on day 50 — they're gone
    frozen(T0 + dt.timedelta(days=70))
    assert run_recycling(w)["moved"] == 0  # sold is exempt from no_deal by definition; locked always
    assert w.row("customer", locked)["owner"] == w.ids["bob"]
    assert w.row("customer", sold)["owner"] == w.ids["bob"]


def test_recycling_applies_only_to_pool_members_customers(make_app, frozen):
    frozen(T0)
    w = make_world(make_app, recycling_pool({"name": "silent", "when": "no_followup", "days": 10},
                                            members={"users": ["alice"]}))
    alices = w.create("alice", "customer", name="Alice's")["id"]
    bobs = w.create("bob", "customer", name="Bob's")["id"]
    frozen(T0 + dt.timedelta(days=11))
    assert run_recycling(w)["moved"] == 1
    assert w.row("customer", alices)["owner"] is None and w.row("customer", bobs)["owner"] == w.ids["bob"]


def test_jobs_run_command(make_app, frozen, monkeypatch, db_url, tmp_path):
    from click.testing import CliRunner

    from metacrm.cli import main

    frozen(T0)
    w = make_world(make_app, recycling_pool({"name": "silent", "when": "no_followup", "days": 10}))
    w.create("alice", "customer", name="Acme")
    frozen(T0 + dt.timedelta(days=11))
    monkeypatch.setenv("METACRM_DATABASE_URL", db_url)
    monkeypatch.setenv("METACRM_INSTANCE", str(tmp_path / "instance"))
    result = CliRunner().invoke(main, ["jobs", "run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "pool_recycling: 1 moved, 0 reminded, 0 skipped\n" in result.output  # (other jobs print a line too)
    result = CliRunner().invoke(main, ["jobs", "run", "--only", "nope"])
    assert result.exit_code == 1 and "Unknown job(s): nope" in result.output


# ------------------------------------------------------------------ metadata and the admin API

def test_pool_metadata_errors_name_file_and_path(make_app, client_of):
    w = make_world(make_app)
    admin = client_of(w.app)
    r = admin.post("/api/v1/admin/pools", json={
        "name": "north", "members": {"roles": ["repp"]},
        "recycle": [{"name": "r", "when": "no_followup", "days": {"Z": 3}}]})
    err = error_of(r, 422, "metadata_invalid")
    assert {(e["path"], e["message"]) for e in err["errors"]} == {
        ("/members/roles/0", "unknown role 'repp' (did you mean 'rep'?)"),
        ("/recycle/0/days/Z", "'Z' is not a value of level (one of 'A', 'B', 'C', 'default')")}
    r = admin.post("/api/v1/admin/pools", json={"name": "north", "members": {"roles": ["rep"]}})
    assert r.status_code == 201, r.get_json()
    assert "north" in {p["name"] for p in admin.get("/api/v1/admin/pools").get_json()["items"]}
    cid = w.pooled("Acme", pool="north")
    error_of(admin.delete("/api/v1/admin/pools/north"), 409)
    assert w.act("alice", cid, "claim").status_code == 200
    assert admin.delete("/api/v1/admin/pools/north").status_code == 204
    error_of(admin.get("/api/v1/admin/pools/north"), 404)
    error_of(w.get("alice", "/admin/pools"), 403)


def test_default_crm_ships_a_pool_a_view_and_the_grants(make_app):
    from metacrm.metadata.loader import load_seed_package

    app = make_app(list(d.data for d in load_seed_package("crm-default").documents))
    w = World(app, app.test_client(), admin_bearer(app))
    with w.engine.begin() as conn:
        for name, roles in (("rep", ["sales"]), ("fin", ["finance"])):
            w.ids[name] = add_user(conn, name, roles=roles)
            w.auth[name] = bearer(conn, w.ids[name])
    meta = w.get("rep", "/meta/entities/customer").get_json()
    assert [a["name"] for a in meta["actions"]] == ["merge", "claim", "assign", "release", "transfer", "lock", "unlock"]
    cid = w.create("admin", "customer", name="公海客户甲")["id"]
    assert w.act("admin", cid, "release", {"reason": "demo"}).status_code == 200
    r = w.get("rep", "/records/customer?view=pool")
    assert [c["name"] for c in r.get_json()["items"]] == ["公海客户甲"]
    assert w.act("rep", cid, "claim").status_code == 200
    error_of(w.act("fin", cid, "claim"), 403)  # finance holds no claim grant


# ------------------------------------------------------------------ concurrency (PostgreSQL)

@pytest.mark.skipif(not os.environ.get("METACRM_TEST_DATABASE_URL"), reason="needs PostgreSQL")
def test_two_claims_of_one_customer_exactly_one_wins(make_app):
    w = make_world(make_app, pool_doc(limits={}))
    for round_ in range(5):
        cid = w.pooled(f"Race {round_}", contacts=2)
        barrier = threading.Barrier(2)
        results: dict[str, Any] = {}

        def claim(who: str) -> None:
            client = w.app.test_client()
            barrier.wait()
            r = client.post(f"/api/v1/records/customer/{cid}/actions/claim", json={}, headers=w.auth[who])
            results[who] = (r.status_code, r.get_json())

        threads = [threading.Thread(target=claim, args=(who,)) for who in ("alice", "bob")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(code for code, _ in results.values())
        assert codes == [200, 409], results
        winner = next(who for who, (code, _) in results.items() if code == 200)
        assert w.row("customer", cid)["owner"] == w.ids[winner]
        with w.engine.connect() as conn:
            m = systables.pool_moves
            claims = conn.execute(sa.select(m.c.to_owner).where(m.c.record_id == cid, m.c.action == "claim")).all()
            contacts = sa.table("ent_contact", sa.column("owner"), sa.column("customer"))
            owners = set(conn.execute(sa.select(contacts.c.owner).where(contacts.c.customer == cid)).scalars())
        assert claims == [(w.ids[winner],)] and owners == {w.ids[winner]}


@pytest.mark.skipif(not os.environ.get("METACRM_TEST_DATABASE_URL"), reason="needs PostgreSQL")
def test_two_recycling_runs_at_once_move_each_customer_once(make_app, frozen):
    frozen(T0)
    w = make_world(make_app, recycling_pool({"name": "silent", "when": "no_followup", "days": 10, "remind_before": 2}))
    ids = [w.create("alice" if i % 2 else "bob", "customer", name=f"C{i}")["id"] for i in range(60)]
    frozen(T0 + dt.timedelta(days=11))
    rt = w.app.extensions[EXTENSION]
    barrier = threading.Barrier(2)
    totals: list[dict[str, int]] = []

    def job() -> None:
        barrier.wait()
        totals.append(run_jobs(rt, ["pool_recycling"])["pool_recycling"])

    threads = [threading.Thread(target=job) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(t["moved"] for t in totals) == 60, totals
    with w.engine.connect() as conn:
        m = systables.pool_moves
        per_record = conn.execute(sa.select(m.c.record_id, sa.func.count()).where(m.c.action == "recycle")
                                  .group_by(m.c.record_id)).all()
    assert sorted(r for r, n in per_record if n == 1) == sorted(ids)
