"""Export at HTTP level: CSV (UTF-8 with BOM) and XLSX of a list — view, filter, sort, q,
a selection of ids, chosen columns — with only the rows and fields the user may see,
values as people read them (labels, titles, names) in their language, and an audit entry.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa

from metacrm.runtime import systables

from .support import add_user, admin_bearer, bearer, error_of
from .test_imports import CUSTOMER, REP, VIEWER

KEY_VIEW = {"kind": "view", "entity": "customer", "name": "key_accounts", "label": {"en": "Key", "zh": "重点"},
            "columns": ["name", "level", "credit"], "filters": [["level", "=", "A"]], "sort": [["name", "asc"]]}
DOCS = [CUSTOMER, REP, VIEWER, KEY_VIEW]


@pytest.fixture
def world(make_app: Any, engine_of: Any) -> dict[str, Any]:
    app = make_app(DOCS)
    with engine_of(app).begin() as conn:
        rep = add_user(conn, "rep", roles=["rep"], display_name="王军", language="zh")
        other = add_user(conn, "other", roles=["rep"], display_name="Other Rep")
        viewer = add_user(conn, "viewer", roles=["viewer"])
        heads = {"rep": bearer(conn, rep), "other": bearer(conn, other), "viewer": bearer(conn, viewer)}
    heads["admin"] = admin_bearer(app)
    client = app.test_client()
    made = [("rep", {"name": "Parent Co", "level": "A", "phone": "13812345678", "credit": "100.00"}),
            ("rep", {"name": "Child Co", "level": "B", "tags": ["vip", "new"], "active": False,
                     "signed_on": "2024-03-05", "parent": 1, "manager": rep}),
            ("other", {"name": "Other Co", "level": "A", "phone": "13900000000"}),
            ("rep", {"name": "=HYPERLINK(\"x\")", "level": "B", "phone": "+86 138 0000 0000"})]
    for who, body in made:
        r = client.post("/api/v1/records/customer", json=body, headers=heads["admin"])
        assert r.status_code == 201, r.get_json()
    # Created by the admin, then handed to their owners (as a transfer would).
    with engine_of(app).begin() as conn:
        for name, (who, _) in zip(("Parent Co", "Child Co", "Other Co", '=HYPERLINK("x")'), made):
            conn.execute(sa.text("UPDATE ent_customer SET owner = :o WHERE name = :n"),
                         {"o": {"rep": rep, "other": other}[who], "n": name})
    return {"app": app, "h": heads, "rep": rep}


def read_csv(r: Any) -> list[list[str]]:
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.data.startswith(codecs.BOM_UTF8) and r.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(r.data.decode("utf-8-sig"))))


def test_admin_exports_everything_as_people_read_it(world: dict[str, Any]) -> None:
    client = world["app"].test_client()
    rows = read_csv(client.get("/api/v1/records/customer/export?sort=id", headers=world["h"]["admin"]))
    assert rows[0] == ["ID", "Number", "Customer name", "Customer level", "Tags", "Phone", "Active", "Signed on",
                       "Credit limit", "Parent customer", "Account manager", "Owner", "Department", "Created at",
                       "Updated at"]
    assert len(rows) == 5
    child = dict(zip(rows[0], rows[2]))
    assert (child["Customer name"], child["Customer level"], child["Tags"], child["Active"], child["Signed on"],
            child["Parent customer"], child["Account manager"], child["Owner"]) == (
        "Child Co", "Normal", "VIP, New", "No", "2024-03-05", "Parent Co", "王军", "王军")
    assert child["Number"] == "CUS-00002" and child["Department"] == ""
    assert dict(zip(rows[0], rows[1]))["Credit limit"] == "100.00"
    formula = dict(zip(rows[0], rows[4]))
    assert formula["Customer name"] == "'=HYPERLINK(\"x\")" and formula["Phone"] == "+86 138 0000 0000"


def test_a_rep_exports_only_their_rows_without_hidden_fields(world: dict[str, Any], engine_of: Any) -> None:
    client = world["app"].test_client()
    rows = read_csv(client.get("/api/v1/records/customer/export?sort=id", headers=world["h"]["rep"]))
    assert "信用额度" not in rows[0] and rows[0][:4] == ["ID", "编号", "客户名称", "客户级别"]
    by_name = {r[2]: dict(zip(rows[0], r)) for r in rows[1:]}
    assert set(by_name) == {"Parent Co", "Child Co", "=HYPERLINK(\"x\")".join(["'", ""])}
    assert by_name["Parent Co"]["电话"] == "138****5678" and by_name["Parent Co"]["客户级别"] == "重点客户"
    assert by_name["Child Co"]["是否有效"] == "否" and by_name["Child Co"]["标签"] == "贵宾、新客"
    error_of(client.get("/api/v1/records/customer/export?columns=name,credit", headers=world["h"]["rep"]), 400)
    error_of(client.get("/api/v1/records/customer/export", headers=world["h"]["viewer"]), 403)
    # A filter on a hidden field is refused, as on the list endpoint.
    error_of(client.get('/api/v1/records/customer/export?filter=[["credit", ">", 1]]',
                        headers=world["h"]["rep"]), 400)
    with engine_of(world["app"]).connect() as conn:
        entries = conn.execute(sa.select(systables.audit_log).where(
            systables.audit_log.c.action == "record.export")).all()
    assert [(e.by, e.target, e.detail["rows"], e.detail["format"]) for e in entries] == [
        (world["rep"], "customer", 3, "csv")]
    assert "credit" not in entries[0].detail["columns"]


def test_view_filter_q_ids_and_columns_narrow_the_export(world: dict[str, Any]) -> None:
    client, admin = world["app"].test_client(), world["h"]["admin"]
    url = "/api/v1/records/customer/export"
    view = read_csv(client.get(f"{url}?view=key_accounts", headers=admin))
    assert view == [["ID", "Customer name", "Customer level", "Credit limit"],
                    ["3", "Other Co", "Key", ""], ["1", "Parent Co", "Key", "100.00"]]
    filtered = read_csv(client.get(f'{url}?filter={json.dumps([["level", "=", "B"]])}&columns=name&sort=-name',
                                   headers=admin))
    assert filtered == [["Customer name"], ["Child Co"], ["'=HYPERLINK(\"x\")"]]
    assert read_csv(client.get(f"{url}?q=other&columns=id,name", headers=admin)) == [["ID", "Customer name"],
                                                                                       ["3", "Other Co"]]
    picked = read_csv(client.get(f"{url}?ids=1,3,999&columns=name&sort=id", headers=admin))
    assert picked == [["Customer name"], ["Parent Co"], ["Other Co"]]
    # The rep's selection can't reach another rep's record.
    assert read_csv(client.get(f"{url}?ids=1,3&columns=name", headers=world["h"]["rep"]))[1:] == [["Parent Co"]]
    for bad in ("?ids=1,x", "?format=pdf", "?view=nope", "?columns=nope", "?sort=nope", "?filter=[1"):
        error_of(client.get(url + bad, headers=admin), 400)


def test_xlsx_export_reads_back_typed(world: dict[str, Any]) -> None:
    r = world["app"].test_client().get("/api/v1/records/customer/export?format=xlsx&sort=id&columns=name,level,"
                                       "signed_on,credit,active", headers=world["h"]["admin"])
    assert r.status_code == 200 and r.mimetype.endswith("spreadsheetml.sheet")
    sheet = openpyxl.load_workbook(io.BytesIO(r.data)).active
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0] == ["Customer name", "Customer level", "Signed on", "Credit limit", "Active"]
    assert rows[1][0] == "Parent Co" and float(rows[1][3]) == 100.0
    assert rows[2][:3] == ["Child Co", "Normal", rows[2][2]] and str(rows[2][2])[:10] == "2024-03-05"
    assert len(rows) == 5


def test_an_exported_file_imports_back(world: dict[str, Any], engine_of: Any) -> None:
    """Export → edit → import with mode update: the id column finds each record again."""
    from .test_imports import upload
    client, admin = world["app"].test_client(), world["h"]["admin"]
    rows = read_csv(client.get("/api/v1/records/customer/export?sort=id&columns=id,name,level,tags,active",
                               headers=admin))
    rows[1][2] = "Normal"
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    body = upload(client, admin, codecs.BOM_UTF8 + buffer.getvalue().encode(), mode="update").get_json()
    assert (body["updated"], body["failed"]) == (4, 0), body
    with engine_of(world["app"]).connect() as conn:
        assert conn.execute(sa.text("SELECT level FROM ent_customer WHERE id = 1")).scalar_one() == "B"
        assert conn.execute(sa.text("SELECT tags FROM ent_customer WHERE id = 2")).scalar_one() == "|vip|new|"
