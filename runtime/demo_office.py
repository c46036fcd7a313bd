"""Demo data for the office module: a few weeks of office life at the demo company.

`load_office_demo(rt)` runs at the end of `load_demo_data` (`metacrm demo`) when the
`office` template is installed (as `metacrm init` does) and the demo users exist:

- phone numbers on the staff accounts (the address book);
- announcements from HR and the general manager (company-wide, pinned, one for the
  sales department only), some already read by some people;
- schedules around today for the sales staff: customer visits linked to their own
  customers, team meetings with participants, an all-day trip;
- tasks the team leads assign to their reps (some with subtasks and participants), in
  every status, and reps' own tasks;
- daily work logs of the last working days, some with their manager's comment;
- check-ins at customers' addresses, at the office and in the field;
- office approvals of every kind, moved through the `office_approval` workflow by the
  people on their route: approved, rejected, pending at each step, and a draft.

Every record goes through `create_record` / `fire_transition` acting as its owner or
approver, so validation, permissions and the approval routing apply as for a user.
Deterministic for a `seed`; idempotent (returns {} once announcements exist, when the
module is not installed, or without the demo users).
"""
from __future__ import annotations

import datetime as dt
import random
from typing import Any

import sqlalchemy as sa

from . import systables
from .accounts import find_account, principal_for
from .catalog import Catalog, Runtime
from .clock import utcnow
from .compiler import location_columns
from .office.announcements import mark_read
from .principal import Principal
from .records import create_record
from .workflow.engine import fire_transition

OFFICE_ENTITIES = ("schedule", "task", "work_log", "announcement", "checkin", "office_approval")
REPS = ("liu.yang", "chen.jing", "wu.ting", "sun.lei", "emily.chen")
LEADS = {"li.na": ("liu.yang", "chen.jing"), "zhou.hao": ("wu.ting", "sun.lei", "emily.chen")}
SALES_STAFF = ("zhang.wei", "li.na", "zhou.hao") + REPS

ANNOUNCEMENTS = (
    ("zheng.xin", "2026年春节放假安排 / Spring Festival holiday", "all", True, 20,
     "春节假期为2月14日至2月22日，共9天；2月15日（周日）、2月28日（周六）正常上班。\n"
     "The Spring Festival holiday runs from 14 to 22 February; Sunday 15 and Saturday 28 February are working days."),
    ("zheng.xin", "新版费用报销制度 / New expense policy", "all", False, 12,
     "自下月起，单笔5000元及以上的报销需总经理审批；发票须在费用发生后30天内提交。\n"
     "From next month, claims of ¥5,000 or more need the general manager's approval; submit invoices within 30 days."),
    ("wang.jun", "第三季度销售冲刺启动会 / Q3 sales kick-off", "sales", False, 5,
     "周五下午3点在大会议室召开销售部季度启动会，请各组组长准备本组目标与重点客户清单。\n"
     "Friday 3 pm, main meeting room: team leads bring their targets and key-account lists."),
    ("zheng.xin", "办公室网络升级通知 / Office network upgrade", "all", False, 1,
     "本周六上午9点至12点进行网络设备升级，期间无法访问内网系统。\n"
     "Saturday 9:00-12:00 the office network is upgraded; internal systems are unavailable."),
)

TASKS = (
    ("整理重点客户回访名单", "Compile the key-account call-back list"),
    ("准备云服务方案报价", "Prepare the cloud-services quotation"),
    ("更新季度销售预测", "Update the quarterly sales forecast"),
    ("跟进逾期回款", "Chase overdue receivables"),
    ("组织产品培训", "Organise the product training"),
    ("完善客户资料", "Complete customer records"),
)
LOG_LINES = (
    "电话回访{c}，确认了下季度的采购计划。", "拜访{c}，演示了新版系统，对方反馈积极。",
    "整理{c}的报价单并提交审批。", "与{c}沟通合同条款，约定下周签约。", "参加部门周会，汇报本周进展。",
)
PLAN_LINES = ("继续跟进{c}的报价确认。", "准备下周的客户演示材料。", "整理本月回款计划。", "拜访两家新客户。")
COMMENTS = ("不错，继续保持。", "报价前先和我确认一下折扣。", "注意回款节点。", "Good progress — keep the customer updated.")


def _installed(catalog: Catalog) -> bool:
    return all(e in catalog.entities and not catalog.entities[e].entity.archived for e in OFFICE_ENTITIES)


def _staff(conn: sa.Connection) -> dict[str, Principal]:
    out = {}
    for name in SALES_STAFF + ("wang.jun", "huang.li", "zheng.xin"):
        account = find_account(conn, name)
        if account is not None:
            out[name] = principal_for(conn, account)
    return out


def _customers(conn: sa.Connection, catalog: Catalog, owner: int, n: int) -> list[dict[str, Any]]:
    rt = catalog.get("customer")
    t = rt.table
    lat, lng, addr = location_columns("address")
    cols = [t.c.id, t.c.name] + ([t.c[lat], t.c[lng], t.c[addr]] if lat in t.c else [])
    rows = conn.execute(sa.select(*cols).where(t.c.owner == owner).order_by(t.c.id).limit(n)).mappings()
    return [dict(r) for r in rows]


def _at(day: dt.date, hour: int, minute: int = 0) -> str:
    """A local (UTC+8, the demo company's) time on `day` as an ISO string."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.timezone(dt.timedelta(hours=8))).isoformat()


def _working_days(today: dt.date, back: int) -> list[dt.date]:
    days, day = [], today
    while len(days) < back:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return list(reversed(days))


def _announcements(conn: sa.Connection, catalog: Catalog, staff: dict[str, Principal], today: dt.date,
                   rng: random.Random) -> int:
    n = 0
    for author, title, scope, pinned, days_ago, content in ANNOUNCEMENTS:
        if author not in staff:
            continue
        payload: dict[str, Any] = {"title": title, "content": content, "pinned": pinned,
                                   "publish_date": (today - dt.timedelta(days=days_ago)).isoformat(), "scope": "all"}
        if scope == "sales":
            payload.update(scope="department", target_department=staff["zhang.wei"].department_id
                           if "zhang.wei" in staff else None)
        record = create_record(conn, catalog, staff[author], "announcement", payload)
        n += 1
        for name, p in staff.items():
            if days_ago > 3 and rng.random() < 0.6:
                mark_read(conn, p, record["id"])
    return n


def _schedules(conn: sa.Connection, catalog: Catalog, staff: dict[str, Principal], today: dt.date,
               rng: random.Random) -> int:
    n = 0
    for lead, reps in LEADS.items():
        if lead not in staff:
            continue
        monday = today - dt.timedelta(days=today.weekday())
        for week in (0, 1):
            create_record(conn, catalog, staff[lead], "schedule", {
                "title": "华北组周例会 / Team weekly" if lead == "li.na" else "华东组周例会 / Team weekly",
                "start_at": _at(monday + dt.timedelta(days=7 * week), 9, 30),
                "end_at": _at(monday + dt.timedelta(days=7 * week), 10, 30), "location": "3号会议室",
                "reminder_minutes": 15, "participants": [{"user": staff[r].user_id} for r in reps if r in staff]})
            n += 1
    for name in REPS + ("li.na", "zhou.hao"):
        p = staff.get(name)
        if p is None:
            continue
        for i, customer in enumerate(_customers(conn, catalog, p.user_id, 4)):  # type: ignore[arg-type]
            day = today + dt.timedelta(days=rng.randrange(-10, 12)) if i else today
            hour = rng.choice((10, 14, 15, 16))
            create_record(conn, catalog, p, "schedule", {
                "title": f"拜访{customer['name']}", "start_at": _at(day, hour), "end_at": _at(day, hour + 1, 30),
                "location": customer.get("address_address") or "", "reminder_minutes": 30,
                "related": {"entity": "customer", "id": customer["id"]}})
            n += 1
    if "emily.chen" in staff:
        start = today + dt.timedelta(days=3)
        create_record(conn, catalog, staff["emily.chen"], "schedule", {
            "title": "Shenzhen customer trip / 深圳出差", "all_day": True, "start_at": _at(start, 0),
            "end_at": _at(start + dt.timedelta(days=2), 23, 59), "location": "深圳"})
        n += 1
    return n


def _tasks(conn: sa.Connection, catalog: Catalog, staff: dict[str, Principal], today: dt.date,
           rng: random.Random) -> int:
    n = 0
    statuses = ("todo", "doing", "done", "todo", "doing", "cancelled")
    for lead, reps in LEADS.items():
        if lead not in staff:
            continue
        for i, rep in enumerate(r for r in reps if r in staff):
            zh, en = TASKS[(i + len(lead)) % len(TASKS)]
            parent = create_record(conn, catalog, staff[lead], "task", {
                "title": f"{zh} / {en}", "assignee": staff[rep].user_id, "priority": rng.choice(("high", "normal")),
                "due_date": (today + dt.timedelta(days=rng.randrange(-2, 10))).isoformat(),
                "status": statuses[i % len(statuses)], "description": f"{zh}，完成后在任务中更新进度。",
                "participants": [{"user": staff[lead].user_id}]})
            n += 1
            for j in range(2):
                create_record(conn, catalog, staff[lead], "task", {
                    "title": f"{zh}（第{j + 1}部分）", "assignee": staff[rep].user_id, "parent": parent["id"],
                    "due_date": (today + dt.timedelta(days=j + 1)).isoformat(), "status": ("done", "todo")[j]})
                n += 1
    for rep in REPS:
        if rep in staff:
            zh, en = TASKS[rng.randrange(len(TASKS))]
            create_record(conn, catalog, staff[rep], "task", {
                "title": f"{zh} / {en}", "assignee": staff[rep].user_id, "priority": "low",
                "due_date": today.isoformat(), "status": "todo"})
            n += 1
    return n


def _work_logs(conn: sa.Connection, catalog: Catalog, staff: dict[str, Principal], today: dt.date,
               rng: random.Random) -> int:
    n = 0
    managers = {rep: lead for lead, reps in LEADS.items() for rep in reps}
    for rep in REPS:
        p = staff.get(rep)
        if p is None:
            continue
        customers = _customers(conn, catalog, p.user_id, 5) or [{"id": None, "name": "客户"}]  # type: ignore[arg-type]
        for day in _working_days(today, 5):
            c = rng.choice(customers)
            payload: dict[str, Any] = {
                "type": "daily", "log_date": day.isoformat(),
                "done_today": rng.choice(LOG_LINES).format(c=c["name"]) + "\n" + rng.choice(LOG_LINES).format(c=c["name"]),
                "plans": rng.choice(PLAN_LINES).format(c=c["name"]), "customer": c["id"]}
            lead = managers.get(rep)
            if lead in staff and rng.random() < 0.4:
                payload["comments"] = [{"reviewer": staff[lead].user_id, "comment": rng.choice(COMMENTS)}]
            create_record(conn, catalog, p, "work_log", payload)
            n += 1
    return n


def _checkins(conn: sa.Connection, catalog: Catalog, staff: dict[str, Principal], today: dt.date,
              rng: random.Random) -> int:
    n = 0
    office = {"lat": 39.9087, "lng": 116.3975, "address": "北京市东城区东长安街1号 云数科技"}
    for rep in REPS:
        p = staff.get(rep)
        if p is None:
            continue
        for day in _working_days(today, 3):
            create_record(conn, catalog, p, "checkin", {"type": "office", "checked_at": _at(day, 8, rng.randrange(40, 59)),
                                                        "location": office})
            n += 1
        for c in _customers(conn, catalog, p.user_id, 2):  # type: ignore[arg-type]
            if c.get("address_lat") is None:
                continue
            day = rng.choice(_working_days(today, 5))
            create_record(conn, catalog, p, "checkin", {
                "type": "visit", "checked_at": _at(day, 14, rng.randrange(0, 59)), "customer": c["id"],
                "location": {"lat": float(c["address_lat"]), "lng": float(c["address_lng"]),
                             "address": c.get("address_address") or c["name"]}, "note": "现场拜访"})
            n += 1
    return n


def _approve_through(conn: sa.Connection, catalog: Catalog, staff: dict[str, Principal], record_id: int,
                     steps: int, reject_at: int | None = None) -> None:
    """Have whoever is pending decide `steps` times (approve, or reject at step `reject_at`)."""
    A, T = systables.approvals, systables.approval_tasks
    by_id = {p.user_id: p for p in staff.values()}
    for i in range(steps):
        row = conn.execute(sa.select(T.c.user_id).select_from(T.join(A, A.c.id == T.c.approval_id)).where(
            A.c.entity == "office_approval", A.c.record_id == record_id, A.c.status == "pending",
            T.c.status == "pending").order_by(T.c.id).limit(1)).first()
        if row is None or row.user_id not in by_id:
            return
        decision = "reject" if reject_at == i else "approve"
        fire_transition(conn, catalog, by_id[row.user_id], "office_approval", record_id, decision,
                        {"comment": "请补充发票" if decision == "reject" else "同意"})
        if decision == "reject":
            return


def _office_approvals(conn: sa.Connection, catalog: Catalog, staff: dict[str, Principal], today: dt.date) -> int:
    """(who, payload, approvals to give, reject at) — each kind at a different point of its route."""
    nxt = today + dt.timedelta(days=7)
    plans: list[tuple[str, dict[str, Any], int, int | None]] = [
        ("liu.yang", {"kind": "leave", "subject": "年假", "leave_type": "annual", "days": "2",
                      "start_at": _at(nxt, 9), "end_at": _at(nxt + dt.timedelta(days=1), 18)}, 1, None),
        ("chen.jing", {"kind": "leave", "subject": "婚假", "leave_type": "marriage", "days": "5",
                       "start_at": _at(nxt, 9), "end_at": _at(nxt + dt.timedelta(days=4), 18)}, 1, None),
        ("wu.ting", {"kind": "trip", "subject": "杭州客户拜访出差", "destination": "杭州", "days": "2",
                     "start_at": _at(nxt, 8), "end_at": _at(nxt + dt.timedelta(days=1), 20)}, 1, None),
        ("sun.lei", {"kind": "overtime", "subject": "投标文件加班", "hours": "3",
                     "start_at": _at(today, 18), "end_at": _at(today, 21)}, 0, None),
        ("liu.yang", {"kind": "expense", "subject": "客户招待费", "amount": "860.00",
                      "lines": [{"item": "meals", "amount": "860.00", "note": "与客户晚餐"}]}, 2, None),
        ("emily.chen", {"kind": "expense", "subject": "Shenzhen trip expenses", "amount": "6800.00",
                        "lines": [{"item": "travel", "amount": "4200.00"}, {"item": "meals", "amount": "2600.00"}]},
         2, None),
        ("sun.lei", {"kind": "loan", "subject": "备用金借款", "amount": "3000.00",
                     "repay_date": (today + dt.timedelta(days=30)).isoformat()}, 2, 1),
        ("chen.jing", {"kind": "general", "subject": "申请新笔记本电脑", "content": "现有电脑已使用5年，运行缓慢。"}, 0, None),
    ]
    n = 0
    for i, (who, payload, approvals, reject_at) in enumerate(plans):
        p = staff.get(who)
        if p is None:
            continue
        record = create_record(conn, catalog, p, "office_approval", payload)
        n += 1
        if i == len(plans) - 1:
            continue  # left as a draft
        fire_transition(conn, catalog, p, "office_approval", record["id"], "submit", {})
        _approve_through(conn, catalog, staff, record["id"], approvals, reject_at)
    return n


PHONES = {"wang.jun": "13901000001", "zhang.wei": "13901000002", "li.na": "13901000003", "liu.yang": "13901000004",
          "chen.jing": "13901000005", "zhou.hao": "13901000006", "wu.ting": "13901000007", "sun.lei": "13901000008",
          "emily.chen": "13901000009", "huang.li": "13901000010", "zheng.xin": "13901000011"}


def load_office_demo(rt: Runtime, *, seed: int = 7) -> dict[str, int]:
    """Fill the office module for the demo users (see the module docstring); rows made
    per kind, or {} when there is nothing to do."""
    rng = random.Random(seed)
    today = utcnow().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    with rt.engine.begin() as conn:
        catalog = rt.catalog(conn)
        if not _installed(catalog):
            return {}
        staff = _staff(conn)
        if not all(name in staff for name in ("li.na", "liu.yang", "zheng.xin")):
            return {}
        if conn.execute(sa.select(catalog.get("announcement").table.c.id).limit(1)).first() is not None:
            return {}
        u = systables.users
        for name, phone in PHONES.items():
            conn.execute(u.update().where(u.c.username == name, u.c.phone.is_(None)).values(phone=phone))
        return {"announcements": _announcements(conn, catalog, staff, today, rng),
                "schedules": _schedules(conn, catalog, staff, today, rng),
                "tasks": _tasks(conn, catalog, staff, today, rng),
                "work_logs": _work_logs(conn, catalog, staff, today, rng),
                "checkins": _checkins(conn, catalog, staff, today, rng),
                "office_approvals": _office_approvals(conn, catalog, staff, today)}
