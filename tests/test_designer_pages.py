"""The designer's pages and helpers over HTTP: creating entities, live expression checks,
archiving with impacts, form preview, publish page, history (diff, rollback) and
template export/import."""
from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import pytest
import sqlalchemy as sa

from metacrm.runtime.metastore import installed_templates, plan_pending

from .support import error_of, meta_version
from .test_designer_api import API, DOCS

PHONE_RULE = {"kind": "dedup", "name": "customer_by_phone", "entity": "customer", "on": ["create"],
              "action": "warn", "match": "any", "conditions": [{"field": "phone", "method": "phone"}]}


@pytest.fixture
def app(make_app: Any) -> Any:
    return make_app(DOCS + [PHONE_RULE])


@pytest.fixture
def admin(app: Any, client_of: Any) -> Any:
    return client_of(app)


def csrf(client: Any) -> str:
    html = client.get("/designer/entities").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def customer(admin: Any) -> dict[str, Any]:
    return admin.get(f"{API}/documents/entity/customer").get_json()["document"]


def add_field(admin: Any, field: dict[str, Any]) -> None:
    doc = customer(admin)
    doc["fields"].append(field)
    r = admin.put(f"{API}/documents/entity/customer", json=doc)
    assert r.status_code == 200, r.get_json()


def publish(admin: Any, note: str = "") -> dict[str, Any]:
    r = admin.post(f"{API}/publish", json={"note": note})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_create_entity_stages_it_with_a_form(admin: Any) -> None:
    token = csrf(admin)
    r = admin.post("/designer/entities", data={"csrf_token": token, "name": "supplier", "label_en": "Supplier",
                                              "label_zh": "供应商"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/designer/entities/supplier")
    keys = {c["key"] for c in admin.get(f"{API}/changes").get_json()["items"]}
    assert keys == {"entity/supplier", "form/supplier/default"}
    page = admin.get("/designer/entities/supplier").get_data(as_text=True)
    assert 'id="dz-canvas"' in page and "supplier" in page
    # a bad name is refused next to the input, and nothing more is staged
    r = admin.post("/designer/entities", data={"csrf_token": token, "name": "Bad Name", "label_en": "x"})
    assert r.status_code == 422
    assert re.search(r'id="dz-new-name" name="name" value="Bad Name"[^>]*>\s*<div class="invalid-feedback',
                     r.get_data(as_text=True).replace('class="form-control form-control-sm is-invalid" ', ""))
    r = admin.post("/designer/entities", data={"csrf_token": token, "name": "supplier", "label_en": "Again"})
    assert r.status_code == 422 and "exists already" in r.get_data(as_text=True)
    assert admin.get(f"{API}/changes").get_json()["count"] == 2


def test_expression_check_names_the_problem_and_the_names_available(admin: Any) -> None:
    r = admin.post(f"{API}/expression", json={"entity": "customer", "expression": "levle == 'A'"})
    body = r.get_json()
    assert r.status_code == 200 and not body["ok"]
    assert "unknown name 'levle'" in body["errors"][0]
    assert {"level", "name", "owner", "id"} <= set(body["names"])
    # unsaved fields count: the document sent is the one checked
    doc = customer(admin)
    doc["fields"].append({"name": "wechat", "type": "text"})
    r = admin.post(f"{API}/expression", json={"document": doc, "expression": "wechat != ''"})
    assert r.get_json()["ok"]
    error_of(admin.post(f"{API}/expression", json={"entity": "customer"}), 400)
    error_of(admin.post(f"{API}/expression", json={"document": {"name": 1}, "expression": "1"}), 400)
    error_of(admin.post(f"{API}/expression", json={"entity": "nosuch", "expression": "1"}), 404)


def test_archive_field_lists_the_impact_then_tidies_views_and_forms(admin: Any) -> None:
    doc = customer(admin)
    r = admin.post(f"{API}/archive-field", json={"document": doc, "field": "level"})
    refs = {(x["key"], x["what"]) for x in r.get_json()["references"]}
    assert refs == {("view/customer/all", "column"), ("form/customer/default", "form section")}
    assert admin.get(f"{API}/changes").get_json()["count"] == 0  # only a look
    r = admin.post(f"{API}/archive-field", json={"document": doc, "field": "level", "confirm": True})
    assert r.status_code == 200, r.get_json()
    assert next(f for f in r.get_json()["document"]["fields"] if f["name"] == "level")["archived"] is True
    view = admin.get(f"{API}/documents/view/customer/all").get_json()["document"]
    assert view["columns"] == ["name", "phone"]
    page = admin.get("/designer/publish").get_data(as_text=True)
    assert 'data-what="field customer.level"' in page and "view/customer/all" in page
    assert "archive field customer.level" in page
    publish(admin)
    assert "level" not in [f["name"] for f in admin.get("/api/v1/meta/entities/customer").get_json()["fields"]]


def test_archive_field_a_dedup_rule_needs_is_refused_and_nothing_changes(admin: Any) -> None:
    r = admin.post(f"{API}/archive-field", json={"document": customer(admin), "field": "phone", "confirm": True})
    err = error_of(r, 422)
    assert {(e["source"], e["path"]) for e in err["errors"]} == {("dedup/customer_by_phone", "/conditions/0/field")}
    assert admin.get(f"{API}/changes").get_json()["count"] == 0
    error_of(admin.post(f"{API}/archive-field", json={"document": customer(admin), "field": "nosuch"}), 404)


def test_form_preview_renders_the_runtime_form_from_the_draft(admin: Any) -> None:
    add_field(admin, {"name": "wechat", "type": "text", "label": {"en": "WeChat ID", "zh": "微信号"}})
    form = admin.get(f"{API}/documents/form/customer/default").get_json()["document"]
    form["sections"][0]["fields"].insert(0, "wechat")
    assert admin.put(f"{API}/documents/form/customer/default", json=form).status_code == 200
    html = admin.get("/designer/forms/customer/preview").get_data(as_text=True)
    assert 'name="wechat"' in html and "WeChat ID" in html and 'id="dz-preview-badge"' in html
    assert html.index('name="wechat"') < html.index('name="name"')  # in the order the draft gives
    editor = admin.get("/designer/forms/customer").get_data(as_text=True)
    assert 'id="dz-sections"' in editor
    assert admin.get("/designer/forms/nosuch").status_code == 404


def test_history_lists_diffs_and_rolls_back_with_data_intact(app: Any, admin: Any, engine_of: Any) -> None:
    start = meta_version(engine_of(app))
    add_field(admin, {"name": "wechat", "type": "text"})
    publish(admin, "add wechat")
    r = admin.post("/api/v1/records/customer", json={"name": "Acme", "wechat": "acme_wx"})
    record_id = r.get_json()["id"]
    page = admin.get("/designer/history").get_data(as_text=True)
    assert f'data-version="{start + 1}"' in page and "add wechat" in page
    diff = admin.get(f"/designer/history/diff?a={start}&b={start + 1}").get_data(as_text=True)
    assert 'data-key="entity/customer"' in diff and "/fields/wechat" in diff
    assert admin.get("/designer/history/diff?a=x&b=1").status_code == 400
    assert admin.get(f"/designer/history/diff?a=1&b={start + 9}").status_code == 404

    r = admin.post(f"/designer/history/{start}/rollback", data={"csrf_token": csrf(admin)})
    assert r.status_code == 302
    assert meta_version(engine_of(app)) == start + 2
    assert "wechat" not in admin.get(f"/api/v1/records/customer/{record_id}").get_json()
    with engine_of(app).connect() as conn:
        assert plan_pending(conn).empty
        assert conn.execute(sa.text("SELECT wechat FROM ent_customer WHERE id = :i"), {"i": record_id}).scalar() == "acme_wx"
    admin.post(f"/designer/history/{start + 1}/rollback", data={"csrf_token": csrf(admin)})
    assert admin.get(f"/api/v1/records/customer/{record_id}").get_json()["wechat"] == "acme_wx"
    with engine_of(app).connect() as conn:
        assert plan_pending(conn).empty


def test_rollback_waits_for_the_draft(app: Any, admin: Any, engine_of: Any) -> None:
    start = meta_version(engine_of(app))
    add_field(admin, {"name": "wechat", "type": "text"})
    r = admin.post(f"/designer/history/{start}/rollback", data={"csrf_token": csrf(admin)}, follow_redirects=True)
    assert "Publish or discard the draft before rolling back." in r.get_data(as_text=True)
    assert meta_version(engine_of(app)) == start
    assert admin.get(f"{API}/changes").get_json()["count"] == 1


def test_export_then_import_a_template(make_app: Any, client_of: Any, admin: Any) -> None:
    add_field(admin, {"name": "wechat", "type": "text"})
    publish(admin)
    token = csrf(admin)
    r = admin.post("/designer/templates/export", data={"csrf_token": token, "name": "my-crm", "version": "1.0.0"})
    assert r.status_code == 200 and r.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.data)) as z:
        assert "template.json" in z.namelist() and "entities/customer.json" in z.namelist()
    r2 = admin.post("/designer/templates/export", data={"csrf_token": token, "name": "Bad Name", "version": "x"})
    assert r2.status_code == 422

    # a broken package changes nothing and says why
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("template.json", '{"kind": "template", "name": "bad", "version": "1.0.0", "label": "Bad", '
                                    '"files": ["*.json"]}')
        z.writestr("thing.json", '{"kind": "entity", "name": "thing", "fields": [{"name": "x", "type": "nmber"}]}')
    r3 = admin.post("/designer/templates/import", data={"csrf_token": token, "package": (io.BytesIO(broken.getvalue()), "bad.zip")},
                    content_type="multipart/form-data")
    assert r3.status_code == 422 and "nmber" in r3.get_data(as_text=True)

    good = io.BytesIO()
    with zipfile.ZipFile(good, "w") as z:
        z.writestr("template.json", '{"kind": "template", "name": "extra", "version": "1.0.0", "label": "Extra", '
                                    '"files": ["*.json"]}')
        z.writestr("thing.json", '{"kind": "entity", "name": "thing", "fields": [{"name": "x", "type": "text"}]}')
    r4 = admin.post("/designer/templates/import", data={"csrf_token": token, "package": (io.BytesIO(good.getvalue()), "extra.zip")},
                    content_type="multipart/form-data")
    assert r4.status_code == 302
    assert admin.get("/api/v1/meta/entities/thing").status_code == 200
    assert admin.get("/designer/templates").status_code == 200
    assert "extra" in admin.get("/designer/templates").get_data(as_text=True)


def test_publish_page_posts_with_a_note(app: Any, admin: Any, engine_of: Any) -> None:
    add_field(admin, {"name": "wechat", "type": "text"})
    page = admin.get("/designer/publish").get_data(as_text=True)
    assert "add column ent_customer.wechat" in page
    r = admin.post("/designer/publish", data={"csrf_token": csrf(admin), "note": "for the reps"}, follow_redirects=True)
    assert "Published version" in r.get_data(as_text=True)
    assert admin.get(f"{API}/changes").get_json()["count"] == 0
    with engine_of(app).connect() as conn:
        assert [t["name"] for t in installed_templates(conn)] == ["test"]
