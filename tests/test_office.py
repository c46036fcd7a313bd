"""The office module: the `office` template over the default CRM, its approval routes by
kind (leave, trip, overtime, expense, loan, general), task views, announcement read
tracking, the calendar and address book pages, and the workbench's scoped to-dos."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from metacrm.runtime import systables
from metacrm.runtime.clock import utcnow
from metacrm.runtime.metastore import install_seed, installed_templates
from metacrm.runtime.web.context import EXTENSION

from .support import add_user, bearer, error_of

SEED = Path(__file__).resolve().parent.parent / "seeds" / "office"


@pytest.fixture
def office(make_app):
    """crm-default + office, and a small company:

    总经理办公室 (head wang.jun: GM) → 销售部 (head zhang.wei) → 华北组 (head li.na);
    liu.yang and chen.jing (reps, manager li.na) in 华北组; huang.li (finance) and
    zheng.xin (HR) report to wang.jun."""
    app = make_app()
    rt = app.extensions[EXTENSION]
    ids, h = {}, {}
    with rt.engine.begin() as conn:
        install_seed(conn, "crm-default")
        install_seed(conn, "office")
        d = systables.departments
        now = utcnow()
        gmo = conn.execute(d.insert().values(name="总经理办公室", created_at=now).returning(d.c.id)).scalar_one()
        sales = conn.execute(d.insert().values(name="销售部", parent_id=gmo, created_at=now).returning(d.c.id)).scalar_one()
        north = conn.execute(d.insert().values(name="华北组", parent_id=sales, created_at=now).returning(d.c.id)).scalar_one()
        ids["wang.jun"] = add_user(conn, "wang.jun", roles=["admin", "general_manager"], department_id=gmo)
        ids["zhang.wei"] = add_user(conn, "zhang.wei", roles=["sales_manager"], department_id=sales,
                                    manager_id=ids["wang.jun"])
        ids["li.na"] = add_user(conn, "li.na", roles=["sales_manager", "sales"], department_id=north,
                                manager_id=ids["zhang.wei"])
        ids["liu.yang"] = add_user(conn, "liu.yang", roles=["sales"], department_id=north, manager_id=ids["li.na"])
        ids["chen.jing"] = add_user(conn, "chen.jing", roles=["sales"], department_id=north, manager_id=ids["li.na"])
        ids["huang.li"] = add_user(conn, "huang.li", roles=["finance"], department_id=gmo, manager_id=ids["wang.jun"])
        ids["zheng.xin"] = add_user(conn, "zheng.xin", roles=["hr"], department_id=gmo, manager_id=ids["wang.jun"])
        for key, head in ((gmo, "wang.jun"), (sales, "zhang.wei"), (north, "li.na")):
            conn.execute(d.update().where(d.c.id == key).values(head_id=ids[head]))
        conn.execute(systables.users.update().where(systables.users.c.id == ids["liu.yang"])
                     .values(phone="13800001111", email="liu.yang@corp.example"))
        for name, uid in ids.items():
            h[name] = bearer(conn, uid)
    rt.invalidate()
    return app, app.test_client(), ids, h, {"gmo": gmo, "sales": sales, "north": north}


def _create(client, h, who, entity, body, status=201):
    r = client.post(f"/api/v1/records/{entity}", headers=h[who], json=body)
    assert r.status_code == status, (who, entity, r.get_json())
    return r.get_json()


def _fire(client, h, who, rid, name, body=None, status=200):
    r = client.post(f"/api/v1/records/office_approval/{rid}/transitions/{name}", headers=h[who], json=body or {})
    assert r.status_code == status, (who, name, r.get_json())
    return r.get_json()


def _leave(client, h, who, days):
    return _create(client, h, who, "office_approval", {
        "kind": "leave", "subject": f"年假 {days} 天", "leave_type": "annual", "days": str(days),
        "start_at": "2026-12-14T09:00:00+08:00", "end_at": "2026-12-18T18:00:00+08:00"})


def _pending_of(client, h, who):
    return [i["record_id"] for i in client.get("/api/v1/approvals/inbox", headers=h[who]).get_json()["items"]]


# ------------------------------------------------------------------ the template


def test_the_office_template_validates_and_installs_over_the_default_crm(office):
    from click.testing import CliRunner

    from metacrm.cli import main

    result = CliRunner().invoke(main, ["validate", str(SEED)])
    assert result.exit_code == 0, result.output
    app, client, ids, h, _ = office
    with app.extensions[EXTENSION].engine.connect() as conn:
        assert [t["name"] for t in installed_templates(conn)][:2] == ["crm-default", "office"]
    meta = client.get("/api/v1/meta/entities", headers=h["liu.yang"]).get_json()
    names = {e["name"] for e in (meta["items"] if isinstance(meta, dict) else meta)}
    assert {"schedule", "task", "work_log", "announcement", "office_approval", "checkin"} <= names


# ------------------------------------------------------------------ approval routes


def _route(client, h, who, record):
    body = {"record": record}
    r = client.post("/api/v1/records/office_approval/approval-preview", headers=h[who], json=body)
    assert r.status_code == 200, r.get_json()
    return [(s["name"], [a["user_name"] for a in s["approvers"]]) for s in r.get_json()["steps"]
            if s["status"] != "skipped"]


def test_a_five_day_leave_goes_to_the_manager_then_the_department_head_then_hr(office):
    app, client, ids, h, _ = office
    assert _route(client, h, "liu.yang", {"kind": "leave", "days": "5"}) == [
        ("manager", ["li.na"]), ("department_head", ["zhang.wei"]), ("hr", ["zheng.xin"])]
    leave = _leave(client, h, "liu.yang", 5)
    assert leave["approval_status"] == "draft" and leave["number"].startswith("SP-")
    _fire(client, h, "liu.yang", leave["id"], "submit")
    assert _pending_of(client, h, "li.na") == [leave["id"]]
    assert _pending_of(client, h, "zhang.wei") == [] and _pending_of(client, h, "zheng.xin") == []
    # pending requests are locked: the submitter can't change the days under the approvers
    error_of(client.patch(f"/api/v1/records/office_approval/{leave['id']}", headers=h["liu.yang"],
                          json={"days": "1", "version": leave["version"] + 1}), 409)
    _fire(client, h, "li.na", leave["id"], "approve", {"comment": "同意"})
    assert _pending_of(client, h, "zhang.wei") == [leave["id"]]
    _fire(client, h, "zhang.wei", leave["id"], "approve")
    assert _pending_of(client, h, "zheng.xin") == [leave["id"]]
    # someone not on the route can't decide
    _fire(client, h, "huang.li", leave["id"], "approve", status=403)
    done = _fire(client, h, "zheng.xin", leave["id"], "approve")
    assert done["approval_status"] == "approved"
    trail = client.get(f"/api/v1/records/office_approval/{leave['id']}/approvals", headers=h["liu.yang"]).get_json()
    assert [(e["action"], e["by_name"]) for e in trail["trail"] if e["action"] == "approve"] == [
        ("approve", "li.na"), ("approve", "zhang.wei"), ("approve", "zheng.xin")]


def test_a_two_day_leave_needs_only_the_manager(office):
    app, client, ids, h, _ = office
    assert _route(client, h, "liu.yang", {"kind": "leave", "days": "2"}) == [("manager", ["li.na"])]
    leave = _leave(client, h, "liu.yang", 2)
    _fire(client, h, "liu.yang", leave["id"], "submit")
    assert _fire(client, h, "li.na", leave["id"], "approve")["approval_status"] == "approved"
    assert _pending_of(client, h, "zhang.wei") == [] and _pending_of(client, h, "zheng.xin") == []


def test_expenses_route_by_amount_and_loans_add_finance(office):
    app, client, ids, h, _ = office
    assert _route(client, h, "liu.yang", {"kind": "expense", "amount": "800"}) == [
        ("manager", ["li.na"]), ("finance", ["huang.li"])]
    assert _route(client, h, "liu.yang", {"kind": "expense", "amount": "8000"}) == [
        ("manager", ["li.na"]), ("finance", ["huang.li"]), ("general_manager", ["wang.jun"])]
    assert _route(client, h, "liu.yang", {"kind": "loan", "amount": "20000"}) == [
        ("manager", ["li.na"]), ("finance", ["huang.li"])]
    for kind in ("trip", "overtime", "general"):
        assert _route(client, h, "liu.yang", {"kind": kind}) == [("manager", ["li.na"])], kind
    claim = _create(client, h, "liu.yang", "office_approval", {
        "kind": "expense", "subject": "客户拜访差旅", "amount": "8000.00",
        "lines": [{"item": "travel", "amount": "6000"}, {"item": "meals", "amount": "2000"}]})
    _fire(client, h, "liu.yang", claim["id"], "submit")
    for who in ("li.na", "huang.li"):
        assert _fire(client, h, who, claim["id"], "approve")["approval_status"] == "pending"
    assert _fire(client, h, "wang.jun", claim["id"], "approve")["approval_status"] == "approved"


def test_kind_specific_fields_are_required_for_their_kind_only(office):
    app, client, ids, h, _ = office
    err = error_of(client.post("/api/v1/records/office_approval", headers=h["liu.yang"],
                               json={"kind": "leave", "subject": "请假"}), 422)
    assert {"leave_type", "start_at", "end_at", "days"} <= set(err["fields"])
    assert "amount" not in err["fields"]
    err = error_of(client.post("/api/v1/records/office_approval", headers=h["liu.yang"],
                               json={"kind": "loan", "subject": "借款"}), 422)
    assert {"amount", "repay_date"} <= set(err["fields"]) and "days" not in err["fields"]
    with app.extensions[EXTENSION].engine.connect() as conn:
        t = sa.table("ent_office_approval")
        assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 0
