"""The shipped workflows of the default CRM: contract approval by amount, opportunity
stages (a lost deal needs its reason), the lead lifecycle, receivable confirmation."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from metacrm.runtime import systables
from metacrm.runtime.clock import utcnow
from metacrm.runtime.metastore import install_seed
from metacrm.runtime.principal import Principal
from metacrm.runtime.web.context import EXTENSION
from metacrm.runtime.workflow.engine import fire_transition

from .support import add_user, bearer, error_of


@pytest.fixture
def crm(make_app):
    app = make_app()
    rt = app.extensions[EXTENSION]
    ids, h = {}, {}
    with rt.engine.begin() as conn:
        install_seed(conn, "crm-default")
        d = systables.departments
        gmo = conn.execute(d.insert().values(name="总经理办公室", created_at=utcnow()).returning(d.c.id)).scalar_one()
        sales = conn.execute(d.insert().values(name="销售部", parent_id=gmo, created_at=utcnow())
                             .returning(d.c.id)).scalar_one()
        ids["wang.jun"] = add_user(conn, "wang.jun", roles=["admin", "sales_manager", "general_manager"],
                                   department_id=gmo)
        ids["zhang.wei"] = add_user(conn, "zhang.wei", roles=["sales_manager"], department_id=sales,
                                    manager_id=ids["wang.jun"])
        ids["liu.yang"] = add_user(conn, "liu.yang", roles=["sales"], department_id=sales, manager_id=ids["zhang.wei"])
        ids["huang.li"] = add_user(conn, "huang.li", roles=["finance"], department_id=gmo, manager_id=ids["wang.jun"])
        conn.execute(d.update().where(d.c.id == sales).values(head_id=ids["zhang.wei"]))
        for name, uid in ids.items():
            h[name] = bearer(conn, uid)
    rt.invalidate()
    client = app.test_client()
    r = client.post("/api/v1/records/product", headers=h["wang.jun"],
                    json={"name": "CRM licence", "code": "CRM", "price": "1000", "unit": "user"})
    assert r.status_code == 201, r.get_json()
    r = client.post("/api/v1/records/customer", headers=h["liu.yang"], json={"name": "上海云帆科技有限公司"})
    assert r.status_code == 201, r.get_json()
    return app, client, ids, h, r.get_json()["id"], client.get("/api/v1/records/product", headers=h["wang.jun"]
                                                              ).get_json()["items"][0]["id"]


def _contract(client, h, customer, product, qty):
    r = client.post("/api/v1/records/contract", headers=h["liu.yang"], json={
        "name": "CRM 项目合同", "customer": customer, "lines": [{"product": product, "quantity": qty, "price": "1000"}]})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["approval_status"] == "draft"
    return r.get_json()


def _fire(client, h, who, entity, rid, name, body=None, status=200):
    r = client.post(f"/api/v1/records/{entity}/{rid}/transitions/{name}", headers=h[who], json=body or {})
    assert r.status_code == status, (who, name, r.get_json())
    return r.get_json()


def test_a_150000_contract_goes_to_the_manager_then_finance_and_becomes_read_only(crm):
    app, client, ids, h, customer, product = crm
    contract = _contract(client, h, customer, product, 150)
    assert contract["amount"] == "150000.00"
    preview = client.post(f"/api/v1/records/contract/{contract['id']}/approval-preview", headers=h["liu.yang"],
                          json={}).get_json()
    assert [(s["name"], s["status"]) for s in preview["steps"]] == [
        ("manager", "will_run"), ("finance", "will_run"), ("general_manager", "skipped")]
    _fire(client, h, "liu.yang", "contract", contract["id"], "submit")
    inbox = client.get("/api/v1/approvals/inbox", headers=h["zhang.wei"]).get_json()
    assert [i["record_id"] for i in inbox["items"]] == [contract["id"]]
    _fire(client, h, "zhang.wei", "contract", contract["id"], "approve", {"comment": "同意"})
    assert client.get("/api/v1/approvals/inbox", headers=h["huang.li"]).get_json()["counts"]["pending"] == 1
    # finance may correct the payment method on the way (editable_fields), nothing else
    rec = _fire(client, h, "huang.li", "contract", contract["id"], "approve",
                {"values": {"payment_method": "acceptance_bill"}})
    assert rec["approval_status"] == "approved" and rec["payment_method"] == "acceptance_bill"
    error_of(client.patch(f"/api/v1/records/contract/{contract['id']}", headers=h["liu.yang"],
                          json={"version": rec["version"], "remark": "late change"}), 409, "locked")
    trail = client.get(f"/api/v1/records/contract/{contract['id']}/approvals", headers=h["liu.yang"]).get_json()
    assert [(e["action"], e["step"]) for e in trail["trail"]] == [
        ("submit", None), ("approve", "manager"), ("approve", "finance"), ("skip", "general_manager"),
        ("approved", None)]
    history = client.get(f"/api/v1/records/contract/{contract['id']}/history", headers=h["liu.yang"]).get_json()
    assert sorted(i["new"] for i in history["items"] if i["field"] == "approval_status") == ["approved", "pending"]


def test_a_600000_contract_also_needs_the_general_manager(crm):
    app, client, ids, h, customer, product = crm
    contract = _contract(client, h, customer, product, 600)
    _fire(client, h, "liu.yang", "contract", contract["id"], "submit")
    _fire(client, h, "zhang.wei", "contract", contract["id"], "approve")
    _fire(client, h, "huang.li", "contract", contract["id"], "approve")
    assert _fire(client, h, "wang.jun", "contract", contract["id"], "approve")["approval_status"] == "approved"


def test_a_rejected_contract_can_be_fixed_and_resubmitted(crm):
    app, client, ids, h, customer, product = crm
    contract = _contract(client, h, customer, product, 10)
    _fire(client, h, "liu.yang", "contract", contract["id"], "submit")
    rec = _fire(client, h, "zhang.wei", "contract", contract["id"], "reject", {"comment": "折扣太大"})
    assert rec["approval_status"] == "rejected"
    r = client.patch(f"/api/v1/records/contract/{contract['id']}", headers=h["liu.yang"],
                     json={"version": rec["version"], "remark": "按意见修改"})
    assert r.status_code == 200
    _fire(client, h, "liu.yang", "contract", contract["id"], "submit")
    assert _fire(client, h, "zhang.wei", "contract", contract["id"], "approve")["approval_status"] == "approved"


def test_opportunity_stages_and_a_lost_reason(crm):
    app, client, ids, h, customer, product = crm
    r = client.post("/api/v1/records/opportunity", headers=h["liu.yang"],
                    json={"name": "CRM 项目", "customer": customer, "amount": "80000", "stage": "won"})
    assert error_of(r, 422)["fields"]["stage"]
    opp = client.post("/api/v1/records/opportunity", headers=h["liu.yang"],
                      json={"name": "CRM 项目", "customer": customer, "amount": "80000"}).get_json()
    assert opp["stage"] == "initial"
    rec = _fire(client, h, "liu.yang", "opportunity", opp["id"], "to_proposal")
    assert rec["stage"] == "proposal" and float(rec["win_rate"]) == 40
    err = error_of(client.post(f"/api/v1/records/opportunity/{opp['id']}/transitions/lose", headers=h["liu.yang"]),
                   422)
    assert "lost_reason" in err["fields"]
    rec = _fire(client, h, "liu.yang", "opportunity", opp["id"], "lose", {"values": {"lost_reason": "预算取消"}})
    assert rec["stage"] == "lost" and float(rec["win_rate"]) == 0
    error_of(client.post(f"/api/v1/records/opportunity/{opp['id']}/transitions/reopen", headers=h["liu.yang"]), 403)
    _fire(client, h, "zhang.wei", "opportunity", opp["id"], "reopen")
    rec = _fire(client, h, "liu.yang", "opportunity", opp["id"], "win")
    assert rec["stage"] == "won"
    followups = client.get("/api/v1/records/followup", headers=h["liu.yang"]).get_json()["items"]
    assert [f["subject"] for f in followups] == [{"entity": "opportunity", "id": opp["id"]}]
    # The workflow's follow-up rolled up onto the deal; the transition answered the deal as it
    # is after that (its version too, which the caller's next write must send).
    assert rec["last_followup_at"] == followups[0]["created_at"]
    now = client.get(f"/api/v1/records/opportunity/{opp['id']}", headers=h["liu.yang"]).get_json()
    assert (rec["version"], rec["last_followup_at"]) == (now["version"], now["last_followup_at"])


def test_lead_lifecycle_and_conversion_through_the_engine(crm):
    app, client, ids, h, customer, product = crm
    lead = client.post("/api/v1/records/lead", headers=h["liu.yang"], json={"name": "王小明", "company": "某公司"}
                       ).get_json()
    err = error_of(client.post(f"/api/v1/records/lead/{lead['id']}/transitions/invalidate", headers=h["liu.yang"]), 422)
    assert "invalid_reason" in err["fields"]
    _fire(client, h, "liu.yang", "lead", lead["id"], "invalidate", {"values": {"invalid_reason": "空号"}})
    assert _fire(client, h, "liu.yang", "lead", lead["id"], "revive")["status"] == "following"
    # what lead conversion (another engine) calls from Python, with the fields it owns
    rt = app.extensions[EXTENSION]
    with rt.engine.begin() as conn:
        me = Principal(user_id=ids["liu.yang"], username="liu.yang", roles=frozenset({"sales"}))
        rec = fire_transition(conn, rt.catalog(conn), me, "lead", lead["id"], "convert",
                              engine_values={"converted_customer": customer})
    assert rec["status"] == "converted" and rec["converted_customer"] == customer and rec["converted_at"]
    error_of(client.patch(f"/api/v1/records/lead/{lead['id']}", headers=h["liu.yang"],
                          json={"version": rec["version"], "remark": "x"}), 409, "locked")


def test_receivable_confirmed_by_finance(crm):
    app, client, ids, h, customer, product = crm
    contract = _contract(client, h, customer, product, 5)
    r = client.post("/api/v1/records/receivable", headers=h["liu.yang"], json={
        "contract": contract["id"], "customer": customer, "received_at": "2026-01-05", "amount": "5000"})
    assert r.status_code == 201, r.get_json()
    rid = r.get_json()["id"]
    _fire(client, h, "liu.yang", "receivable", rid, "submit")
    assert _fire(client, h, "huang.li", "receivable", rid, "approve")["approval_status"] == "approved"
    with app.extensions[EXTENSION].engine.connect() as conn:
        n = systables.notifications
        assert conn.execute(sa.select(sa.func.count()).select_from(n).where(
            n.c.user_id == ids["liu.yang"], n.c.kind == "approval_result")).scalar_one() == 1


def test_confirmed_receivables_keep_their_plans_received_and_outstanding_amounts_in_step(crm):
    """The `rollup` action: a plan's received_amount is the sum of its confirmed
    receivables (drafts and pending ones don't count; a voided one stops counting), its
    outstanding amount (a formula) follows, and its status moves pending → partial → done."""
    app, client, ids, h, customer, product = crm
    contract = _contract(client, h, customer, product, 10)  # 10,000
    plan = client.post("/api/v1/records/receivable_plan", headers=h["liu.yang"], json={
        "contract": contract["id"], "customer": customer, "period": 1, "plan_date": "2099-01-31",
        "amount": "8000"}).get_json()
    assert plan["received_amount"] == "0.00" and plan["outstanding"] == "8000.00" and plan["status"] == "pending"

    def receive(amount: str) -> int:
        r = client.post("/api/v1/records/receivable", headers=h["liu.yang"], json={
            "contract": contract["id"], "customer": customer, "plan": plan["id"], "received_at": "2026-01-05",
            "amount": amount})
        assert r.status_code == 201, r.get_json()
        return r.get_json()["id"]

    def plan_now() -> dict:
        return client.get(f"/api/v1/records/receivable_plan/{plan['id']}", headers=h["liu.yang"]).get_json()

    r = client.patch(f"/api/v1/records/receivable_plan/{plan['id']}", headers=h["wang.jun"],
                     json={"version": plan["version"], "received_amount": "8000"})
    assert "received_amount" in error_of(r, 422)["fields"]  # nobody types it: confirmations add up to it
    first, second = receive("3000"), receive("5000")
    _fire(client, h, "liu.yang", "receivable", first, "submit")
    assert plan_now()["received_amount"] == "0.00"  # pending: not confirmed yet
    _fire(client, h, "huang.li", "receivable", first, "approve")
    now = plan_now()
    assert (now["received_amount"], now["outstanding"], now["status"]) == ("3000.00", "5000.00", "partial")
    _fire(client, h, "liu.yang", "receivable", second, "submit")
    _fire(client, h, "huang.li", "receivable", second, "approve")
    now = plan_now()
    assert (now["received_amount"], now["outstanding"], now["status"]) == ("8000.00", "0.00", "done")
    _fire(client, h, "huang.li", "receivable", second, "void")  # the cheque bounced
    now = plan_now()
    assert (now["received_amount"], now["outstanding"], now["status"]) == ("3000.00", "5000.00", "partial")
    history = client.get(f"/api/v1/records/receivable_plan/{plan['id']}/history", headers=h["wang.jun"]).get_json()
    assert [i["new"] for i in history["items"] if i["field"] == "received_amount"] == ["3000.00", "8000.00",
                                                                                       "3000.00"][::-1]
