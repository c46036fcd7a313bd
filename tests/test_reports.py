"""Dashboard reports on the default CRM, through the API: a lead becomes a customer and a
won opportunity, the contract is approved, the money arrives and is confirmed — and the
funnel, targets, rankings and brief show exactly that, computed again here by hand. Plus
data scopes (a rep sees their own numbers, a manager their team's), parameter errors,
the CSV download and the /dashboard page."""
from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest

from metacrm.runtime import clock, systables
from metacrm.runtime.clock import utcnow
from metacrm.runtime.metastore import install_seed
from metacrm.runtime.web.context import EXTENSION

from .support import add_user, bearer, error_of

#: Every test runs on a frozen clock: periods (this month, last month …) are then fixed.
NOW = dt.datetime(2026, 6, 15, 4, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def frozen():
    clock.set_clock(lambda: NOW)
    yield NOW
    clock.set_clock(None)


@pytest.fixture
def crm(make_app, frozen):
    """The default CRM; 总经理办公室 ⊃ 销售部 (head zhang.wei) with reps liu.yang and chen.jing; finance."""
    app = make_app()
    rt = app.extensions[EXTENSION]
    ids, h = {}, {}
    with rt.engine.begin() as conn:
        install_seed(conn, "crm-default")
        d = systables.departments
        gmo = conn.execute(d.insert().values(name="总经理办公室", created_at=utcnow()).returning(d.c.id)).scalar_one()
        sales = conn.execute(d.insert().values(name="销售部", parent_id=gmo, created_at=utcnow())
                             .returning(d.c.id)).scalar_one()
        ids["gmo"], ids["sales"] = gmo, sales
        ids["wang.jun"] = add_user(conn, "wang.jun", roles=["admin", "sales_manager", "general_manager"],
                                   department_id=gmo, display_name="王军")
        ids["zhang.wei"] = add_user(conn, "zhang.wei", roles=["sales_manager"], department_id=sales,
                                    manager_id=ids["wang.jun"], display_name="张伟", language="zh")
        ids["liu.yang"] = add_user(conn, "liu.yang", roles=["sales"], department_id=sales,
                                   manager_id=ids["zhang.wei"], display_name="刘洋")
        ids["chen.jing"] = add_user(conn, "chen.jing", roles=["sales"], department_id=sales,
                                    manager_id=ids["zhang.wei"], display_name="陈静")
        ids["huang.li"] = add_user(conn, "huang.li", roles=["finance"], department_id=gmo,
                                   manager_id=ids["wang.jun"], display_name="黄丽")
        ids["zheng.xin"] = add_user(conn, "zheng.xin", roles=["employee"], department_id=sales,
                                    manager_id=ids["zhang.wei"], display_name="郑欣")
        conn.execute(d.update().where(d.c.id == sales).values(head_id=ids["zhang.wei"]))
        for name in ("wang.jun", "zhang.wei", "liu.yang", "chen.jing", "huang.li", "zheng.xin"):
            h[name] = bearer(conn, ids[name])
    rt.invalidate()
    client = app.test_client()
    products = []
    for code, name, category, price in (("CRM", "CRM licence", "software", "1000"),
                                        ("IMPL", "Implementation", "service", "2000")):
        r = client.post("/api/v1/records/product", headers=h["wang.jun"],
                        json={"name": name, "code": code, "category": category, "price": price, "unit": "user"})
        assert r.status_code == 201, r.get_json()
        products.append(r.get_json()["id"])
    return app, client, ids, h, products


def _ok(r, status=200):
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:500])
    return r.get_json()


def _fire(client, h, who, entity, rid, name, body=None):
    return _ok(client.post(f"/api/v1/records/{entity}/{rid}/transitions/{name}", headers=h[who], json=body or {}))


def _report(client, headers, name, **params):
    return _ok(client.get(f"/api/v1/reports/{name}", headers=headers, query_string=params))


def _sale(client, h, ids, who, company, stages, lines, received, sign_date="2026-06-03"):
    """A lead converted by `who`, its opportunity moved through `stages`, then (when `lines`)
    a contract approved and `received` amounts recorded and confirmed. What it made."""
    lead = _ok(client.post("/api/v1/records/lead", headers=h[who], json={
        "name": "张三", "company": company, "mobile": f"138{abs(hash(company)) % 10**8:08d}", "source": "referral"}), 201)
    out = _ok(client.post(f"/api/v1/records/lead/{lead['id']}/actions/convert", headers=h[who], json={
        "create_opportunity": True, "opportunity": {"name": f"{company} CRM", "amount": "100000.00"}}))
    opp = out["opportunity"]
    for stage in stages:
        _fire(client, h, who, "opportunity", opp, stage)
    made = {"customer": out["customer"], "opportunity": opp, "contract": None}
    if not lines:
        return made
    contract = _ok(client.post("/api/v1/records/contract", headers=h[who], json={
        "name": f"{company} 合同", "customer": out["customer"], "opportunity": opp, "sign_date": sign_date,
        "lines": [{"product": p, "quantity": q, "price": price} for p, q, price in lines]}), 201)
    _fire(client, h, who, "contract", contract["id"], "submit")
    approved = _fire(client, h, "zhang.wei" if who != "zhang.wei" else "wang.jun", "contract", contract["id"], "approve")
    if approved["approval_status"] == "pending":  # ≥ 100,000: finance too
        approved = _fire(client, h, "huang.li", "contract", contract["id"], "approve")
    assert approved["approval_status"] == "approved"
    made["contract"] = approved
    for period, amount in enumerate(received, start=1):
        plan = _ok(client.post("/api/v1/records/receivable_plan", headers=h[who], json={
            "contract": contract["id"], "customer": out["customer"], "period": period,
            "plan_date": f"2026-06-{10 + period:02d}", "amount": amount}), 201)
        rec = _ok(client.post("/api/v1/records/receivable", headers=h[who], json={
            "contract": contract["id"], "customer": out["customer"], "plan": plan["id"],
            "received_at": f"2026-06-{10 + period:02d}", "amount": amount}), 201)
        _fire(client, h, who, "receivable", rec["id"], "submit")
        assert _fire(client, h, "huang.li", "receivable", rec["id"], "approve")["approval_status"] == "approved"
    return made


@pytest.fixture
def sold(crm):
    """liu.yang: one won deal (contract 2×CRM + 10×IMPL = 22,000, 15,000 received) and one
    stuck at proposal; chen.jing: a won deal (5×CRM = 5,000, all received) and one lost."""
    app, client, ids, h, (crm_p, impl_p) = crm
    deals = {
        "liu_won": _sale(client, h, ids, "liu.yang", "上海云帆科技有限公司", ["to_needs", "to_proposal", "to_negotiation",
                                                                        "win"],
                         [(crm_p, "2", "1000"), (impl_p, "10", "2000")], ["10000", "5000"]),
        "liu_open": _sale(client, h, ids, "liu.yang", "北京星河数据有限公司", ["to_needs", "to_proposal"], [], []),
        "chen_won": _sale(client, h, ids, "chen.jing", "杭州青禾软件有限公司", ["to_proposal", "win"],
                          [(crm_p, "5", "1000")], ["5000"]),
        "chen_lost": _sale(client, h, ids, "chen.jing", "苏州远景物流有限公司", ["to_needs"], [], []),
    }
    _fire(client, h, "chen.jing", "opportunity", deals["chen_lost"]["opportunity"], "lose",
          {"values": {"lost_reason": "价格"}})
    return crm + (deals,)


def test_the_sales_scenario_shows_up_in_funnel_targets_and_rankings(sold):
    app, client, ids, h, (crm_p, impl_p), deals = sold
    admin = h["wang.jun"]

    # -- funnel: computed independently from the opportunities' current stages
    opps = _ok(client.get("/api/v1/records/opportunity", headers=admin, query_string={"page_size": 100}))["items"]
    assert len(opps) == 4
    path = ["initial", "needs", "proposal", "negotiation", "won"]
    stage_of = [o["stage"] for o in opps]
    funnel = _report(client, admin, "funnel", period="this_month")
    rows = {r["stage"]: r for r in funnel["rows"]}
    assert [r["stage"] for r in funnel["rows"]] == path + ["lost", "invalid"]
    assert (funnel["rows"][0]["label"], funnel["rows"][4]["label"]) == ("Initial contact", "Won")  # wang.jun: en
    for stage in path + ["lost", "invalid"]:
        assert rows[stage]["count"] == stage_of.count(stage)
        expected = sum(Decimal(o["amount"]) for o in opps if o["stage"] == stage)
        assert Decimal(rows[stage]["amount"]) == expected
    reached = {s: sum(stage_of.count(t) for t in path[i:]) for i, s in enumerate(path)}
    assert {s: rows[s]["reached"] for s in path} == reached == {
        "initial": 3, "needs": 3, "proposal": 3, "negotiation": 2, "won": 2}
    assert rows["proposal"]["conversion"] == round(100 * 2 / 3, 1) and rows["won"]["conversion"] is None
    assert rows["lost"]["count"] == 1 and rows["lost"]["reached"] is None
    assert funnel["win_rate"] == 50.0 and funnel["total"] == 4

    # -- targets: set through the API, then compared with the sums of the records
    for body in ({"user": ids["liu.yang"], "metric": "contract_amount", "amount": "20000"},
                 {"user": ids["liu.yang"], "metric": "receivable_amount", "amount": "30000"},
                 {"user": ids["chen.jing"], "metric": "contract_amount", "amount": "10000"},
                 {"department": ids["gmo"], "metric": "contract_amount", "amount": "50000"}):
        _ok(client.post("/api/v1/records/sales_target", headers=h["zhang.wei"] if "user" in body else admin,
                        json={"year": 2026, "month": 6, **body}), 201)
    contracts = _ok(client.get("/api/v1/records/contract", headers=admin))["items"]
    receivables = _ok(client.get("/api/v1/records/receivable", headers=admin))["items"]

    def contract_sum(owner=None):
        return sum(Decimal(c["amount"]) for c in contracts
                   if c["approval_status"] == "approved" and (owner is None or c["owner"] == owner))

    def received_sum(owner=None):
        return sum(Decimal(r["amount"]) for r in receivables
                   if r["approval_status"] == "approved" and (owner is None or r["owner"] == owner))

    assert contract_sum(ids["liu.yang"]) == Decimal("22000") and received_sum(ids["liu.yang"]) == Decimal("15000")
    result = _report(client, admin, "targets", period="this_month")
    got = {(r["kind"], r["id"], r["metric"]): r for r in result["totals"]}
    liu = got[("user", ids["liu.yang"], "contract_amount")]
    assert (Decimal(liu["target"]), Decimal(liu["actual"])) == (Decimal("20000"), contract_sum(ids["liu.yang"]))
    assert liu["completion"] == 110.0
    liu_r = got[("user", ids["liu.yang"], "receivable_amount")]
    assert Decimal(liu_r["actual"]) == received_sum(ids["liu.yang"]) and liu_r["completion"] == 50.0
    chen = got[("user", ids["chen.jing"], "contract_amount")]
    assert (Decimal(chen["actual"]), chen["completion"]) == (contract_sum(ids["chen.jing"]), 50.0)
    # the department's actual rolls up its subtree (销售部 sits under 总经理办公室)
    gmo = got[("department", ids["gmo"], "contract_amount")]
    assert Decimal(gmo["actual"]) == contract_sum() == Decimal("27000") and gmo["completion"] == 54.0
    assert [r["month"] for r in result["rows"]] == ["2026-06"] * 4
    # a second target for the same person, month and metric is refused
    dup = client.post("/api/v1/records/sales_target", headers=admin,
                      json={"year": 2026, "month": 6, "user": ids["liu.yang"], "metric": "contract_amount",
                            "amount": "1"})
    assert error_of(dup, 422)["fields"]
    both = client.post("/api/v1/records/sales_target", headers=admin, json={
        "year": 2026, "month": 7, "user": ids["liu.yang"], "department": ids["sales"], "amount": "1"})
    error_of(both, 422)

    # -- rankings
    ranking = _report(client, admin, "rankings", period="this_month")
    assert [(r["name"], r["contract_amount"], r["receivable_amount"], r["new_customers"]) for r in ranking["rows"]] \
        == [("刘洋", "22000.00", "15000.00", 2), ("陈静", "5000.00", "5000.00", 2)]
    assert [t["name"] for t in ranking["top"]["receivable_amount"]] == ["刘洋", "陈静"]
    assert ranking["rows"][0]["rank_contract_amount"] == 1

    # -- brief: this month against last month (nothing then)
    brief = {r["metric"]: r for r in _report(client, admin, "brief")["rows"]}
    assert (brief["new_leads"]["count"], brief["new_customers"]["count"]) == (4, 4)
    assert (brief["new_opportunities"]["count"], brief["new_opportunities"]["amount"]) == (4, "400000.00")
    assert (brief["contracts"]["count"], brief["contracts"]["amount"]) == (2, "27000.00")
    assert (brief["receivables"]["count"], brief["receivables"]["amount"]) == (3, "20000.00")
    assert brief["followups"]["count"] == 2  # the two "opportunity won" follow-ups of the workflow
    assert brief["contracts"]["previous_amount"] == "0.00" and brief["contracts"]["change"] is None

    # -- products and trend
    products = _report(client, admin, "products", period="this_month")
    assert [(p["code"], p["quantity"], p["amount"]) for p in products["rows"]] == [
        ("IMPL", "10", "20000.00"), ("CRM", "7", "7000.00")]
    assert [(c["category"], c["amount"]) for c in products["categories"]] == [
        ("service", "20000.00"), ("software", "7000.00")]
    trend = _report(client, admin, "trend", period="this_year")
    assert [r["month"] for r in trend["rows"]] == [f"2026-{m:02d}" for m in range(1, 13)]
    june = trend["rows"][5]
    assert (june["contract_amount"], june["receivable_amount"], june["new_customers"]) == ("27000.00", "20000.00", 4)
    assert all(r["contract_amount"] == "0.00" for i, r in enumerate(trend["rows"]) if i != 5)
    customers = _report(client, admin, "customers")
    assert {(r["dimension"], r["value"]): r["count"] for r in customers["rows"]}[("source", "referral")] == 4


def test_a_rep_sees_their_own_numbers_and_a_manager_the_team(sold):
    app, client, ids, h, products, deals = sold
    liu = {r["metric"]: r for r in _report(client, h["liu.yang"], "brief")["rows"]}
    assert (liu["new_customers"]["count"], liu["contracts"]["amount"], liu["receivables"]["amount"]) == \
        (2, "22000.00", "15000.00")
    boss = {r["metric"]: r for r in _report(client, h["zhang.wei"], "brief")["rows"]}
    assert (boss["new_customers"]["count"], boss["contracts"]["amount"]) == (4, "27000.00")
    # filters narrow within the scope
    only_chen = {r["metric"]: r for r in _report(client, h["zhang.wei"], "brief", user=ids["chen.jing"])["rows"]}
    assert only_chen["contracts"]["amount"] == "5000.00"
    dept = {r["metric"]: r for r in _report(client, h["zhang.wei"], "brief", department=ids["sales"])["rows"]}
    assert dept["contracts"]["amount"] == "27000.00"
    # a rep can't look at a colleague: a 403 naming the field, not zeros
    assert "user" in error_of(client.get("/api/v1/reports/brief", headers=h["liu.yang"],
                                         query_string={"user": ids["chen.jing"]}), 403, "forbidden")["fields"]
    # a rep's rankings and targets hold only themselves; no department rows
    ranking = _report(client, h["liu.yang"], "rankings")
    assert [r["name"] for r in ranking["rows"]] == ["刘洋"]
    _ok(client.post("/api/v1/records/sales_target", headers=h["wang.jun"], json={
        "year": 2026, "month": 6, "department": ids["sales"], "metric": "contract_amount", "amount": "40000"}), 201)
    _ok(client.post("/api/v1/records/sales_target", headers=h["wang.jun"], json={
        "year": 2026, "month": 6, "user": ids["chen.jing"], "metric": "contract_amount", "amount": "8000"}), 201)
    assert _report(client, h["liu.yang"], "targets")["totals"] == []
    boss_targets = {(r["kind"], r["id"]): r for r in _report(client, h["zhang.wei"], "targets")["totals"]}
    assert boss_targets[("department", ids["sales"])]["actual"] == "27000.00"
    assert boss_targets[("user", ids["chen.jing"])]["completion"] == 62.5
    # a rep may not write targets (sales may only read them)
    error_of(client.post("/api/v1/records/sales_target", headers=h["liu.yang"], json={
        "year": 2026, "month": 7, "user": ids["liu.yang"], "metric": "contract_amount", "amount": "1"}), 403)
    # finance reads no opportunities: the funnel is refused, the brief leaves those rows out
    error_of(client.get("/api/v1/reports/funnel", headers=h["huang.li"]), 403)
    metrics = [r["metric"] for r in _report(client, h["huang.li"], "brief")["rows"]]
    assert "new_opportunities" not in metrics and "receivables" in metrics


def test_an_employee_who_reads_only_customers_gets_only_customer_numbers(sold):
    app, client, ids, h, products, deals = sold
    emp = h["zheng.xin"]  # role employee: the department's customers, nothing else
    trend = _report(client, emp, "trend", period="this_year")
    june = trend["rows"][5]
    assert (june["contract_amount"], june["receivable_amount"], june["new_customers"]) == (None, None, 4)
    for name in ("funnel", "rankings", "targets", "products"):
        error_of(client.get(f"/api/v1/reports/{name}", headers=emp), 403, "forbidden")
    assert [r["metric"] for r in _report(client, emp, "brief")["rows"]] == ["new_customers", "followups"]
    page = client.get("/dashboard", headers=emp)
    assert page.status_code == 200 and 'id="mc-report-customers"' in page.get_data(as_text=True)


@pytest.mark.parametrize("params, field", [
    ({"period": "yesterday-ish"}, "period"),
    ({"from": "2026-01-01"}, "to"),
    ({"from": "2026-02-30", "to": "2026-03-01"}, "from"),
    ({"from": "2026-03-01", "to": "2026-02-01"}, "to"),
    ({"from": "2020-01-01", "to": "2026-02-01"}, "from"),
    ({"period": "this_month", "from": "2026-01-01", "to": "2026-01-31"}, "period"),
    ({"user": "abc"}, "user"),
    ({"user": "99999"}, "user"),
    ({"department": "-3"}, "department"),
    ({"department": "99999"}, "department"),
    ({"limit": "0"}, "limit"),
    ({"format": "xml"}, "format"),
])
def test_bad_parameters_are_400_naming_the_field(crm, params, field):
    app, client, ids, h, products = crm
    err = error_of(client.get("/api/v1/reports/rankings", headers=h["wang.jun"], query_string=params), 400)
    assert field in err["fields"], err


def test_unknown_report_trend_over_all_time_and_no_sign_in(crm):
    app, client, ids, h, products = crm
    error_of(client.get("/api/v1/reports/nope", headers=h["wang.jun"]), 404, "not_found")
    assert "period" in error_of(client.get("/api/v1/reports/trend?period=all", headers=h["wang.jun"]), 400)["fields"]
    error_of(client.get("/api/v1/reports/brief"), 401)
    names = [i["name"] for i in _ok(client.get("/api/v1/reports", headers=h["wang.jun"]))["items"]]
    assert names == ["brief", "targets", "funnel", "trend", "rankings", "customers", "products"]


def test_csv_download_has_a_bom_and_headers_in_the_users_language(sold):
    app, client, ids, h, products, deals = sold
    r = client.get("/api/v1/reports/rankings?format=csv&period=this_month", headers=h["zhang.wei"])  # zh user
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    text = r.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0][:2] == ["姓名", "合同金额"]
    zh_funnel = _report(client, h["zhang.wei"], "funnel")
    assert zh_funnel["rows"][0]["label"] == "初步接洽"
    assert rows[1][:2] == ["刘洋", "22000.00"] and len(rows) == 3
    en = client.get("/api/v1/reports/funnel?format=csv", headers=h["liu.yang"]).get_data(as_text=True)
    assert list(csv.reader(io.StringIO(en[1:])))[0][0] == "Stage"


def test_the_dashboard_page_renders_for_the_admin_and_a_rep(sold):
    app, client, ids, h, products, deals = sold
    page = client.get("/dashboard", headers=h["wang.jun"])
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    html = page.get_data(as_text=True)
    for marker in ("<svg", "22,000.00", "刘洋", "/api/v1/reports/funnel?", "format=csv", 'name="period"'):
        assert marker in html, marker
    rep = client.get("/dashboard?period=this_year", headers=h["liu.yang"]).get_data(as_text=True)
    assert "刘洋" in rep and "陈静" not in rep
    bad = client.get("/dashboard?period=nope", headers=h["liu.yang"])
    assert bad.status_code == 400
    assert client.get(f"/dashboard?user={ids['chen.jing']}", headers=h["liu.yang"]).status_code == 403
    ranged = client.get("/dashboard?period=this_year&from=2026-06-01&to=2026-06-30", headers=h["liu.yang"])
    assert ranged.status_code == 200 and "2026-06-01 ~ 2026-06-30" in ranged.get_data(as_text=True)
    # finance reads contracts and receivables, not opportunities: no funnel on their page
    fin = client.get("/dashboard", headers=h["huang.li"]).get_data(as_text=True)
    assert 'id="mc-report-trend"' in fin and 'id="mc-report-funnel"' not in fin
    # the sidebar links the dashboard under its app
    assert 'href="/dashboard"' in html
