#!/usr/bin/env python
"""Record-service benchmark: metacrm's list and create paths vs the same work hand-written
in SQLAlchemy Core, side by side in one run, on a freshly built database holding the
default CRM and N (default 100,000) customers.

    python benchmarks/bench_records.py                       # SQLite in a temp dir
    python benchmarks/bench_records.py --database-url 'postgresql://postgres@/bench?host=/tmp/pg&port=5433'
    python benchmarks/bench_records.py --rows 20000 --repeat 9 --profile

A PostgreSQL database given with --database-url is WIPED (its `public` schema is dropped
and recreated; the database is created when missing). Only point it at a throwaway DB.

Times are medians over interleaved runs (metacrm and hand-written alternate, in rotating
order, after a warm-up), so machine drift hits both sides alike; the ratio is what to
read, the absolute milliseconds depend on the machine. See benchmarks/README.md.
It exits 0 whatever the outcome: PASS/FAIL is reported, not enforced.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import decimal
import importlib.metadata
import io
import json
import os
import platform as py_platform
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

import sqlalchemy as sa

from metacrm.app import create_app
from metacrm.runtime import accounts, systables
from metacrm.runtime.db import normalise_url
from metacrm.runtime.metastore import install_seed
from metacrm.runtime.migrate import upgrade_system_tables
from metacrm.runtime.query import build_list_query, list_records, parse_list_args, query_context
from metacrm.runtime.records import create_record, dump_row
from metacrm.runtime.web.context import EXTENSION

ENTITY = "customer"
SALES_PASSWORD = "bench-pass-1"
UTC = dt.timezone.utc

# ------------------------------------------------------------------------ the data

CITIES = ["北京", "上海", "深圳", "广州", "杭州", "成都", "武汉", "南京", "苏州", "西安", "重庆", "天津",
          "青岛", "厦门", "长沙", "合肥", "宁波", "无锡"]
CN_CORES = ["华信", "宏达", "鼎盛", "创新", "远航", "金桥", "中科", "恒通", "博远", "瑞丰", "天成", "嘉禾",
            "新锐", "联创", "汇通", "盛世", "东方", "卓越", "云帆", "百川", "星河", "海纳", "智源", "国泰"]
CN_SUFFIX = {
    "it": ["科技有限公司", "信息技术有限公司", "网络科技有限公司", "软件股份有限公司"],
    "manufacturing": ["机械制造有限公司", "精密仪器有限公司", "电子制造有限公司", "新材料股份有限公司"],
    "finance": ["投资管理有限公司", "融资租赁有限公司", "资产管理有限公司"],
    "education": ["教育科技有限公司", "培训学校", "职业技术学院"],
    "healthcare": ["医疗器械有限公司", "生物科技有限公司", "医药有限公司"],
    "real_estate": ["置业有限公司", "房地产开发有限公司", "物业管理有限公司"],
    "retail": ["商贸有限公司", "百货有限公司", "连锁超市有限公司"],
    "logistics": ["物流有限公司", "供应链管理有限公司", "国际货运代理有限公司"],
    "energy": ["能源有限公司", "新能源科技有限公司", "电力工程有限公司"],
    "government": ["市政工程管理处", "公共资源交易中心", "人民医院"],
    "services": ["咨询有限公司", "企业管理咨询有限公司", "人力资源服务有限公司"],
    "other": ["实业有限公司", "贸易有限公司", "集团有限公司"],
}
EN_FIRST = ["Blue", "Golden", "Pacific", "Northern", "Silver", "Bright", "Summit", "Global", "Pioneer",
            "Evergreen", "Redwood", "Atlas", "Harbor", "Crystal", "Orion", "Maple", "Falcon", "Nova"]
EN_SECOND = ["River", "Peak", "Star", "Bridge", "Oak", "Crest", "Stone", "Wave", "Field", "Gate", "Point",
             "Line", "Works", "Labs", "Way"]
EN_SUFFIX = {
    "it": ["Technologies", "Software", "Systems", "Digital"], "manufacturing": ["Manufacturing", "Industries",
                                                                              "Precision"],
    "finance": ["Capital", "Financial", "Partners"], "education": ["Academy", "Learning", "Institute"],
    "healthcare": ["Medical", "Health", "Biotech"], "real_estate": ["Properties", "Realty", "Estates"],
    "retail": ["Retail", "Stores", "Trading"], "logistics": ["Logistics", "Freight", "Shipping"],
    "energy": ["Energy", "Power", "Solar"], "government": ["Municipal Services", "Public Works"],
    "services": ["Consulting", "Advisory", "Services"], "other": ["Group", "Holdings", "Enterprises"],
}
EN_FORM = ["Ltd", "Inc.", "Co., Ltd.", "LLC", "GmbH", "Pte. Ltd."]
LEVELS = (["A", "B", "C"], [15, 50, 35])
INDUSTRIES = (list(CN_SUFFIX), [22, 16, 7, 6, 7, 5, 10, 7, 4, 3, 8, 5])
SOURCES = (["promotion", "search_engine", "advertising", "referral", "online_signup", "exhibition",
            "phone_inquiry", "cold_call", "other"], [8, 18, 10, 20, 14, 10, 8, 9, 3])
SCALES = (["1-19", "20-99", "100-499", "500-999", "1000+", None], [20, 30, 22, 8, 10, 10])
TAGS = ["strategic", "long_term", "high_potential", "price_sensitive", "referrer", "at_risk"]
DEPARTMENTS = ["华东销售部", "华北销售部", "华南销售部", "Key Accounts", "Inside Sales"]


def _pick(rng: random.Random, choices: tuple[list[Any], list[int]]) -> Any:
    return rng.choices(choices[0], weights=choices[1])[0]


def company_name(rng: random.Random, industry: str) -> tuple[str, bool]:
    if rng.random() < 0.62:
        return f"{rng.choice(CITIES)}{rng.choice(CN_CORES)}{rng.choice(CN_SUFFIX[industry])}", True
    return (f"{rng.choice(EN_FIRST)} {rng.choice(EN_SECOND)} {rng.choice(EN_SUFFIX[industry])} "
            f"{rng.choice(EN_FORM)}", False)


def customer_rows(rng: random.Random, n: int, now: dt.datetime, users: list[tuple[int, int]],
                  admin_id: int) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """n customer rows (column values, ids 1..n in created_at order) and the last number used per year."""
    span = 730 * 86400
    created = sorted(now - dt.timedelta(seconds=rng.random() * span) for _ in range(n))
    per_year: dict[int, int] = {}
    rows = []
    for i, created_at in enumerate(created, start=1):
        industry = _pick(rng, INDUSTRIES)
        level = _pick(rng, LEVELS)
        name, chinese = company_name(rng, industry)
        per_year[created_at.year] = per_year.get(created_at.year, 0) + 1
        in_pool = rng.random() < 0.05
        owner, dept = (None, None) if in_pool else rng.choice(users)
        tags = rng.sample(TAGS, k=rng.choice([0, 0, 0, 1, 1, 2]))
        age = (now - created_at).total_seconds()
        updated_at = created_at + dt.timedelta(seconds=rng.random() * age * 0.5)
        followed = rng.random() < 0.7
        located = rng.random() < 0.3
        slug = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))
        rows.append({
            "id": i, "version": rng.choice([1, 1, 1, 2, 3]),
            "created_at": created_at, "created_by": owner or admin_id,
            "updated_at": updated_at, "updated_by": owner or admin_id,
            "owner": owner, "department": dept,
            "code": f"CUS-{created_at.year}-{per_year[created_at.year]:05d}",
            "name": name, "level": level, "industry": industry, "source": _pick(rng, SOURCES),
            "deal_status": "sold" if rng.random() < 0.3 else "unsold",
            "tags": "|" + "|".join(tags) + "|" if tags else None,
            "phone": f"0{rng.choice([10, 21, 755, 20, 571, 28])}-{rng.randint(5000000, 89999999)}"
            if chinese or rng.random() < 0.5 else f"+1 {rng.randint(200, 999)}-555-{rng.randint(1000, 9999)}",
            "mobile": f"1{rng.choice([3, 5, 7, 8, 9])}{rng.randint(100000000, 999999999)}"
            if rng.random() < 0.8 else None,
            "email": f"contact@{slug}.com" if rng.random() < 0.6 else None,
            "website": f"https://www.{slug}.com" if rng.random() < 0.4 else None,
            "address_lat": decimal.Decimal(f"{rng.uniform(22, 40):.7f}") if located else None,
            "address_lng": decimal.Decimal(f"{rng.uniform(104, 122):.7f}") if located else None,
            "address_address": f"{rng.choice(CITIES)}市{rng.choice(['人民路', '中山路', '建设路', '解放路'])}"
                               f"{rng.randint(1, 999)}号" if located else None,
            "scale": _pick(rng, SCALES),
            "parent": rng.randint(1, i - 1) if i > 100 and rng.random() < 0.03 else None,
            "credit_limit": decimal.Decimal(rng.randrange(10, 500) * 10000) if level == "A" else None,
            "pool": "公海" if in_pool else None,
            "locked": rng.random() < 0.05,
            "next_followup_at": now + dt.timedelta(hours=rng.randint(-240, 720)) if rng.random() < 0.4 else None,
            "last_followup_at": created_at + dt.timedelta(seconds=rng.random() * age) if followed else None,
            "remark": rng.choice(["老客户介绍，需重点跟进", "Asked for a quote in Q3", "预算审批中", None, None, None]),
        })
    return rows, per_year


# ------------------------------------------------------------------------ setting up

def reset_postgres(url: str) -> None:
    """Drop and recreate the public schema (creating the database when it doesn't exist)."""
    u = sa.engine.make_url(normalise_url(url))
    try:
        engine = sa.create_engine(u)
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
        admin = sa.create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{u.database}"')
        admin.dispose()
        engine = sa.create_engine(u)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()



def bulk_load(rt: Any, catalog: Any, table: sa.Table, data: list[dict[str, Any]],
              per_year: dict[int, int]) -> None:
    """Insert generated customers with Core in batches, keep the autonumber counters ahead
    of the loaded codes (as if the service had numbered them), and refresh statistics."""
    with rt.engine.begin() as conn:
        for start in range(0, len(data), 5000):
            conn.execute(table.insert(), data[start:start + 5000])
        fmt = catalog.entities[ENTITY].entity.naming["autonumber"]
        conn.execute(systables.sequences.insert(), [
            {"key": f"{ENTITY}.code:{fmt.replace('{YYYY}', str(year))}", "value": last}
            for year, last in per_year.items()])
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                 f"(SELECT max(id) FROM {table.name}))")
    if rt.engine.dialect.name == "postgresql":
        with rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with rt.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")

@dataclass
class Setup:
    app: Any
    runtime: Any
    catalog: Any
    principal: Any
    sales_username: str
    users: list[tuple[int, int]]
    seconds: dict[str, float] = field(default_factory=dict)


def build_instance(url: str, instance_path: str, rows: int, seed: int) -> Setup:
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench-secret", "TESTING": True,
                      "INSTANCE_PATH": instance_path, "TIMEZONE": "UTC"})
    rt = app.extensions[EXTENSION]
    upgrade_system_tables(rt.engine)
    now = dt.datetime.now(UTC)
    with rt.engine.begin() as conn:
        admin = accounts.create_user(conn, "admin", "admin-pass-1", display_name="Admin", is_admin=True,
                                     roles=("admin",))
        install_seed(conn, "crm-default", by=admin.id)
        d = systables.departments
        dept_ids = [conn.execute(d.insert().values(name=name, position=i, created_at=now).returning(d.c.id))
                    .scalar_one() for i, name in enumerate(DEPARTMENTS)]
        # One password hash for all reps (scrypt is slow on purpose); rows inserted in bulk.
        # Role "admin" reads every row with no field rules: this benchmark compares the
        # list and create machinery with hand-written Core; the cost of data scopes is
        # bench_scope.py's subject.
        proto = accounts.create_user(conn, "sales01", SALES_PASSWORD, display_name="王芳",
                                     department_id=dept_ids[0], roles=("admin",))
        pw_hash = conn.execute(sa.select(systables.users.c.password_hash)
                               .where(systables.users.c.id == proto.id)).scalar_one()
        names = ["李强", "张伟", "刘洋", "陈静", "Emily Chen", "David Wang", "杨磊", "赵敏", "Michael Liu",
                 "黄丽", "周杰", "吴婷", "Sarah Lin", "徐涛", "孙悦", "马骏", "朱琳", "胡斌", "Kevin Zhou"]
        u = systables.users
        conn.execute(u.insert(), [{"username": f"sales{i + 2:02d}", "password_hash": pw_hash, "display_name": n,
                                   "language": "zh" if not n.isascii() else "en", "is_admin": False,
                                   "active": True, "department_id": dept_ids[(i + 1) % len(dept_ids)],
                                   "created_at": now} for i, n in enumerate(names)])
        users = [(r.id, r.department_id) for r in conn.execute(
            sa.select(u.c.id, u.c.department_id).where(u.c.username.like("sales%")).order_by(u.c.id))]
        conn.execute(systables.user_roles.insert(), [{"user_id": uid, "role": "sales"} for uid, _ in users[1:]])
    rt.invalidate()
    catalog = rt.catalog()
    seconds["install (system tables, crm-default, users)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    table = catalog.entities[ENTITY].table
    data, per_year = customer_rows(random.Random(seed), rows, now, users, admin.id)
    seconds["generate rows"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bulk_load(rt, catalog, table, data, per_year)
    seconds[f"bulk insert {rows:,} rows + ANALYZE"] = time.perf_counter() - t0
    del data
    with rt.engine.connect() as conn:
        sales = accounts.get_account(conn, proto.id)
        principal = accounts.principal_for(conn, sales)
    return Setup(app, rt, catalog, principal, sales.username, users, seconds)


# ------------------------------------------------------------------------ measuring

@dataclass
class Row:
    operation: str
    metacrm: list[float]
    hand: list[float]
    target: float | None = None
    #: metacrm[i] and hand[i] were measured in the same round; creates are paired per block.
    group: int = 1
    #: This process's CPU time per call (metacrm, hand): on SQLite, where the database runs in
    #: this process, a second view that other processes' load can't inflate.
    cpu: tuple[list[float], list[float]] | None = None

    @property
    def cpu_ratio(self) -> float | None:
        if not self.cpu:
            return None
        return statistics.median(self.cpu[0]) / statistics.median(self.cpu[1])

    @property
    def mc_ms(self) -> float:
        return statistics.median(self.metacrm)

    @property
    def hand_ms(self) -> float:
        return statistics.median(self.hand)

    @property
    def ratio(self) -> float:
        """The median of the per-round (per-block) ratios: drift and load bursts hit a round's
        two sides alike, so this is steadier than a ratio of two medians."""
        g = self.group
        return statistics.median(statistics.median(self.metacrm[k:k + g]) / statistics.median(self.hand[k:k + g])
                                 for k in range(0, min(len(self.metacrm), len(self.hand)), g))

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "info"
        return "PASS" if self.ratio <= self.target else "FAIL"


class StatementLog:
    """The SQL statements an engine runs (BEGIN included), summarised as `VERB table`, and
    how long the driver took for each (cursor.execute: the database's share of a statement)."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.seen: list[str] = []
        self.timings: dict[str, list[float]] = {}
        self._t0 = 0

    @staticmethod
    def summary(statement: str) -> str:
        words = statement.split()
        upper = [w.upper() for w in words]
        verb = upper[0] if upper else "?"
        if verb in ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK"):
            return " ".join(upper[:2] if verb == "BEGIN" else upper[:1])
        table = ""
        for kw in (("INTO",) if verb == "INSERT" else ("UPDATE",) if verb == "UPDATE" else ("FROM",)):
            if kw in upper and upper.index(kw) + 1 < len(words):
                table = words[upper.index(kw) + 1].strip('("')
        return f"{verb} {table}".strip()

    def _before(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        self.seen.append(self.summary(statement))
        self._t0 = time.perf_counter_ns()

    def _after(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        self.timings.setdefault(self.seen[-1], []).append((time.perf_counter_ns() - self._t0) / 1e6)

    def start(self) -> None:
        self.seen, self.timings = [], {}
        sa.event.listen(self.engine, "before_cursor_execute", self._before)
        sa.event.listen(self.engine, "after_cursor_execute", self._after)

    def stop(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._before)
        sa.event.remove(self.engine, "after_cursor_execute", self._after)

    def run(self, fn: Callable[[], Any]) -> list[str]:
        self.start()
        try:
            fn()
        finally:
            self.stop()
        return self.seen


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int, warmup: int) -> dict[str, list[float]]:
    """Each function `repeat` times (after `warmup`), one call of each per round, the order
    rotating every round; milliseconds per call."""
    names = list(fns)
    out: dict[str, list[float]] = {n: [] for n in names} | {n + ":cpu": [] for n in names}
    for i in range(warmup + repeat):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            fns[name]()
            elapsed, cpu = (time.perf_counter_ns() - t0) / 1e6, (time.thread_time_ns() - c0) / 1e6
            if i >= warmup:
                out[name].append(elapsed)
                out[name + ":cpu"].append(cpu)
    return out


@dataclass
class ListCase:
    key: str
    label: str
    args: dict[str, str]
    #: The hand-written statements: (page select, count select), built fresh per call.
    statements: Callable[[], tuple[sa.Select[Any], sa.Select[Any]]]


def hand_statements(t: sa.Table, where: Callable[[], sa.ColumnElement[bool]], order: Callable[[], list[Any]],
                    page: int = 1, size: int = 50) -> Callable[[], tuple[sa.Select[Any], sa.Select[Any]]]:
    def build() -> tuple[sa.Select[Any], sa.Select[Any]]:
        cond = where()
        return (sa.select(t).where(cond).order_by(*order()).limit(size).offset((page - 1) * size),
                sa.select(sa.func.count()).select_from(t).where(cond))
    return build


def hand_list(engine: sa.Engine, case: ListCase) -> dict[str, Any]:
    """The hand-written list endpoint: the two Core statements and a dict per row."""
    with engine.connect() as conn:
        page, count = case.statements()
        rows = conn.execute(page).mappings().all()
        total = conn.execute(count).scalar_one()
    return {"items": [dict(r) for r in rows], "total": total}


def same_result(mc: dict[str, Any], hand: dict[str, Any]) -> bool:
    return mc["total"] == hand["total"] and [r["id"] for r in mc["items"]] == [r["id"] for r in hand["items"]]


def list_cases(s: Setup) -> list[ListCase]:
    t = s.catalog.entities[ENTITY].table
    me = s.principal.user_id
    today = dt.datetime.now(UTC).date()
    start = dt.datetime.combine(today - dt.timedelta(days=29), dt.time(), UTC)
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), UTC)
    searchable = [t.c.code, t.c.name, t.c.phone, t.c.mobile, t.c.email]
    return [
        ListCase("a", "filter level=A & industry in (it, manufacturing), sort=-created_at, page=3 (50 a page)",
                 {"filter": json.dumps([["level", "=", "A"], ["industry", "in", ["it", "manufacturing"]]]),
                  "sort": "-created_at", "page": "3"},
                 hand_statements(t, lambda: sa.and_(t.c.level == "A", t.c.industry.in_(["it", "manufacturing"])),
                                 lambda: [t.c.created_at.desc(), t.c.id.desc()], page=3)),
        ListCase("c1", "q=科技 (ILIKE over the 5 searchable columns), default sort -id, page 1",
                 {"q": "科技"},
                 hand_statements(t, lambda: sa.or_(*(c.ilike("%科技%", escape="\\") for c in searchable)),
                                 lambda: [t.c.id.desc()])),
        ListCase("c2", "filter created_at=last_30_days & owner=$me, sort=-created_at, page 1",
                 {"filter": json.dumps([["created_at", "=", "last_30_days"], ["owner", "=", "$me"]]),
                  "sort": "-created_at"},
                 hand_statements(t, lambda: sa.and_(t.c.created_at >= start, t.c.created_at < end, t.c.owner == me),
                                 lambda: [t.c.created_at.desc(), t.c.id.desc()])),
        ListCase("c3", "no filter, no sort (the API's default: -id), page 1: opening the list",
                 {},
                 hand_statements(t, lambda: sa.true(), lambda: [t.c.id.desc()])),
    ]


def sql_checks(s: Setup, case: ListCase) -> str:
    """Do both sides send the same SQL, and does metacrm's hit SQLAlchemy's compiled cache?"""
    rt = s.runtime
    ent = s.catalog.get(ENTITY)
    mc = build_list_query(ent, None, parse_list_args(case.args), query_context(s.principal, rt.timezone))[:2]
    hand = case.statements()
    dialect = rt.engine.dialect
    texts = [(str(a.compile(dialect=dialect)), str(b.compile(dialect=dialect))) for a, b in zip(mc, hand)]
    same = all(a == b for a, b in texts)
    if not same:
        import difflib
        parts = []
        for a, b in texts:
            sm = difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False)
            for op, i1, i2, j1, j2 in sm.get_opcodes():
                if op != "equal":
                    parts.append(f"metacrm '{' '.join(a.split()[max(0, i1 - 2):i2])}' vs hand "
                                 f"'{' '.join(b.split()[max(0, j1 - 2):j2])}'")
        same_text = "NO (" + "; ".join(dict.fromkeys(parts)) + ")"
    else:
        same_text = "yes"
    with rt.engine.connect() as conn:
        for stmt in (*mc, *hand):
            conn.execute(stmt).all()
        fresh = build_list_query(ent, None, parse_list_args(case.args), query_context(s.principal, rt.timezone))
        hits = [conn.execute(stmt).context.cache_hit.name for stmt in (*fresh[:2], *case.statements())]
    return (f"same SQL text: {same_text}; SQL cache on a 2nd call: metacrm {hits[0]}/{hits[1]}, "
            f"hand {hits[2]}/{hits[3]}")


def bench_lists(s: Setup, repeat: int, warmup: int) -> tuple[list[Row], list[str]]:
    rt, catalog, principal = s.runtime, s.catalog, s.principal
    client = s.app.test_client()
    r = client.post("/api/v1/auth/login", json={"username": s.sales_username, "password": SALES_PASSWORD})
    assert r.status_code == 200, r.get_json()
    rows: list[Row] = []
    notes: list[str] = []

    for case in list_cases(s):
        def service(args: dict[str, str] = case.args) -> dict[str, Any]:
            with rt.engine.connect() as conn:
                return list_records(conn, catalog, principal, ENTITY, parse_list_args(args), rt.timezone)

        def service_with_catalog(args: dict[str, str] = case.args) -> dict[str, Any]:
            with rt.engine.connect() as conn:
                return list_records(conn, rt.catalog(conn), principal, ENTITY, parse_list_args(args), rt.timezone)

        def hand(case: ListCase = case) -> dict[str, Any]:
            return hand_list(rt.engine, case)

        url = f"/api/v1/records/{ENTITY}?{urllib.parse.urlencode(case.args)}"

        def http(url: str = url) -> bytes:
            resp = client.get(url)
            if resp.status_code != 200:
                raise RuntimeError(f"GET {url}: {resp.status_code} {resp.get_data(as_text=True)[:300]}")
            return resp.data

        mc_result, hand_result = service(), hand()
        ok = same_result(mc_result, hand_result)
        if case.key == "a":
            ok = ok and same_result(json.loads(http()), hand_result)
        notes.append(f"{case.key}: {'same' if ok else 'DIFFERENT!'} page and total from both sides "
                     f"({hand_result['total']:,} matching, {len(hand_result['items'])} on the page); "
                     + sql_checks(s, case))
        if case.key == "a":
            log = StatementLog(rt.engine)
            for who, fn in (("metacrm", service), ("a'", service_with_catalog), ("HTTP", http), ("hand", hand)):
                notes.append(f"    statements per call, {who}: {', '.join(log.run(fn))}")
        if case.key == "a":
            times = interleaved({"mc": service, "hand": hand, "mc+catalog": service_with_catalog, "http": http},
                                repeat, warmup)
            rows.append(Row("a.  list, filter + sort + page 3: list_records()", times["mc"], times["hand"], 1.5,
                            cpu=(times["mc:cpu"], times["hand:cpu"])))
            rows.append(Row("a'. same + Runtime.catalog(conn) per call", times["mc+catalog"], times["hand"],
                            cpu=(times["mc+catalog:cpu"], times["hand:cpu"])))
            rows.append(Row("b.  same via HTTP GET (Flask test client)", times["http"], times["hand"],
                            cpu=(times["http:cpu"], times["hand:cpu"])))
        else:
            times = interleaved({"mc": service, "hand": hand}, repeat, warmup)
            what = {"c1": "q= search", "c2": "relative date + $me", "c3": "no filter, default sort"}[case.key]
            rows.append(Row(f"{case.key}. list, {what}: list_records()", times["mc"], times["hand"],
                            cpu=(times["mc:cpu"], times["hand:cpu"])))
    return rows, notes


def list_breakdown(s: Setup, repeat: int) -> list[tuple[str, tuple[float, float]]]:
    """Where the service's time goes for scenario a, step by step: (wall, this process's CPU)
    median ms."""
    rt, catalog, principal = s.runtime, s.catalog, s.principal
    args = list_cases(s)[0].args
    ent = catalog.get(ENTITY)
    req = parse_list_args(args)
    ctx = query_context(principal, rt.timezone)
    page, count, *_ = build_list_query(ent, None, req, ctx)
    with rt.engine.connect() as conn:
        raw_rows = conn.execute(page).mappings().all()

    def med(fn: Callable[[], Any], n: int = repeat) -> tuple[float, float]:
        for _ in range(3):
            fn()
        wall, cpu = [], []
        for _ in range(n):
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            fn()
            wall.append((time.perf_counter_ns() - t0) / 1e6)
            cpu.append((time.thread_time_ns() - c0) / 1e6)
        return statistics.median(wall), statistics.median(cpu)

    def execute_both() -> None:
        with rt.engine.connect() as conn:
            conn.execute(page).mappings().all()
            conn.execute(count).scalar_one()

    def version_check() -> None:
        with rt.engine.connect() as conn:
            rt.catalog(conn)

    client = s.app.test_client()
    client.post("/api/v1/auth/login", json={"username": s.sales_username, "password": SALES_PASSWORD})
    with rt.engine.connect() as conn:
        result = list_records(conn, catalog, principal, ENTITY, req, rt.timezone)
    with s.app.app_context():
        json_ms = med(lambda: s.app.json.response(result).get_data(), 100)  # what jsonify() does
    dialect = rt.engine.dialect
    return [
        ("parse_list_args (JSON filter, sort, page)", med(lambda: parse_list_args(args), 200)),
        ("query_context + build_list_query (validate, coerce values, build both selects)",
         med(lambda: build_list_query(ent, None, req, query_context(principal, rt.timezone)), 200)),
        ("(compiling both selects to SQL: not paid per call while the SQL cache hits)",
         med(lambda: (page.compile(dialect=dialect), count.compile(dialect=dialect)), 50)),
        ("execute page + count on one connection (the database's share)", med(execute_both)),
        ("dump_row x 50 (JSON-ready values)", med(lambda: [dump_row(ent, r) for r in raw_rows], 200)),
        ("hand-written dict(row) x 50, for comparison", med(lambda: [dict(r) for r in raw_rows], 200)),
        ("Runtime.catalog(conn): SELECT max(version) on a fresh connection", med(version_check, 50)),
        ("HTTP: jsonify() of the 50-row answer", json_ms),
        ("HTTP floor: GET /api/v1/auth/me (Flask + session + user loader's 2 connections)",
         med(lambda: client.get("/api/v1/auth/me"), 50)),
    ]


# ------------------------------------------------------------------------ creating

def create_payloads(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        industry = _pick(rng, INDUSTRIES)
        name, _ = company_name(rng, industry)
        level = rng.choice(["A", "B", "B", "C"])
        p: dict[str, Any] = {"name": name, "level": level, "industry": industry, "source": _pick(rng, SOURCES),
                             "phone": f"021-{rng.randint(50000000, 69999999)}",
                             "mobile": f"139{rng.randint(10000000, 99999999)}",
                             "email": f"sales{rng.randint(1, 99999)}@example.com",
                             "tags": rng.sample(TAGS, k=rng.choice([0, 1, 2])),
                             "scale": rng.choice(["20-99", "100-499"]),
                             "remark": "展会获取的线索，已电话沟通"}
        if level == "A":
            p["credit_limit"] = "500000.00"
        if rng.random() < 0.5:
            p["address"] = {"lat": 31.2304, "lng": 121.4737, "address": "上海市黄浦区人民大道200号"}
        out.append(p)
    return out


def raw_values(p: dict[str, Any], user_id: int, dept_id: int | None, code: str) -> dict[str, Any]:
    """What a hand-written create would insert for the same payload (no validation)."""
    now = dt.datetime.now(UTC)
    addr = p.get("address") or {}
    return {
        "version": 1, "created_at": now, "created_by": user_id, "updated_at": now, "updated_by": user_id,
        "owner": user_id, "department": dept_id, "code": code, "name": p["name"], "level": p["level"],
        "industry": p["industry"], "source": p["source"], "deal_status": "unsold",
        "tags": "|" + "|".join(p["tags"]) + "|" if p["tags"] else None,
        "phone": p["phone"], "mobile": p["mobile"], "email": p["email"], "website": None,
        "address_lat": decimal.Decimal(str(addr["lat"])) if addr else None,
        "address_lng": decimal.Decimal(str(addr["lng"])) if addr else None,
        "address_address": addr.get("address"), "scale": p["scale"], "parent": None,
        "credit_limit": decimal.Decimal(p["credit_limit"]) if p.get("credit_limit") else None,
        # `locked` gets its default (false) from the service although it is read-only.
        "pool": None, "locked": False, "next_followup_at": None, "last_followup_at": None,
        "remark": p["remark"],
    }


def bench_creates(s: Setup, count: int, block: int, warmup: int, seed: int) -> tuple[Row, list[str]]:
    rt, catalog, principal = s.runtime, s.catalog, s.principal
    table = catalog.entities[ENTITY].table
    payloads = create_payloads(random.Random(seed + 1), 2 * (count + warmup) + 4)
    serial = iter(range(1, 10**9))

    def service(p: dict[str, Any]) -> Any:
        with rt.engine.begin() as conn:
            return create_record(conn, catalog, principal, ENTITY, p)

    def raw(p: dict[str, Any]) -> Any:
        with rt.engine.begin() as conn:
            return conn.execute(table.insert().values(
                **raw_values(p, principal.user_id, principal.department_id, f"RAW-{next(serial):07d}"))
                .returning(table.c.id)).scalar_one()

    # Check once that both store the same thing (apart from the number and timestamps).
    created = service(payloads[0])
    raw_id = raw(payloads[0])
    with rt.engine.connect() as conn:
        a, b = (dict(conn.execute(sa.select(table).where(table.c.id == i)).mappings().one())
                for i in (created["id"], raw_id))
    skip = {"id", "code", "created_at", "updated_at"}
    diff = [k for k in a if k not in skip and a[k] != b[k]]
    if diff:
        print(f"WARNING: service and raw inserts differ in {diff}", file=sys.stderr)
    log = StatementLog(rt.engine)
    notes = [f"d: the stored rows are equal apart from id, code and timestamps: {'yes' if not diff else diff}",
             f"    statements per call, metacrm: {', '.join(log.run(lambda: service(payloads[-1])))}",
             f"    statements per call, hand: {', '.join(log.run(lambda: raw(payloads[-2])))}"]

    it = iter(payloads[1:-2])
    mc_times: list[float] = []
    raw_times: list[float] = []
    cpu_sink: dict[bool, list[float]] = {True: [], False: []}
    for i in range(warmup):
        service(next(it))
        raw(next(it))
    done = 0
    flip = False
    while done < count:
        n = min(block, count - done)
        order = [(service, mc_times), (raw, raw_times)]
        for fn, sink in (reversed(order) if flip else order):
            for _ in range(n):
                p = next(it)
                t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
                fn(p)
                sink.append((time.perf_counter_ns() - t0) / 1e6)
                cpu_sink[sink is mc_times].append((time.thread_time_ns() - c0) / 1e6)
        done += n
        flip = not flip
    return Row("d.  create 1 customer, 1 transaction: create_record()", mc_times, raw_times, 3.0, group=block,
               cpu=(cpu_sink[True], cpu_sink[False])), notes


def create_breakdown(s: Setup, n: int, seed: int) -> list[tuple[str, tuple[float, float]]]:
    """Where create_record()'s time goes: the service's steps timed by wrapping them (the
    wrappers cost ~1 µs each), n creates, median ms per step."""
    from metacrm.runtime import records

    rt, catalog, principal = s.runtime, s.catalog, s.principal
    # The service's private steps as they are named today; a renamed one is simply not shown.
    steps = [n for n in ("_prepare", "_check_lookups", "_number", "_columns", "record_changes", "get_record")
             if callable(getattr(records, n, None))]
    spent: dict[str, list[float]] = {name: [] for name in steps + ["create_record", "transaction"]}
    cpu: dict[str, list[float]] = {name: [] for name in spent}
    originals = {name: getattr(records, name) for name in steps}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            try:
                return fn(*a, **kw)
            finally:
                spent[name].append((time.perf_counter_ns() - t0) / 1e6)
                cpu[name].append((time.thread_time_ns() - c0) / 1e6)
        return wrapper

    payloads = create_payloads(random.Random(seed + 3), n + 10)
    log = StatementLog(rt.engine)
    try:
        for name in steps:
            setattr(records, name, timed(name, originals[name]))
        for i, p in enumerate(payloads):
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            with rt.engine.begin() as conn:
                t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
                records.create_record(conn, catalog, principal, ENTITY, p)
                t2, c2 = time.perf_counter_ns(), time.thread_time_ns()
            t3, c3 = time.perf_counter_ns(), time.thread_time_ns()
            spent["create_record"].append((t2 - t1) / 1e6)
            spent["transaction"].append(((t1 - t0) + (t3 - t2)) / 1e6)
            cpu["create_record"].append((c2 - c1) / 1e6)
            cpu["transaction"].append(((c1 - c0) + (c3 - c2)) / 1e6)
            if i == 9:  # warm-up done
                for v in (*spent.values(), *cpu.values()):
                    v.clear()
                log.start()
    finally:
        log.stop()
        for name, fn in originals.items():
            setattr(records, name, fn)
    steps = [k for k in steps if spent[k]]
    med = {k: (statistics.median(v), statistics.median(cpu[k])) for k, v in spent.items() if v}
    # Each step runs once per create here (customer has no child tables): the rest per create.
    once = all(len(spent[k]) == len(spent["create_record"]) for k in steps)
    rest = tuple(statistics.median(total - sum(series[k][i] for k in steps)
                                   for i, total in enumerate(series["create_record"]))
                 for series in (spent, cpu)) if once else (float("nan"), float("nan"))
    labels = {
        "_prepare": "_prepare: marshmallow load, defaults, visible/required_when, 2 validation rules",
        "_check_lookups": "_check_lookups: SELECT mc_users + SELECT mc_departments (owner, department)",
        "_number": "_number: autonumber, INSERT .. ON CONFLICT DO UPDATE mc_sequences RETURNING",
        "_columns": "_columns: values -> column values",
        "record_changes": "record_changes: INSERT mc_history",
        "get_record": "get_record: SELECT the new row again + dump_row",
    }
    per_create = max(1, len(spent["create_record"]))
    sql = [(f"    driver time of {name} (x{len(ts) / per_create:g} a create)", (statistics.median(ts), float("nan")))
           for name, ts in log.timings.items()]
    return ([("transaction: pool checkout, BEGIN, COMMIT, return (engine.begin())", med["transaction"]),
             ("create_record() in all", med["create_record"])]
            + [("  " + labels.get(k, k), med[k]) for k in steps]
            + [("  the rest: INSERT ent_customer RETURNING id, glue", rest)]
            + [("  SQL statements (median per statement, cursor.execute only; BEGIN/COMMIT are outside "
                "create_record):", (float("nan"), float("nan")))] + sql)


# ------------------------------------------------------------------------ profiling

WATCH = [
    ("query.py", "parse_list_args"), ("query.py", "build_list_query"), ("query.py", "build_filter"),
    ("query.py", "_coerce"), ("coercion.py", "loader_for"), ("records.py", "dump_row"),
    ("catalog.py", "catalog"), ("records.py", "_prepare"), ("records.py", "_check_payload_keys"),
    ("records.py", "_default_value"), ("records.py", "_truthy"), ("records.py", "python_record"),
    ("records.py", "_check_lookups"), ("records.py", "_number"), ("records.py", "_columns"),
    ("history.py", "record_changes"), ("records.py", "get_record"), ("records.py", "_fetch"),
    ("schema.py", "load"), ("expressions.py", "evaluate"), ("base.py", "execute"), ("base.py", "commit"),
    ("base.py", "_execute_context"), ("elements.py", "compile"), ("base.py", "__enter__"),
    ("base.py", "connect"), ("base.py", "begin"), ("pool/base.py", "checkout"),
]


def profile(label: str, fn: Callable[[], Any], calls: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    stats = pstats.Stats(prof)
    total = sum(v[3] for k, v in stats.stats.items() if k[2] == fn.__name__ and k[0] == __file__) or \
        max(v[3] for v in stats.stats.values())
    lines = [f"--- cProfile: {label}, {calls} calls, {total / calls * 1e3:.3f} ms/call under the profiler",
             f"    {'function':58} {'calls/op':>8} {'cum ms/op':>10} {'% of op':>8}"]
    seen = set()
    rows = []
    for (path, _line, func), (cc, nc, tt, ct, _callers) in stats.stats.items():
        for suffix, name in WATCH:
            if func == name and path.replace(os.sep, "/").endswith(suffix):
                key = (path, func)
                if key in seen:
                    continue
                seen.add(key)
                short = "/".join(path.replace(os.sep, "/").split("/")[-2:])
                rows.append((ct, f"    {short + ':' + func:58} {nc / calls:8.1f} {ct / calls * 1e3:10.3f} "
                                 f"{100 * ct / total:7.1f}%"))
    lines += [r for _, r in sorted(rows, reverse=True)]
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(18)
    top = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(top) if ln.lstrip().startswith("ncalls")), 0)
    lines.append("    top by own time (tottime, whole run):")
    lines += ["    " + ln for ln in top[start:]]
    return "\n".join(lines)


def run_profiles(s: Setup, calls: int, seed: int) -> str:
    rt, catalog, principal = s.runtime, s.catalog, s.principal
    args = list_cases(s)[0].args

    def list_service() -> Any:
        with rt.engine.connect() as conn:
            return list_records(conn, catalog, principal, ENTITY, parse_list_args(args), rt.timezone)

    payloads = iter(create_payloads(random.Random(seed + 2), calls + 5))

    def create_service() -> Any:
        with rt.engine.begin() as conn:
            return create_record(conn, catalog, principal, ENTITY, next(payloads))

    for _ in range(3):
        list_service()
        create_service()
    return "\n\n".join([profile("list_records, scenario a", list_service, calls),
                        profile("create_record, 1 transaction each", create_service, calls)])


# ------------------------------------------------------------------------ reporting

def versions() -> str:
    out = []
    for pkg in ("SQLAlchemy", "Flask", "marshmallow", "alembic", "psycopg", "simpleeval"):
        try:
            out.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ", ".join(out)


def server_version(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            return conn.exec_driver_sql("SHOW server_version").scalar_one()
        return "SQLite " + conn.exec_driver_sql("select sqlite_version()").scalar_one()


def print_table(rows: list[Row], show_cpu: bool) -> None:
    head = ("operation", "metacrm ms", "hand ms", "ratio", "target", "result", "diff ms") + \
        (("cpu ratio",) if show_cpu else ())
    body = [(r.operation, f"{r.mc_ms:.3f}", f"{r.hand_ms:.3f}", f"{r.ratio:.2f}x",
             f"<= {r.target:g}x" if r.target else "-", r.verdict, f"{r.mc_ms - r.hand_ms:+.3f}")
            + ((f"{r.cpu_ratio:.2f}x" if r.cpu_ratio else "-",) if show_cpu else ()) for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    print(fmt(head))
    print(line)
    for b in body:
        print(fmt(b))


def fmt_ms(ms: float) -> str:
    return " " * 9 if ms != ms else f"{ms:9.3f}"  # NaN: nothing to show


def spread(xs: list[float]) -> str:
    q = statistics.quantiles(xs, n=4) if len(xs) >= 4 else [min(xs), statistics.median(xs), max(xs)]
    return f"min {min(xs):.3f} / p25 {q[0]:.3f} / med {statistics.median(xs):.3f} / p75 {q[2]:.3f} / max {max(xs):.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", help="PostgreSQL URL of a THROWAWAY database (its public schema is "
                                           "dropped); default: SQLite in a temporary directory")
    ap.add_argument("--rows", type=int, default=100_000, help="customers to load (default 100000)")
    ap.add_argument("--repeat", type=int, default=20, help="timed runs per list operation (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    ap.add_argument("--creates", type=int, default=300, help="timed creates per side (default 300)")
    ap.add_argument("--block", type=int, default=10, help="creates per alternating block (default 10)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--profile", action="store_true", help="also cProfile the service calls and show where "
                                                            "their time goes")
    ap.add_argument("--profile-calls", type=int, default=100)
    ap.add_argument("--keep", action="store_true", help="keep the temporary SQLite directory")
    args = ap.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="metacrm-bench-")
    url = args.database_url or f"sqlite:///{os.path.join(tmp, 'bench.db')}"
    if url.startswith(("postgres://", "postgresql")):
        reset_postgres(url)
    try:
        print(f"Building the database ({args.rows:,} customers) ...", flush=True)
        s = build_instance(url, os.path.join(tmp, "instance"), args.rows, args.seed)
        engine = s.runtime.engine
        with engine.connect() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(s.catalog.entities[ENTITY].table)).scalar_one()
        print("\n== Environment")
        print(f"database : {engine.dialect.name} ({server_version(engine)}), driver {engine.dialect.driver}, "
              f"url {engine.url.render_as_string(hide_password=True)}")
        print(f"rows     : {n:,} customers, {len(s.users)} sales reps in {len(DEPARTMENTS)} departments, "
              f"catalog version {s.catalog.version}")
        print(f"python   : {sys.version.split()[0]} ({py_platform.platform()}), {os.cpu_count()} CPUs")
        print(f"packages : {versions()}")
        print(f"method   : median of {args.repeat} interleaved runs after {args.warmup} warm-up (lists); "
              f"{args.creates} creates per side in alternating blocks of {args.block}")
        print(f"load     : {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min) on {os.cpu_count()} CPUs "
              "before measuring; other processes' load inflates short operations most")
        for step, secs in s.seconds.items():
            print(f"setup    : {step}: {secs:.1f} s")

        list_rows, notes = bench_lists(s, args.repeat, args.warmup)
        create_row, create_notes = bench_creates(s, args.creates, args.block, warmup=20, seed=args.seed)
        notes += create_notes
        rows = list_rows + [create_row]

        print("\n== Results (ms per operation, medians; ratio = median of the per-round metacrm/hand ratios)")
        print_table(rows, show_cpu=engine.dialect.name == "sqlite")
        print(f"(load average after measuring: {' / '.join(f'{x:.2f}' for x in os.getloadavg())})")
        print("\nwhat the rows measure (each side opens its own pooled connection per call, as a request does):")
        cases = {c.key: c for c in list_cases(s)}
        print(f"  a   {cases['a'].label}")
        print("      metacrm: list_records(parse_list_args(args)) with the catalog in hand, JSON-ready values;")
        print("      hand: the same 2 Core selects (page + count), dict(row) per row")
        print("  a'  as a, plus the per-request catalog version check the API does (SELECT max(version))")
        print("  b   as a, through GET /api/v1/records/customer?... with a session cookie (login, catalog, jsonify)")
        print(f"  c1  {cases['c1'].label}")
        print(f"  c2  {cases['c2'].label}")
        print(f"  c3  {cases['c3'].label}")
        print("  d   metacrm: create_record() (coerce/validate, defaults, conditions, rules, owner/department")
        print("      lookups, autonumber, INSERT, history, re-read) in engine.begin(); hand: one Core INSERT ...")
        print("      RETURNING id of the same column values (code made up in Python) in engine.begin()")
        print("\nchecks:")
        for note in notes:
            print(f"  {note}")
        print("\nspread (ms):")
        for r in rows:
            print(f"  {r.operation[:60]}")
            print(f"      metacrm {spread(r.metacrm)}")
            print(f"      hand    {spread(r.hand)}")

        print("\n== list_records() step by step, scenario a (median ms, informational)")
        print(f"  {'wall':>9}  {'cpu':>9}")
        for step, (ms, cpu_ms) in list_breakdown(s, args.repeat):
            print(f"  {ms:9.3f}  {cpu_ms:9.3f}  {step}")

        print("\n== create_record() step by step (median ms, informational)")
        print(f"  {'wall':>9}  {'cpu':>9}")
        for step, (ms, cpu_ms) in create_breakdown(s, min(args.creates, 200), args.seed):
            print(f"  {fmt_ms(ms)}  {fmt_ms(cpu_ms)}  {step}")

        if args.profile:
            print("\n== Profiles (cProfile adds overhead to Python-heavy code; compare shares, not ms)")
            print(run_profiles(s, args.profile_calls, args.seed))
        s.runtime.engine.dispose()
    finally:
        if args.keep and not args.database_url:
            print(f"\n(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
