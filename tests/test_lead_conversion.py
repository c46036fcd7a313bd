"""Lead conversion on the default CRM: a customer (or a link to the existing one), an
optional contact and opportunity, follow-ups carried over, the lead marked — in one
transaction, refused when the company is someone else's customer, and never twice."""
from __future__ import annotations

import os
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from metacrm.runtime.metastore import install_seed
from metacrm.runtime.web.context import EXTENSION

from .support import add_user, admin_bearer, bearer, error_of

PG = bool(os.environ.get("METACRM_TEST_DATABASE_URL"))


def _crm(make_app: Any, engine_of: Any) -> tuple[Any, Any, dict[str, dict[str, str]]]:
    app = make_app()
    rt = app.extensions[EXTENSION]
    with rt.engine.begin() as conn:
        install_seed(conn, "crm-default")
        users = {name: bearer(conn, add_user(conn, name, roles=["sales"], display_name=name.title()))
                 for name in ("amy", "bob")}
    rt.invalidate()
    users["admin"] = admin_bearer(app)
    return app, app.test_client(), users


def _lead(c: Any, who: dict[str, str], **values: Any) -> dict[str, Any]:
    body = {"name": "张三", "company": "北京字节跳动科技有限公司", "mobile": "13812345678",
            "email": "zhangsan@bytedance.example", "source": "referral", **values}
    r = c.post("/api/v1/records/lead", json=body, headers=who)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _convert(c: Any, lead_id: int, who: dict[str, str], **body: Any) -> Any:
    return c.post(f"/api/v1/records/lead/{lead_id}/actions/convert", json=body, headers=who)


def _count(app: Any, table: str) -> int:
    with app.extensions[EXTENSION].engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def test_convert_creates_customer_contact_opportunity_and_moves_followups(make_app, engine_of):
    app, c, u = _crm(make_app, engine_of)
    lead = _lead(c, u["amy"])
    fu = c.post("/api/v1/records/followup", headers=u["amy"], json={
        "subject": {"entity": "lead", "id": lead["id"]}, "type": "call", "content": "聊了需求"}).get_json()
    r = _convert(c, lead["id"], u["amy"], create_opportunity=True,
                 opportunity={"name": "字节跳动CRM项目", "amount": "120000.00"})
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    assert out["customer_created"] is True and out["linked"] is False and out["followups_moved"] == 1
    customer = c.get(f"/api/v1/records/customer/{out['customer']}", headers=u["amy"]).get_json()
    assert (customer["name"], customer["mobile"], customer["email"], customer["source"], customer["owner"]) == \
        ("北京字节跳动科技有限公司", "13812345678", "zhangsan@bytedance.example", "referral", lead["owner"])
    contact = c.get(f"/api/v1/records/contact/{out['contact']}", headers=u["amy"]).get_json()
    assert (contact["name"], contact["customer"], contact["mobile"]) == ("张三", out["customer"], "13812345678")
    opp = c.get(f"/api/v1/records/opportunity/{out['opportunity']}", headers=u["amy"]).get_json()
    assert (opp["name"], opp["amount"], opp["customer"], opp["contact"]) == \
        ("字节跳动CRM项目", "120000.00", out["customer"], out["contact"])
    moved = c.get(f"/api/v1/records/followup/{fu['id']}", headers=u["amy"]).get_json()
    assert moved["subject"] == {"entity": "customer", "id": out["customer"]}
    after = c.get(f"/api/v1/records/lead/{lead['id']}", headers=u["amy"]).get_json()
    assert (after["status"], after["converted_customer"], after["converted_contact"],
            after["converted_opportunity"]) == ("converted", out["customer"], out["contact"], out["opportunity"])
    assert after["converted_at"]
    history = c.get(f"/api/v1/records/lead/{lead['id']}/history", headers=u["amy"]).get_json()["items"]
    assert {h["field"] for h in history} >= {"status", "converted_customer"}
    # converted once only
    error_of(_convert(c, lead["id"], u["amy"]), 409)


def test_convert_links_to_the_existing_customer_instead_of_creating_one(make_app, engine_of):
    app, c, u = _crm(make_app, engine_of)
    existing = c.post("/api/v1/records/customer", json={"name": "字节跳动（北京）科技有限公司"}, headers=u["amy"])
    assert existing.status_code == 201, existing.get_json()
    lead = _lead(c, u["amy"], mobile="13900000000")
    customers = _count(app, "ent_customer")
    r = _convert(c, lead["id"], u["amy"], create_contact=False)
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    assert (out["customer"], out["linked"], out["contact"]) == (existing.get_json()["id"], True, None)
    assert _count(app, "ent_customer") == customers
    assert c.get(f"/api/v1/records/lead/{lead['id']}", headers=u["amy"]).get_json()["converted_customer"] == \
        existing.get_json()["id"]


def test_convert_is_refused_when_the_company_is_someone_elses_customer(make_app, engine_of):
    app, c, u = _crm(make_app, engine_of)
    assert c.post("/api/v1/records/customer", json={"name": "ACME Co., Ltd."}, headers=u["bob"]).status_code == 201
    lead = _lead(c, u["amy"], company="Acme Company Limited", mobile="13900000000", email=None)
    before = (_count(app, "ent_customer"), _count(app, "ent_contact"), _count(app, "mc_history"))
    err = error_of(_convert(c, lead["id"], u["amy"]), 409, "duplicate")
    assert err["matches"][0]["id"] is None and err["matches"][0]["owner"] == "Bob"
    assert (_count(app, "ent_customer"), _count(app, "ent_contact"), _count(app, "mc_history")) == before
    assert c.get(f"/api/v1/records/lead/{lead['id']}", headers=u["amy"]).get_json()["status"] == "new"


def test_convert_refuses_void_leads_and_bad_options(make_app, engine_of):
    app, c, u = _crm(make_app, engine_of)
    lead = _lead(c, u["amy"], invalid_reason="测试")
    with engine_of(app).begin() as conn:  # voided by a manager through the workflow, in effect
        conn.exec_driver_sql(f"UPDATE ent_lead SET status = 'void' WHERE id = {lead['id']}")
    error_of(_convert(c, lead["id"], u["amy"]), 409)
    other = _lead(c, u["amy"], company="Northwind", mobile="13700000000")
    error_of(_convert(c, other["id"], u["amy"], create_contact="yes"), 400)
    error_of(_convert(c, other["id"], u["amy"], opportunity=[1]), 400)
    error_of(_convert(c, other["id"], u["bob"]), 404)   # not Bob's lead: not even visible
    assert _count(app, "ent_customer") == 0


@pytest.mark.skipif(not PG, reason="needs PostgreSQL: SQLite serialises writers with BEGIN IMMEDIATE")
def test_concurrent_conversions_of_one_company_make_one_customer(make_app, engine_of):
    app, c, u = _crm(make_app, engine_of)
    leads = [_lead(c, u["admin"], name=f"联系人{i}", mobile=f"1390000000{i}", email=None,
                   company=name) for i, name in enumerate(
        ["北京字节跳动科技有限公司", "字节跳动(北京)科技有限公司", "字节跳动（北京）科技有限公司", "北京市字节跳动科技有限公司"])]
    clients = [app.test_client() for _ in leads]
    barrier = threading.Barrier(len(leads))
    results: list[Any] = []

    def work(client: Any, lead_id: int) -> None:
        barrier.wait()
        r = _convert(client, lead_id, u["admin"], create_contact=False)
        results.append((r.status_code, r.get_json()))

    threads = [threading.Thread(target=work, args=(cl, ld["id"])) for cl, ld in zip(clients, leads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(status == 200 for status, _ in results), results
    assert sorted(body["customer_created"] for _, body in results) == [False, False, False, True]
    assert len({body["customer"] for _, body in results}) == 1
    assert _count(app, "ent_customer") == 1
