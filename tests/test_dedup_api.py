"""The dedup engine through the API: rules block (409), warn (_duplicates), check other
entities, respect data scope in match lists, keep keys right on update/delete/publish,
scan for groups, merge them, the global 查重 search, and concurrent creates on PostgreSQL."""
from __future__ import annotations

import os
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from metacrm.runtime import systables

from .support import add_user, admin_bearer, bearer, entity, error_of, republish

PG = bool(os.environ.get("METACRM_TEST_DATABASE_URL"))

CUSTOMER = entity("customer", {"name": "name", "type": "text", "required": True},
                  {"name": "phone", "type": "phone"}, {"name": "email", "type": "email"},
                  {"name": "parent", "type": "lookup", "target": "customer"},
                  ownership=True, title_field="name", actions=[{"name": "merge"}])
LEAD = entity("lead", {"name": "name", "type": "text", "required": True}, {"name": "company", "type": "text"},
              {"name": "mobile", "type": "phone"}, ownership=True, title_field="name")
CONTACT = entity("contact", {"name": "name", "type": "text", "required": True},
                 {"name": "customer", "type": "lookup", "target": "customer"}, {"name": "mobile", "type": "phone"},
                 ownership=True, title_field="name")
NOTE = entity("note", {"name": "about", "type": "reference", "targets": ["customer", "lead"]},
              {"name": "text", "type": "text"}, ownership=True, title_field="text")
BLOCK = {"kind": "dedup", "name": "customer_by_name_or_phone", "entity": "customer", "action": "block",
         "match": "any", "on": ["create", "update"],
         "conditions": [{"field": "name", "method": "company_name", "threshold": 0.92},
                        {"field": "phone", "method": "phone"}],
         "also_check": [{"entity": "lead", "fields": {"name": "company", "phone": "mobile"}}]}
WARN = {"kind": "dedup", "name": "contact_by_mobile", "entity": "contact", "action": "warn",
        "conditions": [{"field": "mobile", "method": "phone"}]}
ROLES = [
    {"kind": "role", "name": "rep", "label": "rep", "permissions": {
        e: {"create": True, "read": "self", "update": "self", "delete": "self"}
        for e in ("customer", "lead", "contact", "note")}},
    {"kind": "role", "name": "boss", "label": "boss", "permissions": {
        e: {"create": True, "read": "all", "update": "all", "delete": "all", **({"merge": "all"} if e == "customer" else {})}
        for e in ("customer", "lead", "contact", "note")}},
]
DOCS = [CUSTOMER, LEAD, CONTACT, NOTE, BLOCK, WARN, *ROLES]


def _app(make_app: Any, engine_of: Any, docs: list[dict[str, Any]] = DOCS) -> tuple[Any, Any, dict[str, dict[str, str]]]:
    app = make_app(docs)
    with engine_of(app).begin() as conn:
        users = {name: bearer(conn, add_user(conn, name, roles=[role], display_name=name.title()))
                 for name, role in (("amy", "rep"), ("bob", "rep"), ("boss", "boss"))}
    users["admin"] = admin_bearer(app)
    return app, app.test_client(), users


def _post(c: Any, entity_name: str, body: dict[str, Any], who: dict[str, str]) -> Any:
    return c.post(f"/api/v1/records/{entity_name}", json=body, headers=who)


def _count(engine: Any, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


# ---------------------------------------------------------------- block, warn, also_check

def test_block_rule_refuses_a_duplicate_create_with_409_and_writes_nothing(make_app, engine_of):
    app, c, u = _app(make_app, engine_of)
    first = _post(c, "customer", {"name": "北京字节跳动科技有限公司", "phone": "010-65529988"}, u["amy"])
    assert first.status_code == 201, first.get_json()
    before = (_count(engine_of(app), "ent_customer"), _count(engine_of(app), "mc_history"),
              _count(engine_of(app), "mc_dedup_keys"))
    for dup in ({"name": "字节跳动（北京）科技有限公司"}, {"name": "Other Co", "phone": "+86 10 6552 9988"}):
        err = error_of(_post(c, "customer", dup, u["amy"]), 409, "duplicate")
        assert err["matches"] == [{"entity": "customer", "id": first.get_json()["id"], "score": 1.0,
                                   "rule": "customer_by_name_or_phone", "title": "北京字节跳动科技有限公司",
                                   "owner": "Amy", "action": "block"}]
        assert "nothing was saved" in err["message"]
    after = (_count(engine_of(app), "ent_customer"), _count(engine_of(app), "mc_history"),
             _count(engine_of(app), "mc_dedup_keys"))
    assert after == before
    assert _post(c, "customer", {"name": "Acme Trading", "phone": "13900000000"}, u["amy"]).status_code == 201


def test_block_rule_checks_other_entities_through_also_check(make_app, engine_of):
    app, c, u = _app(make_app, engine_of)
    lead = _post(c, "lead", {"name": "张三", "company": "ACME Co., Ltd.", "mobile": "+86 138 1234 5678"}, u["amy"])
    err = error_of(_post(c, "customer", {"name": "Acme Company Limited"}, u["amy"]), 409, "duplicate")
    assert [(m["entity"], m["id"], m["title"]) for m in err["matches"]] == [("lead", lead.get_json()["id"], "张三")]
    err = error_of(_post(c, "customer", {"name": "Different", "phone": "13812345678"}, u["amy"]), 409, "duplicate")
    assert err["matches"][0]["entity"] == "lead"


def test_warn_rule_saves_and_returns_the_matches(make_app, engine_of):
    app, c, u = _app(make_app, engine_of)
    first = _post(c, "contact", {"name": "Li Na", "mobile": "13812345678"}, u["amy"]).get_json()
    assert "_duplicates" not in first
    second = _post(c, "contact", {"name": "李娜", "mobile": "+86 138-1234-5678"}, u["amy"])
    assert second.status_code == 201
    body = second.get_json()
    assert body["_duplicates"] == [{"entity": "contact", "id": first["id"], "score": 1.0, "rule": "contact_by_mobile",
                                    "title": "Li Na", "owner": "Amy", "action": "warn"}]
    assert _count(engine_of(app), "ent_contact") == 2


def test_update_is_checked_only_when_a_rule_field_changes(make_app, engine_of):
    app, c, u = _app(make_app, engine_of)
    _post(c, "customer", {"name": "Acme", "phone": "13800000001"}, u["admin"])
    other = _post(c, "customer", {"name": "Northwind", "phone": "13800000002"}, u["admin"]).get_json()
    r = c.patch(f"/api/v1/records/customer/{other['id']}", json={"version": 1, "name": "ACME Inc."}, headers=u["admin"])
    error_of(r, 409, "duplicate")
    r = c.patch(f"/api/v1/records/customer/{other['id']}", json={"version": 1, "email": "x@northwind.com"},
                headers=u["admin"])
    assert r.status_code == 200, r.get_json()
    r = c.patch(f"/api/v1/records/customer/{other['id']}", json={"version": 2, "name": "Northwind Traders"},
                headers=u["admin"])
    assert r.status_code == 200
    # the new name is what is matched now, the old one is free
    error_of(_post(c, "customer", {"name": "Northwind Traders Ltd"}, u["admin"]), 409, "duplicate")
    assert _post(c, "customer", {"name": "Northwind"}, u["admin"]).status_code == 201


def test_deleted_records_no_longer_match(make_app, engine_of):
    app, c, u = _app(make_app, engine_of)
    rec = _post(c, "customer", {"name": "Acme"}, u["admin"]).get_json()
    assert c.delete(f"/api/v1/records/customer/{rec['id']}", headers=u["admin"]).status_code == 204
    assert _post(c, "customer", {"name": "ACME Ltd"}, u["admin"]).status_code == 201


def test_match_all_requires_the_combination(make_app, engine_of):
    combo = {"kind": "dedup", "name": "same_name_and_phone", "entity": "lead", "action": "block", "match": "all",
             "conditions": [{"field": "name", "method": "person_name"}, {"field": "mobile", "method": "phone"}]}
    app, c, u = _app(make_app, engine_of, [CUSTOMER, LEAD, combo, *ROLES[:0]])
    assert _post(c, "lead", {"name": "张三", "mobile": "13812345678"}, u["admin"]).status_code == 201
    assert _post(c, "lead", {"name": "张三", "mobile": "13900000000"}, u["admin"]).status_code == 201
    assert _post(c, "lead", {"name": "Li Si", "mobile": "13812345678"}, u["admin"]).status_code == 201
    err = error_of(_post(c, "lead", {"name": "San Zhang", "mobile": "+86 138 1234 5678"}, u["admin"]), 409, "duplicate")
    assert err["matches"][0]["rule"] == "same_name_and_phone"


# ---------------------------------------------------------------- the duplicates endpoint and permissions

def test_duplicates_endpoint_scores_matches_and_excludes_the_edited_record(make_app, engine_of):
    app, c, u = _app(make_app, engine_of)
    rec = _post(c, "customer", {"name": "Acme Global Trading", "phone": "13800000001"}, u["amy"]).get_json()
    r = c.post("/api/v1/records/customer/duplicates", json={"name": "Acme Global Tradng Co."}, headers=u["amy"])
    assert r.status_code == 200
    (m,) = r.get_json()["matches"]
    assert (m["entity"], m["id"], m["rule"], m["title"]) == ("customer", rec["id"], "customer_by_name_or_phone",
                                                           "Acme Global Trading")
    assert 0.92 <= m["score"] < 1
    r = c.post("/api/v1/records/customer/duplicates", json={"id": rec["id"], "name": "Acme Global Trading"},
               headers=u["amy"])
    assert r.get_json() == {"matches": []}
    error_of(c.post("/api/v1/records/customer/duplicates", json=[1], headers=u["amy"]), 400)
    error_of(c.post("/api/v1/records/nothing/duplicates", json={}, headers=u["amy"]), 404)


def test_match_lists_hide_what_the_caller_may_not_read(make_app, engine_of):
    app, c, u = _app(make_app, engine_of)
    _post(c, "customer", {"name": "Acme", "phone": "13800000001"}, u["bob"])
    for r in (c.post("/api/v1/records/customer/duplicates", json={"name": "ACME Ltd."}, headers=u["amy"]),
              _post(c, "customer", {"name": "ACME Ltd."}, u["amy"])):
        body = r.get_json()
        matches = body["matches"] if "matches" in body else body["error"]["matches"]
        assert matches == [{"entity": "customer", "id": None, "score": 1.0, "rule": "customer_by_name_or_phone",
                            "title": None, "owner": "Bob", "action": "block"}]
    # the boss may read it: everything shown
    r = c.post("/api/v1/records/customer/duplicates", json={"name": "ACME Ltd."}, headers=u["boss"])
    assert r.get_json()["matches"][0]["title"] == "Acme"


# ---------------------------------------------------------------- keys follow the rules (publish backfill)

def test_publishing_a_new_rule_backfills_keys_for_existing_records(make_app, engine_of):
    app, c, u = _app(make_app, engine_of, [CUSTOMER, LEAD, CONTACT, NOTE, *ROLES])
    rec = _post(c, "customer", {"name": "Acme", "email": "Info@Acme.com"}, u["admin"]).get_json()
    assert _count(engine_of(app), "mc_dedup_keys") == 0
    email_rule = {"kind": "dedup", "name": "customer_by_email", "entity": "customer", "action": "block",
                  "conditions": [{"field": "email", "method": "email"}]}
    republish(app, [CUSTOMER, LEAD, CONTACT, NOTE, email_rule, *ROLES])
    with engine_of(app).connect() as conn:
        keys = conn.execute(sa.select(systables.dedup_keys.c.record_id, systables.dedup_keys.c.key)).all()
    assert [tuple(k) for k in keys] == [(rec["id"], "info@acme.com")]
    error_of(_post(c, "customer", {"name": "X", "email": "info@ACME.com"}, u["admin"]), 409, "duplicate")
    republish(app, [CUSTOMER, LEAD, CONTACT, NOTE, *ROLES], version="1.2.0")
    assert _count(engine_of(app), "mc_dedup_keys") == 0
    assert _post(c, "customer", {"name": "X", "email": "info@ACME.com"}, u["admin"]).status_code == 201


# ---------------------------------------------------------------- scan and merge

def test_scan_finds_groups_and_merge_repoints_links_and_records_history(make_app, engine_of):
    warn_only = {**BLOCK, "action": "warn"}
    app, c, u = _app(make_app, engine_of, [CUSTOMER, LEAD, CONTACT, NOTE, warn_only, *ROLES])
    a = _post(c, "customer", {"name": "Acme Co., Ltd.", "phone": "13800000001"}, u["boss"]).get_json()
    b = _post(c, "customer", {"name": "ACME Company Limited", "email": "info@acme.com"}, u["boss"]).get_json()
    d = _post(c, "customer", {"name": "Acme Ltd"}, u["boss"]).get_json()
    north = _post(c, "customer", {"name": "Northwind", "parent": d["id"]}, u["boss"]).get_json()
    a = c.patch(f"/api/v1/records/customer/{a['id']}", json={"version": 1, "parent": b["id"]},
                headers=u["boss"]).get_json()
    contact = _post(c, "contact", {"name": "Li Na", "customer": b["id"]}, u["boss"]).get_json()
    note = _post(c, "note", {"about": {"entity": "customer", "id": d["id"]}, "text": "met"}, u["boss"]).get_json()
    lead_note = _post(c, "note", {"about": {"entity": "lead", "id": 99}, "text": "x"}, u["boss"])
    assert lead_note.status_code == 422  # references are checked; unrelated to the merge

    r = c.get("/api/v1/admin/dedup/customer/groups", headers=u["boss"])
    assert r.status_code == 200, r.get_json()
    groups = r.get_json()["groups"]
    assert [[x["id"] for x in g["records"]] for g in groups] == [[a["id"], b["id"], d["id"]]]
    error_of(c.get("/api/v1/admin/dedup/customer/groups", headers=u["amy"]), 403)

    r = c.post(f"/api/v1/records/customer/{a['id']}/actions/merge", headers=u["boss"],
               json={"duplicates": [b["id"], d["id"]], "values": {"email": "info@acme.com"}})
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    assert out["merged"] == [b["id"], d["id"]]
    assert out["repointed"] == {"contact.customer": 1, "customer.parent": 2, "note.about": 1}
    # the survivor's parent was its own duplicate: emptied, not pointing at itself
    assert out["record"]["email"] == "info@acme.com" and out["record"]["parent"] is None
    assert c.get(f"/api/v1/records/customer/{north['id']}", headers=u["boss"]).get_json()["parent"] == a["id"]
    assert c.get(f"/api/v1/records/contact/{contact['id']}", headers=u["boss"]).get_json()["customer"] == a["id"]
    assert c.get(f"/api/v1/records/note/{note['id']}", headers=u["boss"]).get_json()["about"] == \
        {"entity": "customer", "id": a["id"]}
    for gone in (b, d):
        assert c.get(f"/api/v1/records/customer/{gone['id']}", headers=u["boss"]).status_code == 404
    history = c.get(f"/api/v1/records/customer/{a['id']}/history", headers=u["boss"]).get_json()["items"]
    merge = next(h for h in history if h["action"] == "merge")
    assert merge["new"]["merged"] == [b["id"], d["id"]]
    contact_history = c.get(f"/api/v1/records/contact/{contact['id']}/history", headers=u["boss"]).get_json()["items"]
    assert any(h["field"] == "customer" and h["old"] == b["id"] and h["new"] == a["id"] for h in contact_history)
    assert c.get("/api/v1/admin/dedup/customer/groups", headers=u["boss"]).get_json()["groups"] == []


def test_merge_refuses_bad_bodies_and_records_out_of_scope(make_app, engine_of):
    app, c, u = _app(make_app, engine_of, [CUSTOMER, LEAD, CONTACT, NOTE, *ROLES])
    a = _post(c, "customer", {"name": "Acme"}, u["amy"]).get_json()
    b = _post(c, "customer", {"name": "Acme"}, u["bob"]).get_json()
    for body in ({}, {"duplicates": []}, {"duplicates": ["x"]}, {"duplicates": [a["id"]]},
                 {"duplicates": [b["id"]], "values": {"version": 3}}):
        error_of(c.post(f"/api/v1/records/customer/{a['id']}/actions/merge", json=body, headers=u["boss"]), 422)
    error_of(c.post(f"/api/v1/records/customer/{a['id']}/actions/merge", json={"duplicates": [b["id"]]},
                    headers=u["amy"]), 403)   # reps hold no merge right
    error_of(c.post(f"/api/v1/records/customer/{a['id']}/actions/merge", json={"duplicates": [9999]},
                    headers=u["boss"]), 404)
    assert _count(engine_of(app), "ent_customer") == 2


# ---------------------------------------------------------------- the global duplicate check (查重)

def test_global_search_tells_that_a_match_exists_and_whose_it_is(make_app, engine_of):
    app, c, u = _app(make_app, engine_of)
    cust = _post(c, "customer", {"name": "北京字节跳动科技有限公司", "phone": "010-65529988"}, u["bob"]).get_json()
    _post(c, "lead", {"name": "王五", "company": "字节跳动(北京)科技有限公司"}, u["amy"])
    with engine_of(app).begin() as conn:  # a customer in the public pool: no owner
        conn.execute(sa.text("UPDATE ent_customer SET owner = NULL WHERE id = :i"), {"i": cust["id"]})
    r = c.get("/api/v1/duplicates/search", query_string={"q": "字节跳动科技有限公司"}, headers=u["amy"])
    assert r.status_code == 200
    found = {(m["entity"], m["owner"], m["in_pool"], m.get("title")) for m in r.get_json()["matches"]}
    assert found == {("customer", None, True, None), ("lead", "Amy", False, "王五")}
    customer_hit = next(m for m in r.get_json()["matches"] if m["entity"] == "customer")
    assert "id" not in customer_hit and "title" not in customer_hit
    by_phone = c.get("/api/v1/duplicates/search", query_string={"q": "+86 10 6552 9988"}, headers=u["amy"])
    assert [m["entity"] for m in by_phone.get_json()["matches"]] == ["customer"]
    error_of(c.get("/api/v1/duplicates/search", query_string={"q": "x"}, headers=u["amy"]), 400)


# ---------------------------------------------------------------- race safety (PostgreSQL)

@pytest.mark.skipif(not PG, reason="needs PostgreSQL: SQLite serialises writers with BEGIN IMMEDIATE")
def test_concurrent_creates_of_the_same_customer_only_one_succeeds(make_app, client_of):
    app = make_app(DOCS)
    clients = [client_of(app) for _ in range(6)]
    names = ["北京字节跳动科技有限公司", "字节跳动(北京)科技有限公司", "字节跳动（北京）科技有限公司",
             "北京市字节跳动科技股份有限公司", "北京字节跳动科技有限公司", "字节跳动科技有限公司"]
    barrier = threading.Barrier(len(clients))
    results: list[int] = []

    def work(c: Any, name: str) -> None:
        barrier.wait()
        results.append(c.post("/api/v1/records/customer", json={"name": name}).status_code)

    for _round in range(3):
        results.clear()
        threads = [threading.Thread(target=work, args=(c, n)) for c, n in zip(clients, names)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ([201] if _round == 0 else []) + [409] * (len(clients) - (_round == 0)), results
    with app.extensions["metacrm"].engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM ent_customer")).scalar_one() == 1
