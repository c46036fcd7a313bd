"""The default CRM's data model beyond the workflows: one primary contact per customer,
opportunity product lines with their total and the stage group the stage workflow keeps,
and bilingual labels on every shipped document."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest

from metacrm.runtime.metastore import install_seed
from metacrm.runtime.web.context import EXTENSION

from .support import add_user, bearer, error_of

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


@pytest.fixture
def crm(make_app):
    app = make_app()
    rt = app.extensions[EXTENSION]
    with rt.engine.begin() as conn:
        install_seed(conn, "crm-default")
        admin = add_user(conn, "wang.jun", roles=["admin", "sales_manager", "general_manager"])
        h = bearer(conn, admin)
    rt.invalidate()
    return app.test_client(), h


def _post(client: Any, h: dict[str, str], entity: str, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(f"/api/v1/records/{entity}", headers=h, json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_a_customer_has_at_most_one_primary_contact(crm):
    client, h = crm
    acme = _post(client, h, "customer", {"name": "上海云帆科技有限公司"})
    other = _post(client, h, "customer", {"name": "北京星辰信息技术有限公司"})
    first = _post(client, h, "contact", {"name": "张伟", "customer": acme["id"], "is_primary": True})
    _post(client, h, "contact", {"name": "李娜", "customer": acme["id"]})  # many non-primary contacts are fine
    second = _post(client, h, "contact", {"name": "王芳", "customer": acme["id"]})
    _post(client, h, "contact", {"name": "赵强", "customer": other["id"], "is_primary": True})  # another customer's

    r = client.post("/api/v1/records/contact", headers=h, json={"name": "刘洋", "customer": acme["id"],
                                                                "is_primary": True})
    assert "primary_of" in error_of(r, 422)["fields"]
    r = client.patch(f"/api/v1/records/contact/{second['id']}", headers=h,
                     json={"version": second["version"], "is_primary": True})
    assert "primary_of" in error_of(r, 422)["fields"]
    # Moving the role: unmark the current primary, then mark the new one.
    r = client.patch(f"/api/v1/records/contact/{first['id']}", headers=h,
                     json={"version": first["version"], "is_primary": False})
    assert r.status_code == 200, r.get_json()
    r = client.patch(f"/api/v1/records/contact/{second['id']}", headers=h,
                     json={"version": second["version"], "is_primary": True})
    assert r.status_code == 200 and r.get_json()["primary_of"] == acme["id"]
    listed = client.get(f'/api/v1/records/contact?filter=[["customer","=",{acme["id"]}],["is_primary","=",true]]',
                        headers=h).get_json()
    assert [c["name"] for c in listed["items"]] == ["王芳"]


def test_opportunity_products_total_and_the_stage_group_follow_the_stages(crm):
    client, h = crm
    customer = _post(client, h, "customer", {"name": "杭州明达软件有限公司"})
    crm_licence = _post(client, h, "product", {"name": "CRM 专业版", "code": "CRM-PRO", "price": "2400",
                                               "unit": "user", "category": "software"})
    service = _post(client, h, "product", {"name": "实施服务", "code": "IMPL", "price": "2000", "unit": "man_day",
                                           "category": "service", "on_sale": False})
    opp = _post(client, h, "opportunity", {
        "name": "CRM 采购项目", "customer": customer["id"], "amount": "100000", "expected_close_date": "2027-03-31",
        "lines": [{"product": crm_licence["id"], "quantity": 30, "price": "2400", "discount": 10},
                  {"product": service["id"], "quantity": 10, "price": "2000"}]})
    # 30 × 2400 × 0.9 + 10 × 2000
    assert [line["amount"] for line in opp["lines"]] == ["64800.00", "20000.00"]
    assert opp["products_total"] == "84800.00" and opp["amount"] == "100000.00"
    assert (opp["stage"], opp["stage_group"], Decimal(opp["win_rate"])) == ("initial", "open", 10)
    r = client.patch(f"/api/v1/records/opportunity/{opp['id']}", headers=h,
                     json={"version": opp["version"], "stage_group": "won"})
    assert "stage_group" in error_of(r, 422)["fields"]  # only the workflow sets it

    def fire(name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = client.post(f"/api/v1/records/opportunity/{opp['id']}/transitions/{name}", headers=h, json=body or {})
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    assert (fire("to_proposal")["stage_group"]) == "open"
    won = fire("win")
    assert (won["stage"], won["stage_group"], Decimal(won["win_rate"])) == ("won", "won", 100)
    lost = _post(client, h, "opportunity", {"name": "数据平台", "customer": customer["id"]})
    opp = lost
    assert fire("lose", {"values": {"lost_reason": "预算取消"}})["stage_group"] == "closed"
    kanban = client.get('/api/v1/records/opportunity?filter=[["stage_group","=","open"]]', headers=h).get_json()
    assert kanban["total"] == 0


def _labels(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("label", "help", "message", "description") and isinstance(value, dict):
                yield f"{path}/{key}", value
            yield from _labels(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _labels(value, f"{path}/{i}")


@pytest.mark.parametrize("template", ["crm-default", "education", "realestate"])
def test_every_shipped_label_is_bilingual(template: str) -> None:
    missing = []
    for path in sorted((SEEDS / template).rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for where, label in _labels(data, path.name):
            if not (label.get("en") and label.get("zh")):
                missing.append(where)
        if template == "crm-default" and data.get("kind") == "entity":
            missing += [f"{path.name}: field {f['name']}" for f in data["fields"] if "label" not in f]
            missing += [f"{path.name}: option {o['value']}" for f in data["fields"] for o in f.get("options") or ()
                        if "label" not in o]
    assert not missing, missing


def test_a_rollup_action_is_checked_against_both_entities() -> None:
    """The workflow action `rollup` names a lookup of its entity, a number of it to sum and a
    number of the lookup's target to write; mistakes are errors with their JSON path."""
    from metacrm.metadata.documents import Document
    from metacrm.metadata.loader import load_seed_package
    from metacrm.metadata.validation import validate_documents

    base = list(load_seed_package("crm-default").documents)
    bad = {"kind": "workflow", "name": "checked", "entity": "receivable", "state_field": "payment_method",
           "states": [{"name": "bank_transfer", "initial": True}, {"name": "cash"}],
           "transitions": [{"name": "to_cash", "from": ["bank_transfer"], "to": "cash"}],
           "actions": [{"on": "cash", "rollup": {"lookup": "remark", "field": "amount", "sum": "amount"}},
                       {"on": "cash", "rollup": {"lookup": "plan", "field": "status", "sum": "number",
                                                 "where": {"colour": ["red"]},
                                                 "set": {"period": "amount +", "nope": "1"}}}]}
    errors = {(e.path, e.message.split(" (")[0]) for e in validate_documents(base + [Document("checked.json", bad)])
              if e.source == "checked.json"}
    paths = {p for p, _ in errors}
    assert {"/actions/0/rollup/lookup", "/actions/1/rollup/field", "/actions/1/rollup/sum",
            "/actions/1/rollup/where/colour", "/actions/1/rollup/set/period", "/actions/1/rollup/set/nope"} <= paths, errors
    good = json.loads((SEEDS / "crm-default" / "workflows" / "receivable_confirmation.json").read_text(encoding="utf-8"))
    assert good["actions"][0]["rollup"]["field"] == "received_amount"
