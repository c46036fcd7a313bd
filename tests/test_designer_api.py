"""The designer's draft API: documents in and out, errors with pointers, publish, discard,
and the admin-only rule on every designer page and endpoint."""
from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from metacrm.designer import drafts
from metacrm.designer.overlay import overlay_entries
from metacrm.metadata.documents import Document
from metacrm.metadata.layers import merge_layers
from metacrm.runtime import systables
from metacrm.runtime.metastore import instance_documents, plan_pending

from .support import add_user, entity, error_of, login, meta_version

CUSTOMER = entity("customer",
                  {"name": "name", "type": "text", "label": {"en": "Name", "zh": "名称"}, "required": True},
                  {"name": "level", "type": "select", "options": [{"value": "A"}, {"value": "B"}]},
                  {"name": "phone", "type": "phone"},
                  ownership=True, title_field="name")
FORM = {"kind": "form", "entity": "customer", "name": "default",
        "sections": [{"label": "Basics", "columns": 2, "fields": ["name", "level", "phone"]}]}
VIEW = {"kind": "view", "entity": "customer", "name": "all", "label": "All", "type": "table",
        "columns": ["name", "level", "phone"], "filters": [], "sort": [["name", "asc"]]}
SALES = {"kind": "role", "name": "sales", "label": "Sales",
         "permissions": {"customer": {"create": True, "read": "self", "update": "self"}}}
DOCS = [CUSTOMER, FORM, VIEW, SALES]

API = "/api/v1/designer"


@pytest.fixture
def app(make_app: Any) -> Any:
    return make_app(DOCS)


@pytest.fixture
def admin(app: Any, client_of: Any) -> Any:
    return client_of(app)


def _customer(admin: Any) -> dict[str, Any]:
    r = admin.get(f"{API}/documents/entity/customer")
    assert r.status_code == 200, r.get_json()
    return r.get_json()["document"]


def _with_wechat(admin: Any) -> dict[str, Any]:
    doc = _customer(admin)
    doc["fields"].append({"name": "wechat", "type": "text", "label": {"en": "WeChat ID", "zh": "微信号"}})
    return doc


def test_put_adds_a_field_to_the_draft_only(app: Any, admin: Any, engine_of: Any) -> None:
    r = admin.put(f"{API}/documents/entity/customer", json=_with_wechat(admin))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["changes"]["count"] == 1
    assert [f["name"] for f in _customer(admin)["fields"]][-1] == "wechat"
    # the published metadata and the records API don't know it yet
    assert "wechat" not in [f["name"] for f in admin.get("/api/v1/meta/entities/customer").get_json()["fields"]]
    assert admin.get(f"{API}/changes").get_json()["items"] == [
        {"key": "entity/customer", "kind": "entity", "entity": None, "name": "customer", "change": "changed"}]


def test_invalid_document_answers_422_with_pointers_and_stores_nothing(admin: Any, engine_of: Any, app: Any) -> None:
    doc = _with_wechat(admin)
    doc["fields"][1]["type"] = "nmber"
    doc["fields"].append({"name": "score", "type": "formula", "result_type": "integer", "expression": "nosuch + 1"})
    err = error_of(admin.put(f"{API}/documents/entity/customer", json=doc), 422, "validation_error")
    paths = {e["path"]: e for e in err["errors"]}
    assert "/fields/1/type" in paths and "nmber" in paths["/fields/1/type"]["message"]
    assert paths["/fields/1/type"]["source"] == "entity/customer"
    with engine_of(app).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(systables.designer_drafts)).scalar_one() == 0
    assert admin.get(f"{API}/changes").get_json()["count"] == 0


def test_invalid_expression_is_refused_with_its_pointer(admin: Any) -> None:
    doc = _customer(admin)
    doc["fields"].append({"name": "score", "type": "formula", "result_type": "integer", "expression": "nosuch + 1"})
    err = error_of(admin.put(f"{API}/documents/entity/customer", json=doc), 422)
    assert [e["path"] for e in err["errors"]] == ["/fields/3/expression"]
    assert "unknown name 'nosuch'" in err["errors"][0]["message"]


def test_archiving_a_field_a_view_shows_is_refused_naming_the_view(admin: Any) -> None:
    doc = _customer(admin)
    doc["fields"][2]["archived"] = True
    err = error_of(admin.put(f"{API}/documents/entity/customer", json=doc), 422)
    sources = {(e["source"], e["path"]) for e in err["errors"]}
    assert ("view/customer/all", "/columns/2") in sources
    assert ("form/customer/default", "/sections/0/fields/2") in sources


def test_url_and_document_must_agree(admin: Any) -> None:
    error_of(admin.put(f"{API}/documents/entity/lead", json=_customer(admin)), 400)
    error_of(admin.put(f"{API}/documents/entity/customer", json=[1, 2]), 400)
    error_of(admin.put(f"{API}/documents/nosuchkind/x", json={"kind": "nosuchkind", "name": "x"}), 404)
    error_of(admin.get(f"{API}/documents/entity/nosuch"), 404)
    error_of(admin.delete(f"{API}/documents/view/customer/nosuch"), 404)
    marked = _customer(admin)
    marked["fields"][0]["$remove"] = True
    err = error_of(admin.put(f"{API}/documents/entity/customer", json=marked), 422)
    assert err["errors"][0]["path"] == "/fields/0/$remove"


def test_views_and_forms_are_addressed_by_entity_and_name(admin: Any) -> None:
    r = admin.get(f"{API}/documents/view/customer/all")
    assert r.get_json()["key"] == "view/customer/all"
    view = r.get_json()["document"]
    view["columns"] = ["name", "phone"]
    assert admin.put(f"{API}/documents/view/customer/all", json=view).status_code == 200
    assert admin.get(f"{API}/documents/view/customer/all").get_json()["document"]["columns"] == ["name", "phone"]
    new = {**view, "name": "by_level", "label": {"en": "By level", "zh": "按级别"}}
    assert admin.put(f"{API}/documents/view/customer/by_level", json=new).status_code == 200
    assert admin.delete(f"{API}/documents/view/customer/by_level").status_code == 200
    keys = {c["key"]: c["change"] for c in admin.get(f"{API}/changes").get_json()["items"]}
    assert keys == {"view/customer/all": "changed"}


def test_publish_applies_the_draft_and_leaves_nothing_pending(app: Any, admin: Any, engine_of: Any) -> None:
    before = meta_version(engine_of(app))
    assert admin.put(f"{API}/documents/entity/customer", json=_with_wechat(admin)).status_code == 200
    form = admin.get(f"{API}/documents/form/customer/default").get_json()["document"]
    form["sections"][0]["fields"].append("wechat")
    assert admin.put(f"{API}/documents/form/customer/default", json=form).status_code == 200
    plan = admin.get(f"{API}/plan").get_json()
    assert [s["action"] for s in plan["steps"]] == ["add_column"]
    r = admin.post(f"{API}/publish", json={"note": "WeChat ID for the sales team"})
    assert r.status_code == 200, r.get_json()
    assert meta_version(engine_of(app)) == before + 1
    assert admin.get(f"{API}/changes").get_json()["count"] == 0
    rec = admin.post("/api/v1/records/customer", json={"name": "Acme", "wechat": "acme_wx"})
    assert rec.status_code == 201, rec.get_json()
    with engine_of(app).connect() as conn:
        assert plan_pending(conn).empty
        note = conn.execute(sa.select(systables.meta_versions.c.note).order_by(
            systables.meta_versions.c.version.desc())).scalars().first()
        layer = [d.data for d in instance_documents(conn)]
    assert note == "WeChat ID for the sales team"
    # the instance layer holds only the customisation, not a copy of the template
    customer = next(d for d in layer if d["kind"] == "entity")
    assert [f["name"] for f in customer["fields"]] == ["wechat"]
    error_of(admin.post(f"{API}/publish", json={}), 409)  # nothing left to publish


def test_discard_forgets_the_draft(admin: Any) -> None:
    assert admin.put(f"{API}/documents/entity/customer", json=_with_wechat(admin)).status_code == 200
    r = admin.post(f"{API}/discard")
    assert r.status_code == 200 and r.get_json()["count"] == 0
    assert "wechat" not in [f["name"] for f in _customer(admin)["fields"]]


def test_validate_reports_the_whole_draft(admin: Any) -> None:
    assert admin.post(f"{API}/validate").get_json() == {"ok": True, "errors": []}


def test_publish_refuses_a_bad_note(admin: Any) -> None:
    assert admin.put(f"{API}/documents/entity/customer", json=_with_wechat(admin)).status_code == 200
    error_of(admin.post(f"{API}/publish", json={"note": 5}), 422)
    assert admin.get(f"{API}/changes").get_json()["count"] == 1


def _designer_urls(app: Any) -> list[tuple[str, str]]:
    """Every designer rule as (method, concrete URL), parameters filled with sample values."""
    samples = {"kind": "entity", "name": "customer", "filename": "designer.js", "version": "1", "a": "1", "b": "1",
               "entity": "customer", "field": "name"}
    out = []
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/designer") or rule.rule.startswith("/api/v1/designer")):
            continue
        url = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: samples.get(m.group(1), "1"), rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((method, url))
    return out


def test_every_designer_page_and_endpoint_is_for_admins_only(app: Any, engine_of: Any) -> None:
    with engine_of(app).begin() as conn:
        add_user(conn, "rep", roles=["sales"])
    rep = login(app.test_client(), "rep", "rep-pass-1")
    token = re.search(r'name="csrf-token" content="([^"]+)"', rep.get("/").get_data(as_text=True)).group(1)
    urls = _designer_urls(app)
    assert len(urls) >= 10
    for method, url in urls:
        r = rep.open(url, method=method, json={} if method != "GET" else None, headers={"X-CSRFToken": token})
        assert r.status_code == 403, (method, url, r.status_code)
    anonymous = app.test_client()
    for method, url in urls:
        r = anonymous.open(url, method=method, json={} if method != "GET" else None)
        assert r.status_code in (302, 400, 401), (method, url, r.status_code)  # 400: no CSRF token


def test_designer_pages_render_for_the_admin(admin: Any) -> None:
    for url in ("/designer/entities", "/designer/publish"):
        r = admin.get(url)
        assert r.status_code == 200, url
        assert 'id="dz-bar"' in r.get_data(as_text=True)


@pytest.mark.parametrize("target", [
    # a field added, one changed, one reordered
    {"kind": "entity", "name": "c", "fields": [{"name": "b", "type": "text", "required": True},
                                               {"name": "a", "type": "text"}, {"name": "z", "type": "date"}]},
    # a field dropped and a label changed in one language
    {"kind": "entity", "name": "c", "label": {"en": "C", "zh": "丙"}, "fields": [{"name": "a", "type": "text"}]},
    # a key the template sets, removed (only a whole replacement can do that)
    {"kind": "entity", "name": "c", "fields": [{"name": "a", "type": "text"},
                                               {"name": "b", "type": "text"}]},
])
def test_overlay_entries_merge_back_to_the_target(target: dict[str, Any]) -> None:
    base = {"kind": "entity", "name": "c", "label": {"en": "C", "zh": "C"},
            "fields": [{"name": "a", "type": "text"}, {"name": "b", "type": "text", "max_length": 20}]}
    entries = overlay_entries(base, target)
    merged = merge_layers([[Document("t", base)], [Document("i", e) for e in entries]])
    assert merged[0].data == target
    assert overlay_entries(base, base) == []
    assert overlay_entries(None, target) == [target]


def test_draft_follows_the_live_instance_layer_for_untouched_documents(app: Any, admin: Any, engine_of: Any) -> None:
    assert admin.put(f"{API}/documents/entity/customer", json=_with_wechat(admin)).status_code == 200
    # meanwhile a role is changed through the admin API (published at once)
    r = admin.patch("/api/v1/admin/roles/sales", json={"label": {"en": "Sales rep", "zh": "销售"}})
    assert r.status_code == 200, r.get_json()
    with engine_of(app).connect() as conn:
        role = drafts.get_document(conn, "role", "sales")
    assert role is not None and role["label"] == {"en": "Sales rep", "zh": "销售"}
    assert admin.post(f"{API}/publish", json={}).status_code == 200
    with engine_of(app).connect() as conn:
        assert drafts.get_document(conn, "role", "sales")["label"]["zh"] == "销售"  # type: ignore[index]


def test_draft_starts_as_the_instance_layer_and_removal_publishes_as_removal(app: Any, admin: Any,
                                                                              engine_of: Any) -> None:
    with engine_of(app).connect() as conn:
        assert [d.data for d in drafts.draft_documents(conn)] == [d.data for d in instance_documents(conn)]
        assert [d.data for d in drafts.merged_draft(conn)] == [
            d.data for d in merge_layers([[Document("t", d) for d in DOCS]])]
    assert admin.delete(f"{API}/documents/view/customer/all").status_code == 200
    with engine_of(app).connect() as conn:
        assert [d.data for d in drafts.draft_documents(conn)] == [
            {"kind": "view", "entity": "customer", "name": "all", "$remove": True}]
    assert admin.post(f"{API}/publish", json={}).status_code == 200
    assert admin.get("/api/v1/records/customer?view=all").status_code == 400  # the view is gone
    # removing the entity a form, a view and a role need is refused with their errors
    err = error_of(admin.delete(f"{API}/documents/entity/customer"), 422)
    assert {e["source"] for e in err["errors"]} >= {"form/customer/default"}


def test_odd_input_to_history_and_checks_is_a_clear_error(admin: Any) -> None:
    for query in ("a=²&b=1", "a=99999999999999999999&b=1", "a=x&b=1"):
        assert admin.get(f"/designer/history/diff?{query}").status_code == 400, query
    token = re.search(r'name="csrf-token" content="([^"]+)"', admin.get("/designer/history").get_data(as_text=True))
    r = admin.post("/designer/history/99999999999999999999/rollback",
                   data={"csrf_token": token.group(1) if token else ""})
    assert r.status_code == 404
    error_of(admin.post(f"{API}/expression", json={"entity": "customer", "expression": "name", "field": {"a": 1}}),
             400)
    doc = _customer(admin)
    doc["fields"][0]["name"] = []
    r = admin.put(f"{API}/documents/entity/customer", json=doc)
    assert r.status_code == 422, r.get_data(as_text=True)[:300]
