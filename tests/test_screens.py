"""The generated screens at HTTP level (the browser tests in tests/browser/ drive the same
pages in Chromium): sign-in with CSRF, scoped lists and search, forms that keep the
user's input on a refused save, the optimistic-lock conflict, live form state, bulk
actions, saved views, the pickers and the kanban move — each through the record service.
"""
from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .support import add_user, entity, error_of

CUSTOMER = entity(
    "customer",
    {"name": "name", "type": "text", "required": True, "searchable": True, "label": {"en": "Name", "zh": "客户名称"}},
    {"name": "level", "type": "select", "default": "B",
     "options": [{"value": "A", "label": {"en": "Key", "zh": "重点客户"}}, {"value": "B", "label": "Normal"}]},
    {"name": "credit_limit", "type": "currency", "visible_when": "level == 'A'", "required_when": "level == 'A'"},
    {"name": "score", "type": "formula", "result_type": "integer", "expression": "100 if level == 'A' else 50"},
    {"name": "secret", "type": "text"},
    title_field="name", ownership=True, app="customers", icon="building",
    label={"en": "Customer", "zh": "客户"})
DEAL = entity(
    "deal",
    {"name": "name", "type": "text", "required": True},
    {"name": "customer", "type": "lookup", "target": "customer"},
    {"name": "stage", "type": "select", "default": "new",
     "options": [{"value": "new", "label": "New"}, {"value": "won", "label": "Won"}]},
    {"name": "amount", "type": "currency"},
    {"name": "lost_reason", "type": "text"},
    title_field="name", ownership=True, app="sales",
    validations=[{"rule": "stage != 'won' or amount is not None and amount > 0",
                  "message": {"en": "A won deal needs an amount", "zh": "赢单需填写金额"}}])
VIEWS = [
    {"kind": "view", "entity": "customer", "name": "all", "label": {"en": "All customers", "zh": "全部客户"},
     "columns": ["name", "level", "owner"]},
    {"kind": "view", "entity": "deal", "name": "board", "label": "Board", "type": "kanban", "group_by": "stage",
     "columns": ["name", "amount", "owner"]},
]
REP = {"kind": "role", "name": "rep", "label": "Rep",
       "permissions": {"customer": {"create": True, "read": "self", "update": "self", "delete": "self",
                                    "transfer": "self"},
                       "deal": {"create": True, "read": "self", "update": "self"}},
       "fields": {"customer": {"secret": "hidden"}}}
DOCS = [CUSTOMER, DEAL, *VIEWS, REP]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def sign_in(client: Any, username: str, password: str) -> Any:
    token = csrf_of(client.get("/login").get_data(as_text=True))
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": token, "next": "/"})
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    return client


@pytest.fixture
def site(make_app, engine_of):
    app = make_app(DOCS)
    with engine_of(app).begin() as conn:
        ann = add_user(conn, "ann", roles=["rep"], display_name="Ann")
        bob = add_user(conn, "bob", roles=["rep"], display_name="Bob")
    ann_c = sign_in(app.test_client(), "ann", "ann-pass-1")
    bob_c = sign_in(app.test_client(), "bob", "bob-pass-1")
    return app, ann_c, bob_c, ann, bob


def page(client: Any, url: str) -> tuple[int, str]:
    r = client.get(url)
    return r.status_code, r.get_data(as_text=True)


def test_login_needs_csrf_and_the_right_password(make_app):
    app = make_app(DOCS)
    c = app.test_client()
    assert c.get("/r/customer").status_code == 302  # to /login
    assert c.post("/login", data={"username": "admin", "password": "admin-pass-1"}).status_code == 400
    token = csrf_of(c.get("/login").get_data(as_text=True))
    r = c.post("/login", data={"username": "admin", "password": "nope", "csrf_token": token})
    assert r.status_code == 401 and "Wrong username or password" in r.get_data(as_text=True)
    r = c.post("/login", data={"username": "admin", "password": "admin-pass-1", "csrf_token": token,
                               "next": "//evil.example/"})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    status, html = page(c, "/")
    assert status == 200 and 'href="/r/customer"' in html and 'href="/r/deal"' in html


def test_lists_and_search_show_only_what_the_user_may_read(site):
    app, ann, bob, *_ = site
    ann.post("/api/v1/records/customer", json={"name": "Ann's Acme"})
    bob_rec = bob.post("/api/v1/records/customer", json={"name": "Bob's Acme"}).get_json()
    status, html = page(ann, "/r/customer")
    assert status == 200 and "Ann&#39;s Acme" in html and "Bob&#39;s Acme" not in html
    assert "共" not in html and "1 records" in html
    status, html = page(ann, "/search?q=Acme")
    assert "Ann&#39;s Acme" in html and "Bob&#39;s Acme" not in html
    assert page(ann, f"/r/customer/{bob_rec['id']}")[0] == 404
    assert page(ann, f"/r/customer/{bob_rec['id']}/edit")[0] == 404
    titles = [i["title"] for i in ann.get("/api/v1/lookup/records/customer?q=Acme").get_json()["items"]]
    assert titles == ["Ann's Acme"]
    # Hidden fields never reach the page: not as a column, not in the form, not in the filter builder.
    for url in ("/r/customer", "/r/customer/new"):
        assert 'name="secret"' not in page(ann, url)[1] and '"secret"' not in page(ann, url)[1]


def test_a_refused_save_keeps_the_input_and_marks_the_field(site):
    _, ann, *_ = site
    token = csrf_of(page(ann, "/r/customer/new")[1])
    r = ann.post("/r/customer/new", data={"csrf_token": token, "name": "", "level": "A", "credit_limit": "5000"})
    html = r.get_data(as_text=True)
    assert r.status_code == 422
    assert re.search(r'data-for="name">[^<]*required', html, re.I) or "Missing data" in html
    assert 'value="5000"' in html and 'value="A" selected' in html
    r = ann.post("/r/customer/new", data={"csrf_token": token, "name": "Zeta", "level": "A", "credit_limit": ""})
    assert r.status_code == 422 and 'data-for="credit_limit"' in r.get_data(as_text=True)
    r = ann.post("/r/customer/new", data={"csrf_token": token, "name": "Zeta", "level": "A", "credit_limit": "5000"})
    assert r.status_code == 302
    rec = ann.get(r.headers["Location"].replace("/r/", "/api/v1/records/")).get_json()
    assert rec["name"] == "Zeta" and rec["credit_limit"] == "5000.00" and rec["score"] == 100
    # Without the CSRF token nothing is written.
    assert ann.post("/r/customer/new", data={"name": "Forged"}).status_code == 400
    assert ann.get("/api/v1/records/customer?q=Forged").get_json()["total"] == 0


def test_an_edit_that_lost_the_race_keeps_the_input_and_offers_reload(site):
    _, ann, *_ = site
    rec = ann.post("/api/v1/records/customer", json={"name": "Old"}).get_json()
    token = csrf_of(page(ann, f"/r/customer/{rec['id']}/edit")[1])
    ann.patch(f"/api/v1/records/customer/{rec['id']}", json={"name": "Theirs", "version": rec["version"]})
    r = ann.post(f"/r/customer/{rec['id']}/edit",
                 data={"csrf_token": token, "version": str(rec["version"]), "name": "Mine", "level": "B"})
    html = r.get_data(as_text=True)
    assert r.status_code == 409 and 'value="Mine"' in html and 'id="mc-reload"' in html
    assert ann.get(f"/api/v1/records/customer/{rec['id']}").get_json()["name"] == "Theirs"
    # Saving again from the conflict page conflicts again (it keeps the version the user
    # started from): only a reload, which shows the colleague's change, lets them save.
    version = re.search(r'name="version" value="(\d+)"', html).group(1)
    assert version == str(rec["version"])
    r = ann.post(f"/r/customer/{rec['id']}/edit", data={"csrf_token": token, "version": version, "name": "Mine",
                                                        "level": "B"})
    assert r.status_code == 409
    assert ann.get(f"/api/v1/records/customer/{rec['id']}").get_json()["name"] == "Theirs"


def test_form_state_is_computed_by_the_server(site):
    _, ann, *_ = site
    token = csrf_of(page(ann, "/r/customer/new")[1])
    state = ann.post("/r/customer/form-state", data={"csrf_token": token, "level": "B"}).get_json()
    assert state["visible"]["credit_limit"] is False and state["values"]["score"] == 50
    state = ann.post("/r/customer/form-state", data={"csrf_token": token, "level": "A"}).get_json()
    assert state["visible"]["credit_limit"] is True and state["required"]["credit_limit"] is True
    assert state["values"]["score"] == 100 and "secret" not in state["visible"]
    assert ann.post("/r/customer/form-state", data={"level": "A"}).status_code == 400  # CSRF


def test_bulk_transfer_and_delete_report_each_refusal(site, engine_of):
    app, ann, bob, ann_id, bob_id = site
    mine = [ann.post("/api/v1/records/customer", json={"name": f"T{i}"}).get_json()["id"] for i in range(3)]
    theirs = bob.post("/api/v1/records/customer", json={"name": "B"}).get_json()["id"]
    token = csrf_of(page(ann, "/r/customer")[1])
    r = ann.post("/r/customer/bulk", json={"action": "transfer", "ids": mine[:2] + [theirs], "to_user": bob_id},
                 headers={"X-CSRFToken": token})
    body = r.get_json()
    assert r.status_code == 200 and body["done"] == mine[:2] and [x["id"] for x in body["refused"]] == [theirs]
    assert {c["name"] for c in bob.get("/api/v1/records/customer").get_json()["items"]} == {"B", "T0", "T1"}
    r = ann.post("/r/customer/bulk", json={"action": "delete", "ids": [mine[2]]}, headers={"X-CSRFToken": token})
    assert r.get_json()["done"] == [mine[2]]
    assert ann.post("/r/customer/bulk", json={"action": "delete", "ids": [mine[2]]}).status_code == 400  # CSRF
    error_of(ann.post("/r/customer/bulk", json={"action": "explode", "ids": [1]}, headers={"X-CSRFToken": token}),
             400)


def test_saved_views_filter_sort_and_stay_personal(site):
    _, ann, bob, *_ = site
    for name, level in (("Alpha", "A"), ("Beta", "B"), ("Gamma", "A")):
        ann.post("/api/v1/records/customer", json={"name": name, "level": level, "credit_limit": "1"})
    token = csrf_of(page(ann, "/r/customer")[1])
    r = ann.post("/r/customer/views", data={"csrf_token": token, "label": "My key ones", "base_view": "all",
                                            "filter": json.dumps([["level", "=", "A"]]), "sort": "-name"})
    assert r.status_code == 302
    status, html = page(ann, r.headers["Location"])
    assert status == 200 and "My key ones" in html
    assert html.index("Gamma") < html.index("Alpha") and "Beta" not in html
    view_id = re.search(r"saved=(\d+)", r.headers["Location"]).group(1)
    assert page(bob, f"/r/customer?saved={view_id}")[0] == 404
    assert "My key ones" not in page(bob, "/r/customer")[1]
    # A filter on a field the user can't read is refused when saving, not later.
    r = ann.post("/r/customer/views", data={"csrf_token": token, "label": "x",
                                            "filter": json.dumps([["secret", "=", "x"]])})
    assert r.status_code == 400


def test_kanban_totals_and_moves_go_through_the_record_service(site):
    _, ann, bob, *_ = site
    d1 = ann.post("/api/v1/records/deal", json={"name": "D1", "amount": "100"}).get_json()
    ann.post("/api/v1/records/deal", json={"name": "D2", "amount": "250.5"})
    bob.post("/api/v1/records/deal", json={"name": "Bobs", "amount": "999"})
    status, html = page(ann, "/r/deal?view=board")
    assert status == 200 and "D1" in html and "Bobs" not in html and "¥350.50" in html
    ok = ann.post(f"/api/v1/records/deal/{d1['id']}/move", json={"field": "stage", "value": "won",
                                                                  "version": d1["version"]})
    assert ok.status_code == 200 and ok.get_json()["stage"] == "won"
    d0 = ann.post("/api/v1/records/deal", json={"name": "NoAmount"}).get_json()
    refused = ann.post(f"/api/v1/records/deal/{d0['id']}/move", json={"field": "stage", "value": "won",
                                                                       "version": d0["version"]})
    assert refused.status_code == 422 and "won deal needs an amount" in refused.get_json()["error"]["message"]
    stale = ann.post(f"/api/v1/records/deal/{d1['id']}/move", json={"field": "stage", "value": "new",
                                                                     "version": d1["version"]})
    assert stale.status_code == 409
    error_of(ann.post(f"/api/v1/records/deal/{d1['id']}/move", json={"field": "name", "value": "x", "version": 2}),
             400)


def test_record_page_shows_related_records_and_the_timeline(site):
    _, ann, *_ = site
    cust = ann.post("/api/v1/records/customer", json={"name": "Hub"}).get_json()
    ann.post("/api/v1/records/deal", json={"name": "Deal for Hub", "customer": cust["id"]})
    ann.patch(f"/api/v1/records/customer/{cust['id']}", json={"level": "A", "credit_limit": "10",
                                                               "version": cust["version"]})
    status, html = page(ann, f"/r/customer/{cust['id']}")
    assert status == 200 and "Deal for Hub" in html and 'data-entity="deal"' in html
    assert html.count('data-kind="history"') >= 2  # created, then level and credit limit changed


def test_language_switch_is_kept_on_the_account(site):
    _, ann, *_ = site
    token = csrf_of(page(ann, "/")[1])
    assert "Customer" in page(ann, "/")[1]
    r = ann.post("/lang", data={"csrf_token": token, "language": "zh", "next": "/r/customer"})
    assert r.status_code == 302 and r.headers["Location"] == "/r/customer"
    html = page(ann, "/r/customer")[1]
    assert "全部客户" in html and "客户名称" in html and 'lang="zh-CN"' in html
    assert ann.post("/lang", data={"csrf_token": token, "language": "fr"}).status_code == 400
