"""The record endpoints' contract: optimistic locking, field history, deleting, `expand=`,
404s, and autonumbers that stay distinct when many requests create records at once."""
from __future__ import annotations

import json
import os
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from metacrm.runtime import accounts, systables
from metacrm.runtime.clock import utcnow
from metacrm.runtime.principal import Principal
from metacrm.runtime.records import create_record
from metacrm.runtime.web.context import EXTENSION

from .support import role, entity

PG = bool(os.environ.get("METACRM_TEST_DATABASE_URL"))

CUSTOMER = entity("customer",
                  {"name": "name", "type": "text", "required": True},
                  {"name": "level", "type": "select", "options": [{"value": "A"}, {"value": "B"}]},
                  {"name": "credit", "type": "currency"},
                  {"name": "tags", "type": "multiselect", "options": [{"value": "x"}, {"value": "y"}]},
                  title_field="name", ownership=True)
LINE = entity("line", {"name": "product", "type": "text"}, {"name": "quantity", "type": "integer"},
              child_of="contract")
CONTRACT = entity("contract",
                  {"name": "name", "type": "text"},
                  {"name": "customer", "type": "lookup", "target": "customer"},
                  {"name": "lines", "type": "table", "target": "line"},
                  title_field="name", ownership=True)
DOCS = [CUSTOMER, LINE, CONTRACT]


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True))
    body = r.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


def _customer(c: Any, **values: Any) -> dict[str, Any]:
    r = c.post("/api/v1/records/customer", json={"name": "ACME", **values})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


# ---------------------------------------------------------------- optimistic locking

def test_patch_without_version_is_422_and_changes_nothing(make_app, client_of):
    c = client_of(make_app(DOCS))
    rec = _customer(c)
    error = _error(c.patch(f"/api/v1/records/customer/{rec['id']}", json={"name": "X"}), 422, "validation_error")
    assert "version" in error["fields"]
    error = _error(c.patch(f"/api/v1/records/customer/{rec['id']}", json={"name": "X", "version": "1"}), 422,
                   "validation_error")
    assert "version" in error["fields"]
    assert c.get(f"/api/v1/records/customer/{rec['id']}").get_json()["name"] == "ACME"


def test_stale_version_update_is_409_and_changes_nothing(make_app, client_of):
    c = client_of(make_app(DOCS))
    rec = _customer(c)
    assert c.patch(f"/api/v1/records/customer/{rec['id']}", json={"version": 1, "level": "A"}).status_code == 200
    error = _error(c.patch(f"/api/v1/records/customer/{rec['id']}", json={"version": 1, "name": "Stale"}),
                   409, "conflict")
    assert error["current_version"] == 2
    got = c.get(f"/api/v1/records/customer/{rec['id']}").get_json()
    assert (got["name"], got["level"], got["version"]) == ("ACME", "A", 2)


def test_two_sequential_patches_with_the_same_version_the_second_is_409(make_app, client_of):
    c = client_of(make_app(DOCS))
    rec = _customer(c)
    first = c.patch(f"/api/v1/records/customer/{rec['id']}", json={"version": 1, "name": "First"})
    assert first.status_code == 200 and first.get_json()["version"] == 2
    _error(c.patch(f"/api/v1/records/customer/{rec['id']}", json={"version": 1, "name": "Second"}), 409, "conflict")
    assert c.get(f"/api/v1/records/customer/{rec['id']}").get_json()["name"] == "First"


def test_a_noop_patch_keeps_the_version(make_app, client_of):
    c = client_of(make_app(DOCS))
    rec = _customer(c, credit="10")
    r = c.patch(f"/api/v1/records/customer/{rec['id']}", json={"version": 1, "name": "ACME", "credit": "10.0"})
    assert r.status_code == 200 and r.get_json()["version"] == 1


def test_delete_with_a_stale_version_is_409_and_keeps_the_record(make_app, client_of):
    c = client_of(make_app(DOCS))
    rec = _customer(c)
    c.patch(f"/api/v1/records/customer/{rec['id']}", json={"version": 1, "name": "B"})
    error = _error(c.delete(f"/api/v1/records/customer/{rec['id']}?version=1"), 409, "conflict")
    assert error["current_version"] == 2
    assert c.get(f"/api/v1/records/customer/{rec['id']}").status_code == 200
    _error(c.delete(f"/api/v1/records/customer/{rec['id']}?version=abc"), 400, "bad_request")
    assert c.delete(f"/api/v1/records/customer/{rec['id']}?version=2").status_code == 204
    _error(c.get(f"/api/v1/records/customer/{rec['id']}"), 404, "not_found")


# ---------------------------------------------------------------- history

def _history(c: Any, entity_name: str, record_id: int) -> list[dict[str, Any]]:
    r = c.get(f"/api/v1/records/{entity_name}/{record_id}/history")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert set(body) == {"items"}
    for item in body["items"]:
        assert {"at", "by", "field", "old", "new"} <= set(item)
    return body["items"]


def test_history_records_create_and_each_changed_field_with_old_and_new(make_app, client_of):
    c = client_of(make_app(DOCS))
    me = c.get("/api/v1/auth/me").get_json()["user"]["id"]
    rec = _customer(c, level="B", credit="10", tags=["x"])
    items = _history(c, "customer", rec["id"])
    assert [(i["action"], i["by"]) for i in items] == [("create", me)]
    c.patch(f"/api/v1/records/customer/{rec['id']}",
            json={"version": 1, "level": "A", "credit": "12.5", "tags": ["x", "y"], "name": "ACME"})
    items = _history(c, "customer", rec["id"])
    changes = {i["field"]: (i["old"], i["new"]) for i in items if i["action"] == "update"}
    assert changes == {"level": ("B", "A"), "credit": ("10.00", "12.50"), "tags": (["x"], ["x", "y"])}
    assert items[0]["action"] == "update" and items[-1]["action"] == "create"  # newest first
    assert all(i["by"] == me for i in items)
    assert items[0]["at"] >= items[-1]["at"]


def test_a_noop_patch_writes_no_history(make_app, client_of):
    c = client_of(make_app(DOCS))
    rec = _customer(c, level="B")
    c.patch(f"/api/v1/records/customer/{rec['id']}", json={"version": 1, "level": "B", "name": " ACME "})
    assert len(_history(c, "customer", rec["id"])) == 1


def test_owner_change_is_in_history(make_app, client_of, engine_of):
    app = make_app(DOCS)
    with engine_of(app).begin() as conn:
        rep = accounts.create_user(conn, "rep", "rep-pass-123").id
    c = client_of(app)
    rec = _customer(c)
    c.patch(f"/api/v1/records/customer/{rec['id']}", json={"version": 1, "owner": rep})
    change = [i for i in _history(c, "customer", rec["id"]) if i["field"] == "owner"]
    assert [(i["old"], i["new"]) for i in change] == [(rec["owner"], rep)]


def test_child_table_change_is_recorded_on_the_parent(make_app, client_of):
    c = client_of(make_app(DOCS))
    rec = c.post("/api/v1/records/contract", json={"name": "K", "lines": [{"product": "pen", "quantity": 1}]}
                 ).get_json()
    row = rec["lines"][0]
    c.patch(f"/api/v1/records/contract/{rec['id']}",
            json={"version": 1, "lines": [{"id": row["id"], "quantity": 3}, {"product": "pad", "quantity": 1}]})
    items = [i for i in _history(c, "contract", rec["id"]) if i["field"] == "lines"]
    assert len(items) == 1
    old, new = items[0]["old"], items[0]["new"]
    assert [(r["product"], r["quantity"]) for r in old] == [("pen", 1)]
    assert [(r["product"], r["quantity"]) for r in new] == [("pen", 3), ("pad", 1)]
    # Sending the same rows again changes nothing and records nothing.
    current = c.get(f"/api/v1/records/contract/{rec['id']}").get_json()
    c.patch(f"/api/v1/records/contract/{rec['id']}", json={"version": current["version"], "lines": current["lines"]})
    assert len([i for i in _history(c, "contract", rec["id"]) if i["field"] == "lines"]) == 1


def test_delete_is_recorded_in_history(make_app, client_of, engine_of):
    app = make_app(DOCS)
    c = client_of(app)
    rec = _customer(c)
    assert c.delete(f"/api/v1/records/customer/{rec['id']}").status_code == 204
    with engine_of(app).connect() as conn:
        rows = conn.execute(sa.text("SELECT action, old FROM mc_history WHERE entity = 'customer' "
                                    "AND record_id = :id ORDER BY id"), {"id": rec["id"]}).all()
    assert [r[0] for r in rows] == ["create", "delete"]
    old = rows[1][1]
    if isinstance(old, str):  # SQLite's JSON comes back as text through sa.text()
        old = json.loads(old)
    assert old["name"] == "ACME"


def test_history_of_a_missing_record_is_404(make_app, client_of):
    c = client_of(make_app(DOCS))
    _error(c.get("/api/v1/records/customer/999/history"), 404, "not_found")
    _error(c.get("/api/v1/records/nope/1/history"), 404, "not_found")


# ---------------------------------------------------------------- delete

def test_deleting_a_record_still_referenced_by_a_lookup_is_409(make_app, client_of):
    c = client_of(make_app(DOCS))
    cust = _customer(c)
    k = c.post("/api/v1/records/contract", json={"name": "K", "customer": cust["id"]}).get_json()
    error = _error(c.delete(f"/api/v1/records/customer/{cust['id']}"), 409, "conflict")
    assert "referenced" in error["message"]
    assert c.get(f"/api/v1/records/customer/{cust['id']}").status_code == 200
    assert len(_history(c, "customer", cust["id"])) == 1  # no delete entry for a refused delete
    # Re-pointing the contract frees the customer.
    c.patch(f"/api/v1/records/contract/{k['id']}", json={"version": 1, "customer": None})
    assert c.delete(f"/api/v1/records/customer/{cust['id']}").status_code == 204


def test_child_rows_are_deleted_with_the_parent(make_app, client_of, engine_of):
    app = make_app(DOCS)
    c = client_of(app)
    k = c.post("/api/v1/records/contract", json={"name": "K", "lines": [{"product": "a"}, {"product": "b"}]}
               ).get_json()
    other = c.post("/api/v1/records/contract", json={"name": "L", "lines": [{"product": "c"}]}).get_json()
    assert c.delete(f"/api/v1/records/contract/{k['id']}").status_code == 204
    with engine_of(app).connect() as conn:
        parents = conn.execute(sa.text("SELECT parent_id FROM ent_line")).scalars().all()
    assert parents == [other["id"]]


def test_deleting_a_missing_record_is_404(make_app, client_of):
    c = client_of(make_app(DOCS))
    _error(c.delete("/api/v1/records/customer/12345"), 404, "not_found")


# ---------------------------------------------------------------- expand

def test_expand_adds_titles_of_lookups_and_owner(make_app, client_of):
    c = client_of(make_app(DOCS))
    cust = _customer(c, name="Globex")
    k = c.post("/api/v1/records/contract", json={"name": "K", "customer": cust["id"]}).get_json()
    c.post("/api/v1/records/contract", json={"name": "No customer"})
    got = c.get(f"/api/v1/records/contract/{k['id']}?expand=customer,owner").get_json()
    assert got["customer"] == cust["id"] and got["customer__title"] == "Globex"
    assert got["owner__title"] == "Admin"
    plain = c.get(f"/api/v1/records/contract/{k['id']}").get_json()
    assert "customer__title" not in plain and "owner__title" not in plain
    items = c.get("/api/v1/records/contract?expand=customer&sort=id").get_json()["items"]
    assert [(i["name"], i["customer__title"]) for i in items] == [("K", "Globex"), ("No customer", None)]


def test_expand_titles_users_and_departments(make_app, client_of, engine_of):
    app = make_app([entity("task", {"name": "title", "type": "text"}, {"name": "assignee", "type": "user"},
                          {"name": "team", "type": "department", "default": "$my_department"}, ownership=True),
                   role("writer", "task")])
    engine = engine_of(app)
    with engine.begin() as conn:
        team = conn.execute(systables.departments.insert().values(name="East", created_at=utcnow())
                            .returning(systables.departments.c.id)).scalar_one()
        accounts.create_user(conn, "rep", "rep-pass-123", display_name="Rep Li", department_id=team,
                             roles=("writer",))
    c = client_of(app, "rep", "rep-pass-123")
    me = c.get("/api/v1/auth/me").get_json()["user"]["id"]
    rec = c.post("/api/v1/records/task", json={"title": "t", "assignee": me}).get_json()
    assert rec["team"] == team and rec["department"] == team
    got = c.get(f"/api/v1/records/task/{rec['id']}?expand=assignee,team,created_by,department").get_json()
    assert (got["assignee__title"], got["team__title"], got["created_by__title"], got["department__title"]) == (
        "Rep Li", "East", "Rep Li", "East")


def test_bad_expand_is_400(make_app, client_of):
    c = client_of(make_app(DOCS))
    k = c.post("/api/v1/records/contract", json={"name": "K"}).get_json()
    for expand in ("name", "nope", "lines", "customer,bogus", "__class__", "id"):
        _error(c.get(f"/api/v1/records/contract/{k['id']}?expand={expand}"), 400, "bad_request")
        _error(c.get(f"/api/v1/records/contract?expand={expand}"), 400, "bad_request")


# ---------------------------------------------------------------- 404s

def test_unknown_entity_is_404_everywhere(make_app, client_of):
    c = client_of(make_app(DOCS))
    for r in (c.get("/api/v1/records/nope"), c.post("/api/v1/records/nope", json={}),
              c.get("/api/v1/records/nope/1"), c.patch("/api/v1/records/nope/1", json={"version": 1}),
              c.delete("/api/v1/records/nope/1")):
        _error(r, 404, "not_found")


def test_a_child_entity_is_not_addressable_on_its_own(make_app, client_of):
    c = client_of(make_app(DOCS))
    k = c.post("/api/v1/records/contract", json={"name": "K", "lines": [{"product": "a"}]}).get_json()
    row_id = k["lines"][0]["id"]
    for r in (c.get("/api/v1/records/line"), c.post("/api/v1/records/line", json={"product": "x"}),
              c.get(f"/api/v1/records/line/{row_id}"), c.delete(f"/api/v1/records/line/{row_id}"),
              c.patch(f"/api/v1/records/line/{row_id}", json={"version": 1, "product": "y"})):
        _error(r, 404, "not_found")
    assert c.get(f"/api/v1/records/contract/{k['id']}").get_json()["lines"][0]["product"] == "a"


def test_a_missing_record_is_404(make_app, client_of):
    c = client_of(make_app(DOCS))
    _error(c.get("/api/v1/records/customer/999"), 404, "not_found")
    _error(c.patch("/api/v1/records/customer/999", json={"version": 1, "name": "x"}), 404, "not_found")
    _error(c.get("/api/v1/records/customer/abc"), 404, "not_found")


def test_ids_no_record_can_have_are_404_not_a_database_error(make_app, client_of):
    c = client_of(make_app(DOCS))
    _customer(c)
    for record_id in ("0", "2147483648", "99999999999", "99999999999999999999999"):
        _error(c.get(f"/api/v1/records/customer/{record_id}"), 404, "not_found")
        _error(c.get(f"/api/v1/records/customer/{record_id}/history"), 404, "not_found")
        _error(c.patch(f"/api/v1/records/customer/{record_id}", json={"version": 1}), 404, "not_found")
        _error(c.delete(f"/api/v1/records/customer/{record_id}"), 404, "not_found")
        _error(c.get(f"/api/v1/records/customer/{record_id}?expand=owner"), 404, "not_found")


def test_delete_with_a_malformed_version_is_400(make_app, client_of):
    c = client_of(make_app(DOCS))
    rec = _customer(c)
    for version in ("abc", "-1", "1.0", "\u00b2", ""):
        r = c.delete(f"/api/v1/records/customer/{rec['id']}", query_string={"version": version})
        _error(r, 400, "bad_request")
    assert c.get(f"/api/v1/records/customer/{rec['id']}").status_code == 200


# ---------------------------------------------------------------- autonumbers under concurrency

NUMBERED = entity("ticket", {"name": "subject", "type": "text"}, naming={"autonumber": "T-{#####}"})


def test_autonumbers_increase_one_by_one(make_app, client_of):
    c = client_of(make_app([NUMBERED]))
    codes = [c.post("/api/v1/records/ticket", json={"subject": str(i)}).get_json()["code"] for i in range(5)]
    assert codes == [f"T-{i:05d}" for i in range(1, 6)]


def test_a_failed_create_does_not_burn_a_number(make_app, client_of):
    c = client_of(make_app([entity("ticket", {"name": "subject", "type": "text", "required": True},
                                   naming={"autonumber": "T-{#####}"})]))
    assert c.post("/api/v1/records/ticket", json={"subject": "a"}).get_json()["code"] == "T-00001"
    assert c.post("/api/v1/records/ticket", json={}).status_code == 422
    assert c.post("/api/v1/records/ticket", json={"subject": "b"}).get_json()["code"] == "T-00002"


@pytest.mark.skipif(not PG, reason="concurrent writers need PostgreSQL (SQLite serialises them; the API "
                                    "variant below covers it)")
def test_concurrent_creates_each_get_a_distinct_autonumber(make_app, engine_of):
    app = make_app([NUMBERED])
    engine = engine_of(app)
    rt = app.extensions[EXTENSION]
    with engine.connect() as conn:
        admin = accounts.find_account(conn, "admin")
        principal = accounts.principal_for(conn, admin)  # type: ignore[arg-type]
    threads_n, per_thread = 8, 5
    barrier = threading.Barrier(threads_n)
    codes: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with engine.begin() as conn:
                    rec = create_record(conn, rt.catalog(conn), principal, "ticket", {"subject": str(i)})
                with lock:
                    codes.append(rec["code"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    total = threads_n * per_thread
    assert sorted(codes) == [f"T-{i:05d}" for i in range(1, total + 1)]


def test_concurrent_creates_through_the_api_get_distinct_numbers(make_app, client_of):
    """On PostgreSQL the writers really overlap; SQLite queues them (BEGIN IMMEDIATE), and
    must still answer every request instead of failing with "database is locked"."""
    app = make_app([NUMBERED])
    clients = [client_of(app) for _ in range(6)]
    barrier = threading.Barrier(len(clients))
    results: list[Any] = []

    def work(c: Any) -> None:
        barrier.wait()
        for i in range(3):
            r = c.post("/api/v1/records/ticket", json={"subject": str(i)})
            results.append((r.status_code, r.get_json().get("code")))

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(status == 201 for status, _ in results), results
    assert sorted(code for _, code in results) == [f"T-{i:05d}" for i in range(1, 19)]


def test_concurrent_stale_updates_only_one_wins(make_app, client_of):
    """Two clients holding version 1: exactly one PATCH succeeds, the other gets 409."""
    app = make_app(DOCS)
    a, b = client_of(app), client_of(app)
    rec = _customer(a)
    results = {}

    def work(name: str, c: Any) -> None:
        results[name] = c.patch(f"/api/v1/records/customer/{rec['id']}", json={"version": 1, "name": name})

    threads = [threading.Thread(target=work, args=(n, c)) for n, c in (("A", a), ("B", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [200, 409], {n: (r.status_code, r.get_json()) for n, r in results.items()}
    winner = next(n for n, r in results.items() if r.status_code == 200)
    got = a.get(f"/api/v1/records/customer/{rec['id']}").get_json()
    assert (got["name"], got["version"]) == (winner, 2)


def test_service_rejects_a_payload_that_is_not_an_object(make_app, engine_of):
    """The record service itself (imports and jobs call it directly) refuses non-objects cleanly."""
    from metacrm.runtime.errors import BadRequest
    app = make_app(DOCS)
    rt = app.extensions[EXTENSION]
    principal = Principal(user_id=None, username="system", is_admin=True)
    with engine_of(app).begin() as conn:
        with pytest.raises(BadRequest):
            create_record(conn, rt.catalog(conn), principal, "customer", ["not", "a", "record"])


def test_service_refuses_text_no_database_can_store(make_app, engine_of):
    """Imports reach the service without the API's JSON checks: NUL and lone surrogates
    are field errors there too, not database errors."""
    from metacrm.runtime.errors import ValidationFailed
    app = make_app(DOCS)
    rt = app.extensions[EXTENSION]
    principal = Principal(user_id=None, username="system", is_admin=True)
    for bad in ("a\x00b", "a\ud800b"):
        with engine_of(app).begin() as conn:
            with pytest.raises(ValidationFailed) as info:
                create_record(conn, rt.catalog(conn), principal, "customer", {"name": bad})
        assert list(info.value.fields) == ["name"]
