"""Every field type through the REST API: POST a value, GET it back in the contract's shape.

Decimals come back as JSON strings, dates and datetimes as ISO 8601, lookups as ids,
child tables as lists of rows written together with their parent, formulas and
autonumbers computed by the server.
"""
from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
import sqlalchemy as sa

from metacrm.runtime import accounts, clock, systables

from .support import role, entity

FROZEN = dt.datetime(2026, 3, 14, 9, 30, tzinfo=dt.timezone.utc)


@pytest.fixture
def frozen_now() -> Any:
    """The runtime clock reads 2026-03-14 09:30 UTC for the duration of a test."""
    clock.set_clock(lambda: FROZEN)
    yield FROZEN
    clock.set_clock(None)


OPTIONS = [{"value": "A", "label": {"en": "Key", "zh": "重点"}}, {"value": "B", "label": "Normal"}]

CUSTOMER = entity("customer", {"name": "name", "type": "text", "required": True}, title_field="name")

LINE = entity(
    "line",
    {"name": "product", "type": "text"},
    {"name": "quantity", "type": "integer", "min": 1},
    {"name": "price", "type": "currency"},
    {"name": "discount", "type": "percent"},
    {"name": "amount", "type": "formula", "result_type": "currency",
     "expression": "quantity * price * (1 - discount / 100)"},
    child_of="thing",
)

THING = entity(
    "thing",
    {"name": "name", "type": "text"},
    {"name": "notes", "type": "textarea"},
    {"name": "body", "type": "richtext"},
    {"name": "count", "type": "integer"},
    {"name": "ratio", "type": "decimal", "precision": 10, "scale": 3},
    {"name": "budget", "type": "currency"},
    {"name": "rate", "type": "percent"},
    {"name": "active", "type": "boolean"},
    {"name": "due", "type": "date"},
    {"name": "meet_at", "type": "datetime"},
    {"name": "level", "type": "select", "options": OPTIONS},
    {"name": "tags", "type": "multiselect", "options": [{"value": "x"}, {"value": "y"}, {"value": "z"}]},
    {"name": "email", "type": "email"},
    {"name": "phone", "type": "phone"},
    {"name": "site", "type": "url"},
    {"name": "customer", "type": "lookup", "target": "customer"},
    {"name": "subject", "type": "reference", "targets": ["customer", "thing"]},
    {"name": "assignee", "type": "user"},
    {"name": "team", "type": "department"},
    {"name": "lines", "type": "table", "target": "line"},
    {"name": "total", "type": "formula", "result_type": "currency", "expression": "sum(lines.amount)"},
    {"name": "attachment", "type": "file"},
    {"name": "photo", "type": "image"},
    {"name": "spot", "type": "location"},
    title_field="name",
    ownership=True,
)


def _department(engine: sa.Engine, name: str = "Sales") -> int:
    with engine.begin() as conn:
        return conn.execute(systables.departments.insert().values(name=name, created_at=clock.utcnow())
                            .returning(systables.departments.c.id)).scalar_one()


def _admin_id(client: Any) -> int:
    return client.get("/api/v1/auth/me").get_json()["user"]["id"]


def test_every_simple_field_type_round_trips_through_post_and_get(make_app, client_of, engine_of):
    app = make_app([CUSTOMER, LINE, THING])
    c = client_of(app)
    team = _department(engine_of(app))
    me = _admin_id(c)
    acme = c.post("/api/v1/records/customer", json={"name": "ACME"}).get_json()["id"]
    # File and image fields hold the key of an upload (tests/test_files.py covers uploads).
    pdf = c.post("/api/v1/files", content_type="multipart/form-data", data={
        "file": (io.BytesIO(b"%PDF-1.4"), "contract.pdf")}).get_json()["key"]
    png = c.post("/api/v1/files", content_type="multipart/form-data", data={
        "file": (io.BytesIO(b"\x89PNG\r\n\x1a\n" + bytes(24)), "logo.png")}).get_json()["key"]
    sent = {
        "name": "  Widget  ",
        "notes": "line one\nline two",
        "body": "<p>Hello <b>world</b></p>",
        "count": 42,
        "ratio": "3.14159",
        "budget": "1,234.5",
        "rate": 12.5,
        "active": True,
        "due": "2026-02-28",
        "meet_at": "2026-02-28T10:15:00+08:00",
        "level": "A",
        "tags": ["y", "x"],
        "email": "ada@example.com",
        "phone": "+86 138-0013-8000",
        "site": "https://example.com/a?b=c",
        "customer": acme,
        "subject": {"entity": "customer", "id": acme},
        "assignee": me,
        "team": team,
        "attachment": pdf,
        "photo": png,
        "spot": {"lat": 31.2304, "lng": 121.4737, "address": "上海市人民广场"},
    }
    r = c.post("/api/v1/records/thing", json=sent)
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    got = c.get(f"/api/v1/records/thing/{created['id']}").get_json()
    assert got == created
    expected = {
        "name": "Widget",
        "notes": "line one\nline two",
        "body": "<p>Hello <b>world</b></p>",
        "count": 42,
        "ratio": "3.142",
        "budget": "1234.50",
        "rate": "12.5000",
        "active": True,
        "due": "2026-02-28",
        "level": "A",
        "tags": ["y", "x"],
        "email": "ada@example.com",
        "phone": "+86 138-0013-8000",
        "site": "https://example.com/a?b=c",
        "customer": acme,
        "subject": {"entity": "customer", "id": acme},
        "assignee": me,
        "team": team,
        "attachment": pdf,
        "photo": png,
        "spot": {"lat": 31.2304, "lng": 121.4737, "address": "上海市人民广场"},
        "lines": [],
        "total": "0.00",  # sum() of no rows is 0
    }
    assert {k: got[k] for k in expected} == expected
    assert dt.datetime.fromisoformat(got["meet_at"]) == dt.datetime(2026, 2, 28, 2, 15, tzinfo=dt.timezone.utc)
    assert got["version"] == 1 and got["owner"] == me and got["created_by"] == me
    dt.datetime.fromisoformat(got["created_at"])


def test_values_round_trip_through_the_list_endpoint_too(make_app, client_of):
    app = make_app([CUSTOMER, LINE, THING])
    c = client_of(app)
    c.post("/api/v1/records/thing", json={"name": "W", "budget": "10", "due": "2026-01-02", "tags": ["z"]})
    item = c.get("/api/v1/records/thing").get_json()["items"][0]
    assert (item["budget"], item["due"], item["tags"]) == ("10.00", "2026-01-02", ["z"])


def test_clearing_values_with_null_and_empty_string(make_app, client_of):
    app = make_app([CUSTOMER, LINE, THING])
    c = client_of(app)
    rec = c.post("/api/v1/records/thing", json={"name": "W", "count": 3, "budget": "5", "tags": ["x"],
                                                "spot": {"lat": 1, "lng": 2, "address": None}}).get_json()
    r = c.patch(f"/api/v1/records/thing/{rec['id']}",
                json={"version": 1, "count": None, "budget": "", "tags": [], "spot": None, "name": ""})
    assert r.status_code == 200, r.get_json()
    got = c.get(f"/api/v1/records/thing/{rec['id']}").get_json()
    assert (got["count"], got["budget"], got["tags"], got["spot"], got["name"]) == (None, None, [], None, None)


def test_child_rows_are_written_with_the_parent_and_formulas_are_exact(make_app, client_of):
    app = make_app([CUSTOMER, LINE, THING])
    c = client_of(app)
    r = c.post("/api/v1/records/thing", json={"name": "Order", "lines": [
        {"product": "pen", "quantity": 3, "price": "19.99", "discount": "10"},
        {"product": "pad", "quantity": 1, "price": "0.10", "discount": 0},
    ]})
    assert r.status_code == 201, r.get_json()
    rec = c.get(f"/api/v1/records/thing/{r.get_json()['id']}").get_json()
    lines = rec["lines"]
    assert [(ln["product"], ln["quantity"], ln["price"], ln["amount"]) for ln in lines] == [
        ("pen", 3, "19.99", "53.97"),   # 3 * 19.99 * 0.9 = 53.973, currency scale 2
        ("pad", 1, "0.10", "0.10"),
    ]
    assert all(ln["parent_id"] == rec["id"] and isinstance(ln["id"], int) for ln in lines)
    assert [ln["idx"] for ln in lines] == [0, 1]
    assert rec["total"] == "54.07"


def test_updating_child_rows_keeps_ids_changes_and_removes_rows(make_app, client_of):
    app = make_app([CUSTOMER, LINE, THING])
    c = client_of(app)
    rec = c.post("/api/v1/records/thing", json={"name": "Order", "lines": [
        {"product": "a", "quantity": 1, "price": "1", "discount": 0},
        {"product": "b", "quantity": 2, "price": "2", "discount": 0}]}).get_json()
    first, second = rec["lines"]
    r = c.patch(f"/api/v1/records/thing/{rec['id']}", json={"version": rec["version"], "lines": [
        {"id": second["id"], "quantity": 5}, {"product": "c", "quantity": 1, "price": "100", "discount": 0}]})
    assert r.status_code == 200, r.get_json()
    got = c.get(f"/api/v1/records/thing/{rec['id']}").get_json()
    assert [(ln["product"], ln["quantity"], ln["amount"]) for ln in got["lines"]] == [
        ("b", 5, "10.00"), ("c", 1, "100.00")]
    assert got["lines"][0]["id"] == second["id"]
    assert first["id"] not in {ln["id"] for ln in got["lines"]}
    assert got["total"] == "110.00"


def test_patch_without_the_table_field_keeps_the_child_rows_and_total(make_app, client_of):
    app = make_app([CUSTOMER, LINE, THING])
    c = client_of(app)
    rec = c.post("/api/v1/records/thing", json={"name": "Order", "lines": [
        {"product": "a", "quantity": 2, "price": "7.5", "discount": 0}]}).get_json()
    r = c.patch(f"/api/v1/records/thing/{rec['id']}", json={"version": 1, "name": "Renamed"})
    assert r.status_code == 200, r.get_json()
    got = r.get_json()
    assert got["name"] == "Renamed" and got["total"] == "15.00" and len(got["lines"]) == 1


def test_a_formula_on_the_parent_follows_its_inputs(make_app, client_of):
    doc = entity("deal",
                 {"name": "quantity", "type": "integer"},
                 {"name": "price", "type": "decimal", "scale": 4},
                 {"name": "discount", "type": "percent"},
                 {"name": "net", "type": "formula", "result_type": "decimal",
                  "expression": "quantity * price * (1 - discount / 100)"},
                 {"name": "big", "type": "formula", "result_type": "boolean", "expression": "net > 100"})
    app = make_app([doc])
    c = client_of(app)
    rec = c.post("/api/v1/records/deal", json={"quantity": 3, "price": "19.99", "discount": "10"}).get_json()
    assert (rec["net"], rec["big"]) == ("53.9730", False)
    rec = c.patch(f"/api/v1/records/deal/{rec['id']}", json={"version": 1, "quantity": 30}).get_json()
    assert (rec["net"], rec["big"]) == ("539.7300", True)


def test_autonumber_follows_the_naming_format_and_increments(make_app, client_of, frozen_now):
    doc = entity("customer", {"name": "name", "type": "text"}, naming={"autonumber": "CUS-{YYYY}-{#####}"})
    app = make_app([doc])
    c = client_of(app)
    codes = [c.post("/api/v1/records/customer", json={"name": n}).get_json()["code"] for n in "abc"]
    assert codes == ["CUS-2026-00001", "CUS-2026-00002", "CUS-2026-00003"]


def test_autonumber_field_with_its_own_format_is_read_only(make_app, client_of, frozen_now):
    doc = entity("contract", {"name": "number", "type": "autonumber", "format": "CON-{YYYY}{MM}-{####}"},
                 {"name": "name", "type": "text"})
    app = make_app([doc])
    c = client_of(app)
    rec = c.post("/api/v1/records/contract", json={"name": "first"}).get_json()
    assert rec["number"] == "CON-202603-0001"
    r = c.patch(f"/api/v1/records/contract/{rec['id']}", json={"version": 1, "number": "CON-X"})
    assert r.status_code == 422
    assert "number" in r.get_json()["error"]["fields"]
    # Sending the value back unchanged (as a client that PUTs the whole record does) is fine.
    r = c.patch(f"/api/v1/records/contract/{rec['id']}", json={**rec, "name": "renamed"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["number"] == "CON-202603-0001"


def test_autonumber_restarts_with_a_new_year(make_app, client_of):
    doc = entity("customer", {"name": "name", "type": "text"}, naming={"autonumber": "CUS-{YYYY}-{#####}"})
    app = make_app([doc])
    c = client_of(app)
    try:
        clock.set_clock(lambda: dt.datetime(2025, 12, 31, 23, 0, tzinfo=dt.timezone.utc))
        assert c.post("/api/v1/records/customer", json={"name": "a"}).get_json()["code"] == "CUS-2025-00001"
        assert c.post("/api/v1/records/customer", json={"name": "b"}).get_json()["code"] == "CUS-2025-00002"
        clock.set_clock(lambda: dt.datetime(2026, 1, 1, 1, 0, tzinfo=dt.timezone.utc))
        assert c.post("/api/v1/records/customer", json={"name": "c"}).get_json()["code"] == "CUS-2026-00001"
    finally:
        clock.set_clock(None)


# ---------------------------------------------------------------- defaults and ownership

def test_static_me_and_today_defaults_fill_missing_fields(make_app, client_of, frozen_now):
    doc = entity("task",
                 {"name": "title", "type": "text"},
                 {"name": "status", "type": "select", "options": [{"value": "open"}, {"value": "done"}],
                  "default": "open"},
                 {"name": "priority", "type": "integer", "default": 3},
                 {"name": "fee", "type": "currency", "default": "9.9"},
                 {"name": "assignee", "type": "user", "default": "$me"},
                 {"name": "start", "type": "date", "default": "$today"})
    app = make_app([doc])
    c = client_of(app)
    me = _admin_id(c)
    rec = c.post("/api/v1/records/task", json={"title": "t"}).get_json()
    assert (rec["status"], rec["priority"], rec["fee"], rec["assignee"], rec["start"]) == (
        "open", 3, "9.90", me, "2026-03-14")
    # A value sent explicitly wins over the default, even an explicit null.
    rec = c.post("/api/v1/records/task", json={"title": "t", "status": "done", "priority": None}).get_json()
    assert (rec["status"], rec["priority"]) == ("done", None)


def test_owner_and_department_default_to_the_creator(make_app, client_of, engine_of):
    app = make_app([entity("note", {"name": "text", "type": "text"}, ownership=True), role("writer", "note")])
    engine = engine_of(app)
    team = _department(engine)
    with engine.begin() as conn:
        accounts.create_user(conn, "rep", "rep-pass-123", department_id=team, roles=("writer",))
    c = client_of(app, "rep", "rep-pass-123")
    me = _admin_id(c)
    rec = c.post("/api/v1/records/note", json={"text": "hi"}).get_json()
    assert (rec["owner"], rec["department"], rec["created_by"], rec["updated_by"]) == (me, team, me, me)


def test_owner_can_be_given_explicitly_and_must_exist(make_app, client_of, engine_of):
    app = make_app([entity("note", {"name": "text", "type": "text"}, ownership=True)])
    engine = engine_of(app)
    with engine.begin() as conn:
        other = accounts.create_user(conn, "rep", "rep-pass-123").id
    c = client_of(app)
    rec = c.post("/api/v1/records/note", json={"text": "hi", "owner": other}).get_json()
    assert rec["owner"] == other
    r = c.post("/api/v1/records/note", json={"text": "hi", "owner": 9999})
    assert r.status_code == 422
    assert "owner" in r.get_json()["error"]["fields"]


def test_a_record_read_and_sent_back_whole_with_reordered_rows_saves(make_app, client_of):
    """What an edit form does: GET, change a little, PATCH everything back."""
    app = make_app([CUSTOMER, LINE, THING])
    c = client_of(app)
    acme = c.post("/api/v1/records/customer", json={"name": "ACME"}).get_json()["id"]
    rec = c.post("/api/v1/records/thing", json={
        "name": "Order", "customer": acme, "due": "2026-01-01", "meet_at": "2026-01-01T08:00:00Z",
        "subject": {"entity": "customer", "id": acme}, "spot": {"lat": 1.5, "lng": 2.5, "address": "x"},
        "lines": [{"product": "a", "quantity": 1, "price": "1", "discount": 0},
                  {"product": "b", "quantity": 2, "price": "2", "discount": 0}]}).get_json()
    rec = c.get(f"/api/v1/records/thing/{rec['id']}?expand=customer").get_json()
    rec["lines"] = list(reversed(rec["lines"]))
    rec["name"] = "Reordered"
    r = c.patch(f"/api/v1/records/thing/{rec['id']}", json=rec)
    assert r.status_code == 200, r.get_json()
    got = r.get_json()
    assert got["name"] == "Reordered" and [ln["product"] for ln in got["lines"]] == ["b", "a"]
    assert [ln["idx"] for ln in got["lines"]] == [0, 1]


def test_datetimes_come_back_in_utc_whatever_the_database_session_zone(make_app, client_of, monkeypatch,
                                                                       is_postgres):
    """A PostgreSQL server configured for Asia/Shanghai hands back +08:00 datetimes; the API
    still answers in UTC, and sending the value back is not a change."""
    if is_postgres:
        monkeypatch.setenv("PGTZ", "Asia/Shanghai")
    app = make_app([entity("meeting", {"name": "at", "type": "datetime"}, {"name": "topic", "type": "text"})])
    c = client_of(app)
    rec = c.post("/api/v1/records/meeting", json={"at": "2026-01-01T10:00:00+08:00", "topic": "a"}).get_json()
    got = c.get(f"/api/v1/records/meeting/{rec['id']}").get_json()
    assert got["at"] == "2026-01-01T02:00:00+00:00"
    assert got["created_at"].endswith("+00:00")
    r = c.patch(f"/api/v1/records/meeting/{rec['id']}", json=got)
    assert r.status_code == 200 and r.get_json()["version"] == 1
    r = c.patch(f"/api/v1/records/meeting/{rec['id']}", json={"version": 1, "at": "2026-01-01T02:00:00Z"})
    assert r.get_json()["version"] == 1
    history = c.get(f"/api/v1/records/meeting/{rec['id']}/history").get_json()["items"]
    assert [h["action"] for h in history] == ["create"]
    assert history[0]["at"].endswith("+00:00")


def test_today_default_is_the_date_in_the_instances_time_zone(make_app, client_of):
    """20:00 UTC on 14 March is already 15 March in a Shanghai office."""
    doc = entity("visit", {"name": "day", "type": "date", "default": "$today"},
                 {"name": "due", "type": "formula", "result_type": "date", "expression": "today()"})
    app = make_app([doc], TIMEZONE="Asia/Shanghai")
    c = client_of(app)
    try:
        clock.set_clock(lambda: dt.datetime(2026, 3, 14, 20, 0, tzinfo=dt.timezone.utc))
        rec = c.post("/api/v1/records/visit", json={}).get_json()
    finally:
        clock.set_clock(None)
    assert (rec["day"], rec["due"]) == ("2026-03-15", "2026-03-15")
