"""Dashboard reports honour entity- and field-level permissions exactly as the list API
does: an entity the caller may not read, or a field hidden or masked for them (child
tables included), is never computed over — the report is refused with the usual 403,
or, where it already degrades per measure, that measure is left out or null."""
from __future__ import annotations

import pytest

from metacrm.runtime.web.context import EXTENSION

from .support import add_user, bearer, error_of
from .test_reports import _ok, _report, crm, frozen  # noqa: F401  (fixtures)
from .test_reports import sold as sold_deals  # noqa: F401


@pytest.fixture
def sold(sold_deals):  # noqa: F811
    """The sales scenario of test_reports, plus `root`: an administrator who edits roles."""
    app, client, ids, h, products, deals = sold_deals
    rt = app.extensions[EXTENSION]
    with rt.engine.begin() as conn:
        ids["root"] = add_user(conn, "root", is_admin=True)
        h["root"] = bearer(conn, ids["root"])
    rt.invalidate()
    return sold_deals


def _patch_sales(client, h, body):
    """Change the `sales` role (liu.yang's) through the admin API, as an administrator would."""
    _ok(client.patch("/api/v1/admin/roles/sales", headers=h["root"], json=body))


def _target(client, h, ids, who="liu.yang", amount="20000"):
    _ok(client.post("/api/v1/records/sales_target", headers=h["wang.jun"], json={
        "year": 2026, "month": 6, "user": ids[who], "metric": "contract_amount", "amount": amount}), 201)


def test_targets_are_refused_when_sales_target_is_unreadable(sold):
    app, client, ids, h, products, deals = sold
    _target(client, h, ids, amount="12345")
    before = _report(client, h["liu.yang"], "targets")
    assert [r["target"] for r in before["totals"]] == ["12345.00"]
    _patch_sales(client, h, {"permissions": {"sales_target": {"read": False}}})
    error_of(client.get("/api/v1/records/sales_target", headers=h["liu.yang"]), 403)
    r = client.get("/api/v1/reports/targets", headers=h["liu.yang"])
    error_of(r, 403, "forbidden")
    assert "12345" not in r.get_data(as_text=True)
    # the manager's role is untouched
    assert _report(client, h["zhang.wei"], "targets")["totals"]


def test_targets_are_refused_when_a_target_field_is_hidden(sold):
    app, client, ids, h, products, deals = sold
    _target(client, h, ids, amount="12345")
    _patch_sales(client, h, {"fields": {"sales_target": {"amount": "masked"}}})
    r = client.get("/api/v1/reports/targets", headers=h["liu.yang"])
    error_of(r, 403, "forbidden")
    assert "12345" not in r.get_data(as_text=True)


def test_products_are_refused_when_products_are_unreadable(sold):
    app, client, ids, h, products, deals = sold
    assert [p["code"] for p in _report(client, h["liu.yang"], "products")["rows"]] == ["IMPL", "CRM"]
    _patch_sales(client, h, {"permissions": {"product": {"read": False}}})
    r = client.get("/api/v1/reports/products", headers=h["liu.yang"])
    error_of(r, 403, "forbidden")
    assert "IMPL" not in r.get_data(as_text=True)


def test_products_are_refused_when_the_contract_lines_are_hidden(sold):
    app, client, ids, h, products, deals = sold
    _patch_sales(client, h, {"fields": {"contract": {"lines": "hidden"}}})
    r = client.get("/api/v1/reports/products", headers=h["liu.yang"])
    error_of(r, 403, "forbidden")
    assert "IMPL" not in r.get_data(as_text=True) and "20000" not in r.get_data(as_text=True)


def test_products_null_hidden_product_fields_and_refuse_hidden_line_fields(sold):
    app, client, ids, h, products, deals = sold
    _patch_sales(client, h, {"fields": {"product": {"code": "masked", "category": "hidden"}}})
    result = _report(client, h["liu.yang"], "products")
    assert [(p["name"], p["code"], p["category"], p["quantity"], p["amount"]) for p in result["rows"]] == [
        ("Implementation", None, None, "10", "20000.00"), ("CRM licence", None, None, "2", "2000.00")]
    assert result["categories"] == []  # not grouped by a hidden category
    assert client.get("/dashboard", headers=h["liu.yang"]).status_code == 200
    for hidden in ({"contract_line": {"amount": "hidden"}}, {"contract_line": {"quantity": "masked"}},
                   {"contract": {"amount": "masked"}}):
        _patch_sales(client, h, {"fields": {"product": {"code": None, "category": None}, **hidden}})
        r = client.get("/api/v1/reports/products", headers=h["liu.yang"])
        error_of(r, 403, "forbidden")
        assert "20000" not in r.get_data(as_text=True), hidden
        assert client.get("/dashboard", headers=h["liu.yang"]).status_code == 200
        _patch_sales(client, h, {"fields": {k: {f: None for f in v} for k, v in hidden.items()}})


def test_the_funnel_is_refused_when_the_stage_is_hidden(sold):
    app, client, ids, h, products, deals = sold
    assert _report(client, h["liu.yang"], "funnel")["total"] == 2
    _patch_sales(client, h, {"fields": {"opportunity": {"stage": "hidden"}}})
    error_of(client.get("/api/v1/reports/funnel", headers=h["liu.yang"]), 403, "forbidden")


def test_measures_over_a_hidden_status_or_date_are_left_out(sold):
    app, client, ids, h, products, deals = sold
    _target(client, h, ids)
    _patch_sales(client, h, {"fields": {"contract": {"approval_status": "hidden"},
                                        "receivable": {"received_at": "masked"}}})
    rep = h["liu.yang"]
    brief = {r["metric"]: r for r in _report(client, rep, "brief")["rows"]}
    assert "contracts" not in brief and "receivables" not in brief
    assert brief["new_customers"]["count"] == 2
    june = _report(client, rep, "trend", period="this_year")["rows"][5]
    assert (june["contract_amount"], june["receivable_amount"], june["new_customers"]) == (None, None, 2)
    # rankings are ordered by the contract measure: refused without it
    error_of(client.get("/api/v1/reports/rankings", headers=rep), 403, "forbidden")
    totals = _report(client, rep, "targets")["totals"]
    assert [(t["target"], t["actual"], t["completion"]) for t in totals] == [("20000.00", None, None)]
    page = client.get("/dashboard", headers=rep)
    assert page.status_code == 200


def test_rankings_null_a_measure_whose_amount_or_date_is_hidden(sold):
    app, client, ids, h, products, deals = sold
    _patch_sales(client, h, {"fields": {"receivable": {"received_at": "hidden"}}})
    rows = _report(client, h["liu.yang"], "rankings")["rows"]
    assert [(r["contract_amount"], r["receivable_amount"], r["rank_receivable_amount"]) for r in rows] == [
        ("22000.00", None, None)]
    assert client.get("/dashboard", headers=h["liu.yang"]).status_code == 200
    _patch_sales(client, h, {"fields": {"receivable": {"received_at": None}, "contract": {"amount": "masked"}}})
    error_of(client.get("/api/v1/reports/rankings", headers=h["liu.yang"]), 403, "forbidden")
    brief = {r["metric"]: r for r in _report(client, h["liu.yang"], "brief")["rows"]}
    assert brief["contracts"]["count"] == 1 and brief["contracts"]["amount"] is None
    assert brief["receivables"]["amount"] == "15000.00"


def test_dates_at_the_calendar_edges_and_odd_limits_are_a_400(crm):
    app, client, ids, h, _ = crm
    for query in ({"from": "9999-12-31", "to": "9999-12-31"}, {"from": "0001-01-01", "to": "0001-01-02"},
                  {"limit": "²"}, {"limit": "0"}):
        for report in ("brief", "rankings", "trend"):
            r = client.get(f"/api/v1/reports/{report}", headers=h["wang.jun"], query_string=query)
            assert r.status_code == 400 and r.get_json()["error"]["fields"], (report, query, r.get_json())
