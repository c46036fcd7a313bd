"""Import at HTTP level: CSV (UTF-8, UTF-8 with BOM, GBK) and XLSX uploads through the
record service, the mapping suggested from en/zh labels, per-row errors in a report while
good rows go in, dry runs, the modes, lookups by title, permissions and background jobs.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import time
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa

from metacrm.runtime import systables
from metacrm.runtime.web.context import EXTENSION

from .support import add_user, admin_bearer, bearer, entity, error_of

CUSTOMER = entity(
    "customer",
    {"name": "name", "type": "text", "required": True, "searchable": True, "max_length": 100,
     "label": {"en": "Customer name", "zh": "客户名称"}},
    {"name": "level", "type": "select", "label": {"en": "Customer level", "zh": "客户级别"}, "default": "B",
     "options": [{"value": "A", "label": {"en": "Key", "zh": "重点客户"}},
                 {"value": "B", "label": {"en": "Normal", "zh": "普通客户"}}]},
    {"name": "tags", "type": "multiselect", "label": {"en": "Tags", "zh": "标签"},
     "options": [{"value": "vip", "label": {"en": "VIP", "zh": "贵宾"}},
                 {"value": "new", "label": {"en": "New", "zh": "新客"}}]},
    {"name": "phone", "type": "phone", "label": {"en": "Phone", "zh": "电话"}, "searchable": True},
    {"name": "active", "type": "boolean", "label": {"en": "Active", "zh": "是否有效"}, "default": True},
    {"name": "signed_on", "type": "date", "label": {"en": "Signed on", "zh": "签约日期"}},
    {"name": "credit", "type": "currency", "label": {"en": "Credit limit", "zh": "信用额度"}},
    {"name": "parent", "type": "lookup", "target": "customer", "label": {"en": "Parent customer", "zh": "上级客户"}},
    {"name": "manager", "type": "user", "label": {"en": "Account manager", "zh": "客户经理"}},
    label={"en": "Customer", "zh": "客户"}, title_field="name", ownership=True,
    naming={"autonumber": "CUS-{#####}"},
    validations=[{"rule": "credit is None or credit >= 0", "message": {"en": "Credit can't be negative",
                                                                       "zh": "信用额度不能为负"}}],
)
REP = {"kind": "role", "name": "rep", "label": "Rep",
       "permissions": {"customer": {"create": True, "read": "self", "update": "self", "import": True,
                                    "export": "self"}},
       "fields": {"customer": {"credit": "hidden", "phone": "masked"}}}
VIEWER = {"kind": "role", "name": "viewer", "label": "Viewer",
          "permissions": {"customer": {"create": True, "read": "all", "update": "all"}}}
DOCS = [CUSTOMER, REP, VIEWER]


def csv_bytes(rows: list[list[Any]], encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def upload(client: Any, headers: dict[str, str], data: bytes, filename: str = "data.csv", entity_name: str = "customer",
           path: str = "import", **form: Any) -> Any:
    fields = {"file": (io.BytesIO(data), filename)}
    fields.update({k: (json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else str(v)) for k, v in form.items()})
    return client.post(f"/api/v1/records/{entity_name}/{path}", data=fields, headers=headers,
                       content_type="multipart/form-data")


def names(engine: Any) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.text("SELECT name FROM ent_customer")).scalars())


@pytest.fixture
def app(make_app: Any) -> Any:
    return make_app(DOCS)


@pytest.fixture
def admin(app: Any) -> dict[str, str]:
    return admin_bearer(app)


def test_mixed_file_imports_good_rows_and_reports_bad_ones(app: Any, admin: dict[str, str], engine_of: Any) -> None:
    data = csv_bytes([["客户名称", "客户级别", "电话", "是否有效", "签约日期", "信用额度"],
                      ["华信科技", "重点客户", "13800000001", "是", "2024/3/5", "1,000.50"],
                      ["", "B", "13800000002", "否", "", ""],                       # name required
                      ["宏达制造", "Z", "13800000003", "yes", "2024-03-06", ""],     # bad option
                      ["鼎盛金融", "普通客户", "", "false", "2024年3月7日", "-5"],      # rule: credit >= 0
                      ["远航物流", "B", "", "", "31/12/2024", "20"]])
    r = upload(app.test_client(), admin, data)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["created"], body["updated"], body["skipped"], body["failed"]) == (2, 0, 0, 3)
    errors = {(e["row"], e["field"]) for e in body["errors"]}
    assert errors == {(3, "name"), (4, "level"), (5, "credit")}
    assert names(engine_of(app)) == ["华信科技", "远航物流"]
    with engine_of(app).connect() as conn:
        row = conn.execute(sa.text("SELECT level, active, signed_on, credit, code FROM ent_customer "
                                   "WHERE name = '华信科技'")).one()
    assert row[0] == "A" and bool(row[1]) is True and str(row[2]) == "2024-03-05" and float(row[3]) == 1000.5
    assert row[4].startswith("CUS-")
    report = app.test_client().get(body["report"], headers=admin)
    assert report.status_code == 200 and report.data.startswith(codecs.BOM_UTF8)
    lines = list(csv.reader(io.StringIO(report.data.decode("utf-8-sig"))))
    assert lines[0] == ["row", "outcome", "field", "message", "record id"]
    assert {(int(l[0]), l[2]) for l in lines[1:]} == errors


def _history_count(engine: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(systables.history)).scalar_one()


DEDUP_BLOCK = {"kind": "dedup", "name": "customer_same_name", "entity": "customer", "label": "Same name",
               "on": ["create", "import"], "action": "block", "match": "any",
               "conditions": [{"field": "name", "method": "iexact"}]}
DEDUP_WARN = {"kind": "dedup", "name": "customer_same_phone", "entity": "customer", "label": "Same phone",
              "on": ["import"], "action": "warn", "match": "any",
              "conditions": [{"field": "phone", "method": "phone"}]}


def test_a_row_refused_after_its_insert_leaves_nothing_behind(make_app: Any, engine_of: Any) -> None:
    """The second 'Acme' passes validation, is inserted, then the block rule refuses it
    inside the write: the batch is redone without it and no trace of it remains."""
    app = make_app([*DOCS, DEDUP_BLOCK])
    admin = admin_bearer(app)
    data = csv_bytes([["name", "phone"], ["Acme", "13800000001"], ["Beta", "13800000002"],
                      ["ACME", "13800000003"], ["Gamma", ""]])
    body = upload(app.test_client(), admin, data).get_json()
    assert (body["created"], body["failed"]) == (3, 1), body
    assert body["errors"][0]["row"] == 4 and "duplicates" in body["errors"][0]["message"]
    engine = engine_of(app)
    assert names(engine) == ["Acme", "Beta", "Gamma"]
    assert _history_count(engine) == 3
    with engine.connect() as conn:
        codes = sorted(conn.execute(sa.text("SELECT code FROM ent_customer")).scalars())
        keys = conn.execute(sa.select(sa.func.count()).select_from(systables.dedup_keys)).scalar_one()
    assert codes == ["CUS-00001", "CUS-00002", "CUS-00003"]  # no number burnt by the refused row
    assert keys == 3


def test_dry_run_reports_every_row_and_changes_nothing(app: Any, admin: dict[str, str], engine_of: Any) -> None:
    engine = engine_of(app)
    data = csv_bytes([["Customer name", "Customer level"], ["Acme", "Key"], ["Beta", "nope"], ["Gamma", "b"]])
    r = upload(app.test_client(), admin, data, dry_run="true")
    body = r.get_json()
    assert r.status_code == 200 and body["dry_run"] is True
    assert (body["created"], body["failed"]) == (2, 1)
    assert [(x["row"], x["action"]) for x in body["rows"]] == [(2, "create"), (3, "error"), (4, "create")]
    assert names(engine) == [] and _history_count(engine) == 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(systables.sequences)).scalar_one() == 0
    report = app.test_client().get(body["report"], headers=admin).data.decode("utf-8-sig")
    assert [l[:2] for l in csv.reader(io.StringIO(report))][1:] == [["2", "create"], ["3", "error"], ["4", "create"]]
    real = upload(app.test_client(), admin, data).get_json()
    assert (real["created"], real["failed"]) == (2, 1) and "rows" not in real
    assert names(engine) == ["Acme", "Gamma"]


@pytest.fixture
def dedup_app(make_app: Any) -> Any:
    app = make_app([*DOCS, DEDUP_WARN])
    headers = admin_bearer(app)
    client = app.test_client()
    for name, phone in (("Acme", "138 0000 0001"), ("Beta", "13800000002")):
        assert client.post("/api/v1/records/customer", json={"name": name, "phone": phone},
                           headers=headers).status_code == 201
    return app


MODE_FILE = [["name", "phone", "level"],
             ["Acme Ltd", "+86 13800000001", "A"],   # matches Acme by phone
             ["Delta", "13900000009", "A"]]           # matches nothing


@pytest.mark.parametrize("mode, counts, expected", [
    ("create", (2, 0, 0), {"Acme": "B", "Acme Ltd": "A", "Beta": "B", "Delta": "A"}),
    ("skip", (1, 0, 1), {"Acme": "B", "Beta": "B", "Delta": "A"}),
    ("update", (1, 1, 0), {"Acme Ltd": "A", "Beta": "B", "Delta": "A"}),
    ("update_only", (0, 1, 1), {"Acme Ltd": "A", "Beta": "B"}),
])
def test_each_mode_against_the_dedup_rules(dedup_app: Any, engine_of: Any, mode: str, counts: tuple[int, ...],
                                           expected: dict[str, str]) -> None:
    body = upload(dedup_app.test_client(), admin_bearer(dedup_app), csv_bytes(MODE_FILE), mode=mode).get_json()
    assert (body["created"], body["updated"], body["skipped"]) == counts, body
    assert body["errors"] == []
    with engine_of(dedup_app).connect() as conn:
        assert dict(conn.execute(sa.text("SELECT name, level FROM ent_customer")).all()) == expected
    if mode == "update":
        history = dedup_app.test_client().get("/api/v1/records/customer/1/history",
                                              headers=admin_bearer(dedup_app)).get_json()["items"]
        assert {(h["field"], h["old"], h["new"]) for h in history if h["action"] == "update"} >= {
            ("name", "Acme", "Acme Ltd"), ("level", "B", "A")}


def test_dry_run_of_each_mode_says_what_would_happen(dedup_app: Any, engine_of: Any) -> None:
    body = upload(dedup_app.test_client(), admin_bearer(dedup_app), csv_bytes(MODE_FILE), mode="update_only",
                  dry_run="1").get_json()
    assert [(r["row"], r["action"], r["id"]) for r in body["rows"]] == [(2, "update", 1), (3, "skip", None)]
    assert "never creates" in body["rows"][1]["message"]
    with engine_of(dedup_app).connect() as conn:
        assert dict(conn.execute(sa.text("SELECT name, level FROM ent_customer")).all()) == {"Acme": "B", "Beta": "B"}


def test_an_id_column_updates_that_record(dedup_app: Any, engine_of: Any) -> None:
    headers = admin_bearer(dedup_app)
    data = csv_bytes([["ID", "name", "level"], ["2", "Beta Corp", "A"], ["99", "Nobody", "A"], ["", "Epsilon", "A"]])
    body = upload(dedup_app.test_client(), headers, data, mode="update").get_json()
    assert (body["created"], body["updated"], body["failed"]) == (1, 1, 1)
    assert body["errors"] == [{"row": 3, "field": "id", "message": "No customer with id 99."}]
    assert names(engine_of(dedup_app)) == ["Acme", "Beta Corp", "Epsilon"]
    refused = upload(dedup_app.test_client(), headers, data, mode="create").get_json()
    assert refused["failed"] == 2 and "mode update" in refused["errors"][0]["message"]


# ------------------------------------------------------------------ mapping

def test_preview_suggests_the_mapping_from_english_and_chinese_labels(app: Any, admin: dict[str, str]) -> None:
    client = app.test_client()
    en = upload(client, admin, csv_bytes([["Customer Name", "level", "Phone", "Signed on", "Parent customer",
                                           "Account manager", "Remarks"], ["Acme", "A", "1", "", "", "", "x"]]),
                path="import/preview").get_json()
    assert en["mapping"] == {"Customer Name": "name", "level": "level", "Phone": "phone", "Signed on": "signed_on",
                             "Parent customer": "parent", "Account manager": "manager", "Remarks": None}
    assert en["rows"] == [{"row": 2, "cells": ["Acme", "A", "1", "", "", "", "x"]}]
    zh = upload(client, admin, csv_bytes([["*客户名称", "客户级别", "电话 ", "签约日期", "上级客户", "信用额度",
                                           "负责人", "名称"]]), path="import/preview").get_json()
    assert zh["mapping"] == {"*客户名称": "name", "客户级别": "level", "电话": "phone", "签约日期": "signed_on",
                             "上级客户": "parent", "信用额度": "credit", "负责人": "owner", "名称": None}
    short = upload(client, admin, csv_bytes([["名称", "级别", "Custmer name"]]), path="import/preview").get_json()
    assert short["mapping"] == {"名称": "name", "级别": "level", "Custmer name": None}
    assert {f["name"] for f in zh["fields"]} >= {"id", "owner", "name", "credit"}
    assert zh["format"] == "csv" and zh["encoding"] == "utf-8"


def test_a_mapping_overrides_the_suggestion_and_bad_ones_are_400(app: Any, admin: dict[str, str],
                                                                 engine_of: Any) -> None:
    client = app.test_client()
    data = csv_bytes([["公司", "Customer name", "备注"], ["Acme", "ignored", "x"]])
    body = upload(client, admin, data, mapping={"公司": "name", "备注": None}).get_json()
    assert body["created"] == 1 and body["mapping"] == {"公司": "name", "Customer name": None, "备注": None}
    assert names(engine_of(app)) == ["Acme"]
    for mapping, needle in (({"Nope": "name"}, "not in the file"), ({"公司": "nothing"}, "not a field"),
                            ({"公司": "name", "备注": "name"}, "both go into"), ({"公司": 5}, "JSON object"),
                            ({"公司": "code"}, "can't be imported")):
        error = error_of(upload(client, admin, data, mapping=mapping), 400)
        assert needle in error["message"] or needle in json.dumps(error), (mapping, error)
    error_of(upload(client, admin, csv_bytes([["x", "y"], ["1", "2"]])), 400)  # nothing maps
    with engine_of(app).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(systables.import_jobs)).scalar_one() == 1


# ------------------------------------------------------------------ files and encodings

ROWS_ZH = [["客户名称", "客户级别", "标签", "是否有效", "签约日期", "信用额度"],
           ["北京字节跳动科技有限公司", "重点客户", "贵宾，新客", "否", "2024年3月5日", "￥1,200"],
           ["上海宏达", "普通客户", "", "是", "20240306", ""]]


@pytest.mark.parametrize("encoding, expected", [("gbk", "gb18030"), ("gb18030", "gb18030"),
                                                ("utf-8-sig", "utf-8-sig"), ("utf-8", "utf-8"),
                                                ("utf-16", "utf-16")])
def test_chinese_csv_in_any_common_encoding(app: Any, admin: dict[str, str], engine_of: Any, encoding: str,
                                            expected: str) -> None:
    data = csv_bytes(ROWS_ZH, encoding)
    preview = upload(app.test_client(), admin, data, path="import/preview").get_json()
    assert preview["encoding"] == expected and preview["headers"][0] == "客户名称"
    body = upload(app.test_client(), admin, data).get_json()
    assert (body["created"], body["failed"]) == (2, 0), body
    with engine_of(app).connect() as conn:
        row = conn.execute(sa.text("SELECT level, tags, active, signed_on, credit FROM ent_customer "
                                   "WHERE name = '北京字节跳动科技有限公司'")).one()
    assert row[0] == "A" and row[1] == "|vip|new|" and not row[2] and str(row[3]) == "2024-03-05"
    assert float(row[4]) == 1200


def test_xlsx_with_typed_cells(app: Any, admin: dict[str, str], engine_of: Any) -> None:
    import datetime as dt
    data = xlsx_bytes([["Customer name", "Phone", "Signed on", "Credit limit", "Active", "Tags"],
                       ["Acme", 13800000001, dt.datetime(2024, 3, 5), 1500.5, True, "VIP, New"],
                       [None, None, None, None, None, None],
                       ["Beta", "010-12345678", "2024/3/6", 0, "no", "vip"],
                       ["Gamma", None, "not a date", None, None, None]])
    body = upload(app.test_client(), admin, data, filename="customers.xlsx").get_json()
    assert (body["created"], body["failed"]) == (2, 1), body
    assert body["errors"][0]["row"] == 5 and body["errors"][0]["field"] == "signed_on"
    with engine_of(app).connect() as conn:
        rows = dict((r[0], r[1:]) for r in conn.execute(sa.text(
            "SELECT name, phone, signed_on, credit, active, tags FROM ent_customer")))
    assert rows["Acme"][0] == "13800000001" and str(rows["Acme"][1]) == "2024-03-05"
    assert float(rows["Acme"][2]) == 1500.5 and bool(rows["Acme"][3]) and rows["Acme"][4] == "|vip|new|"
    assert rows["Beta"][0] == "010-12345678" and not rows["Beta"][3]


def test_unreadable_files_are_400(app: Any, admin: dict[str, str]) -> None:
    client = app.test_client()
    error_of(upload(client, admin, b""), 400)
    error_of(upload(client, admin, b"\xd0\xcf\x11\xe0" + b"\0" * 100, filename="old.xls"), 400)
    error_of(upload(client, admin, b"PK\x03\x04broken", filename="x.xlsx"), 400)
    error_of(client.post("/api/v1/records/customer/import", data={}, headers=admin,
                         content_type="multipart/form-data"), 400)
    error_of(upload(client, admin, csv_bytes([["name"], ["a"]]), mode="merge"), 400)


# ------------------------------------------------------------------ lookups and users

def test_lookups_by_title_or_id_and_users_by_username_or_name(app: Any, admin: dict[str, str],
                                                              engine_of: Any) -> None:
    engine = engine_of(app)
    with engine.begin() as conn:
        add_user(conn, "wang.jun", display_name="王军")
        add_user(conn, "li.na", display_name="李娜")
        add_user(conn, "li.na2", display_name="李娜")
    client = app.test_client()
    for name in ("Parent Co", "Twin", "Twin"):
        client.post("/api/v1/records/customer", json={"name": name}, headers=admin)
    data = csv_bytes([["name", "上级客户", "客户经理"],
                      ["Child 1", "Parent Co", "wang.jun"],
                      ["Child 2", "#1", "王军"],
                      ["Child 3", "Twin", ""],
                      ["Child 4", "Nobody", "李娜"],
                      ["Child 5", "404", "li.na"]])
    body = upload(client, admin, data).get_json()
    assert body["created"] == 2, body
    errors = {(e["row"], e["field"]): e["message"] for e in body["errors"]}
    assert "names 2 records" in errors[(4, "parent")]
    assert errors[(5, "parent")] == "No customer named 'Nobody'." and "names 2 records" in errors[(5, "manager")]
    assert errors[(6, "parent")] == "No customer with id 404."
    with engine.connect() as conn:
        got = dict((r[0], r[1:]) for r in conn.execute(sa.text(
            "SELECT c.name, c.parent, u.username FROM ent_customer c LEFT JOIN mc_users u ON u.id = c.manager "
            "WHERE c.name LIKE 'Child%'")))
    assert got == {"Child 1": (1, "wang.jun"), "Child 2": (1, "wang.jun")}


# ------------------------------------------------------------------ permissions and ownership

def test_import_needs_the_import_right_and_the_importer_owns_the_rows(app: Any, engine_of: Any) -> None:
    engine = engine_of(app)
    with engine.begin() as conn:
        rep = add_user(conn, "rep", roles=["rep"])
        viewer = add_user(conn, "viewer", roles=["viewer"])
        rep_h, viewer_h = bearer(conn, rep), bearer(conn, viewer)
    client = app.test_client()
    data = csv_bytes([["name", "credit"], ["Acme", "5"]])
    error_of(upload(client, viewer_h, data), 403)
    error_of(upload(client, viewer_h, data, path="import/preview"), 403)
    error_of(client.get("/api/v1/records/customer/import/template", headers=viewer_h), 403)
    # credit is hidden for reps: never suggested, and mapping it by hand is refused.
    assert "hidden" in error_of(upload(client, rep_h, data, mapping={"credit": "credit"}), 400)["message"]
    body = upload(client, rep_h, data).get_json()
    assert body["created"] == 1 and body["mapping"] == {"name": "name", "credit": None}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT owner, created_by FROM ent_customer")).one() == (rep, rep)
    # Assigning another owner needs the transfer right, like any create.
    refused = upload(client, rep_h, csv_bytes([["name", "owner"], ["Beta", "viewer"]])).get_json()
    assert refused["failed"] == 1 and refused["errors"][0]["field"] == "owner"
    assert names(engine) == ["Acme"]


def test_jobs_and_reports_belong_to_their_importer(app: Any, admin: dict[str, str], engine_of: Any) -> None:
    with engine_of(app).begin() as conn:
        rep_h = bearer(conn, add_user(conn, "rep", roles=["rep"]))
    body = upload(app.test_client(), admin, csv_bytes([["name"], ["Acme"], ["x" * 101]])).get_json()
    client = app.test_client()
    error_of(client.get(f"/api/v1/imports/{body['job']}", headers=rep_h), 404)
    error_of(client.get(f"/api/v1/imports/{body['job']}/errors.csv", headers=rep_h), 404)
    error_of(client.get("/api/v1/imports/99999", headers=admin), 404)
    assert client.get(f"/api/v1/imports/{body['job']}", headers=admin).get_json()["failed"] == 1


# ------------------------------------------------------------------ background jobs

def test_large_files_run_as_a_job_with_progress(make_app: Any, engine_of: Any) -> None:
    app = make_app(DOCS, IMPORT_SYNC_BYTES=100)
    admin = admin_bearer(app)
    rows = [["name", "level"]] + [[f"Customer {i:04d}", "A" if i % 2 else "B"] for i in range(1200)]
    rows[700][1] = "Z"
    r = upload(app.test_client(), admin, csv_bytes(rows))
    assert r.status_code == 202, r.get_json()
    started = r.get_json()
    assert started["status"] == "queued" and started["progress"] == f"/api/v1/imports/{started['job']}"
    deadline = time.time() + 60
    while True:
        job = app.test_client().get(started["progress"], headers=admin).get_json()
        assert job["done"] <= 1200 and job["total"] in (None, 1200)
        if job["status"] in ("done", "failed", "interrupted") or time.time() > deadline:
            break
        time.sleep(0.1)
    assert job["status"] == "done", job
    assert (job["total"], job["done"], job["created"], job["failed"]) == (1200, 1200, 1199, 1)
    assert job["errors"] == [{"row": 701, "field": "level", "message": job["errors"][0]["message"]}]
    assert len(names(engine_of(app))) == 1199
    report = app.test_client().get(started["report"], headers=admin).data.decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(report)))[1][:3] == ["701", "error", "level"]
    assert not list((app.instance_path and __import__("pathlib").Path(app.instance_path) / "imports").glob("*"))


def test_a_job_whose_process_died_is_reported_interrupted(app: Any, admin: dict[str, str], engine_of: Any) -> None:
    import datetime as dt
    from metacrm.runtime.clock import utcnow
    with engine_of(app).begin() as conn:
        admin_id = conn.execute(sa.text("SELECT id FROM mc_users WHERE username = 'admin'")).scalar_one()
        job = conn.execute(systables.import_jobs.insert().values(
            entity="customer", user_id=admin_id, filename="x.csv", format="csv", mode="create", dry_run=False,
            mapping={}, status="running", done=500, created_at=utcnow() - dt.timedelta(hours=1),
            heartbeat_at=utcnow() - dt.timedelta(minutes=30)).returning(systables.import_jobs.c.id)).scalar_one()
    body = app.test_client().get(f"/api/v1/imports/{job}", headers=admin).get_json()
    assert body["status"] == "interrupted" and body["done"] == 500 and "kept" in body["message"]


# ------------------------------------------------------------------ template

def test_template_has_the_importable_columns_in_either_language(app: Any, admin: dict[str, str]) -> None:
    client = app.test_client()
    r = client.get("/api/v1/records/customer/import/template?lang=zh", headers=admin)
    assert r.status_code == 200 and r.data.startswith(codecs.BOM_UTF8)
    assert r.headers["Content-Disposition"].startswith("attachment")
    header = next(csv.reader(io.StringIO(r.data.decode("utf-8-sig"))))
    assert header == ["负责人", "*客户名称", "客户级别", "标签", "电话", "是否有效", "签约日期", "信用额度", "上级客户",
                      "客户经理"]
    r = client.get("/api/v1/records/customer/import/template?format=xlsx&lang=en", headers=admin)
    book = openpyxl.load_workbook(io.BytesIO(r.data))
    assert [c.value for c in next(book.active.iter_rows())][:3] == ["Owner", "*Customer name", "Customer level"]
    # The template reads back with every column mapped.
    preview = upload(client, admin, r.data, filename="t.xlsx", path="import/preview").get_json()
    assert None not in preview["mapping"].values()
    error_of(client.get("/api/v1/records/customer/import/template?format=pdf", headers=admin), 400)
