"""The two industry templates (education, real estate) as a consultant ships them: each
installs over the default CRM and works through the API, upgrades from 1.0 to 1.1
keeping the instance's own customisations, and uninstalls — archiving its data, or
dropping it when asked. Plus `template export`, whose zip installs elsewhere."""
from __future__ import annotations

import io
from decimal import Decimal
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from metacrm.metadata.documents import Document, MetadataInvalid
from metacrm.metadata.loader import Package, load_package, load_seed_package
from metacrm.runtime import systables
from metacrm.runtime.clock import utcnow
from metacrm.runtime.db import schema_transaction
from metacrm.runtime.errors import Conflict
from metacrm.runtime.metastore import (export_template, install_seed, install_template, installed_templates,
                                       publish_pending, set_instance_layer, uninstall_template)
from metacrm.runtime.web.context import EXTENSION

from .support import add_user, bearer, error_of


def _org(conn: sa.Connection) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """A general manager over a sales manager over a rep, finance, and a teacher in Sales."""
    d = systables.departments
    head = conn.execute(d.insert().values(name="总经理办公室", created_at=utcnow()).returning(d.c.id)).scalar_one()
    sales = conn.execute(d.insert().values(name="销售部", parent_id=head, created_at=utcnow())
                         .returning(d.c.id)).scalar_one()
    ids = {"wang.jun": add_user(conn, "wang.jun", roles=["admin", "general_manager"], department_id=head)}
    ids["zhang.wei"] = add_user(conn, "zhang.wei", roles=["sales_manager"], department_id=sales,
                                manager_id=ids["wang.jun"])
    ids["liu.yang"] = add_user(conn, "liu.yang", roles=["sales"], department_id=sales, manager_id=ids["zhang.wei"])
    ids["huang.li"] = add_user(conn, "huang.li", roles=["finance"], department_id=head, manager_id=ids["wang.jun"])
    ids["teacher.li"] = add_user(conn, "teacher.li", roles=["teacher"], department_id=sales,
                                 manager_id=ids["zhang.wei"])
    conn.execute(d.update().where(d.c.id == sales).values(head_id=ids["zhang.wei"]))
    return ids, {name: bearer(conn, uid) for name, uid in ids.items()}


def _install(app: Any, *packages: Package | str) -> None:
    rt = app.extensions[EXTENSION]
    with schema_transaction(rt.engine) as conn:
        for p in packages:
            if isinstance(p, str):
                install_seed(conn, p)
            else:
                install_template(conn, p)
    rt.invalidate()


@pytest.fixture
def industry(make_app):
    """install("education") → (client, ids, headers) on a fresh database with the default
    CRM, the named templates, and the org above."""
    def _make(*templates: Package | str) -> tuple[Any, Any, dict[str, int], dict[str, dict[str, str]]]:
        app = make_app()
        _install(app, "crm-default", *templates)
        rt = app.extensions[EXTENSION]
        with rt.engine.begin() as conn:
            ids, h = _org(conn)
        rt.invalidate()
        return app, app.test_client(), ids, h
    return _make


def _post(client: Any, h: dict[str, str], entity: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    r = client.post(f"/api/v1/records/{entity}", headers=h, json=body)
    assert r.status_code == status, r.get_json()
    return r.get_json()


def _fire(client: Any, h: dict[str, str], entity: str, rid: int, name: str) -> dict[str, Any]:
    r = client.post(f"/api/v1/records/{entity}/{rid}/transitions/{name}", headers=h, json={})
    assert r.status_code == 200, (name, r.get_json())
    return r.get_json()


def _entity_meta(client: Any, h: dict[str, str], entity: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/meta/entities/{entity}", headers=h)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _field_names(meta: dict[str, Any]) -> set[str]:
    return {f["name"] for f in meta["fields"]}


# ------------------------------------------------------------------ education

def test_education_renames_the_crm_for_a_training_school_and_runs_a_trial_lesson(industry):
    app, client, ids, h = industry("education")
    assert _entity_meta(client, h["wang.jun"], "customer")["label"] == {"en": "Student", "zh": "学员"}
    assert {"relationship"} <= _field_names(_entity_meta(client, h["wang.jun"], "contact"))

    course = _post(client, h["wang.jun"], "product", {"name": "少儿编程（Scratch）", "code": "CODE-1",
                                                      "category": "coding", "price": "180", "lessons": 48})
    assert course["course_fee"] == "8640.00" and course["class_type"] == "small_class"
    student = _post(client, h["liu.yang"], "customer", {"name": "王小明", "grade": "primary_high",
                                                         "mobile": "13800138000"})
    _post(client, h["liu.yang"], "contact", {"name": "李芳", "customer": student["id"], "relationship": "mother",
                                             "mobile": "13800138000", "is_decision_maker": True})
    # a sibling shares the parent's phone: the rule only warns (the default CRM would block)
    sibling = _post(client, h["liu.yang"], "customer", {"name": "王小红", "mobile": "138 0013 8000"})
    assert [m["id"] for m in sibling["_duplicates"]] == [student["id"]]

    lesson = _post(client, h["liu.yang"], "trial_lesson", {
        "title": "编程试听", "student": student["id"], "course": course["id"], "teacher": ids["teacher.li"],
        "scheduled_at": "2026-12-05T10:00:00"})
    r = client.patch(f"/api/v1/records/trial_lesson/{lesson['id']}", headers=h["liu.yang"],
                     json={"version": lesson["version"], "status": "attended"})
    error_of(r, 422)
    # the teacher of the same campus (department) records the feedback; fees stay hidden from them
    r = client.patch(f"/api/v1/records/trial_lesson/{lesson['id']}", headers=h["teacher.li"],
                     json={"version": lesson["version"], "status": "attended", "feedback": "逻辑思维好",
                           "feedback_score": 5})
    assert r.status_code == 200, r.get_json()
    seen = client.get(f"/api/v1/records/product/{course['id']}", headers=h["teacher.li"]).get_json()
    assert "price" not in seen and "course_fee" not in seen
    student_seen = client.get(f"/api/v1/records/customer/{student['id']}", headers=h["teacher.li"]).get_json()
    assert student_seen["mobile"] != "13800138000" and student_seen["mobile"].endswith("8000")

    contract = _post(client, h["liu.yang"], "contract", {
        "name": "2026 秋季编程课", "customer": student["id"], "instalments": 3,
        "lines": [{"product": course["id"], "quantity": 48, "price": "180"}]})
    assert contract["amount"] == "8640.00"


# ------------------------------------------------------------------ real estate

def test_real_estate_lists_properties_and_approves_a_large_commission_up_to_the_general_manager(industry):
    app, client, ids, h = industry("realestate")
    flat = _post(client, h["liu.yang"], "property", {
        "title": "浦东 三室两厅 南北通透", "deal_type": "sale", "district": "浦东新区", "community": "世纪花园",
        "address": "世纪大道 100 弄 5 号 1201", "area": "120", "layout": "3室2厅2卫", "price": "6000000"})
    assert flat["unit_price"] == "50000.00" and flat["number"].startswith("FY-")
    error_of(client.post("/api/v1/records/property", headers=h["liu.yang"], json={
        "title": "同一套房", "deal_type": "sale", "district": "浦东新区", "address": "世纪大道100弄5号1201",
        "area": "120", "price": "5900000"}), 409, "duplicate")
    r = client.post("/api/v1/records/property", headers=h["liu.yang"], json={
        "title": "整租一居", "deal_type": "rent", "district": "徐汇区", "address": "漕溪北路 8 号 301", "area": "45"})
    assert "rent" in error_of(r, 422)["fields"]

    buyer = _post(client, h["liu.yang"], "customer", {"name": "陈先生", "client_type": "buyer", "budget_max": "7000000"})
    _post(client, h["liu.yang"], "viewing", {"property": flat["id"], "customer": buyer["id"],
                                             "viewed_at": "2026-11-20T15:00:00", "feedback": "interested"})
    error_of(client.post("/api/v1/records/lead", headers=h["liu.yang"], json={
        "name": "赵女士", "company": "赵女士", "intent": "rent", "budget_min": "9000", "budget_max": "5000"}), 422)

    deal = _post(client, h["liu.yang"], "contract", {"name": "世纪花园 1201 买卖", "customer": buyer["id"]})
    commission = _post(client, h["liu.yang"], "commission", {
        "contract": deal["id"], "property": flat["id"], "deal_amount": "6000000", "rate": "1.5",
        "agent": ids["liu.yang"]})
    assert commission["amount"] == "90000.00"
    _fire(client, h["liu.yang"], "commission", commission["id"], "submit")
    _fire(client, h["zhang.wei"], "commission", commission["id"], "approve")
    after_finance = _fire(client, h["huang.li"], "commission", commission["id"], "approve")
    assert after_finance["approval_status"] == "pending"  # 90,000 ≥ 50,000: the general manager decides last
    approved = _fire(client, h["wang.jun"], "commission", commission["id"], "approve")
    assert approved["approval_status"] == "approved"
    r = client.patch(f"/api/v1/records/commission/{commission['id']}", headers=h["liu.yang"],
                     json={"version": approved["version"], "rate": "3"})
    assert "rate" in error_of(r, 422)["fields"]  # the rate is frozen once submitted


# ------------------------------------------------------------------ upgrade 1.0 → 1.1

SEEDS = Path(__file__).resolve().parent.parent / "seeds"

#: What each template's 1.1.0 added (its CHANGELOG.md), as edits that take it out again:
#: file -> field names to drop (entity fields, form fields, view columns), or None to drop the file.
ADDED_IN_1_1: dict[str, dict[str, list[str] | None]] = {
    "education": {"entities/trial_lesson.json": ["feedback_score"], "forms/trial_lesson.json": ["feedback_score"],
                  "views/trial_lesson_upcoming.json": None},
    "realestate": {"entities/viewing.json": ["lead"], "forms/viewing.json": ["lead"],
                   "views/viewing_all.json": ["lead"], "entities/contract.json": None},
}


def _write_1_0(template: str, folder: Path) -> Path:
    """The shipped 1.1.0 package copied to `folder` with its 1.1 additions taken out and
    the version set to 1.0.0: the package an instance installed before the upgrade."""
    shutil.copytree(SEEDS / template, folder)
    for rel, names in ADDED_IN_1_1[template].items():
        path = folder / rel
        if names is None:
            path.unlink()
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["kind"] == "entity":
            data["fields"] = [f for f in data["fields"] if f["name"] not in names]
            data["indexes"] = [i for i in data.get("indexes", []) if not set(i) & set(names)]
            if template == "realestate":  # 1.0 required the client and had no rule about the lead
                data.pop("validations", None)
                next(f for f in data["fields"] if f["name"] == "customer")["required"] = True
        elif data["kind"] == "form":
            for section in data["sections"]:
                section["fields"] = [f for f in section["fields"] if f not in names]
        else:
            data["columns"] = [c for c in data["columns"] if c not in names]
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    manifest = json.loads((folder / "template.json").read_text(encoding="utf-8"))
    (folder / "template.json").write_text(json.dumps({**manifest, "version": "1.0.0"}, ensure_ascii=False),
                                          encoding="utf-8")
    return folder


def _education_1_0(tmp_path: Path) -> Package:
    return load_package(_write_1_0("education", tmp_path / "education-1.0"))


def test_education_upgrades_from_1_0_to_1_1_keeping_the_instances_customisations_and_data(industry, tmp_path):
    app, client, ids, h = industry(_education_1_0(tmp_path))
    student = _post(client, h["liu.yang"], "customer", {"name": "张三", "mobile": "13900000001"})
    course = _post(client, h["wang.jun"], "product", {"name": "英语口语", "code": "EN-1", "category": "english"})
    lesson = _post(client, h["liu.yang"], "trial_lesson", {"title": "口语试听", "student": student["id"],
                                                           "course": course["id"],
                                                           "scheduled_at": "2026-12-01T09:00:00"})
    assert "feedback_score" not in _field_names(_entity_meta(client, h["wang.jun"], "trial_lesson"))
    rt = app.extensions[EXTENSION]
    own = [{"kind": "entity", "name": "trial_lesson", "label": {"zh": "体验课"},
            "fields": [{"name": "wechat_group", "type": "text", "label": {"en": "WeChat group", "zh": "微信群"}}]}]
    with schema_transaction(rt.engine) as conn:
        set_instance_layer(conn, [Document("instance", d) for d in own])
        publish_pending(conn)
    rt.invalidate()
    r = client.patch(f"/api/v1/records/trial_lesson/{lesson['id']}", headers=h["liu.yang"],
                     json={"version": lesson["version"], "wechat_group": "口语体验群 3"})
    assert r.status_code == 200, r.get_json()

    with schema_transaction(rt.engine) as conn:
        install_template(conn, load_seed_package("education"), upgrade=True)
        assert {t["name"]: t["version"] for t in installed_templates(conn)}["education"] == "1.1.0"
    rt.invalidate()
    meta = _entity_meta(client, h["wang.jun"], "trial_lesson")
    assert {"feedback_score", "wechat_group"} <= _field_names(meta)
    assert meta["label"] == {"en": "Trial lesson", "zh": "体验课"}  # the instance's label survives
    views = client.get("/api/v1/meta/entities/trial_lesson", headers=h["wang.jun"]).get_json().get("views") or []
    assert "upcoming" in {v["name"] for v in views}
    kept = client.get(f"/api/v1/records/trial_lesson/{lesson['id']}", headers=h["liu.yang"]).get_json()
    assert kept["wechat_group"] == "口语体验群 3" and kept["title"] == "口语试听"


# ------------------------------------------------------------------ uninstall

def _table_names(app: Any) -> set[str]:
    return set(sa.inspect(app.extensions[EXTENSION].engine).get_table_names())


def test_uninstall_archives_the_templates_data_and_a_reinstall_brings_it_back(industry):
    app, client, ids, h = industry("realestate")
    flat = _post(client, h["liu.yang"], "property", {
        "title": "静安 两室", "deal_type": "rent", "district": "静安区", "address": "南京西路 1 号 808",
        "area": "70", "rent": "12000"})
    lead = _post(client, h["liu.yang"], "lead", {"name": "钱先生", "company": "钱先生", "intent": "rent"})
    rt = app.extensions[EXTENSION]
    with schema_transaction(rt.engine) as conn:
        with pytest.raises(Conflict):
            uninstall_template(conn, "crm-default")  # realestate requires it
        plan = uninstall_template(conn, "realestate")
    rt.invalidate()
    assert {"archive_entity"} <= {s.action for s in plan.steps}
    error_of(client.get(f"/api/v1/records/property/{flat['id']}", headers=h["wang.jun"]), 404)
    assert "intent" not in client.get(f"/api/v1/records/lead/{lead['id']}", headers=h["wang.jun"]).get_json()
    assert "ent_property" in _table_names(app)

    _install(app, "realestate")
    back = client.get(f"/api/v1/records/property/{flat['id']}", headers=h["wang.jun"]).get_json()
    assert back["title"] == "静安 两室" and back["rent"] == "12000.00"
    assert client.get(f"/api/v1/records/lead/{lead['id']}", headers=h["wang.jun"]).get_json()["intent"] == "rent"


def test_uninstall_with_drop_data_drops_its_own_tables_and_their_system_rows_only(industry):
    app, client, ids, h = industry("realestate")
    flat = _post(client, h["liu.yang"], "property", {
        "title": "徐汇 一室", "deal_type": "sale", "district": "徐汇区", "address": "天钥桥路 2 号 501",
        "area": "50", "price": "3000000"})
    customer = _post(client, h["liu.yang"], "customer", {"name": "上海远景贸易有限公司"})
    _post(client, h["liu.yang"], "viewing", {"property": flat["id"], "customer": customer["id"],
                                             "viewed_at": "2026-11-21T10:00:00"})
    rt = app.extensions[EXTENSION]
    with schema_transaction(rt.engine) as conn:
        plan = uninstall_template(conn, "realestate", drop_data=True)
        history = conn.execute(sa.select(sa.func.count()).select_from(systables.history)
                               .where(systables.history.c.entity.in_(["property", "viewing"]))).scalar_one()
    rt.invalidate()
    assert [s.table for s in plan.steps if s.action == "drop_table"] == [
        "ent_commission", "ent_viewing", "ent_property"] or {
        s.table for s in plan.steps if s.action == "drop_table"} == {"ent_commission", "ent_viewing", "ent_property"}
    assert not {"ent_property", "ent_viewing", "ent_commission"} & _table_names(app)
    assert history == 0
    assert client.get(f"/api/v1/records/customer/{customer['id']}", headers=h["liu.yang"]).status_code == 200
    _install(app, "realestate")  # a clean reinstall: empty tables again
    assert client.get("/api/v1/records/property", headers=h["wang.jun"]).get_json()["total"] == 0


def test_uninstall_refuses_when_a_customisation_needs_the_template(industry):
    app, client, ids, h = industry("realestate")
    rt = app.extensions[EXTENSION]
    own = [{"kind": "entity", "name": "customer",
            "fields": [{"name": "favourite", "type": "lookup", "target": "property",
                        "label": {"en": "Favourite listing", "zh": "心仪房源"}}]}]
    with schema_transaction(rt.engine) as conn:
        set_instance_layer(conn, [Document("instance", d) for d in own])
        publish_pending(conn)
    with pytest.raises(MetadataInvalid) as exc, schema_transaction(rt.engine) as conn:
        uninstall_template(conn, "realestate")
    assert any("property" in e.message for e in exc.value.errors)
    with rt.engine.connect() as conn:
        assert "realestate" in {t["name"] for t in installed_templates(conn)}


# ------------------------------------------------------------------ export

def test_export_writes_the_instances_customisations_as_a_package_that_installs(industry, tmp_path: Path):
    app, client, ids, h = industry()
    rt = app.extensions[EXTENSION]
    own = [{"kind": "entity", "name": "customer",
            "fields": [{"name": "wechat_id", "type": "text", "label": {"en": "WeChat ID", "zh": "微信号"}}]},
           {"kind": "view", "entity": "customer", "name": "wechat", "label": {"en": "With WeChat", "zh": "有微信"},
            "columns": ["name", "wechat_id"], "filters": [["wechat_id", "is not empty"]]}]
    with schema_transaction(rt.engine) as conn:
        set_instance_layer(conn, [Document("instance", d) for d in own])
        publish_pending(conn)
        data = export_template(conn, "acme-wechat", "1.0.0")
        whole = export_template(conn, "acme-all", "1.0.0", whole=True, only=["entity/customer"])
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert sorted(names) == ["entities/customer.json", "template.json", "views/customer_wechat.json"]
    assert zipfile.ZipFile(io.BytesIO(whole)).namelist() == ["template.json", "entities/customer.json"]
    path = tmp_path / "acme-wechat.zip"
    path.write_bytes(data)
    package = load_package(path)
    assert package.manifest.data["requires"] == ["crm-default"]

    # the customisation leaves the instance (archived), then comes back as the installed package
    with schema_transaction(rt.engine) as conn:
        set_instance_layer(conn, [])
        publish_pending(conn)
    rt.invalidate()
    assert "wechat_id" not in _field_names(_entity_meta(client, h["wang.jun"], "customer"))
    _install(app, package)
    assert "wechat_id" in _field_names(_entity_meta(client, h["wang.jun"], "customer"))
    views = _entity_meta(client, h["wang.jun"], "customer").get("views") or []
    assert "wechat" in {v["name"] for v in views}


# ------------------------------------------------------------------ a whole scenario per template

def _plan(client: Any, h: dict[str, str], contract: dict[str, Any], period: int, due: str, amount: str) -> dict[str, Any]:
    return _post(client, h, "receivable_plan", {"contract": contract["id"], "customer": contract["customer"],
                                                 "period": period, "plan_date": due, "amount": amount})


def _confirm_receivable(client: Any, h: dict[str, dict[str, str]], contract: dict[str, Any], plan: dict[str, Any],
                        amount: str) -> dict[str, Any]:
    """The rep records money against a plan, finance confirms it; the plan as it is then."""
    receivable = _post(client, h["liu.yang"], "receivable", {
        "contract": contract["id"], "customer": contract["customer"], "plan": plan["id"],
        "received_at": "2026-12-01", "amount": amount})
    _fire(client, h["liu.yang"], "receivable", receivable["id"], "submit")
    assert _fire(client, h["huang.li"], "receivable", receivable["id"], "approve")["approval_status"] == "approved"
    return client.get(f"/api/v1/records/receivable_plan/{plan['id']}", headers=h["liu.yang"]).get_json()


def _dashboard_agrees_with_the_records(client: Any, ids: dict[str, int], h: dict[str, dict[str, str]],
                                       rep: str = "liu.yang") -> None:
    """The dashboard's funnel, targets and rankings over a template's data, checked against
    sums computed here from the records themselves (what the admin may read)."""
    admin = h["wang.jun"]

    def items(entity: str) -> list[dict[str, Any]]:
        r = client.get(f"/api/v1/records/{entity}?page_size=500", headers=admin)
        assert r.status_code == 200, r.get_json()
        return r.get_json()["items"]

    def report(name: str, **params: Any) -> dict[str, Any]:
        r = client.get(f"/api/v1/reports/{name}", headers=admin, query_string=params)
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    stages = [o["stage"] for o in items("opportunity")]
    funnel = {row["stage"]: row for row in report("funnel", period="all")["rows"]}
    for stage in set(stages):
        assert funnel[stage]["count"] == stages.count(stage), (stage, funnel[stage])
    signed = sum((Decimal(c["amount"]) for c in items("contract")
                  if c["approval_status"] == "approved" and c["owner"] == ids[rep]), Decimal(0))
    received = sum((Decimal(r["amount"]) for r in items("receivable")
                    if r["approval_status"] == "approved" and r["owner"] == ids[rep]), Decimal(0))
    assert signed > 0 and received > 0
    ranking = {row["user"]: row for row in report("rankings", period="all")["rows"]}
    assert (Decimal(ranking[ids[rep]]["contract_amount"]), Decimal(ranking[ids[rep]]["receivable_amount"])) == \
        (signed, received)
    # A monthly target of twice what was signed this month: the dashboard says 50 %.
    month = report("targets", period="this_month")["from"]  # this month in the instance's time zone
    _post(client, admin, "sales_target", {"year": int(month[:4]), "month": int(month[5:7]), "user": ids[rep],
                                          "metric": "contract_amount", "amount": str(signed * 2)})
    targets = {(t["kind"], t["id"], t["metric"]): t for t in report("targets", period="this_month")["totals"]}
    mine = targets[("user", ids[rep], "contract_amount")]
    assert (Decimal(mine["target"]), Decimal(mine["actual"]), mine["completion"]) == (signed * 2, signed, 50.0)


def test_education_enquiry_to_trial_lesson_to_enrolment_paid_in_instalments(industry):
    app, client, ids, h = industry("education")
    rep = h["liu.yang"]
    course = _post(client, h["wang.jun"], "product", {"name": "少儿英语（小班）", "code": "EN-KIDS", "category": "english",
                                                      "price": "200", "lessons": 60})
    assert course["course_fee"] == "12000.00"
    # A parent's enquiry about their child; the trial lesson is booked on the enquiry.
    enquiry = _post(client, rep, "lead", {"name": "李芳", "company": "王小明", "mobile": "13800138001",
                                          "source": "referral", "grade": "primary_high",
                                          "course_interest": course["id"]})
    error_of(client.post("/api/v1/records/trial_lesson", headers=rep, json={
        "title": "英语试听", "course": course["id"], "scheduled_at": "2026-11-20T10:00:00"}), 422)
    lesson = _post(client, rep, "trial_lesson", {"title": "英语试听", "lead": enquiry["id"], "course": course["id"],
                                                 "teacher": ids["teacher.li"], "scheduled_at": "2026-11-20T10:00:00"})
    r = client.patch(f"/api/v1/records/trial_lesson/{lesson['id']}", headers=h["teacher.li"],
                     json={"version": lesson["version"], "status": "attended", "feedback": "发音好，适合小班",
                           "feedback_score": 5})
    assert r.status_code == 200, r.get_json()

    # Converted: the child becomes the student, the parent their parent, with an opportunity.
    r = client.post(f"/api/v1/records/lead/{enquiry['id']}/actions/convert", headers=rep, json={
        "create_opportunity": True, "opportunity": {"name": "王小明 英语小班", "amount": "12000"}})
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    student = client.get(f"/api/v1/records/customer/{out['customer']}", headers=rep).get_json()
    parent = client.get(f"/api/v1/records/contact/{out['contact']}", headers=rep).get_json()
    assert (student["name"], parent["name"], parent["customer"], parent["relationship"]) == \
        ("王小明", "李芳", student["id"], "mother")
    version = client.get(f"/api/v1/records/trial_lesson/{lesson['id']}", headers=rep).get_json()["version"]
    r = client.patch(f"/api/v1/records/trial_lesson/{lesson['id']}", headers=rep,
                     json={"version": version, "student": student["id"], "enrolled": True})
    assert r.status_code == 200, r.get_json()
    assert _fire(client, rep, "opportunity", out["opportunity"], "win")["stage"] == "won"

    # The enrolment contract, paid in three instalments.
    contract = _post(client, rep, "contract", {
        "name": "王小明 2026 秋季英语", "customer": student["id"], "opportunity": out["opportunity"],
        "instalments": 3, "lines": [{"product": course["id"], "quantity": 60, "price": "200", "discount": 5}]})
    assert contract["amount"] == "11400.00"  # 60 × 200 − 5 %
    _fire(client, rep, "contract", contract["id"], "submit")
    assert _fire(client, h["zhang.wei"], "contract", contract["id"], "approve")["approval_status"] == "approved"
    plans = [_plan(client, rep, contract, n, due, "3800") for n, due in
             ((1, "2026-12-01"), (2, "2027-01-01"), (3, "2027-02-01"))]
    assert sum(Decimal(p["amount"]) for p in plans) == Decimal(contract["amount"])
    first = _confirm_receivable(client, h, contract, plans[0], "3800")
    assert (first["received_amount"], first["outstanding"], first["status"]) == ("3800.00", "0.00", "done")
    outstanding = client.get(f'/api/v1/records/receivable_plan?filter=[["contract","=",{contract["id"]}],'
                             f'["status","=","pending"]]', headers=rep).get_json()
    assert sorted(p["period"] for p in outstanding["items"]) == [2, 3]
    meta = _entity_meta(client, h["wang.jun"], "receivable_plan")
    assert meta["label"] == {"en": "Instalment", "zh": "分期计划"}
    _dashboard_agrees_with_the_records(client, ids, h)


def test_real_estate_buyer_lead_to_viewings_to_a_deal_and_its_commission(industry):
    app, client, ids, h = industry("realestate")
    rep = h["liu.yang"]
    flat = _post(client, rep, "property", {
        "title": "徐汇 两室一厅 近地铁", "deal_type": "sale", "district": "徐汇区", "community": "漕河泾花苑",
        "address": "漕宝路 66 弄 3 号 602", "area": "80", "layout": "2室1厅1卫", "price": "5200000"})
    assert flat["unit_price"] == "65000.00" and flat["status"] == "available"
    buyer = _post(client, rep, "lead", {"name": "陈先生", "company": "陈先生", "mobile": "13900139000",
                                        "intent": "buy", "budget_min": "4500000", "budget_max": "5500000",
                                        "districts": "徐汇、闵行", "bedrooms": 2})
    # A buyer sees the flat before becoming a client: the viewing takes the lead.
    error_of(client.post("/api/v1/records/viewing", headers=rep, json={
        "property": flat["id"], "viewed_at": "2026-11-18T14:00:00"}), 422)
    _post(client, rep, "viewing", {"property": flat["id"], "lead": buyer["id"], "viewed_at": "2026-11-18T14:00:00",
                                   "feedback": "considering"})
    r = client.post(f"/api/v1/records/lead/{buyer['id']}/actions/convert", headers=rep, json={
        "create_opportunity": True, "opportunity": {"name": "陈先生 购 漕河泾花苑 602", "amount": "78000"}})
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    client_rec = client.get(f"/api/v1/records/customer/{out['customer']}", headers=rep).get_json()
    assert (client_rec["name"], client_rec["client_type"]) == ("陈先生", "buyer")
    _post(client, rep, "viewing", {"property": flat["id"], "customer": client_rec["id"],
                                   "viewed_at": "2026-11-22T10:00:00", "feedback": "interested"})
    viewings = client.get(f'/api/v1/records/viewing?filter=[["property","=",{flat["id"]}]]', headers=rep).get_json()
    assert viewings["total"] == 2
    _fire(client, rep, "opportunity", out["opportunity"], "win")

    # The deal contract (the agency's fee as its line), approved by the store manager.
    fee = _post(client, h["wang.jun"], "product", {"name": "买卖居间服务", "code": "AG-SALE", "category": "service",
                                                   "price": "78000", "unit": "time"})
    contract = _post(client, rep, "contract", {"name": "漕河泾花苑 602 买卖居间", "customer": client_rec["id"],
                                               "opportunity": out["opportunity"], "deal_type": "sale",
                                               "lines": [{"product": fee["id"], "quantity": 1, "price": "78000"}]})
    assert contract["amount"] == "78000.00" and contract["deal_type"] == "sale"
    _fire(client, rep, "contract", contract["id"], "submit")
    assert _fire(client, h["zhang.wei"], "contract", contract["id"], "approve")["approval_status"] == "approved"
    r = client.patch(f"/api/v1/records/property/{flat['id']}", headers=rep,
                     json={"version": flat["version"], "status": "sold"})
    assert r.status_code == 200, r.get_json()

    # The agent's commission: 5,200,000 × 1.5 % = 78,000 ≥ 50,000, so the general manager decides last.
    commission = _post(client, rep, "commission", {"contract": contract["id"], "property": flat["id"],
                                                   "deal_amount": "5200000", "rate": "1.5", "agent": ids["liu.yang"]})
    assert commission["amount"] == "78000.00"
    _fire(client, rep, "commission", commission["id"], "submit")
    for approver, state in (("zhang.wei", "pending"), ("huang.li", "pending"), ("wang.jun", "approved")):
        assert _fire(client, h[approver], "commission", commission["id"], "approve")["approval_status"] == state

    plan = _plan(client, rep, contract, 1, "2026-12-05", "78000")
    paid = _confirm_receivable(client, h, contract, plan, "78000")
    assert (paid["received_amount"], paid["outstanding"], paid["status"]) == ("78000.00", "0.00", "done")
    assert client.get(f"/api/v1/records/property/{flat['id']}", headers=rep).get_json()["status"] == "sold"
    _dashboard_agrees_with_the_records(client, ids, h)


# ------------------------------------------------------------------ upgrade 1.0 → 1.1 through the CLI

#: template -> (an entity of its own, a record of it, the field 1.1 adds to it, the instance's customisation)
UPGRADES = {
    "education": ("trial_lesson", {"title": "口语试听", "student": "$customer", "course": "$product",
                                   "scheduled_at": "2026-12-01T09:00:00"}, "feedback_score"),
    "realestate": ("viewing", {"property": "$property", "customer": "$customer",
                               "viewed_at": "2026-12-01T09:00:00"}, "lead"),
}


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`metacrm ...` in-process on the test's database, plus an app on the same database."""
    from click.testing import CliRunner

    from metacrm.app import create_app
    from metacrm.cli import main

    monkeypatch.setenv("METACRM_DATABASE_URL", db_url)
    monkeypatch.setenv("METACRM_INSTANCE", str(tmp_path / "instance"))
    monkeypatch.setenv("METACRM_ADMIN_USERNAME", "admin")
    monkeypatch.setenv("METACRM_ADMIN_PASSWORD", "admin-pass-1")
    monkeypatch.delenv("METACRM_SECRET_KEY", raising=False)

    def run(*args: str) -> Any:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    return run, create_app


@pytest.mark.parametrize("template", sorted(UPGRADES))
def test_cli_upgrade_from_1_0_to_1_1_keeps_the_instances_customisations_then_uninstalls(
        template: str, cli_env: Any, tmp_path: Path) -> None:
    run, create_app = cli_env
    entity, values, added = UPGRADES[template]
    run("init")
    old = _write_1_0(template, tmp_path / f"{template}-1.0")
    assert f"Installed {template} 1.0.0" in run("template", "install", str(old))

    app = create_app()
    client = app.test_client()
    r = client.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-pass-1"})
    assert r.status_code == 200, r.get_json()
    assert added not in _field_names(client.get(f"/api/v1/meta/entities/{entity}").get_json())
    refs = {"$customer": client.post("/api/v1/records/customer", json={"name": "张三"}).get_json()["id"]}
    if template == "education":
        refs["$product"] = client.post("/api/v1/records/product", json={"name": "英语口语", "code": "EN-1"}
                                       ).get_json()["id"]
    else:
        refs["$property"] = client.post("/api/v1/records/property", json={
            "title": "静安 一室", "deal_type": "rent", "district": "静安区", "address": "南京西路 2 号 1001",
            "area": "45", "rent": "9000"}).get_json()["id"]
    record = client.post(f"/api/v1/records/{entity}", json={k: refs.get(v, v) for k, v in values.items()})
    assert record.status_code == 201, record.get_json()
    record = record.get_json()

    # The client's own layer: a relabel and a field of their own on the template's entity.
    custom = tmp_path / "custom" / "entities"
    custom.mkdir(parents=True)
    (custom / f"{entity}.json").write_text(json.dumps({
        "kind": "entity", "name": entity, "label": {"en": "Our " + entity.replace("_", " "), "zh": "本店" + entity},
        "fields": [{"name": "branch_note", "type": "text", "label": {"en": "Branch note", "zh": "门店备注"}}]},
        ensure_ascii=False), encoding="utf-8")
    run("publish", "--custom", str(tmp_path / "custom"))
    r = client.patch(f"/api/v1/records/{entity}/{record['id']}", json={"version": record["version"],
                                                                         "branch_note": "老客户介绍"})
    assert r.status_code == 200, r.get_json()

    out = run("template", "upgrade", str(SEEDS / template))
    assert f"Upgraded {template} 1.1.0" in out
    app.extensions[EXTENSION].invalidate()
    meta = client.get(f"/api/v1/meta/entities/{entity}").get_json()
    assert {added, "branch_note"} <= _field_names(meta)  # the template's new field and the client's own
    assert meta["label"]["zh"] == "本店" + entity
    kept = client.get(f"/api/v1/records/{entity}/{record['id']}").get_json()
    assert kept["branch_note"] == "老客户介绍"
    with app.extensions[EXTENSION].engine.connect() as conn:
        versions = {t["name"]: t["version"] for t in installed_templates(conn)}
    assert versions[template] == "1.1.0"

    # Uninstall archives: the client's customisations of the template's own entity go with it.
    assert "its data is kept in archived tables" in run("template", "uninstall", template)
    app.extensions[EXTENSION].invalidate()
    assert client.get(f"/api/v1/records/{entity}/{record['id']}").status_code == 404
    assert f"ent_{entity}" in _table_names(app)  # archived, data kept
    assert f"Installed {template} 1.1.0" in run("template", "install", str(SEEDS / template))
    app.extensions[EXTENSION].invalidate()
    assert client.get(f"/api/v1/records/{entity}/{record['id']}").status_code == 200
