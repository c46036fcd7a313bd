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
