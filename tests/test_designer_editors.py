"""The view, dedup-rule and workflow designers over HTTP: each saves a valid document to
the draft and refuses an invalid one with the error at the input's JSON pointer; the
dedup rule test finds a known pair without writing keys; the workflow simulation walks
the draft chain; everything is admins-only."""
from __future__ import annotations

import copy
from typing import Any

import pytest
import sqlalchemy as sa

from metacrm.designer import drafts
from metacrm.designer.workflow_graph import layout, render_svg
from metacrm.runtime import systables
from metacrm.runtime.clock import utcnow
from metacrm.runtime.metastore import install_seed
from metacrm.runtime.web.context import EXTENSION

from .support import add_user, bearer, error_of

API = "/api/v1/designer/editors"


@pytest.fixture
def crm(make_app: Any, client_of: Any) -> Any:
    """The default CRM with a small org: a general manager, a sales manager and their rep,
    and finance; plus two spellings of one company as customers."""
    app = make_app()
    rt = app.extensions[EXTENSION]
    ids: dict[str, int] = {}
    with rt.engine.begin() as conn:
        install_seed(conn, "crm-default")
        d = systables.departments
        gmo = conn.execute(d.insert().values(name="总经理办公室", created_at=utcnow()).returning(d.c.id)).scalar_one()
        sales = conn.execute(d.insert().values(name="销售部", parent_id=gmo, created_at=utcnow())
                             .returning(d.c.id)).scalar_one()
        ids["wang.jun"] = add_user(conn, "wang.jun", roles=["sales_manager", "general_manager"], department_id=gmo)
        ids["zhang.wei"] = add_user(conn, "zhang.wei", roles=["sales_manager"], department_id=sales,
                                    manager_id=ids["wang.jun"])
        ids["liu.yang"] = add_user(conn, "liu.yang", roles=["sales"], department_id=sales, manager_id=ids["zhang.wei"])
        ids["huang.li"] = add_user(conn, "huang.li", roles=["finance"], department_id=gmo, manager_id=ids["wang.jun"],
                                   display_name="Huang Li")
        rep = bearer(conn, ids["liu.yang"])
    rt.invalidate()
    # Inserted past the record service: its own dedup rule would refuse the second one.
    customers = []
    with rt.engine.begin() as conn:
        table = rt.catalog(conn).entities["customer"].table
        for name in ("上海云帆科技有限公司", "云帆科技（上海）有限公司", "北京星河数据有限公司"):
            customers.append(conn.execute(table.insert().values(
                name=name, owner=ids["liu.yang"], version=1, created_at=utcnow(), updated_at=utcnow())
                .returning(table.c.id)).scalar_one())
    return {"app": app, "admin": client_of(app), "ids": ids, "rep": rep, "customers": customers}


def _draft(app: Any, kind: str, name: str) -> dict[str, Any] | None:
    with app.extensions[EXTENSION].engine.connect() as conn:
        return drafts.get_document(conn, kind, name)


def _errors(r: Any) -> list[dict[str, str]]:
    return error_of(r, 422)["errors"]


# ------------------------------------------------------------------ view designer

def test_view_designer_saves_columns_filters_kanban_and_roles(crm: Any) -> None:
    admin = crm["admin"]
    page = admin.get("/designer/views/opportunity/pipeline")
    assert page.status_code == 200
    assert b'data-path="/columns/0"' in page.data and b'id="ed-filter-meta"' in page.data
    doc = _draft(crm["app"], "view", "opportunity/pipeline")
    doc["columns"] = ["amount", "name", "stage"]
    doc["filters"] = [["amount", ">=", 1000], ["owner", "=", "$me"]]
    doc["roles"] = ["sales_manager"]
    doc["page_size"] = 20
    r = admin.put(f"{API}/view", json=doc)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["changes"] >= 1
    saved = _draft(crm["app"], "view", "opportunity/pipeline")
    assert saved["columns"] == ["amount", "name", "stage"] and saved["group_by"] == "stage"
    assert saved["roles"] == ["sales_manager"] and saved["filters"][0] == ["amount", ">=", 1000]
    bar = admin.get("/designer/views/opportunity/pipeline").data.decode()
    assert 'id="dz-draft-count" data-count="1"' in bar and "1 changes" in bar  # the core's draft bar


def test_view_designer_refuses_an_unknown_column_at_its_pointer(crm: Any) -> None:
    doc = _draft(crm["app"], "view", "customer/all")
    before = copy.deepcopy(doc)
    doc["columns"] = ["name", "phnoe"]
    r = crm["admin"].put(f"{API}/view", json=doc)
    errors = _errors(r)
    assert any(e["path"] == "/columns/1" and "phnoe" in e["message"] and e["source"] == "view/customer/all"
               for e in errors), errors
    assert _draft(crm["app"], "view", "customer/all") == before  # nothing stored


def test_view_designer_refuses_a_column_shown_twice(crm: Any) -> None:
    doc = _draft(crm["app"], "view", "customer/all")
    doc["columns"] = ["name", "phone", "name"]
    errors = _errors(crm["admin"].put(f"{API}/view", json=doc))
    assert [e["path"] for e in errors] == ["/columns/2"] and "twice" in errors[0]["message"], errors


def test_view_designer_refuses_grouping_a_kanban_by_a_text_field(crm: Any) -> None:
    doc = _draft(crm["app"], "view", "opportunity/pipeline")
    doc["group_by"] = "name"
    r = crm["admin"].post(f"{API}/view/check", json=doc)
    assert r.status_code == 200
    body = r.get_json()
    assert not body["valid"] and any(e["path"] == "/group_by" for e in body["errors"]), body


def test_view_render_redraws_the_body_with_a_new_column(crm: Any) -> None:
    doc = _draft(crm["app"], "view", "customer/all")
    doc["columns"].append("email")
    r = crm["admin"].post(f"{API}/view/render", json={"document": doc})
    assert r.status_code == 200, r.get_json()
    n = len(doc["columns"]) - 1
    assert f'data-path="/columns/{n}"'.encode() in r.data.replace(b"\\", b"")
    assert r.get_json()["errors"] == []


def test_a_new_view_starts_from_the_title_field_and_is_listed_once_saved(crm: Any) -> None:
    admin = crm["admin"]
    r = admin.get("/designer/views/contract/big_deals?new=1")
    assert r.status_code == 200 and b'data-path="/columns/0"' in r.data
    doc = {"kind": "view", "entity": "contract", "name": "big_deals", "label": {"en": "Big deals", "zh": "大额合同"},
           "type": "table", "columns": ["name", "amount", "customer"], "filters": [["amount", ">=", 500000]],
           "sort": [["amount", "desc"]], "page_size": 20}
    assert admin.put(f"{API}/view", json=doc).status_code == 200
    listing = admin.get("/designer/views").data.decode()
    assert 'href="/designer/views/contract/big_deals"' in listing and "Big deals" in listing
    assert admin.get("/designer/views/contract/nothing").status_code == 404


def test_the_pages_speak_chinese_to_a_chinese_admin(crm: Any, engine_of: Any) -> None:
    with engine_of(crm["app"]).begin() as conn:
        conn.execute(systables.users.update().where(systables.users.c.username == "admin").values(language="zh"))
    html = crm["admin"].get("/designer/workflows/contract_approval").data.decode()
    assert "流程设计" in html and "添加步骤" in html and "模拟" in html
    html = crm["admin"].get("/designer/dedup/customer_by_name_or_phone").data.decode()
    assert "测试此规则" in html and "公司名称" in html


# ------------------------------------------------------------------ dedup rule designer

def test_dedup_designer_saves_a_rule_with_a_cross_entity_check(crm: Any) -> None:
    doc = _draft(crm["app"], "dedup", "customer_by_name_or_phone")
    doc["action"] = "warn"
    doc["match"] = "any"
    doc["conditions"][0]["threshold"] = 0.9
    doc["also_check"] = [{"entity": "lead", "fields": {"name": "company"}}]
    r = crm["admin"].put(f"{API}/dedup", json=doc)
    assert r.status_code == 200, r.get_json()
    saved = _draft(crm["app"], "dedup", "customer_by_name_or_phone")
    assert saved["action"] == "warn" and saved["also_check"] == [{"entity": "lead", "fields": {"name": "company"}}]


def test_dedup_designer_refuses_an_unknown_field_and_mapping(crm: Any) -> None:
    doc = _draft(crm["app"], "dedup", "customer_by_name_or_phone")
    doc["conditions"][0]["field"] = "nmae"
    doc["also_check"] = [{"entity": "lead", "fields": {"phone": "no_such_field"}}]
    errors = _errors(crm["admin"].put(f"{API}/dedup", json=doc))
    paths = {e["path"] for e in errors if e["source"] == "dedup/customer_by_name_or_phone"}
    assert "/conditions/0/field" in paths, errors
    assert any(p.startswith("/also_check/0/fields") for p in paths), errors


def test_dedup_rule_test_finds_the_known_pair_without_writing_keys(crm: Any) -> None:
    app = crm["app"]
    engine = app.extensions[EXTENSION].engine

    def count() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(systables.dedup_keys)).scalar_one()

    keys_before = count()
    rule = {"kind": "dedup", "name": "customer_by_brand", "entity": "customer", "action": "warn",
            "conditions": [{"field": "name", "method": "company_name", "threshold": 0.9}]}
    r = crm["admin"].post(f"{API}/dedup/test", json={"document": rule})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    pair = sorted(crm["customers"][:2])
    assert [sorted(x["id"] for x in g["records"]) for g in body["groups"]] == [pair], body
    assert {x["entity"] for g in body["groups"] for x in g["records"]} == {"customer"}
    assert body["sampled"] == 3 and body["total_records"] == 3
    assert count() == keys_before
    assert _draft(app, "dedup", "customer_by_brand") is None  # trying is not saving


def test_dedup_rule_test_finds_a_lead_through_also_check(crm: Any) -> None:
    app = crm["app"]
    rt = app.extensions[EXTENSION]
    with rt.engine.begin() as conn:
        leads = rt.catalog(conn).entities["lead"].table
        lead = conn.execute(leads.insert().values(
            name="王先生", company="北京星河数据有限公司", status="new", owner=crm["ids"]["liu.yang"], version=1,
            created_at=utcnow(), updated_at=utcnow()).returning(leads.c.id)).scalar_one()
    rule = {"kind": "dedup", "name": "customer_vs_leads", "entity": "customer", "action": "warn",
            "conditions": [{"field": "name", "method": "company_name"}],
            "also_check": [{"entity": "lead", "fields": {"name": "company"}}]}
    body = crm["admin"].post(f"{API}/dedup/test", json={"document": rule}).get_json()
    found = [sorted((r["entity"], r["id"]) for r in g["records"]) for g in body["groups"]]
    assert sorted([("customer", crm["customers"][2]), ("lead", lead)]) in found, body
    assert body["also_checked"] == {"lead": 1}


def test_dedup_rule_test_refuses_an_invalid_rule(crm: Any) -> None:
    rule = {"kind": "dedup", "name": "bad", "entity": "customer", "conditions": [{"field": "nmae", "method": "exact"}]}
    errors = _errors(crm["admin"].post(f"{API}/dedup/test", json={"document": rule}))
    assert any(e["path"] == "/conditions/0/field" for e in errors), errors


def test_new_dedup_rule_page_starts_from_the_title_field(crm: Any) -> None:
    r = crm["admin"].get("/designer/dedup/customer_by_email?new=1&entity=customer")
    assert r.status_code == 200
    assert b'data-path="/conditions/0/field"' in r.data
    assert crm["admin"].get("/designer/dedup/nothing_here").status_code == 404


# ------------------------------------------------------------------ workflow designer

def _contract_workflow(crm: Any) -> dict[str, Any]:
    return _draft(crm["app"], "workflow", "contract_approval")


def test_workflow_page_draws_the_graph_and_the_chain(crm: Any) -> None:
    r = crm["admin"].get("/designer/workflows/contract_approval")
    assert r.status_code == 200
    html = r.data.decode()
    assert '<svg' in html and 'data-state="draft"' in html and 'data-transition="submit"' in html
    assert 'data-step="finance"' in html and 'id="ed-sim"' in html
    assert 'id="ed-sim-amount"' in html  # the simulation asks for what the conditions read


def test_workflow_designer_saves_an_added_step(crm: Any) -> None:
    doc = _contract_workflow(crm)
    doc["approvals"]["contract_steps"]["steps"].insert(2, {
        "name": "legal", "label": {"en": "Legal review", "zh": "法务审核"}, "when": "amount >= 300000",
        "approvers": [{"type": "role", "role": "general_manager"}], "mode": "all", "cc": [{"type": "role", "role": "finance"}]})
    r = crm["admin"].put(f"{API}/workflow", json=doc)
    assert r.status_code == 200, r.get_json()
    steps = _contract_workflow(crm)["approvals"]["contract_steps"]["steps"]
    assert [s["name"] for s in steps] == ["manager", "finance", "legal", "general_manager"]


@pytest.mark.parametrize("change, pointer", [
    (lambda d: d["transitions"][0].update(to="pendng"), "/transitions/0/to"),
    (lambda d: d["approvals"]["contract_steps"]["steps"][1].update(approvers=[{"type": "role", "role": "treasurer"}]),
     "/approvals/contract_steps/steps/1/approvers/0/role"),
    (lambda d: d["states"].append({"name": "archived", "label": {"en": "Archived", "zh": "已归档"}}), "/states/5"),
])
def test_workflow_designer_refuses_broken_graphs_at_their_pointer(crm: Any, change: Any, pointer: str) -> None:
    doc = _contract_workflow(crm)
    change(doc)
    errors = _errors(crm["admin"].put(f"{API}/workflow", json=doc))
    mine = [e for e in errors if e["source"] == "workflow/contract_approval"]
    assert any(e["path"] == pointer or e["path"].startswith(pointer + "/") for e in mine), errors
    assert _contract_workflow(crm) != doc


def _simulate(crm: Any, doc: dict[str, Any], amount: int, user: str = "liu.yang") -> dict[str, Any]:
    r = crm["admin"].post(f"{API}/workflow/simulate", json={"document": doc, "user": user,
                                                            "record": {"amount": str(amount)}})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_simulation_takes_finance_for_150000_and_not_for_50000(crm: Any) -> None:
    doc = _contract_workflow(crm)
    big = _simulate(crm, doc, 150_000)
    status = {s["name"]: s["status"] for s in big["steps"]}
    assert status == {"manager": "will_run", "finance": "will_run", "general_manager": "skipped"}, big
    assert [a["user"] for a in big["steps"][0]["approvers"]] == [crm["ids"]["zhang.wei"]]
    assert [a["user_name"] for a in big["steps"][1]["approvers"]] == ["Huang Li"]
    assert big["ends_in"]["state"] == "approved" and big["transition"]["blocked"] == []
    small = _simulate(crm, doc, 50_000)
    assert {s["name"]: s["status"] for s in small["steps"]}["finance"] == "skipped"


def test_simulation_runs_the_unsaved_draft_and_says_when_the_transition_is_blocked(crm: Any) -> None:
    doc = _contract_workflow(crm)
    doc["approvals"]["contract_steps"]["steps"][1]["when"] = "amount >= 200000"
    assert {s["name"]: s["status"] for s in _simulate(crm, doc, 150_000)["steps"]}["finance"] == "skipped"
    blocked = _simulate(crm, doc, 0)
    assert blocked["transition"]["blocked"] == ["when"] and blocked["steps"] == [] and blocked["ends_in"] is None
    r = crm["admin"].post(f"{API}/workflow/simulate", json={"document": doc, "user": "nobody", "record": {}})
    assert error_of(r, 400)["fields"] == {"user": ["Choose a user."]}


def test_layout_puts_the_initial_state_first_and_flags_unreachable_ones() -> None:
    wf = {"states": [{"name": "b"}, {"name": "a", "initial": True}, {"name": "c"}, {"name": "island"}],
          "transitions": [{"name": "go", "from": ["a"], "to": "b"}, {"name": "on", "from": ["b"], "to": "c"},
                          {"name": "back", "from": ["c"], "to": "a"}]}
    nodes, edges = layout(wf)
    at = {n.name: (n.column, n.reachable) for n in nodes}
    assert at == {"a": (0, True), "b": (1, True), "c": (2, True), "island": (3, False)}
    svg = str(render_svg(wf, selected="on"))
    assert svg.count('class="mc-wf-state') == 4 and 'class="mc-wf-edge mc-selected" data-transition="on"' in svg


@pytest.mark.parametrize("kind, doc", [
    ("workflow", {"kind": "workflow", "name": "contract_approval", "entity": "contract", "state_field": "approval_status",
                  "states": "draft", "transitions": [["submit"]], "approvals": {"x": ["not", "a", "chain"]}}),
    ("view", {"kind": "view", "entity": "customer", "name": "all", "columns": "name", "sort": 3, "label": 7}),
    ("dedup", {"kind": "dedup", "name": "r", "entity": "customer", "conditions": {"field": "name"}, "also_check": [1]}),
    ("view", {"kind": "dedup", "name": "r"}),
])
def test_nonsense_documents_get_errors_never_a_500(crm: Any, kind: str, doc: dict[str, Any]) -> None:
    admin = crm["admin"]
    for call in (lambda: admin.post(f"{API}/{kind}/render", json={"document": doc}),
                 lambda: admin.post(f"{API}/{kind}/check", json=doc), lambda: admin.put(f"{API}/{kind}", json=doc)):
        r = call()
        assert r.status_code in (200, 422), r.get_data(as_text=True)
        body = r.get_json()
        errors = body["errors"] if r.status_code == 200 else body["error"]["errors"]
        assert errors, body
    assert admin.post(f"{API}/workflow/simulate", json={"document": "x"}).status_code == 400
    assert admin.post(f"{API}/nothing/check", json={}).status_code == 404


# ------------------------------------------------------------------ admins only

def test_editors_are_for_admins_only(crm: Any) -> None:
    app, rep = crm["app"], crm["rep"]
    client = app.test_client()
    doc = _contract_workflow(crm)
    for method, url, body in [("put", f"{API}/workflow", doc), ("post", f"{API}/workflow/simulate", {"document": doc}),
                              ("post", f"{API}/dedup/test", {"document": {}}), ("post", f"{API}/view/check", {})]:
        r = getattr(client, method)(url, json=body, headers=rep)
        assert error_of(r, 403)["code"] == "forbidden", url
    from .support import login
    rep_session = login(app.test_client(), "liu.yang", "liu.yang-pass-1")
    for url in ("/designer/workflows/contract_approval", "/designer/views", "/designer/dedup/customer_by_name_or_phone",
                "/designer/views/customer/all"):
        assert rep_session.get(url).status_code == 403, url


def test_odd_users_and_names_are_refused_not_errors(crm: Any) -> None:
    doc = _contract_workflow(crm)
    for user in ("²", "99999999999999999999", 0):
        r = crm["admin"].post(f"{API}/workflow/simulate", json={"document": doc, "user": user, "record": {}})
        assert r.status_code == 400 and "user" in r.get_json()["error"]["fields"], (user, r.get_json())
    doc["states"][0]["name"] = {"not": "a name"}
    r = crm["admin"].put(f"{API}/workflow", json=doc)
    assert r.status_code == 422, r.get_data(as_text=True)[:300]
