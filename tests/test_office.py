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

from .support import add_user, admin_bearer, bearer, error_of

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
    # the industry templates install over both (their roles layer over the office grants too)
    with app.extensions[EXTENSION].engine.begin() as conn:
        install_seed(conn, "education")
    app.extensions[EXTENSION].invalidate()
    r = client.get("/api/v1/records/office_approval", headers=h["liu.yang"])
    assert r.status_code == 200 and client.get("/api/v1/records/trial_lesson", headers=h["liu.yang"]).status_code == 200


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


# ------------------------------------------------------------------ tasks


def test_task_views_show_tasks_assigned_to_me_and_by_me(office):
    app, client, ids, h, _ = office
    parent = _create(client, h, "li.na", "task", {"title": "Q1 客户回访", "assignee": ids["liu.yang"],
                                                   "priority": "high", "due_date": "2026-12-20"})
    sub = _create(client, h, "li.na", "task", {"title": "回访名单整理", "assignee": ids["liu.yang"],
                                                "parent": parent["id"],
                                                "participants": [{"user": ids["chen.jing"]}]})
    own = _create(client, h, "liu.yang", "task", {"title": "准备方案", "assignee": ids["liu.yang"]})
    other = _create(client, h, "li.na", "task", {"title": "周报汇总", "assignee": ids["chen.jing"]})
    assert sub["status"] == "todo" and sub["participants"][0]["user"] == ids["chen.jing"]

    def titles(who, view):
        r = client.get(f"/api/v1/records/task?view={view}", headers=h[who])
        assert r.status_code == 200, r.get_json()
        return sorted(i["title"] for i in r.get_json()["items"])

    assert titles("liu.yang", "assigned_to_me") == sorted([parent["title"], sub["title"], own["title"]])
    assert titles("li.na", "assigned_by_me") == sorted([parent["title"], sub["title"], other["title"]])
    assert titles("liu.yang", "assigned_by_me") == [own["title"]]
    # subtasks: the parent lookup filters
    r = client.get("/api/v1/records/task", headers=h["liu.yang"],
                   query_string={"filter": f'[["parent", "=", {parent["id"]}]]'})
    assert [i["id"] for i in r.get_json()["items"]] == [sub["id"]]
    # the assignee moves the task on; a finished task leaves "assigned to me"
    r = client.patch(f"/api/v1/records/task/{sub['id']}", headers=h["liu.yang"],
                     json={"status": "done", "version": sub["version"]})
    assert r.status_code == 200, r.get_json()
    assert sub["title"] not in titles("liu.yang", "assigned_to_me")
    error_of(client.patch(f"/api/v1/records/task/{own['id']}", headers=h["liu.yang"],
                          json={"status": "finished", "version": own["version"]}), 422)


# ------------------------------------------------------------------ announcements


def test_announcements_reach_their_audience_and_track_reads(office):
    app, client, ids, h, depts = office
    everyone = _create(client, h, "zheng.xin", "announcement", {
        "title": "春节放假通知", "content": "2月10日至17日放假。", "scope": "all", "publish_date": "2026-01-01",
        "pinned": True})
    sales = _create(client, h, "zheng.xin", "announcement", {
        "title": "销售部季度会议", "content": "周五下午三点。", "scope": "department",
        "target_department": depts["sales"], "publish_date": "2026-01-02"})
    future = _create(client, h, "zheng.xin", "announcement", {
        "title": "明年的计划", "content": "…", "scope": "all", "publish_date": "2099-01-01"})
    error_of(client.post("/api/v1/records/announcement", headers=h["zheng.xin"], json={
        "title": "x", "content": "y", "scope": "department", "publish_date": "2026-01-01"}), 422)
    # reps read announcements but may not publish them
    error_of(client.post("/api/v1/records/announcement", headers=h["liu.yang"], json={
        "title": "x", "content": "y", "publish_date": "2026-01-01"}), 403)

    def board(who):
        r = client.get("/api/v1/office/announcements", headers=h[who])
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        return body["unread"], [(i["title"], i["read"]) for i in body["items"]]

    # 华北组 is below 销售部: its people get the department's announcement; finance does not
    assert board("liu.yang") == (2, [(everyone["title"], False), (sales["title"], False)])
    assert board("huang.li") == (1, [(everyone["title"], False)])
    r = client.post(f"/api/v1/office/announcements/{sales['id']}/read", headers=h["liu.yang"])
    assert r.status_code == 200 and r.get_json()["unread"] == 1
    client.post(f"/api/v1/office/announcements/{sales['id']}/read", headers=h["liu.yang"])  # twice: no change
    assert board("liu.yang") == (1, [(everyone["title"], False), (sales["title"], True)])
    assert board("chen.jing")[0] == 2  # reads are per user
    # not meant for finance, not published yet, or missing: 404, and nothing recorded
    for rid in (sales["id"], future["id"], 999999):
        error_of(client.post(f"/api/v1/office/announcements/{rid}/read", headers=h["huang.li"]), 404)
    with app.extensions[EXTENSION].engine.connect() as conn:
        reads = conn.execute(sa.select(systables.announcement_reads.c.user_id)).scalars().all()
    assert reads == [ids["liu.yang"]]


def test_opening_an_announcement_page_marks_it_read_and_the_badge_counts_down(office):
    app, client, ids, h, _ = office
    a = _create(client, h, "zheng.xin", "announcement", {
        "title": "新版报销制度", "content": "第一行\n<script>alert(1)</script>", "scope": "all",
        "publish_date": "2026-01-01"})
    page = client.get("/office/announcements", headers=h["chen.jing"])
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-read="0"' in html and 'data-count="announcements_unread">1<' in html
    opened = client.get(f"/office/announcements/{a['id']}", headers=h["chen.jing"]).get_data(as_text=True)
    assert "新版报销制度" in opened and "<script>alert" not in opened and "&lt;script&gt;" in opened
    html = client.get("/office/announcements", headers=h["chen.jing"]).get_data(as_text=True)
    assert 'data-read="1"' in html and 'data-count="announcements_unread"' not in html


# ------------------------------------------------------------------ screens


def test_the_calendar_shows_month_and_week_grids_with_my_schedules(office):
    app, client, ids, h, _ = office
    _create(client, h, "liu.yang", "schedule", {
        "title": "拜访云帆科技", "start_at": "2026-03-10T02:00:00Z", "end_at": "2026-03-10T03:00:00Z",
        "participants": [{"user": ids["li.na"]}]})
    _create(client, h, "liu.yang", "schedule", {
        "title": "上海出差", "start_at": "2026-03-30T00:00:00Z", "end_at": "2026-04-01T10:00:00Z", "all_day": True})
    _create(client, h, "chen.jing", "schedule", {
        "title": "陈静的会议", "start_at": "2026-03-10T06:00:00Z", "end_at": "2026-03-10T07:00:00Z"})
    error_of(client.post("/api/v1/records/schedule", headers=h["liu.yang"], json={
        "title": "倒着的", "start_at": "2026-03-10T06:00:00Z", "end_at": "2026-03-10T05:00:00Z"}), 422)
    html = client.get("/office/calendar?date=2026-03-10", headers=h["liu.yang"]).get_data(as_text=True)
    assert "拜访云帆科技" in html and "上海出差" in html and "陈静的会议" not in html
    assert 'data-day="2026-02-23"' in html and 'data-day="2026-04-05"' in html  # whole weeks, Monday first
    assert 'date=2026-02-01' in html and 'date=2026-04-01' in html  # previous / next month
    assert "start_at=2026-03-10T09:00" in html  # click a day to create a schedule on it
    # the three-day trip shows on each of its days, in April's grid too
    april = client.get("/office/calendar?date=2026-04-01", headers=h["liu.yang"]).get_data(as_text=True)
    assert "上海出差" in april and "拜访云帆科技" not in april
    week = client.get("/office/calendar?view=week&date=2026-03-11", headers=h["liu.yang"]).get_data(as_text=True)
    assert 'data-day="2026-03-09"' in week and 'data-day="2026-03-16"' not in week and "拜访云帆科技" in week
    assert "date=2026-03-04" in week and "date=2026-03-18" in week
    # a manager's team view shows their reports' schedules; a rep's shows only their own
    team = client.get("/office/calendar?date=2026-03-10&team=1", headers=h["li.na"]).get_data(as_text=True)
    assert "拜访云帆科技" in team and "陈静的会议" in team
    assert "陈静的会议" not in client.get("/office/calendar?date=2026-03-10&team=1",
                                      headers=h["liu.yang"]).get_data(as_text=True)
    for bad in ("?view=year", "?date=2026-13-01"):
        r = client.get("/office/calendar" + bad, headers=h["liu.yang"])
        assert r.status_code == 400, bad


def test_the_address_book_groups_colleagues_by_department_and_searches(office):
    app, client, ids, h, _ = office
    html = client.get("/office/contacts", headers=h["chen.jing"]).get_data(as_text=True)
    assert html.index("总经理办公室") < html.index("总经理办公室 / 销售部") < html.index("总经理办公室 / 销售部 / 华北组")
    assert "13800001111" in html and "mailto:liu.yang@corp.example" in html
    found = client.get("/office/contacts?q=1380000", headers=h["chen.jing"]).get_data(as_text=True)
    assert 'data-username="liu.yang"' in found and 'data-username="chen.jing"' not in found
    body = client.get("/api/v1/office/contacts?q=ZHENG", headers=h["chen.jing"]).get_json()
    assert [(g["department"]["name"], [p["username"] for p in g["people"]]) for g in body["groups"]] == [
        ("总经理办公室", ["zheng.xin"])]
    assert client.get("/office/contacts?q=%25", headers=h["chen.jing"]).status_code == 200
    # admins keep the phone numbers on the users (admin API)
    r = client.patch(f"/api/v1/admin/users/{ids['chen.jing']}", headers=admin_bearer(app), json={"phone": "010-8888 6666"})
    assert r.status_code == 200 and r.get_json()["phone"] == "010-8888 6666", r.get_json()
    error_of(client.patch(f"/api/v1/admin/users/{ids['chen.jing']}", headers=admin_bearer(app), json={"phone": "1" * 51}), 422)
    assert "010-8888 6666" in client.get("/office/contacts?q=8888", headers=h["liu.yang"]).get_data(as_text=True)
    nav = client.get("/", headers=h["chen.jing"]).get_data(as_text=True)
    for link in ("/office/calendar", "/office/contacts", "/office/announcements"):
        assert f'href="{link}"' in nav


# ------------------------------------------------------------------ the workbench


@pytest.fixture
def frozen():
    from metacrm.runtime.clock import set_clock

    def freeze(moment):
        set_clock(lambda: moment)
    yield freeze
    set_clock(None)


def test_the_workbench_lists_exactly_my_scoped_to_dos(office, frozen):
    app, client, ids, h, _ = office
    now = dt.datetime(2026, 6, 15, 4, 0, tzinfo=dt.timezone.utc)
    frozen(now - dt.timedelta(days=55))
    going = _create(client, h, "liu.yang", "customer", {"name": "北京旧客户有限公司", "level": "B"})
    _create(client, h, "chen.jing", "customer", {"name": "陈静的旧客户有限公司", "level": "B"})
    frozen(now)
    iso = lambda d: (now + d).isoformat()  # noqa: E731
    due = _create(client, h, "liu.yang", "customer", {"name": "今日跟进科技有限公司", "next_followup_at": iso(dt.timedelta(hours=2))})
    _create(client, h, "liu.yang", "customer", {"name": "下周跟进科技有限公司", "next_followup_at": iso(dt.timedelta(days=3))})
    lead = _create(client, h, "liu.yang", "lead", {"name": "王先生", "company": "线索科技有限公司",
                                                   "mobile": "13912345678", "next_followup_at": iso(dt.timedelta(hours=5))})
    theirs = _create(client, h, "chen.jing", "customer", {"name": "陈静的客户有限公司", "next_followup_at": iso(dt.timedelta(hours=1))})
    product = _create(client, h, "wang.jun", "product", {"name": "CRM licence", "code": "CRM", "price": "1000", "unit": "user"})
    contracts = {}
    for name, days, approve in (("即将到期合同", 10, True), ("远期合同", 60, True), ("草稿合同", 10, False)):
        c = _create(client, h, "liu.yang", "contract", {
            "name": name, "customer": due["id"], "start_date": "2026-01-01",
            "end_date": (now + dt.timedelta(days=days)).date().isoformat(),
            "lines": [{"product": product["id"], "quantity": 1, "price": "1000"}]})
        if approve:
            client.post(f"/api/v1/records/contract/{c['id']}/transitions/submit", headers=h["liu.yang"], json={})
            r = client.post(f"/api/v1/records/contract/{c['id']}/transitions/approve", headers=h["li.na"], json={})
            assert r.get_json()["approval_status"] == "approved", r.get_json()
        contracts[name] = c
    overdue = _create(client, h, "liu.yang", "receivable_plan", {
        "contract": contracts["即将到期合同"]["id"], "plan_date": "2026-06-10", "amount": "500"})
    _create(client, h, "liu.yang", "receivable_plan", {
        "contract": contracts["即将到期合同"]["id"], "period": 2, "plan_date": "2026-07-10", "amount": "500"})
    _create(client, h, "liu.yang", "receivable_plan", {
        "contract": contracts["即将到期合同"]["id"], "period": 3, "plan_date": "2026-06-01", "amount": "500",
        "status": "done"})  # received_amount is the receivables' roll-up (read-only); done plans aren't due
    _create(client, h, "liu.yang", "task", {"title": "准备投标文件", "assignee": ids["liu.yang"], "due_date": "2026-06-16"})
    _create(client, h, "liu.yang", "schedule", {"title": "下午拜访", "start_at": iso(dt.timedelta(hours=3)),
                                                 "end_at": iso(dt.timedelta(hours=4))})
    _create(client, h, "liu.yang", "schedule", {"title": "明天的会", "start_at": iso(dt.timedelta(days=1)),
                                                 "end_at": iso(dt.timedelta(days=1, hours=1))})
    _create(client, h, "liu.yang", "followup", {"subject": {"entity": "customer", "id": due["id"]},
                                                 "type": "call", "content": "电话沟通了报价"})
    leave = _leave(client, h, "liu.yang", 2)
    _fire(client, h, "liu.yang", leave["id"], "submit")

    board = client.get("/api/v1/office/workbench", headers=h["liu.yang"]).get_json()
    todos = {d["key"]: [i["id"] for i in d["items"]] for d in board["todos"]}
    assert todos == {"followups_due_customer": [due["id"]], "followups_due_lead": [lead["id"]], "receivables_due": [overdue["id"]],
                     "contracts_expiring": [contracts["即将到期合同"]["id"]], "returning_to_pool": [going["id"]]}
    returning = next(d for d in board["todos"] if d["key"] == "returning_to_pool")["items"][0]
    assert returning["returns_at"].startswith("2026-06-20")  # 60 days for level B
    assert [t["title"] for t in board["tasks"]["items"]] == ["准备投标文件"]
    assert [s["title"] for s in board["schedule"]["items"]] == ["下午拜访"]
    assert board["team"] is None and board["approvals"]["counts"]["pending"] == 0

    # the team lead: no to-dos of their reps, but their approvals and their team's activity
    lead = client.get("/api/v1/office/workbench", headers=h["li.na"]).get_json()
    assert lead["todos"] == []
    assert [a["record_id"] for a in lead["approvals"]["items"]] == [leave["id"]]
    assert [(f["owner__title"], f["content"], f["subject__title"]) for f in lead["team"]["items"]] == [
        ("liu.yang", "电话沟通了报价", "今日跟进科技有限公司")]
    # chen.jing sees her own follow-up due and her own customer returning, nothing of liu.yang's
    other = client.get("/api/v1/office/workbench", headers=h["chen.jing"]).get_json()
    assert {d["key"]: len(d["items"]) for d in other["todos"]} == {"followups_due_customer": 1, "returning_to_pool": 1}
    assert other["todos"][0]["items"][0]["id"] == theirs["id"]

    page = client.get("/", headers=h["liu.yang"]).get_data(as_text=True)
    html = page[page.index('id="mc-todos"'):page.index('id="mc-approvals-waiting"')]  # not the notifications
    for text in ("今日跟进科技有限公司", "即将到期合同", "北京旧客户有限公司", "准备投标文件"):
        assert text in html, text
    for text in ("下周跟进科技有限公司", "远期合同", "草稿合同", "陈静的客户有限公司"):
        assert text not in html, text
    assert "下午拜访" in page and "明天的会" not in page
    lead_html = client.get("/", headers=h["li.na"]).get_data(as_text=True)
    assert "年假 2 天" in lead_html and "电话沟通了报价" in lead_html


# ------------------------------------------------------------------ demo data


def test_the_demo_fills_the_office_module_and_moves_requests_through_their_routes(office_demo):
    app, summary = office_demo
    assert summary["announcements"] == 4 and summary["office_approvals"] == 8
    assert min(summary[k] for k in ("schedules", "tasks", "work_logs", "checkins")) > 5
    rt = app.extensions[EXTENSION]
    with rt.engine.connect() as conn:
        t = sa.table("ent_office_approval", sa.column("kind"), sa.column("approval_status"), sa.column("days"))
        states = {(r.kind, r.approval_status) for r in conn.execute(sa.select(t.c.kind, t.c.approval_status))}
    assert {("leave", "approved"), ("leave", "pending"), ("expense", "approved"), ("expense", "pending"),
            ("loan", "rejected"), ("general", "draft")} <= states
    client = app.test_client()
    from .support import login
    login(client, "zhang.wei", "demo-pass-1")  # the five-day leave waits for the department head
    inbox = client.get("/api/v1/approvals/inbox").get_json()
    assert [(i["entity"], i["step"]) for i in inbox["items"]] == [("office_approval", "department_head")]
    page = client.get("/").get_data(as_text=True)
    assert 'id="mc-team-activity"' in page and 'id="mc-approvals-waiting"' in page
    for path in ("/office/calendar", "/office/contacts", "/office/announcements", "/r/task?view=assigned_by_me",
                 "/r/task?view=board", "/r/office_approval/new?kind=leave"):
        assert client.get(path).status_code == 200, path
    assert "13901000004" in client.get("/office/contacts").get_data(as_text=True)
    # a second run changes nothing
    from metacrm.runtime.demo_office import load_office_demo
    assert load_office_demo(rt) == {}


@pytest.fixture
def office_demo(make_app, monkeypatch):
    from werkzeug.security import generate_password_hash

    from metacrm.runtime import accounts
    from metacrm.runtime.demo import load_demo_data

    monkeypatch.setattr(accounts, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1000"))
    app = make_app()
    rt = app.extensions[EXTENSION]
    with rt.engine.begin() as conn:
        install_seed(conn, "crm-default")
        install_seed(conn, "office")
    rt.invalidate()
    return app, load_demo_data(rt, customers=12, seed=3)


def test_schedule_reminders_go_to_the_owner_and_participants_once(office, frozen):
    from metacrm.runtime.jobs import run_jobs

    app, client, ids, h, _ = office
    rt = app.extensions[EXTENSION]
    now = dt.datetime(2026, 6, 15, 1, 0, tzinfo=dt.timezone.utc)
    frozen(now)
    soon = _create(client, h, "liu.yang", "schedule", {
        "title": "客户会议", "start_at": (now + dt.timedelta(minutes=40)).isoformat(),
        "end_at": (now + dt.timedelta(minutes=100)).isoformat(), "reminder_minutes": 30, "location": "A座",
        "participants": [{"user": ids["chen.jing"]}]})
    _create(client, h, "liu.yang", "schedule", {
        "title": "下周的会", "start_at": (now + dt.timedelta(days=7)).isoformat(),
        "end_at": (now + dt.timedelta(days=7, hours=1)).isoformat(), "reminder_minutes": 15})
    assert run_jobs(rt, ["schedule_reminders"])["schedule_reminders"] == {"reminded": 0, "notified": 0}
    frozen(now + dt.timedelta(minutes=11))  # 29 minutes before: inside the 30-minute window
    assert run_jobs(rt, ["schedule_reminders"])["schedule_reminders"] == {"reminded": 1, "notified": 2}
    assert run_jobs(rt, ["schedule_reminders"])["schedule_reminders"] == {"reminded": 0, "notified": 0}
    with rt.engine.connect() as conn:
        n = systables.notifications
        rows = conn.execute(sa.select(n.c.user_id, n.c.title, n.c.link).where(n.c.kind == "schedule_reminder")).all()
    assert sorted(r.user_id for r in rows) == sorted([ids["liu.yang"], ids["chen.jing"]])
    assert rows[0].title["zh"] == "29 分钟后：客户会议 @ A座" and rows[0].link == f"/r/schedule/{soon['id']}"
    # moved to later: reminded again for the new time, when that comes
    r = client.patch(f"/api/v1/records/schedule/{soon['id']}", headers=h["liu.yang"], json={
        "version": soon["version"], "start_at": (now + dt.timedelta(hours=3)).isoformat(),
        "end_at": (now + dt.timedelta(hours=4)).isoformat()})
    assert r.status_code == 200, r.get_json()
    frozen(now + dt.timedelta(hours=2, minutes=40))
    assert run_jobs(rt, ["schedule_reminders"])["schedule_reminders"] == {"reminded": 1, "notified": 2}
